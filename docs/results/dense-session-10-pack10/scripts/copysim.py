import json, sys
exec(open('psim.py').read().split("def run(")[0])
def run(c, size, minusers=2, choose='minpages', copy=True):
    packs=[]; regions={}; users={}  # users[(k,region)] count
    per={}; chosen=[]; copies=0
    for u in c['unikernels']:
        mem=[(l['name'],l['sha256']) for l in u['libraries'] if (l['name'],l['sha256']) in size]
        old=[k for k in mem if k in regions]; new=[k for k in mem if k not in regions]
        touched=set(); choice={}
        for k in sorted(old, key=lambda k: len(regions[k])):
            if choose=='newest':
                best=regions[k][-1]
            elif choose=='hybrid':
                best=min(regions[k], key=lambda r: (len({(r[0],pg) for pg in pages(r[1],size[k])}-touched), -r[0]))
            elif choose=='hybrid2':
                best=min(regions[k], key=lambda r: (len({(r[0],pg) for pg in pages(r[1],size[k])}-touched) + (0 if r==regions[k][-1] else 0.5), -r[0]))
            else:
                best=min(regions[k], key=lambda r: (len({(r[0],pg) for pg in pages(r[1],size[k])}-touched), -users.get((k,r),0)))
            choice[k]=best; touched|={(best[0],pg) for pg in pages(best[1],size[k])}
        place=list(new)
        if copy and new:
            cnt={}
            for k in old:
                for pg in pages(choice[k][1],size[k]): cnt[(choice[k][0],pg)]=cnt.get((choice[k][0],pg),0)+1
            cand=[k for k in old if all(cnt[(choice[k][0],pg)]==1 for pg in pages(choice[k][1],size[k])) and users.get((k,choice[k]),0)>=minusers]
            base=[]
            for k in new: base.append((firstfit(base,size[k]),size[k]))
            bp=len(set().union(*[pages(o,s) for o,s in base]))
            for k in sorted(cand,key=lambda k:-size[k]):
                off=firstfit(base,size[k])
                if off is None: continue
                t=base+[(off,size[k])]; tp=len(set().union(*[pages(o,s) for o,s in t]))
                if tp-bp < len(pages(choice[k][1],size[k])): base=t; bp=tp; place.append(k)
        if place:
            packs.append([]); p=len(packs)-1
            for k in place:
                off=firstfit(packs[p],size[k]); packs[p].append((off,size[k]))
                if k in regions: copies+=1
                regions.setdefault(k,[]).append((p,off)); choice[k]=(p,off)
        t=set()
        for k in mem:
            t|={(choice[k][0],pg) for pg in pages(choice[k][1],size[k])}
            users[(k,choice[k])]=users.get((k,choice[k]),0)+1
        per[u['name']]=len(t); chosen.append(dict(choice))
    holders={}
    for d in chosen:
        for k in d: holders.setdefault(k,[]).append(d[k])
    shar=miss=0
    for d in chosen:
        for k,r in d.items():
            if len(holders[k])<2: continue
            n_=len(pages(r[1],size[k])); shar+=n_
            if holders[k].count(r)<2: miss+=n_
    return per, copies, miss, shar
for s in sys.argv[1:]:
    C=f'/work/cache/dense8/corpus20s{s}' if s!='4' else '/work/cache/pack10/corpus20s4'
    m=json.load(open(f'/work/cache/pack10/lba{s}/map.json')); c=json.load(open(C+'/corpus.json')); lb=json.load(open(f'/work/cache/pack10/lba{s}.json'))
    size={}
    for l in m['libraries']:
        for r in l['regions']:
            if r.get('pack'):
                for v in r['versions']: size[(l['name'],v['object_sha256'])]=r['shared_size']
    L={l['layout']:l for l in lb['layouts']}
    pk={i['unikernel']:i['loaded_bytes'] for i in L['packed']['images']}
    al={i['unikernel']:i['loaded_bytes'] for i in L['aligned']['images']}
    sh=L['aligned']['sharable_pages']; n=len(pk)
    base,_,_,_=run(c,size,copy=False)
    for mu in (2,3,4):
        for ch in ('newest','hybrid','hybrid2'):
            per,cp,miss,_=run(c,size,mu,ch)
            r=[(al[k]+(per[k]-base[k])*PAGE)/pk[k] for k in pk]
            print(f"seed {s} minusers {mu} {ch:8s}: pack pages {sum(per.values())/n:.2f} (sealed {sum(base.values())/n:.2f}) copies {cp} misses {miss} -> identity {(sh-miss)/sh*100:.2f}% est avg {sum(r)/n:.4f} worst {max(r):.4f}")
