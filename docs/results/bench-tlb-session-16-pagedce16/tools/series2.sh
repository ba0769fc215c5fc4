#!/bin/bash
# second series on w2 (built by main 54217db's binary): new first, then old
cd /work/cache/pagedce16
for i in 5 6 7 8; do
  for v in final old; do
    echo "$(date -u +%T) start $v$i" >> series2.log
    nice -n 10 flock /work/notes/ksm.lock ${v}bin/unipool bench tlb --work /work/cache/pagedce16/w2 --reuse --out run-$v$i > run-$v$i.log 2>&1
    echo "$(date -u +%T) done $v$i rc=$? load=$(cut -d' ' -f1-3 /proc/loadavg)" >> series2.log
  done
done
