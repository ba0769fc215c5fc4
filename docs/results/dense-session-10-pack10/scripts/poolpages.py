import json,sys,collections,hashlib
def load(pool):
    idx=json.load(open(pool+'/index.json'))
    out=[]
    for e in idx['manifests']:
        m=json.load(open(pool+'/blobs/sha256/'+e['digest'].split(':')[1]))
        c=json.load(open(pool+'/blobs/sha256/'+m['config']['digest'].split(':')[1]))
        out.append(c)
    return out
def blobpages(pool,dg,cache={}):
    if dg not in cache:
        b=open(pool+'/blobs/sha256/'+dg.split(':')[1],'rb').read()
        cache[dg]=[hashlib.sha1(b[i:i+4096]).hexdigest() for i in range(0,len(b),4096)]
    return cache[dg]
for pool in sys.argv[1:]:
    cs=load(pool)
    filepages=collections.defaultdict(set); contents=collections.defaultdict(set); users=collections.Counter()
    mapped=collections.Counter()
    for c in cs:
        for l in c['libraries']:
            d=l.get('shared',{}).get('digest')
            if not d: continue
            name='APP' if l.get('app') else ('pack' if l.get('pack_page') else l['name'].split('+')[0])
            ps=blobpages(pool,d)
            for i,h in enumerate(ps):
                filepages[name].add((d,i)); contents[name].add(h)
            mapped[name]+=len(ps)
    tf=sum(len(v) for v in filepages.values())
    print(pool, 'images',len(cs),'distinct shared file pages',tf, 'mapped', sum(mapped.values()))
    for k in sorted(filepages, key=lambda k:-len(filepages[k])):
        print(f'  {k:16s} filepages {len(filepages[k]):6d} contents {len(contents[k]):6d} mapped {mapped[k]}')
