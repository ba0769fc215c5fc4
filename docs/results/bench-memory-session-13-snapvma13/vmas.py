import os,sys,re,json,collections
pool=sys.argv[1]; MINE=sys.argv[2]; size=collections.Counter()
# classify blobs by media type from manifests
mt={}
idx=json.load(open(pool+'/index.json'))
for m in idx['manifests']:
    man=json.load(open(pool+'/blobs/sha256/'+m['digest'][7:]))
    for l in man['layers']: mt[l['digest'][7:]]=l['mediaType'].split('.')[-2] if l['mediaType'].count('.')>2 else l['mediaType']
files=set(); nfiles=0
pids=[int(p) for p in os.listdir('/proc') if p.isdigit()]
tot=collections.Counter(); n=0; anonin=collections.Counter(); rss=collections.Counter()
for p in pids:
    try:
        comm=open('/proc/%d/comm'%p).read().strip()
        pp=int(open('/proc/%d/stat'%p).read().rsplit(')',1)[1].split()[1])
        exe=os.readlink('/proc/%d/exe'%pp)
    except: continue
    if not comm.startswith('uk:') or MINE not in exe: continue
    n+=1
    try: lines=open('/proc/%d/smaps'%p).read().split('\n')
    except: continue
    _fl=set(l.split()[5] for l in lines if re.match(r'^[0-9a-f]+-[0-9a-f]+ ',l) and len(l.split())>5 and not l.split()[5].startswith('['))
    nfiles+=len(_fl); files|=_fl
    cur=None; myf=set()
    for ln in lines:
        f=ln.split()
        if re.match(r'^[0-9a-f]+-[0-9a-f]+ ',ln):
            lo,hi=[int(x,16) for x in f[0].split('-')]
            path=f[5] if len(f)>5 else ''
            if lo>=0x7f0000000000 or path.startswith('['): cur=None; continue
            base=os.path.basename(path)
            if 'memfd' in path: k='memfd'
            elif path=='': k='anon'
            else: k=mt.get(base,'?')+':'+f[1]
            if 0x60080000<=lo<0x60100000 : k='arena/'+k
            tot[k]+=1; cur=k
        elif cur and f and f[0]=='Anonymous:':
            anonin[cur]+=int(f[1])
        elif cur and f and f[0]=='Size:':
            size[cur]+=int(f[1])
        elif cur and f and f[0]=='Rss:':
            rss[cur]+=int(f[1])

print('instances',n)
for k,v in sorted(tot.items(), key=lambda x:-x[1]): print('%-50s %6.2f vmas/inst  size %7.1f rss %6.1f KiB/inst anon %6.1f KiB/inst'%(k,v/n,size[k]/n,rss[k]/n,anonin[k]/n))
print('total vmas/inst %.2f'%(sum(tot.values())/n))
print('distinct files mapped (run) %d, per instance %.2f'%(len(files), nfiles/n))
