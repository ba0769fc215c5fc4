#!/usr/bin/env python3
"""psim.py SEED...: simulate pack policies on the link bench corpora (pack pages per image)."""
import json, sys, itertools
PAGE, ALIGN, ROOM = 4096, 64, 16*4096
def pageup(x): return (x+PAGE-1)//PAGE*PAGE
def pages(off, sz): return set(range(off//PAGE, (off+sz-1)//PAGE+1))
def firstfit(used, sz, room=ROOM):
    used = sorted(used)+[(room, 0)]
    lo = 0
    for uo, us in used:
        off = (lo+ALIGN-1)//ALIGN*ALIGN
        if pageup(off % PAGE+sz) > pageup(sz): off = pageup(off)
        if off+sz <= uo: return off
        lo = max(lo, uo+us)
    return None

def run(c, size, policy, K=1):
    packs = []            # list of list (off, sz)
    regions = {}          # member -> list of (pack, off)
    per = {}; copies = 0
    for u in c['unikernels']:
        mem = [(l['name'], l['sha256']) for l in u['libraries'] if (l['name'], l['sha256']) in size]
        old = [k for k in mem if k in regions]; new = [k for k in mem if k not in regions]
        # choose regions for old members: greedy, members with most choices last
        touched = set(); choice = {}
        # first members with one region
        for k in sorted(old, key=lambda k: len(regions[k])):
            best = min(regions[k], key=lambda r: (len({(r[0], pg) for pg in pages(r[1], size[k])}-touched), -r[0]))
            choice[k] = best; touched |= {(best[0], pg) for pg in pages(best[1], size[k])}
        opened = None
        def openpack():
            packs.append([]); return len(packs)-1
        place = list(new)
        if policy in ('copy', 'copyall') and (new or policy == 'copyall'):
            # members alone on their pages (for this image): candidates to copy
            cnt = {}
            for k in old:
                for pg in pages(choice[k][1], size[k]): cnt[(choice[k][0], pg)] = cnt.get((choice[k][0], pg), 0)+1
            cand = [k for k in old if all(cnt[(choice[k][0], pg)] == 1 for pg in pages(choice[k][1], size[k]))]
            # simulate: new pack with new + cand; keep copies that don't add pages
            if new or len(cand) >= K:
                trial = []
                for k in new + sorted(cand, key=lambda k: -size[k]):
                    off = firstfit(trial, size[k])
                    if off is None: continue
                    trial.append((off, size[k]))
                npages = len(set().union(*[pages(o, s) for o, s in trial])) if trial else 0
                saved = sum(len(pages(choice[k][1], size[k])) for k in cand)
                if new:
                    # greedy: copy candidate if total new-pack pages grow less than its own pages
                    base = []
                    for k in new:
                        base.append((firstfit(base, size[k]), size[k]))
                    bp = len(set().union(*[pages(o, s) for o, s in base]))
                    for k in sorted(cand, key=lambda k: -size[k]):
                        off = firstfit(base, size[k])
                        if off is None: continue
                        t = base+[(off, size[k])]
                        tp = len(set().union(*[pages(o, s) for o, s in t]))
                        if tp - bp < len(pages(choice[k][1], size[k])):
                            base = t; bp = tp; place.append(k)
                elif npages + K <= saved:
                    place = sorted(cand, key=lambda k: -size[k])
        if place:
            opened = openpack()
            for k in place:
                off = firstfit(packs[opened], size[k])
                packs[opened].append((off, size[k]))
                if k in regions:
                    copies += 1
                    for pg in pages(choice[k][1], size[k]): touched.discard((choice[k][0], pg))  # may be shared... recompute below
                regions.setdefault(k, []).append((opened, off)); choice[k] = (opened, off)
        touched = set()
        for k in mem: touched |= {(choice[k][0], pg) for pg in pages(choice[k][1], size[k])}
        per[u['name']] = len(touched)
    return per, copies, sum(len(set().union(*[pages(o, s) for o, s in p])) for p in packs if p)

for s in sys.argv[1:]:
    C = f'/work/cache/dense8/corpus20s{s}' if s != '4' else '/work/cache/pack10/corpus20s4'
    lbj = f'/work/cache/pack10/lba{s}.json'
    m = json.load(open(f'/work/cache/pack10/lba{s}/map.json')); c = json.load(open(C+'/corpus.json')); lb = json.load(open(lbj))
    size = {}
    for l in m['libraries']:
        for r in l['regions']:
            if r.get('pack'):
                for v in r['versions']: size[(l['name'], v['object_sha256'])] = r['shared_size']
    L = {l['layout']: l for l in lb['layouts']}
    pk = {i['unikernel']: i['loaded_bytes'] for i in L['packed']['images']}
    al = {i['unikernel']: i['loaded_bytes'] for i in L['aligned']['images']}
    real = {i['unikernel']: i['pack_pages'] for i in L['aligned']['images']}
    n = len(pk)
    base, _, bpp = run(c, size, 'sealed')
    print(f"seed {s}: measured pack pages/image {sum(real.values())/n:.2f}, sim sealed {sum(base.values())/n:.2f} (pool pack pages {bpp}); measured avg {sum(al[k]/pk[k] for k in pk)/n:.4f} worst {max(al[k]/pk[k] for k in pk):.4f}")
    for pol, K in [('copy', 1), ('copyall', 1), ('copyall', 2), ('copyall', 3)]:
        per, cp, pp = run(c, size, pol, K)
        r = [(al[k]+(per[k]-base[k])*PAGE)/pk[k] for k in pk]
        print(f"   {pol} K={K}: pack pages/image {sum(per.values())/n:.2f}, copies {cp}, pool pack pages {pp}, est avg {sum(r)/n:.4f} worst {max(r):.4f}")
