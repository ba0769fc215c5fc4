import json, sys, os, collections
def blob(pool, d): return os.path.join(pool, 'blobs', 'sha256', d.split(':')[1])
pool = sys.argv[1]
idx = json.load(open(os.path.join(pool, 'index.json')))
cnt=0
for m in idx['manifests']:
    man = json.load(open(blob(pool, m['digest'])))
    c = json.load(open(blob(pool, man['config']['digest'])))
    per = collections.Counter(l['pack'] for l in c['libraries'] if l.get('pack_page'))
    if any(v > 1 for v in per.values()):
        cnt+=1
        if cnt<=2:
            print(c['name'], dict((hex(k),v) for k,v in per.items()))
            libs=c['libraries']
            first=[i for i,l in enumerate(libs) if l.get('pack_page')]
            print(' pack page indices', first, 'of', len(libs))
            for l in libs:
                if l.get('pack_page'): print('  ', l['name'], hex(l['region']['start']), l.get('shift'))
print('unmerged', cnt)
