# Make a pool copy's unikernels snapshot-free: each manifest without its
# snapshot layers, its description without "snapshot" (new blobs, new index).
import json, hashlib, os, sys
pool = sys.argv[1]
B = os.path.join(pool, 'blobs/sha256')
def put(data):
    d = hashlib.sha256(data).hexdigest()
    p = os.path.join(B, d)
    if not os.path.exists(p):
        with open(p + '.tmp', 'wb') as f: f.write(data)
        os.chmod(p + '.tmp', 0o444); os.rename(p + '.tmp', p)
    return 'sha256:' + d, len(data)
idx = json.load(open(os.path.join(pool, 'index.json')))
n = 0
for e in idx['manifests']:
    m = json.load(open(os.path.join(B, e['digest'][7:])))
    c = json.load(open(os.path.join(B, m['config']['digest'][7:])))
    if 'snapshot' not in c: continue
    del c['snapshot']
    cd, cs = put(json.dumps(c, separators=(',', ':')).encode())
    m['config']['digest'], m['config']['size'] = cd, cs
    m['layers'] = [l for l in m['layers'] if not l['mediaType'].startswith('application/vnd.unipool.snapshot.')]
    md, ms = put(json.dumps(m, separators=(',', ':')).encode())
    e['digest'], e['size'] = md, ms
    n += 1
data = json.dumps(idx, indent=2).encode() + b'\n'
with open(os.path.join(pool, 'index.json.tmp'), 'wb') as f: f.write(data)
os.rename(os.path.join(pool, 'index.json.tmp'), os.path.join(pool, 'index.json'))
print('stripped', n)
