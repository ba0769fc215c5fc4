#!/bin/sh
# run2.sh BIN TAG: bench tlb, modes dce-ksm,aligned-ksm only (a diagnostic), under the KSM lock, with the sampler.
B=$1; T=$2; D=/work/cache/tlb11
flock /work/notes/ksm.lock sh -c "python3 $D/scripts/sample.py $D/sample-$T.json 900 & S=\$!; nice -n 10 $D/$B bench tlb --work $D/tlbwork --reuse --modes dce-ksm,aligned-ksm --out $D/tlb-$T > $D/tlb-$T.log 2>&1; kill \$S"
date -u >> $D/tlb-$T.log
