import sys
samples=[];cur=None
for l in open(sys.argv[1]):
    if not l.strip():
        if cur: samples.append(cur); cur=None
        continue
    if not l.startswith('\t') and not l.startswith(' '*8):
        p=l.split()
        try: cur=[int(p[0]),float(p[1].rstrip(':')),int(p[2],16),[]]
        except Exception: cur=None
    elif cur is not None:
        p=l.split(); cur[3].append(p[1] if len(p)>1 else p[0])
main=samples[0][0]; t0=samples[0][1]
wins=[int(w,16) for w in sys.argv[2:]]
first={}; last={}
for pid,t,a,ch in samples:
    if pid!=main: continue
    s=' '.join(ch)
    for k in ['launch.resolve','prepareLater','tracer','holdResident','FreeOSMemory']:
        if k in s:
            first.setdefault(k,round(t-t0,2)); last[k]=round(t-t0,2)
    if a&~0xffff in wins: print('%#x at %.2f s'%(a,t-t0), [c for c in ch if 'unipool' in c or 'runtime.gc' in c or 'Preempt' in c][:3])
print('first',first); print('last',last)
