#!/bin/bash
# both fleets, one after the other, same flags (KSM under the lock)
C=/work/cache/packblob
for t in main pb; do
  B=$C/unipool-main; [ $t = pb ] && B=$C/unipool-packblob
  W=$C/Wmain; [ $t = pb ] && W=$C/Wpb
  echo "== $t $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /work/notes/ksm.lock nice -n 10 $B bench memory --reuse --count 300 --seed 1 --inputs distinct --work $W \
    --modes shared,shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $C/out-$t > $C/bench-$t.log 2>&1
  echo "== $t done $(date -u +%T) rc $?"
done
