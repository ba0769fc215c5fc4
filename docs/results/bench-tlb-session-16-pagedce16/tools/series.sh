#!/bin/bash
# alternating old/new runs on the same fleet (w, built by the new binary; the old loader ignores .unipool.dead)
cd /work/cache/pagedce16
for i in 1 2 3 4; do
  for v in old new; do
    echo "$(date -u +%T) start $v$i" >> series.log
    nice -n 10 flock /work/notes/ksm.lock ${v}bin/unipool bench tlb --work /work/cache/pagedce16/w --reuse --out run-$v$i > run-$v$i.log 2>&1
    echo "$(date -u +%T) done $v$i rc=$? load=$(cut -d' ' -f1-3 /proc/loadavg)" >> series.log
  done
done
