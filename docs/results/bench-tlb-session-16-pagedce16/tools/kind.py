import sys,struct,subprocess,os,collections
sys.path.insert(0,'/tmp/pd')
def progs(img):
    out=subprocess.run(['readelf','-lW',img],capture_output=True,text=True).stdout
    r=[]
    for l in out.splitlines():
        f=l.split()
        if f and f[0]=='LOAD':
            flg=''.join(x for x in f[6:-1])
            r.append((int(f[1],16),int(f[2],16),int(f[4],16),flg))
    return r
def dead(img):
    subprocess.run(['objcopy','--dump-section','.unipool.dead=/tmp/d.bin',img,'/tmp/junk'],capture_output=True)
    b=open('/tmp/d.bin','rb').read(); os.remove('/tmp/d.bin')
    n=struct.unpack_from('<I',b,8)[0]
    return [struct.unpack_from('<QQ',b,12+16*i) for i in range(n)]
c=collections.Counter()
d=sys.argv[1]
for name in sorted(os.listdir(d)):
    img=os.path.join(d,name); data=open(img,'rb').read(); dr=dead(img)
    kinds={}
    for off,va,fs,flg in progs(img):
        for a in range(va&~4095, va+fs, 4096):
            lo,hi=max(a,va),min(a+4096,va+fs)
            if any(data[off+lo-va:off+hi-va]):
                kinds[a]=kinds.get(a,'')+flg
    for a,k in kinds.items():
        kind='X' if 'E' in k else ('W' if 'W' in k else 'R')
        c[(kind, any(s<=a<e for s,e in dr))]+=1
print(sorted(c.items()))
