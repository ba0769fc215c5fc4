#!/bin/bash
# side by side: main's binary on fleet copy A, snapvma13's on copy B (each takes its snapshots in the run)
cd /work/cache/snapvma13
for inp in distinct; do
for x in "main A" "snapvma13 B"; do set -- $x
  echo "== $1 $inp $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /work/notes/ksm.lock nice -n 10 ./unipool-$1 bench memory --reuse --count 300 --seed 1 --inputs $inp --work $2 \
    --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out out-$1-$inp > bench-$1-$inp.log 2>&1
  echo "rc $? $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
done; done
