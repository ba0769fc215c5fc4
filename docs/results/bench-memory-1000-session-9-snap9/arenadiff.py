import json,subprocess,sys,os,collections,bisect
U='/work/wt/snap9/W/unipool'
w=sys.argv[1]; pool=w+'/pool'; names=sys.argv[2:]
def blob(d): return os.path.join(pool,'blobs','sha256',d.split(':')[1])
sym=collections.Counter(); pages=collections.Counter(); ex={}
for n in names:
    d=json.loads(subprocess.check_output([U,'pool','inspect','--json','--pool',pool,n]))
    c=d['config']; s=c.get('snapshot')
    if not s: continue
    pb=open(blob(c['private']['digest'] if isinstance(c['private'],dict) else c['private']),'rb').read()
    nm=subprocess.check_output(['nm','-n','--defined-only',f'{w}/images/aligned/{n}.img'],text=True).split('\n')
    syms=[(int(l.split()[0],16),l.split()[2]) for l in nm if len(l.split())==3]
    addrs=[a for a,_ in syms]
    for pg in s['pages']:
        a=pg['addr']
        hit=[e for e in c['arena'] if e['addr']<=a<e['addr']+e['size']]
        if not hit: continue
        e=hit[0]; off=e['blob_off']+a-e['addr']
        cold=pb[off:off+4096].ljust(4096,b'\0')
        snap=open(blob(pg['digest']),'rb').read()
        if cold==snap: pages['equal']+=1; continue
        pages['differs']+=1
        seen=set()
        for i in range(0,4096,8):
            if cold[i:i+8]!=snap[i:i+8]:
                j=bisect.bisect_right(addrs,a+i)-1
                name=syms[j][1] if j>=0 else '?'
                if name in seen: continue
                seen.add(name); sym[name]+=1
                ex.setdefault(name,(n,hex(a+i-syms[j][0]),cold[i:i+8].hex(),snap[i:i+8].hex()))
print(dict(pages))
for k,v in sym.most_common(40): print(v,k,ex[k])
