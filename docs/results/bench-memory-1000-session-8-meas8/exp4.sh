#!/bin/sh
# The monitor's GC target: its memory and the CPU its start costs, GOGC 100 (default) against 25, alternated.
cd /work/cache/meas8
while ! grep -q "== done" exp3.log; do sleep 3; done
W=/work/cache/meas8/f1000
for r in d1:100 g1:25 d2:100 g2:25; do
  n=${r%%:*}; g=${r#*:}
  echo "== $n GOGC=$g $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  GOGC=$g nice -n 10 ./unipool-cpu bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W --modes shared --out exp1000/$n > exp1000/$n.log 2>&1
  python3 -c "
import json;m=json.load(open('exp1000/$n/results.json'))['modes'][0];f=m['final']
print('monitor KiB',f['monitor_bytes']>>10,'anon',f['monitor_anon_bytes']>>10,'cpu s',m['monitor_cpu_to_held_s'],'load ms',round(m['load_time_mean_ms'],1),'failed',m['failed'])"
done
echo "== done $(date -u +%T)"
