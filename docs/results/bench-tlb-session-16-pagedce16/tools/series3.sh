#!/bin/bash
# main 48598e6 (with heap16's loader work) on w2: 2 runs
cd /work/cache/pagedce16
for i in 9 10; do
  v=main
  echo "$(date -u +%T) start $v$i" >> series3.log
  nice -n 10 flock /work/notes/ksm.lock ${v}bin/unipool bench tlb --work /work/cache/pagedce16/w2 --reuse --out run-$v$i > run-$v$i.log 2>&1
  echo "$(date -u +%T) done $v$i rc=$? load=$(cut -d' ' -f1-3 /proc/loadavg)" >> series3.log
done
