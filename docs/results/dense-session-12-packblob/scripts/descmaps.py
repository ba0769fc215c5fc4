import json, sys, os
def blob(pool, d): return os.path.join(pool, 'blobs', 'sha256', d.split(':')[1])
pool = sys.argv[1]
idx = json.load(open(os.path.join(pool, 'index.json')))
n = 0; shared = 0; packs = 0; packents = 0; snap = 0
for m in idx['manifests']:
    man = json.load(open(blob(pool, m['digest'])))
    c = json.load(open(blob(pool, man['config']['digest'])))
    n += 1
    ps = set()
    for l in c['libraries']:
        if l.get('pack') and not l.get('pack_page'): continue
        if l['shared']['size'] == 0: continue
        segs = l['shared'].get('segments') or [1]
        if l.get('pack_page'):
            packents += 1; ps.add(l['pack'])
        shared += len(segs)
    packs += len(ps)
print(f"{pool}: {n} unikernels; shared mappings per instance {shared/n:.2f} (pack entries {packents/n:.2f}, packs used {packs/n:.2f})")
