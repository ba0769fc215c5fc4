#!/bin/bash
# measure.sh is docs/results/monitor-memory-session-10-mon10/measure.sh; unipool-main = main 633a9e7, unipool-gc10 = branch gc10
cd /tmp/gc10
for r in 1 2; do
 for b in unipool-main unipool-gc10; do
  KEEPERR=/tmp/gc10/err-$b-aligned-$r.txt flock /work/notes/ksm.lock ./measure.sh /tmp/gc10/$b aligned-ksm GODEBUG=gctrace=1
  echo "gcs=$(grep -c '^gc ' /tmp/gc10/err-$b-aligned-$r.txt)"
 done
done
for b in unipool-main unipool-gc10; do
  KEEPERR=/tmp/gc10/err-$b-snap.txt ./measure.sh /tmp/gc10/$b shared-snapshot GODEBUG=gctrace=1
  echo "gcs=$(grep -c '^gc ' /tmp/gc10/err-$b-snap.txt)"
done
