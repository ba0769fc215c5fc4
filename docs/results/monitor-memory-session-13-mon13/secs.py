import sys,subprocess,collections
# secs.py EXE A [B]: per-section counts of page set A (and A-only/B-only against B)
exe=sys.argv[1]
secs=[]
for l in subprocess.run(['readelf','-SW',exe],capture_output=True,text=True).stdout.splitlines():
    p=l.replace('[ ','[').split()
    if len(p)>5 and p[0].startswith('[') and p[1].startswith('.'):
        secs.append((int(p[3],16),int(p[5],16),p[1]))
def sec(a):
    for lo,sz,n in secs:
        if lo<=a+4095 and a<lo+sz: return n
    return '?'
def load(f): return set(int(x,16) for x in open(f).read().split())
A=load(sys.argv[2])
print('A', len(A), dict(collections.Counter(sec(a) for a in A)))
if len(sys.argv)>3:
    B=load(sys.argv[3])
    print('B', len(B))
    print('A only',len(A-B), dict(collections.Counter(sec(a) for a in A-B)))
    print('B only',len(B-A), dict(collections.Counter(sec(a) for a in B-A)))
