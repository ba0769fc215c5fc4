#!/bin/bash
cd /work/cache/pagedce16
for s in 1 2 3 4; do for v in old new2; do
  echo "$(date -u +%T) lb $v s$s" >> lb.log
  nice -n 10 ${v}bin/unipool link bench --corpus /work/cache/pack11/corpus20s$s --out lb-$v-s$s --json lb-$v-s$s.json > lb-$v-s$s.txt 2>&1
  echo "$(date -u +%T) rc=$?" >> lb.log
done; done
