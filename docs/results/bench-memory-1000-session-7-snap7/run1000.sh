#!/bin/sh
cd /work/cache/snap7
W=/work/cache/snap7/f1000
date -u > r1000.times
flock /work/notes/ksm.lock nice -n 10 ./unipool-final bench memory --reuse --count 1000 --inputs distinct --work $W \
  --modes shared,shared-snapshot,shared-ksm,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out r1000-distinct > r1000-distinct.log 2>&1
echo "distinct exit $?" >> r1000.times; date -u >> r1000.times
flock /work/notes/ksm.lock nice -n 10 ./unipool-final bench memory --reuse --count 1000 --inputs repeated --work $W \
  --modes shared,shared-snapshot,shared-ksm,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out r1000-repeated > r1000-repeated.log 2>&1
echo "repeated exit $?" >> r1000.times; date -u >> r1000.times
