#!/bin/sh
# bench memory at 1000: main's binary on main's fleet, then pt10's on its own, the same modes, under the KSM lock.
cd /work/cache/pt10
for b in $2; do
  date -u > m1000out-$b-$1.log
  flock /work/notes/ksm.lock nice -n 10 ./unipool-$b bench memory --reuse --count 1000 --seed 1 --inputs distinct \
    --work /work/cache/pt10/m1000-$b --modes aligned-ksm,dce-ksm,shared,shared-snapshot,packed-naive \
    --ksm-wait 120s --ksm-pages-to-scan 1000 --out /work/cache/pt10/m1000out-$b-$1 >> m1000out-$b-$1.log 2>&1
  date -u >> m1000out-$b-$1.log
done
