#!/bin/sh
# extra.sh: after runs.sh: reversed pair, then bench tlb fleet + 6 runs, with the run binary
D=/work/cache/s17/final; W=$D/W; BIN=$D/runsrc/bin/unipool; FW=$W/w
while ! grep -q "repeated done" $D/runs.out 2>/dev/null; do sleep 10; done
cd $D
date -u +"pair start %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $FW \
  --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/pair-rev > $W/pair-rev.log 2>&1
echo "pair rc=$? $(date -u +%T)"
mkdir -p $D/tlb
$BIN bench tlb --work $D/tlb/w --out $D/tlb/fleet --fleet-only > $D/tlb/fleet.log 2>&1
echo "tlb fleet rc=$? $(date -u +%T)"
for i in 1 2 3 4 5 6; do
  flock /work/notes/ksm.lock $BIN bench tlb --work $D/tlb/w --reuse --out $D/tlb/run$i > $D/tlb/run$i.log 2>&1
  echo "tlb$i rc=$? $(date -u +%T)"
done
