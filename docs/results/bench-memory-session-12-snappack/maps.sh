#!/bin/bash
# 1000 instances held from each pool's snapshots: kernel mappings and distinct pool files
# per instance (/proc/PID/maps), slabinfo deltas after drop_caches (as /work/cache/s12/slab/run.sh)
S=/work/cache/s12/snappack
cd $S
names=$(python3 -c "import json;print(' '.join(m['annotations']['org.opencontainers.image.ref.name'] for m in json.load(open('base/pool/index.json'))['manifests']))")
snap() { awk 'NR>2{print $1, $2*$4}' /proc/slabinfo | sort; }
for v in "$@"; do
  B=$S/unipool-$v
  sync; echo 2 > /proc/sys/vm/drop_caches; sleep 2
  snap > slab-$v.before
  $B run --pool $S/$v/pool --snapshot --hold 60s $names > held-$v.out 2>&1 &
  pid=$!
  for i in $(seq 1 300); do n=$(grep -l "$S/$v/pool/blobs" /proc/[0-9]*/maps 2>/dev/null | wc -l); [ "$n" -ge 1000 ] && break; sleep 1; done
  sleep 10
  snap > slab-$v.after
  python3 - $v $S/$v/pool/blobs <<'PY'
import os, sys, re
v, blobs = sys.argv[1], sys.argv[2]
import json
snapb = set()
pool = os.path.dirname(blobs)
for e in json.load(open(os.path.join(pool, 'index.json')))['manifests']:
    m = json.load(open(os.path.join(blobs, 'sha256', e['digest'][7:])))
    for l in m['layers']:
        if l['mediaType'].startswith('application/vnd.unipool.snapshot.') and not l['mediaType'].endswith('zero.v1'):
            snapb.add(l['digest'][7:])
n = maps = files = snapfiles = snapmaps = 0
for pid in os.listdir('/proc'):
    if not pid.isdigit(): continue
    try:
        if not open(f'/proc/{pid}/comm').read().startswith('uk:'): continue
        lines = open(f'/proc/{pid}/maps').read().splitlines()
    except OSError: continue
    fs = set(l.split()[-1] for l in lines if blobs in l)
    if not fs: continue  # another user's instance
    n += 1; maps += len(lines)
    files += len(fs)
    snapfiles += len([f for f in fs if os.path.basename(f) in snapb])
    snapmaps += len([l for l in lines if blobs in l and os.path.basename(l.split()[-1]) in snapb])
print(f"{v}: {n} instances; per instance {maps/n:.2f} mappings, {files/n:.2f} distinct pool files; of them snapshot pages/packs (not the zero blob): {snapmaps/n:.2f} mappings, {snapfiles/n:.2f} files")
PY
  wait $pid
  join slab-$v.before slab-$v.after | awk '{d=$3-$2; if (d>100000||d<-100000) printf "%-28s %8.0f KiB\n",$1,d/1024}' | sort -k2 -n -r > slab-$v.diff
  echo "$v slab deltas:"; head -12 slab-$v.diff
done
