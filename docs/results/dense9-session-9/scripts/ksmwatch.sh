#!/bin/bash
# ksmwatch.sh: every 5 s, KSM's counters and every process with KSM-mergeable memory (pid, rmap items, command).
while :; do
  echo "$(date -u +%T) $(for f in run pages_to_scan full_scans pages_shared pages_sharing pages_unshared pages_volatile; do printf '%s=%s ' $f $(cat /sys/kernel/mm/ksm/$f); done)"
  for p in /proc/[0-9]*; do
    s=$(cat $p/ksm_stat 2>/dev/null) || continue
    echo "$s" | grep -q "ksm_mergeable: yes" || continue
    echo "   mergeable pid $(basename $p) rmap=$(echo "$s" | awk '/ksm_rmap_items/{print $2}') $(tr '\0' ' ' < $p/cmdline | cut -c1-80)"
  done | sort | uniq -c | sort -rn | head -5
  sleep 5
done
