#!/bin/sh
# alternate bench memory runs, old CLI (its own copy as the monitor) vs new (unipool-vmm)
cd /work/cache/vmm14
for run in old-1 new-2 old-2; do
  case $run in old*) B=/tmp/vmm14probe/bins/unipool-old;; new*) B=/tmp/vmm14probe/bt/unipool;; esac
  echo "start $run $(date -u +%T) load $(cat /proc/loadavg)" > bench-$run.log
  flock /work/notes/ksm.lock nice -n 10 $B bench memory --reuse --count 300 --seed 1 --inputs distinct --work /work/cache/vmm14/W \
    --modes shared-snapshot,aligned-ksm,packed-naive --ksm-wait 120s --ksm-pages-to-scan 1000 --out /work/cache/vmm14/out-$run >> bench-$run.log 2>&1
  echo "end $run $(date -u +%T) load $(cat /proc/loadavg)" >> bench-$run.log
done
