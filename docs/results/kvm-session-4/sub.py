# sub.py SRC DST NAME...: a pool holding only NAME's manifests and blobs
import json, os, shutil, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
idx = json.load(open(f'{src}/index.json'))
keep = [m for m in idx['manifests'] if m.get('annotations', {}).get('org.opencontainers.image.ref.name') in names]
os.makedirs(f'{dst}/blobs/sha256', exist_ok=True)
def cp(d):
    h = d.split(':')[1]
    shutil.copy2(f'{src}/blobs/sha256/{h}', f'{dst}/blobs/sha256/{h}')
for m in keep:
    cp(m['digest'])
    man = json.load(open(f'{src}/blobs/sha256/' + m['digest'].split(':')[1]))
    cp(man['config']['digest'])
    for l in man['layers']:
        cp(l['digest'])
for f in ['map.json', 'oci-layout']:
    shutil.copy2(f'{src}/{f}', f'{dst}/{f}')
idx['manifests'] = keep
json.dump(idx, open(f'{dst}/index.json', 'w'))
print('sub-pool', dst, len(keep), 'unikernels')
