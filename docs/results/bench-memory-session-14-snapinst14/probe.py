#!/usr/bin/env python3
"""Dump the private (anonymous, present) pages of held uk: processes.
Usage: probe.py OUTDIR  -> OUTDIR/pages.json (+ OUTDIR/pages/<sha>.bin)"""
import os, sys, struct, hashlib, json
out = sys.argv[1]
root = int(sys.argv[2])
def anc(p):
    seen=0
    while p>1 and seen<10:
        if p==root: return True
        try: p=int(open(f'/proc/{p}/stat').read().rsplit(')',1)[1].split()[1])
        except Exception: return False
        seen+=1
    return False
os.makedirs(out + '/pages', exist_ok=True)
res = []
BI = 0x60100000
for pid in os.listdir('/proc'):
    if not pid.isdigit(): continue
    try:
        comm = open(f'/proc/{pid}/comm').read().strip()
    except Exception: continue
    if not comm.startswith('uk:') or not anc(int(pid)): continue
    try:
        maps = open(f'/proc/{pid}/maps').read().splitlines()
        pm = open(f'/proc/{pid}/pagemap','rb')
        mem = open(f'/proc/{pid}/mem','rb')
        mem.seek(BI); bi = mem.read(160)
        (magic, ver, flags, cl, cll, hs, hsz, ss, ssz, iid) = struct.unpack_from('<QIIQQQQQQQ', bi)
        mem.seek(cl); cmd = mem.read(cll).decode(errors='replace')
    except Exception as e:
        print(pid, e); continue
    for l in maps:
        f = l.split()
        lo, hi = (int(x,16) for x in f[0].split('-'))
        if 'w' not in f[1] or lo >= 0xffffffff00000000: continue
        path = f[5] if len(f) > 5 else ''
        pm.seek(lo // 4096 * 8)
        ents = pm.read((hi-lo)//4096*8)
        for i in range(0, len(ents)//8):
            e = struct.unpack_from('<Q', ents, i*8)[0]
            if not (e >> 63) & 1: continue
            if (e >> 61) & 1: continue
            a = lo + i*4096
            mem.seek(a); data = mem.read(4096)
            h = hashlib.sha256(data).hexdigest()[:16]
            p = f'{out}/pages/{h}.bin'
            if not os.path.exists(p): open(p,'wb').write(data)
            if hs <= a < hs + hsz: place, pg = 'heap', (a - hs)//4096
            elif ss <= a < ss + ssz: place, pg = 'stack', (ss + ssz - a)//4096 - 1
            elif BI <= a < BI + 0x10000: place, pg = 'bootinfo', (a-BI)//4096
            elif 0x60080000 <= a < 0x60100000 or 0x70000000 <= a < 0x80000000: place, pg = 'arena', a
            else: place, pg = 'other', a
            res.append(dict(pid=int(pid), comm=comm, app=comm[3:].split('-')[0], cmd=cmd, heap=hs, addr=a, place=place, pg=pg, path=os.path.basename(path)[:12], sha=h, nz=4096-data.count(0)))
json.dump(res, open(out+'/pages.json','w'))
print(len(res), 'pages from', len(set(r['pid'] for r in res)), 'processes')
