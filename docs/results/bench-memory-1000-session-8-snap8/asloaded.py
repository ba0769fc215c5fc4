import json,subprocess,sys,os,collections
pool=sys.argv[1]; names=open(sys.argv[2]).read().split()
def blob(d): return os.path.join(pool,'blobs','sha256',d.split(':')[1])
st=collections.Counter()
for n in names:
    d=json.loads(subprocess.check_output(['unipool','pool','inspect','--json','--pool',pool,n]))
    c=d['config']; s=c.get('snapshot')
    if not s: continue
    priv=c['private']
    pdig=priv['digest'] if isinstance(priv,dict) else priv
    pb=open(blob(pdig),'rb').read()
    for pg in s['pages']:
        a=pg['addr']
        hit=[e for e in c['arena'] if e['addr']<=a<e['addr']+e['size']]
        if not hit: st['not arena']+=1; continue
        e=hit[0]; off=e['blob_off']+a-e['addr']
        cold=pb[off:off+4096].ljust(4096,b'\0')
        snap=open(blob(pg['digest']),'rb').read()
        st['arena equal' if cold==snap else 'arena differs']+=1
print(dict(st))
