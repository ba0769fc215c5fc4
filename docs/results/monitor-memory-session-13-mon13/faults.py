import sys,collections
# faults.py TXT WIN...: callchains of the monitor's page faults in 64 KiB windows WIN (hex)
wins=[int(w,16) for w in sys.argv[2:]]
samples=[];cur=None
for l in open(sys.argv[1]):
    if not l.strip():
        if cur: samples.append(cur); cur=None
        continue
    if not l.startswith('\t') and not l.startswith(' '*8):
        p=l.split(); cur=[int(p[0].split('/')[0]),int(p[1],16),[]]
    elif cur is not None:
        p=l.split(); cur[2].append(p[1] if len(p)>1 else p[0])
if cur: samples.append(cur)
main=samples[0][0]
for pid,addr,chain in samples:
    if pid!=main: continue
    w=addr&~0xffff
    if w in wins:
        print('%#x'%addr, ' <- '.join([s for s in chain if not s.startswith('[')][:14]))
