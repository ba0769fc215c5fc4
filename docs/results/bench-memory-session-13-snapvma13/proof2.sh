#!/bin/bash
# second round: repeated inputs, then distinct again in reversed order (snapshots already in A and B)
cd /work/cache/snapvma13
run() { # bin fleet inputs tag
  echo "== $1 $3 $4 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /work/notes/ksm.lock nice -n 10 ./unipool-$1 bench memory --reuse --count 300 --seed 1 --inputs $3 --work $2 \
    --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out out-$1-$3$4 > bench-$1-$3$4.log 2>&1
  echo "rc $? $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
run main A repeated ""
run snapvma13 B repeated ""
run snapvma13 B distinct -2
run main A distinct -2
