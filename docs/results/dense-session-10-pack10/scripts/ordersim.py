import json, sys, itertools, random
exec(open('psim.py').read().split("def run(")[0])
def runo(c, size, key):
    packs=[]; where={}; per={}
    for u in c['unikernels']:
        mem=[(l['name'],l['sha256']) for l in u['libraries'] if (l['name'],l['sha256']) in size]
        new=[k for k in mem if k not in where]
        if new:
            packs.append([]); p=len(packs)-1
            for k in sorted(new, key=key):
                off=firstfit(packs[p], size[k]); packs[p].append((off,size[k])); where[k]=(p,off)
        t=set()
        for k in mem: t|={(where[k][0],pg) for pg in pages(where[k][1],size[k])}
        per[u['name']]=len(t)
    return per
for s in sys.argv[1:]:
    C=f'/work/cache/dense8/corpus20s{s}' if s!='4' else '/work/cache/pack10/corpus20s4'
    m=json.load(open(f'/work/cache/pack10/lba{s}/map.json')); c=json.load(open(C+'/corpus.json'))
    size={}
    for l in m['libraries']:
        for r in l['regions']:
            if r.get('pack'):
                for v in r['versions']: size[(l['name'],v['object_sha256'])]=r['shared_size']
    use={}
    for u in c['unikernels']:
        for l in u['libraries']:
            k=(l['name'],l['sha256'])
            if k in size: use[k]=use.get(k,0)+1
    order=[(l['name'],l['sha256']) for u in c['unikernels'] for l in u['libraries']]
    n=len(c['unikernels'])
    res={}
    res['link order']=runo(c,size,lambda k: 0)
    res['oracle popular first']=runo(c,size,lambda k: -use[k])
    res['oracle popular last']=runo(c,size,lambda k: use[k])
    res['small first']=runo(c,size,lambda k: size[k])
    res['large first']=runo(c,size,lambda k: -size[k])
    res['name']=runo(c,size,lambda k: k)
    print(s, {k: round(sum(v.values())/n,2) for k,v in res.items()})
