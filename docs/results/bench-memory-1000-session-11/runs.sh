#!/bin/sh
# wait for the fleet, then both request sets, every mode (the fleet's own modes)
W=/work/cache/s11/final/W
BIN=/work/cache/s11/final/unipool
while ! grep -q "fleet done" /work/cache/s11/final/status.txt; do sleep 10; done
grep -q "rc=0" /work/cache/s11/final/status.txt || { echo "fleet failed"; exit 1; }
date -u +"distinct start %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/distinct > $W/distinct.log 2>&1
echo "distinct rc=$?"
date -u +"distinct done %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs repeated --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/repeated > $W/repeated.log 2>&1
echo "repeated rc=$?"
date -u +"repeated done %T"
