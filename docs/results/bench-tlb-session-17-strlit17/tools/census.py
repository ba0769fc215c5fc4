# census.py DIR...: per aligned image, non-zero loaded pages, of them dead; distinct (content, addr) pages
import sys,struct,subprocess,os,hashlib,re
def progs(img):
    out=subprocess.run(['readelf','-lW',img],capture_output=True,text=True).stdout
    return [(int(f[1],16),int(f[2],16),int(f[4],16)) for f in (l.split() for l in out.splitlines()) if f and f[0]=='LOAD']
def dead(img):
    subprocess.run(['objcopy','--dump-section','.unipool.dead=/tmp/d.bin',img,'/tmp/junk'],capture_output=True)
    try: b=open('/tmp/d.bin','rb').read()
    finally:
        if os.path.exists('/tmp/d.bin'): os.remove('/tmp/d.bin')
    n=struct.unpack_from('<I',b,8)[0]
    return [struct.unpack_from('<QQ',b,12+16*i) for i in range(n)]
for d in sys.argv[1:]:
    tot=tl=0; distinct=set(); distl=set()
    for name in sorted(os.listdir(d)):
        img=os.path.join(d,name); data=open(img,'rb').read()
        try: dr=dead(img)
        except Exception: dr=[]
        pages={}
        for off,va,fs in progs(img):
            for a in range(va&~4095, va+fs, 4096):
                buf=pages.setdefault(a,bytearray(4096))
                lo,hi=max(a,va),min(a+4096,va+fs)
                buf[lo-a:hi-a]=data[off+lo-va:off+hi-va]
        nz=[a for a,b in pages.items() if any(b)]
        live=[a for a in nz if not any(s<=a<e for s,e in dr)]
        tot+=len(nz); tl+=len(live)
        for a in nz: distinct.add((a,hashlib.sha1(pages[a]).digest()))
        for a in live: distl.add((a,hashlib.sha1(pages[a]).digest()))
        print(name,len(nz),len(live))
    print(d,'loaded',tot,'->',tl,'distinct',len(distinct),'->',len(distl))
