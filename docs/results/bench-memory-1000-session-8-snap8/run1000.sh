#!/bin/sh
# snap8 (issue 18, session 8): the 1000-unikernel table on both fleets. W: a work folder;
# ./unipool-v3: bin/unipool built at main bbee00a. The fleet (this branch's guest) first:
#   nice -n 10 ./unipool-v3 bench memory --count 1000 --seed 1 --inputs distinct \
#     --modes shared,shared-snapshot,shared-ksm,aligned-ksm --modes-layouts-only --work $W/w1000 --fleet-only
# then both request sets on it (snapshots are taken before the request is read), under the KSM lock:
set -e
W=${W:?set W}
cd $W
flock /work/notes/ksm.lock nice -n 10 ./unipool-v3 bench memory --reuse --count 1000 --inputs distinct --work $W/w1000 \
  --modes shared,shared-snapshot,shared-ksm,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/d1000 > d1000.log 2>&1
flock /work/notes/ksm.lock nice -n 10 ./unipool-v3 bench memory --reuse --count 1000 --inputs repeated --work $W/w1000 \
  --modes shared,shared-snapshot,shared-ksm,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/r1000 > r1000.log 2>&1
