#!/bin/bash
# bench.sh LABEL BIN ... : the 3-mode bench at 300 on my fleet, alternated
cd /work/cache/mon13
while [ $# -gt 0 ]; do
  L=$1; B=$2; shift 2
  echo "$L wait $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> bench-runs.log
  flock /work/notes/ksm.lock sh -c "echo \"$L start \$(date -u +%T) load \$(cut -d' ' -f1-3 /proc/loadavg)\" >> bench-runs.log; nice -n 10 $B bench memory --reuse --count 300 --seed 1 --inputs distinct \
    --work /work/cache/mon13/W --modes shared-snapshot,aligned-ksm,shared --ksm-wait 120s --ksm-pages-to-scan 1000 \
    --out /work/cache/mon13/out-$L > /work/cache/mon13/$L.log 2>&1"
  echo "$L rc=$? done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> bench-runs.log
done
