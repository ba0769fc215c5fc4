#!/bin/bash
# runbench3.sh: one fleet (same: main 06db96d's fleet, its 300 images pooled again so it has no snapshot),
# new binary (bootinfo15 bfbcd6a) first (it takes its snapshots), then the old fleet (old binary, its snapshots taken by main 06db96d)
cd /work/cache/bootinfo15
for v in new old; do
  w=same; [ $v = old ] && w=old
  mkdir -p same-$v
  uptime > same-$v/load.txt
  flock /work/notes/ksm.lock nice -n 10 bin-$v/unipool bench memory --reuse --count 300 --seed 1 --inputs distinct --work /work/cache/bootinfo15/$w --modes shared,shared-snapshot,packed-naive,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out /work/cache/bootinfo15/same-$v > same-$v/run.log 2>&1
  echo "$v rc=$?"
  uptime >> same-$v/load.txt
done
