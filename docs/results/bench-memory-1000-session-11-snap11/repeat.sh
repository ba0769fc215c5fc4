#!/bin/sh
for INPUTS in distinct repeated; do
OUT=/work/cache/snap11/out/after-$INPUTS-2
date -u +"start %T $INPUTS" >> chain2.log
flock /work/notes/ksm.lock nice -n 10 /work/cache/snap11/unipool bench memory --reuse --count 1000 --seed 1 \
  --inputs $INPUTS --work /work/cache/snap11/w --modes aligned-ksm,shared-snapshot --modes-layouts-only \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $OUT > $OUT.log 2>&1
date -u +"done %T" >> chain2.log
done
echo chain done >> chain2.log
