import struct,sys,glob,os
P=4096
def segs(path):
    b=open(path,'rb').read()
    assert b[:4]==b'\x7fELF' and b[4]==2
    phoff,=struct.unpack_from('<Q',b,0x20); phentsize,phnum=struct.unpack_from('<HH',b,0x36)
    out=[]
    for i in range(phnum):
        t,fl,off,va,pa,fs,ms,al=struct.unpack_from('<IIQQQQQQ',b,phoff+i*phentsize)
        if t==1 and ms>0: out.append((va,off,fs,ms,fl))
    out.sort()
    return b,out
def plan(path):
    b,ss=segs(path)
    maps=[]
    i=0
    while i<len(ss):
        lo=ss[i][0]&~(P-1); hi=(ss[i][0]+ss[i][3]+P-1)&~(P-1); prot=ss[i][4]; j=i+1
        while j<len(ss) and (ss[j][0]&~(P-1))<hi:
            hi=max(hi,(ss[j][0]+ss[j][3]+P-1)&~(P-1)); prot|=ss[j][4]; j+=1
        size=max([s[0]-lo+s[2] for s in ss[i:j]]+[0])
        data=bytearray(size)
        for s in ss[i:j]: data[s[0]-lo:s[0]-lo+s[2]]=b[s[1]:s[1]+s[2]]
        maps.append((lo,hi,prot,bytes(data)))
        i=j
    return maps
tot={}
for kind in sys.argv[2:]:
    T=dict(maps=0,vmas=0,written=0,zero=0,coal=0)
    for f in sorted(glob.glob(sys.argv[1]+'/'+kind+'/*.img')):
        m=plan(f)
        vm=1; 
        for a,c in zip(m,m[1:]):
            if not(a[1]==c[0] and a[2]==c[2]): vm+=1
        co=1
        for a,c in zip(m,m[1:]):
            if not(a[2]==c[2] and (a[1]>>21)==(c[0]>>21)): co+=1
        w=sum((len(d)+P-1)//P for _,_,_,d in m)
        z=sum(1 for _,_,_,d in m for k in range(0,len(d),P) if not any(d[k:k+P]))
        T['maps']+=len(m);T['vmas']+=vm;T['written']+=w;T['zero']+=z;T['coal']+=co
    print(kind,T)
