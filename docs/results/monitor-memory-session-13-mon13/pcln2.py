import sys,struct,subprocess,collections,bisect
exe=sys.argv[1]
secs={}
for l in subprocess.run(['readelf','-SW',exe],capture_output=True,text=True).stdout.splitlines():
    p=l.replace('[ ','[').split()
    if len(p)>5 and p[0].startswith('[') and p[1].startswith('.'):
        secs[p[1]]=(int(p[3],16),int(p[4],16),int(p[5],16))
va,off,sz=secs['.gopclntab']; tva=secs['.text'][0]
raw=open(exe,'rb').read(); data=raw[off:off+sz]
nfunc,nfiles,_,fno,cuo,fto,pco,plo=struct.unpack_from('<QQQQQQQQ',data,8)
def name(o): return data[fno+o:data.index(b'\0',fno+o)].decode()
items=[] # (pclntab offset, what)
texts=[]
for i in range(nfunc):
    entry,foff=struct.unpack_from('<II',data,plo+8*i)
    f=plo+foff
    eo,no,args,dr,pcsp,pcfile,pcln,npcdata,cu,sl,fid,fl,_,nfd=struct.unpack_from('<IiiIIIIIIiBBBB',data,f)
    n=name(no)
    items.append((f,'_func '+n)); items.append((fno+no,'name '+n)); texts.append((tva+eo,n))
    pcd=struct.unpack_from('<%dI'%npcdata,data,f+44)
    for t,o in [('sp',pcsp),('file',pcfile),('ln',pcln)]+[('d%d'%k,o) for k,o in enumerate(pcd)]:
        if o: items.append((pco+o,t+' '+n))
items.sort(); texts.sort()
def load(f): return set(int(x,16) for x in open(f).read().split())
A=load(sys.argv[2])
if len(sys.argv)>3: A-=load(sys.argv[3])
wins=sorted(set(a&~0xffff for a in A))
for w in wins:
    pages=sorted(a for a in A if a&~0xffff==w)
    if va<=w<va+sz:
        o=w-va
        i=bisect.bisect_left(items,(o,)); j=bisect.bisect_left(items,(o+65536,))
        sel=items[i:j]
        kinds=collections.Counter(x[1].split()[0] for x in sel)
        pk=collections.Counter(x[1].split()[1].rsplit('/',1)[-1].split('.')[0] for x in sel)
        print('pclntab win +%#x pages %d kinds %s pkgs %s'%(o,len(pages),dict(kinds),pk.most_common(8)))
    else:
        i=bisect.bisect_left(texts,(w,)); j=bisect.bisect_left(texts,(w+65536,))
        pk=collections.Counter(x[1].rsplit('/',1)[-1].split('.')[0] for x in texts[max(i-1,0):j])
        print('text win %#x pages %d funcs %d pkgs %s first %s last %s'%(w,len(pages),j-i,pk.most_common(8),texts[max(i-1,0)][1],texts[j-1][1]))
