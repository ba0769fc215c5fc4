#!/bin/sh
# alternate: 31d4cd1 (bin-old) on fold, 1b845cd (bin-new) on fnew; both fleets --jobs 1 (same map)
D=/work/cache/dense15; cd $D
for i in 1 2 3 4; do
  for t in old new; do
    flock /work/notes/ksm.lock nice -n 10 $D/bin-$t/unipool bench tlb --work f$t --reuse --out t$t$i > t$t$i.log 2>&1; echo "t$t$i rc=$? $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
