#!/usr/bin/env python3
# written.py SPEC BIN: hold the fleet of SPEC, then for every guest process compare each
# present page in the image's PT_LOAD ranges with the image's bytes; print per image the
# written pages and the symbols whose bytes changed.
import json, os, struct, subprocess, sys, time, re, collections
spec, binp = sys.argv[1], sys.argv[2]
S = json.load(open(spec))
p = subprocess.Popen([binp, 'bench', 'monitor-process', '--spec', spec, '--hold', '25s'],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
pids = {}
for line in p.stdout:
    try: j = json.loads(line)
    except Exception: continue
    if 'resident' in j:
        allp = j['resident']; break
time.sleep(2)
def children(pid):
    out = []
    for t in os.listdir(f'/proc/{pid}/task'):
        try: out += [int(x) for x in open(f'/proc/{pid}/task/{t}/children').read().split()]
        except Exception: pass
    return out
def comm(pid):
    return open(f'/proc/{pid}/comm').read().strip()
def segs(img):
    out = subprocess.run(['readelf', '-lW', img], capture_output=True, text=True).stdout
    r = []
    for l in out.splitlines():
        f = l.split()
        if f and f[0] == 'LOAD':
            r.append((int(f[1],16), int(f[2],16), int(f[4],16), int(f[5],16)))
    return r
def syms(img):
    out = subprocess.run(['nm', '-S', '-n', img], capture_output=True, text=True).stdout
    r = []
    for l in out.splitlines():
        f = l.split()
        if len(f) == 4: r.append((int(f[0],16), int(f[1],16), f[3]))
    return r
names = {u['name']: u for u in S['unikernels']}
tot = collections.Counter()
import hashlib
contents = collections.Counter()
arena_contents = collections.Counter()
for pid in allp:
    try: c = comm(pid)
    except Exception: continue
    # the instance's name: find matching unikernel by prefix
    u = None
    c = c.removeprefix('uk:')
    for n in names:
        if n.startswith(c): u = names[n]
    if u is None: continue
    img = u['image']; data = open(img,'rb').read(); sg = segs(img); sy = syms(img)
    want = {}
    for off, va, fs, ms in sg:
        for a in range(va & ~0xfff, va+ms, 0x1000):
            want.setdefault(a, bytearray(4096))
        for i in range(fs):
            a = va+i; want[a & ~0xfff][a & 0xfff] = data[off+i]
    pm = open(f'/proc/{pid}/pagemap','rb'); mem = open(f'/proc/{pid}/mem','rb')
    present = 0; written = []; zero = 0
    for a in sorted(want):
        pm.seek((a>>12)*8); e = struct.unpack('<Q', pm.read(8))[0]
        if not (e >> 63) & 1: continue
        present += 1
        try:
            mem.seek(a); got = mem.read(4096)
        except Exception: continue
        if got != bytes(want[a]):
            ch = [i for i in range(4096) if got[i] != want[a][i]]
            ss = set()
            for i in ch:
                x = a+i
                for s0, sz, n in sy:
                    if s0 <= x < s0+sz: ss.add(n)
            written.append((a, len(ch), sorted(ss)))
        if got == bytes(4096): zero += 1
        else:
            h = hashlib.sha256(got).digest(); contents[h] += 1
            if a >= 0x60080000 and a < 0x60100000 or a >= 0x70000000 and a < 0x80000000: arena_contents[h] += 1
    print(f"{u['name']:16} pid {pid} present {present} zero {zero} written {len(written)}")
    for a, n, ss in written:
        print(f"   {a:#x} {n:5} bytes  {' '.join(ss)[:200]}")
    tot['present'] += present; tot['written'] += len(written); tot['zero'] += zero
tot['distinct'] = len(contents); tot['arena_present_nonzero'] = sum(arena_contents.values()); tot['arena_distinct'] = len(arena_contents)
tot['arena_unique'] = sum(1 for h in arena_contents if contents[h] == 1)
print(dict(tot))
p.stdin = None
p.kill()
