#!/bin/sh
# The old in-process figure again, with TakeHost reading the monitor before the instances.
set -e
cd /work/cache/meas8
W=/work/cache/meas8/f1000
for name in fixA:shared,packed-naive,shared-aslr fixB:shared-aslr,packed-naive,shared; do
  n=${name%%:*}; modes=${name#*:}
  echo "== $n $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  nice -n 10 ./unipool-fix bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W --modes $modes --monitor-in-process --out /work/cache/meas8/exp1000/$n > /work/cache/meas8/exp1000/$n.log 2>&1
  grep -A4 "host MiB" /work/cache/meas8/exp1000/$n.log
done
echo "== done $(date -u +%T)"
