#!/bin/sh
D=/work/cache/s13/final; BIN=$D/unipool-run
for i in 3 4 5 6; do
  flock /work/notes/ksm.lock $BIN bench tlb --work $D/tlb/w --reuse --out $D/tlb/run$i > $D/tlb/run$i.log 2>&1
  echo "tlb$i rc=$? $(date -u +%T)"
done
