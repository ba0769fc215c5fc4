import json,subprocess,sys,os,collections,hashlib
U='/work/wt/snap9/W/unipool'
w=sys.argv[1]; pool=w+'/pool'; names=open(sys.argv[2]).read().split()
def blob(d): return os.path.join(pool,'blobs','sha256',d.split(':')[1])
cold=collections.Counter(); stored=collections.Counter(); eq=0; byaddr=collections.defaultdict(lambda:[set(),set(),0])
for n in names:
    d=json.loads(subprocess.check_output([U,'pool','inspect','--json','--pool',pool,n]))
    c=d['config']; s=c['snapshot']
    pb=open(blob(c['private']['digest']),'rb').read()
    st={pg['addr']:pg['digest'] for pg in s['pages']}
    for e in c['arena']:
        for o in range(0,e['size'],4096):
            a=e['addr']+o
            if a not in st: continue
            pg=pb[e['blob_off']+o:e['blob_off']+o+4096].ljust(4096,b'\0')
            h=hashlib.sha1(pg).hexdigest()
            cold[h]+=1; stored[st[a]]+=1
            b=byaddr[a]; b[0].add(h); b[1].add(st[a]); b[2]+=1
print('stored pages',sum(stored.values()),'distinct stored',len(stored),'distinct cold contents of those pages',len(cold))
for a in sorted(byaddr, key=lambda a:-byaddr[a][2])[:12]:
    b=byaddr[a]; print(hex(a),'uses',b[2],'distinct cold',len(b[0]),'distinct snap',len(b[1]))
