#!/bin/bash
# bench.sh LABEL BIN ... : the 3-mode bench at 1000 on s11's final fleet, alternated
cd /work/cache/mon12
while [ $# -gt 0 ]; do
  L=$1; B=$2; shift 2
  echo "$L start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> bench-runs.log
  flock /work/notes/ksm.lock nice -n 10 $B bench memory --reuse --count 1000 --seed 1 --inputs distinct \
    --work /work/cache/s11/final/W/w --modes shared-snapshot,aligned-ksm,shared --ksm-wait 120s --ksm-pages-to-scan 1000 \
    --out /work/cache/mon12/out-$L > /work/cache/mon12/$L.log 2>&1
  echo "$L rc=$? done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> bench-runs.log
done
