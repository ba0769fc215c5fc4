#!/bin/sh
# extra3.sh: after the 12 tlb runs: the repeated set's pair in the reversed order
D=/work/cache/s17/final; W=$D/W; BIN=$D/runsrc/bin/unipool; FW=$W/w
while ! grep -q "tlb12 rc" $D/extra2.out 2>/dev/null; do sleep 10; done
date -u +"pair-rep start %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs repeated --work $FW \
  --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/pair-rev-repeated > $W/pair-rev-repeated.log 2>&1
echo "pair-rep rc=$? $(date -u +%T)"
