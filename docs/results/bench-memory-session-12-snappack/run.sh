#!/bin/bash
# snappack side by side: snapshots taken by main's binary (5627b2d) vs snappack's (5bdf29e)
# on copies of one snapshot-free pool (session 11's final 1000 fleet, snapshots stripped: strip.py, then pool gc)
S=/work/cache/s12/snappack
cd $S
names=$(python3 -c "import json;print(' '.join(m['annotations']['org.opencontainers.image.ref.name'] for m in json.load(open('base/pool/index.json'))['manifests']))")
for v in main snappack; do
  rm -rf $S/$v; mkdir -p $S/$v
  cp -a base/pool base/corpus base/monitor $S/$v/ && ln -s /work/cache/s11/final/W/w/images $S/$v/images
  B=$S/unipool-$v
  date -u +"$v snapshots start %T"
  /usr/bin/time -f "$v snapshots: %e s" nice -n 10 $B snapshot --pool $S/$v/pool $names > $S/snap-$v.log 2>&1 || echo "$v snapshot failed"
  tail -1 $S/snap-$v.log
  $B pool stats --pool $S/$v/pool > $S/stats-$v.txt
  echo "$v pool: $(find $S/$v/pool/blobs -type f | wc -l) files, $(du -sb $S/$v/pool/blobs | cut -f1) bytes"
  $B pool verify --pool $S/$v/pool | tail -1
done
for v in main snappack; do
  B=$S/unipool-$v
  date -u +"$v bench start %T"
  flock /work/notes/ksm.lock $B bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $S/$v \
    --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $S/out-$v-distinct > $S/bench-$v-distinct.log 2>&1
  echo "$v bench rc=$?"
  grep "^mode .*final" $S/bench-$v-distinct.log
done
date -u +"benches done %T"
