#!/bin/sh
# lb.sh: link bench on the four 20-unikernel corpora, final run binary
BIN=/work/cache/s17/final/runsrc/bin/unipool
while ! grep -q "pair-rep rc" /work/cache/s17/final/extra3.out 2>/dev/null; do sleep 5; done
for s in 1 2 3 4; do
  $BIN link bench --corpus /work/cache/pack11/corpus20s$s --out /work/cache/s17/lb/out-s$s --json /work/cache/s17/lb/lb-s$s.json > /work/cache/s17/lb/linkbench-s$s.txt 2>&1
  echo "s$s rc=$? $(date -u +%T)"
done
