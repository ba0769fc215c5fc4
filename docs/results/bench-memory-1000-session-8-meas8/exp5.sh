#!/bin/sh
# monitor.LeanGC (GC target 25) in the binary, against the same binary with GOGC=100 set (LeanGC then leaves it), alternated.
cd /work/cache/meas8
W=/work/cache/meas8/f1000
for r in l1: o1:100 l2: o2:100; do
  n=${r%%:*}; g=${r#*:}
  echo "== $n GOGC=$g $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "$g" ]; then export GOGC=$g; else unset GOGC; fi
  nice -n 10 ./unipool-lean bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W --modes shared --out exp1000/$n > exp1000/$n.log 2>&1
  python3 -c "
import json;m=json.load(open('exp1000/$n/results.json'))['modes'][0];f=m['final'];k=f['kernel']
print('monitor KiB',f['monitor_bytes']>>10,'anon',f['monitor_anon_bytes']>>10,'kernel KiB',k['total_bytes']>>10,'per inst KiB',m['beyond_guest_per_instance_bytes']/1024,'cpu s',m['monitor_cpu_to_held_s'],'load ms',round(m['load_time_mean_ms'],1),'failed',m['failed'])"
done
unset GOGC
echo "== done $(date -u +%T)"
