# xcheck.py W: every NUL-terminated string of 5+ printable characters (after a zero byte) in a DCE
# image's loaded bytes must appear in its aligned image's copying-load view (the .unipool.dead pages zeroed).
import sys,struct,subprocess,os,re,tempfile
def progs(img):
    out=subprocess.run(['readelf','-lW',img],capture_output=True,text=True).stdout
    return [(int(f[1],16),int(f[2],16),int(f[4],16)) for f in (l.split() for l in out.splitlines()) if f and f[0]=='LOAD']
def dead(img):
    with tempfile.TemporaryDirectory() as t:
        subprocess.run(['objcopy','--dump-section','.unipool.dead='+t+'/d',img,t+'/junk'],capture_output=True)
        try: b=open(t+'/d','rb').read()
        except OSError: return []
    n=struct.unpack_from('<I',b,8)[0]
    return [struct.unpack_from('<QQ',b,12+16*i) for i in range(n)]
def view(img,zero_dead):
    data=open(img,'rb').read(); dr=dead(img) if zero_dead else []
    pages={}
    for off,va,fs in progs(img):
        for a in range(va&~4095, va+fs, 4096):
            buf=pages.setdefault(a,bytearray(4096))
            lo,hi=max(a,va),min(a+4096,va+fs)
            buf[lo-a:hi-a]=data[off+lo-va:off+hi-va]
    for a in pages:
        if any(s<=a<e for s,e in dr): pages[a]=bytearray(4096)
    return b''.join(bytes(pages[a]) for a in sorted(pages))
if __name__=='__main__':
    W=sys.argv[1]; bad=tot=0
    for name in sorted(os.listdir(f'{W}/images/dce')):
        d=view(f'{W}/images/dce/{name}',False); a=view(f'{W}/images/aligned/{name}',True)
        strs=set(re.findall(rb'(?<=\x00)[\x20-\x7e\t\n]{5,}\x00',d))
        miss=[s for s in strs if s not in a]
        tot+=len(strs); bad+=len(miss)
        if miss: print(name,len(strs),'missing',len(miss),[m[:40] for m in miss[:5]])
    print('strings',tot,'missing',bad)
