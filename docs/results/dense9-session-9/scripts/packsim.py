#!/usr/bin/env python3
"""packsim.py MAP CORPUS LINKBENCH_JSON: simulate pack placement policies on one corpus.

The small library versions (pack members) and their sizes come from the map a real
`link bench` wrote (MAP); each image's members from the corpus (CORPUS/corpus.json), linked
in corpus order, one at a time. Policies:
  sealed  - today's: an image's new members go first fit into a fresh pack it opens and seals.
  append  - a new member may also go into the unused room of a sealed pack's page the image
            already touches (a new version of that page: the bytes before stay, images linked
            before keep the old version); else as sealed.
Prints pack pages per image under each policy, the page versions made, and the link-bench
average of per-image ratios with each image's aligned loaded pages changed by the difference
(append - sealed) from LINKBENCH_JSON's measured figures."""
import json, sys
PAGE, ALIGN, ROOM = 4096, 64, 16 * 4096
m = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); lb = json.load(open(sys.argv[3]))
size = {}
for l in m['libraries']:
    for r in l['regions']:
        if r.get('pack'):
            for v in r['versions']:
                size[(l['name'], v['object_sha256'])] = r['shared_size']
def pageup(x): return (x + PAGE - 1) // PAGE * PAGE
def pages(off, sz): return set(range(off // PAGE, (off + sz - 1) // PAGE + 1))

def run(policy):
    packs = []          # each: list of (off, size)
    where = {}          # member -> (pack, off)
    versions = {}       # (pack, page) -> number of versions
    per_image = {}
    for u in c['unikernels']:
        mem = [(l['name'], l['sha256']) for l in u['libraries'] if (l['name'], l['sha256']) in size]
        touched = set()
        for k in mem:
            if k in where:
                p, off = where[k]
                touched |= {(p, pg) for pg in pages(off, size[k])}
        new = [k for k in mem if k not in where]
        opened = None
        appended = set()
        for k in new:
            sz = size[k]
            best = None
            cands = []
            if policy == 'append':
                cands += sorted({p for p, _ in touched if p != opened})
            if opened is not None:
                cands.append(opened)
            for p in cands:
                used = sorted(packs[p]) + [(ROOM, 0)]
                lo = 0
                for uo, us in used:
                    off = (lo + ALIGN - 1) // ALIGN * ALIGN
                    if pageup(off % PAGE + sz) > pageup(sz):
                        off = pageup(off)
                    if off + sz <= uo:
                        newpages = {(p, pg) for pg in pages(off, sz)} - touched
                        # appending to a sealed page is only worth it on a page the image touches
                        if p != opened and len(newpages) >= len(pages(off, sz)):
                            break
                        if best is None or len(newpages) < best[0]:
                            best = (len(newpages), p, off)
                        break
                    lo = max(lo, uo + us)
            if best is None or (opened is None and best[0] > 0 and policy == 'append' and False):
                pass
            if best is None:
                if opened is None:
                    packs.append([]); opened = len(packs) - 1
                used = sorted(packs[opened]) + [(ROOM, 0)]
                lo = 0
                for uo, us in used:
                    off = (lo + ALIGN - 1) // ALIGN * ALIGN
                    if pageup(off % PAGE + sz) > pageup(sz):
                        off = pageup(off)
                    if off + sz <= uo:
                        best = (0, opened, off); break
                    lo = max(lo, uo + us)
            _, p, off = best
            packs[p].append((off, sz)); where[k] = (p, off)
            if p != opened:
                appended |= {(p, pg) for pg in pages(off, sz)}
            touched |= {(p, pg) for pg in pages(off, sz)}
        for key in appended:
            versions[key] = versions.get(key, 1) + 1
        per_image[u['name']] = len(touched)
    return per_image, versions

s, _ = run('sealed'); a, ver = run('append')
L = {l['layout']: l for l in lb['layouts']}
pk = {i['unikernel']: i['loaded_bytes'] for i in L['packed']['images']}
al = {i['unikernel']: i['loaded_bytes'] for i in L['aligned']['images']}
real = {i['unikernel']: i['pack_pages'] for i in L['aligned']['images']}
n = len(s)
print(f"pack pages per image: measured {sum(real.values())/n:.2f}, simulated sealed {sum(s.values())/n:.2f}, append {sum(a.values())/n:.2f}")
print(f"page versions beyond the first: {sum(v-1 for v in ver.values())} (pages with more than one version: {len(ver)})")
r0 = [al[k] / pk[k] for k in pk]
r1 = [(al[k] + (a[k] - s[k]) * PAGE) / pk[k] for k in pk]
print(f"average of per-image ratios: measured {sum(r0)/n:.4f}, with append's difference {sum(r1)/n:.4f}; worst {max(r0):.4f} -> {max(r1):.4f}")
