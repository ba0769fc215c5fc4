#!/bin/sh
# For each monitor-process of OUTDIR's modes, count the VMAs (lines of /proc/PID/maps) of its children, once per mode.
out=$1
seen=""
end=$(( $(date +%s) + ${2:-600} ))
while [ $(date +%s) -lt $end ]; do
  for m in $(pgrep -f "monitor-process --spec $out/monitor-"); do
    mode=$(tr '\0' ' ' < /proc/$m/cmdline | sed 's/.*monitor-\([a-z-]*\)\.json.*/\1/')
    case " $seen " in *" $mode "*) continue;; esac
    kids=$(pgrep -P $m)
    n=$(echo $kids | wc -w)
    [ $n -ge 20 ] || continue
    sleep 3
    tot=0; for k in $(pgrep -P $m); do c=$(wc -l < /proc/$k/maps 2>/dev/null || echo 0); tot=$((tot+c)); done
    k1=$(pgrep -P $m | head -1)
    echo "$mode: $n instances, $tot VMAs"; cat /proc/$k1/maps > vma-$mode-$(basename $out).txt 2>/dev/null
    seen="$seen $mode"
  done
  sleep 1
done
