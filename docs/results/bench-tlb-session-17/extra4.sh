#!/bin/sh
D=/work/cache/s17/final; BIN=$D/runsrc/bin/unipool
for i in 13 14 15 16 17 18; do
  flock /work/notes/ksm.lock $BIN bench tlb --work $D/tlb/w --reuse --out $D/tlb/run$i > $D/tlb/run$i.log 2>&1
  echo "tlb$i rc=$? $(date -u +%T)"
done
