#!/bin/sh
# alternated held-monitor runs: old unipool (bench monitor-process) vs new unipool-vmm
cd /tmp/vmm14probe
OLD=/tmp/vmm14probe/bins/unipool-old
NEW=/tmp/vmm14probe/bins/unipool-vmm-new
D=/work/cache/s13/final/W/distinct
for spec in shared-snapshot aligned-ksm; do
  S=$D/monitor-$spec.json
  lock=""
  [ $spec = aligned-ksm ] && lock="flock /work/notes/ksm.lock"
  for i in 1 2 3; do
    echo "# $spec run $i $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ $((i % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for w in $order; do
      if [ $w = old ]; then
        $lock ./m.sh $spec-old-$i $OLD $OLD bench monitor-process --spec $S --hold 12s
      else
        $lock ./m.sh $spec-new-$i $NEW $NEW --spec $S --hold 12s
      fi
    done
  done
done
