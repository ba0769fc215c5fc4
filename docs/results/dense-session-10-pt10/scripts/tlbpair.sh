#!/bin/sh
# main's binary then pt10's, every default, each on the fleet its binary built, under the KSM lock.
cd /work/cache/pt10
for b in main pt10; do
  flock /work/notes/ksm.lock nice -n 10 ./unipool-$b bench tlb --work /work/cache/pt10/tlbwork-$b --reuse --out /work/cache/pt10/tlbdef-$b-$1 > tlbdef-$b-$1.log 2>&1
  date -u >> tlbdef-$b-$1.log
done
