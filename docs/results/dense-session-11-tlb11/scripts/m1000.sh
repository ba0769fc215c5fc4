#!/bin/sh
# m1000.sh BIN TAG: the 1000-unikernel fleet's aligned-ksm and dce-ksm (read in place), under the KSM lock.
B=$1; T=$2; D=/work/cache/tlb11
flock /work/notes/ksm.lock nice -n 10 $D/$B bench memory --reuse --count 1000 --seed 1 --inputs distinct --work /work/cache/s11/base/w --modes aligned-ksm,dce-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $D/m1000-$T > $D/m1000-$T.log 2>&1
date -u >> $D/m1000-$T.log
