#!/bin/sh
D=/work/cache/s17/final; BIN=$D/runsrc/bin/unipool
for i in 7 8 9 10 11 12; do
  flock /work/notes/ksm.lock $BIN bench tlb --work $D/tlb/w --reuse --out $D/tlb/run$i > $D/tlb/run$i.log 2>&1
  echo "tlb$i rc=$? $(date -u +%T)"
done
