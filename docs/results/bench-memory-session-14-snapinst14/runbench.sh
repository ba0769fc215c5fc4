#!/bin/sh
# runbench.sh BIN WORK OUTPREFIX
BIN=$1; W=$2; O=$3
for s in distinct repeated; do
  uptime > $O-$s.load
  flock /work/notes/ksm.lock nice -n 10 $BIN bench memory --reuse --count 300 --seed 1 --inputs $s --work $W --modes shared,shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $O-$s > $O-$s.log 2>&1
  uptime >> $O-$s.load
done
