#!/bin/sh
cd /work/cache/meas8
while ! grep -q "== done" exp1000.log; do sleep 5; done
./exp2.sh > exp2.log 2>&1
W=/work/cache/meas8/f1000
for g in 50 25; do
  echo "== gogc$g $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  GOGC=$g nice -n 10 ./unipool-exp bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W --modes shared --out exp1000/gogc$g > exp1000/gogc$g.log 2>&1
  grep -A1 "host MiB" exp1000/gogc$g.log
done
echo "== hostmem bench-monitor $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/work/shared/tools/hostmem --settle 8 -- ./unipool-exp bench monitor-process --spec exp1000/A1/monitor-shared.json --hold 60s
echo "== hostmem run $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/work/shared/tools/hostmem --settle 8 -- ./unipool-exp run --pool $W/pool --hold 60s $(python3 -c "import json;print(' '.join(u['name'] for u in json.load(open('$W/corpus/corpus.json'))['unikernels'][:1000]))")
echo "== done $(date -u +%T)"
