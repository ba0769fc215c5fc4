#!/bin/bash
# run.sh BIN INPUTS OUT MODES
BIN=$1; INPUTS=$2; OUT=$3; MODES=${4:-shared-snapshot,aligned-ksm,shared}
cd /work/cache/mon11
echo "$(date -u) start $BIN $INPUTS $OUT $MODES load: $(cat /proc/loadavg)" >> runs.log
flock /work/notes/ksm.lock nice -n 10 $BIN bench memory --reuse --count 1000 --seed 1 --inputs $INPUTS --work /work/cache/mon11/w --modes $MODES --ksm-wait 120s --ksm-pages-to-scan 1000 --out $OUT > $OUT.log 2>&1
echo "$(date -u) end rc=$? $OUT load: $(cat /proc/loadavg)" >> runs.log
