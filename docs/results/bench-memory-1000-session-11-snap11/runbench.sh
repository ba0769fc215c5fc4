#!/bin/sh
# runbench.sh BIN WORK INPUTS OUT: one side-by-side run of the three modes on a built fleet,
# under the KSM lock (session 11, snap11).
set -e
BIN=$1 WORK=$2 INPUTS=$3 OUT=$4
date -u +"start %T"
flock /work/notes/ksm.lock nice -n 10 "$BIN" bench memory --reuse --count 1000 --seed 1 \
  --inputs "$INPUTS" --work "$WORK" --modes shared-snapshot,aligned-ksm,shared --modes-layouts-only \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out "$OUT" > "$OUT.log" 2>&1
date -u +"done %T"
