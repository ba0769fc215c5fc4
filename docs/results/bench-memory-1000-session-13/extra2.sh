#!/bin/sh
D=/work/cache/s13/final; W=$D/W; BIN=$D/unipool-run
cd $D
while pgrep -f "out $W/pair-rev" > /dev/null; do sleep 5; done
echo "pair done $(date -u +%T)"
mkdir -p $D/tlb
date -u +"tlb fleet start %T"
$BIN bench tlb --work $D/tlb/w --out $D/tlb/fleet --fleet-only > $D/tlb/fleet.log 2>&1
echo "fleet rc=$?"
for i in 1 2; do
  date -u +"tlb$i start %T"
  flock /work/notes/ksm.lock $BIN bench tlb --work $D/tlb/w --reuse --out $D/tlb/run$i > $D/tlb/run$i.log 2>&1
  echo "tlb$i rc=$?"
done
date -u +"extra done %T"
