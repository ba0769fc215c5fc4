# hold.py BIN SPEC OUTPREFIX: run `BIN bench monitor-process --spec SPEC` (a copy of BIN),
# once the fleet is resident dump the monitor's smaps, status and its present anon pages.
import sys, subprocess, json, shutil, os, time, struct
binp, spec, out = sys.argv[1:4]
exe = os.path.abspath(out + '.exe')
shutil.copy(binp, exe); os.chmod(exe, 0o755)
env = dict(os.environ); env.update(dict(x.split('=',1) for x in sys.argv[4:]))
p = subprocess.Popen([exe, 'bench', 'monitor-process', '--spec', spec], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(out+'.stderr','w'), env=env)
line = p.stdout.readline()
msg = json.loads(line)
time.sleep(2)
pid = p.pid
for f in ('smaps', 'status', 'maps', 'smaps_rollup'):
    shutil.copy(f'/proc/{pid}/{f}', f'{out}.{f}')
# present pages per mapping (anon and exe)
pm = open(f'/proc/{pid}/pagemap', 'rb')
res = {}
for l in open(f'{out}.maps'):
    m = l.split()
    lo, hi = [int(x, 16) for x in m[0].split('-')]
    if hi - lo > (1 << 32): continue
    pm.seek(lo // 4096 * 8); raw = pm.read((hi - lo) // 4096 * 8)
    if len(raw) < (hi-lo)//4096*8: continue
    pres = [lo + i * 4096 for i in range((hi - lo) // 4096) if struct.unpack_from('<Q', raw, i * 8)[0] >> 63 & 1]
    res[m[0] + ' ' + (m[5] if len(m) > 5 else '')] = pres
json.dump(res, open(out + '.present.json', 'w'))
p.stdin.write(b'release\n'); p.stdin.flush(); p.stdin.close()
o = p.stdout.read(); p.wait()
d = json.loads(o.decode().strip().splitlines()[-1])
print(out, 'resident', len(msg.get('resident', [])), 'ok', sum(x['ok'] for x in d['outcomes']), 'rc', p.returncode)
os.remove(exe)
