#!/bin/bash
# bench tlb, alternated: main (oldbin, its own fleet tlb-old) and strlit17 (newbin, fleet tlb-new)
cd /work/cache/strlit17
for i in "$@"; do
  for v in new old; do
    echo "$(date -u +%T) start $v$i load=$(cut -d' ' -f1-3 /proc/loadavg)" >> bench/series.log
    flock /work/notes/ksm.lock nice -n 10 ${v}bin/unipool bench tlb --work /work/cache/strlit17/tlb-$v/w --reuse --out bench/$v/run$i > bench/$v-run$i.log 2>&1
    echo "$(date -u +%T) done $v$i rc=$? load=$(cut -d' ' -f1-3 /proc/loadavg)" >> bench/series.log
  done
done
