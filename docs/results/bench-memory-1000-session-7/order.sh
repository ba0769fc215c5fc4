#!/bin/sh
# The same fleet, three modes, in two orders: does the monitor column depend on what ran before?
set -e
cd /work/lead7
flock /work/notes/ksm.lock nice -n 5 ./unipool bench memory --reuse --count 1000 --seed 1 --inputs distinct --ksm-wait 120s --ksm-pages-to-scan 1000 --work /work/lead7/W --modes shared-snapshot,shared-ksm,shared --out /work/lead7/orderA > orderA.log 2>&1
flock /work/notes/ksm.lock nice -n 5 ./unipool bench memory --reuse --count 1000 --seed 1 --inputs distinct --ksm-wait 120s --ksm-pages-to-scan 1000 --work /work/lead7/W --modes shared,shared-ksm,shared-snapshot --out /work/lead7/orderB > orderB.log 2>&1
