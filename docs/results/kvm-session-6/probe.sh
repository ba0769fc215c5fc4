#!/bin/bash
# probe.sh LOAD K NAME... : K VMs of each NAME held under --load LOAD in a
# memory cgroup of their own; prints the cgroup's memory.stat and the
# vmalloc/slab rises by caller/cache, per VM.
set -u
LOAD=$1; K=$2; shift 2
OUT=${PROBE_OUT:-/run/tmp/probe}; mkdir -p $OUT
N=$(( K * $# ))
vm() { awk '{ c=$3; sub(/\+.*/,"",c); p=0; for(i=4;i<=NF;i++) if ($i ~ /^pages=/) { p=substr($i,7) } ; s[c]+=p*4 } END { for (c in s) print c, s[c] }' /proc/vmallocinfo | sort; }
slab() { awk 'NR>2 { print $1, $3*$4/1024 }' /proc/slabinfo | sort; }
echo +memory > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
CG=/sys/fs/cgroup/probe-$LOAD-$$; mkdir -p $CG
vm > $OUT/vm0; slab > $OUT/slab0; grep -E 'Vmalloc|SUnreclaim|SecPage|PageTables|MemAvail|AnonPages' /proc/meminfo > $OUT/mi0
( echo $BASHPID > $CG/cgroup.procs; exec unipool run --monitor kvm --load $LOAD -n $K --hold 3000s --json "$@" > $OUT/run-$LOAD.json 2> $OUT/run-$LOAD.err ) &
P=$!
t0=$(date +%s)
while kill -0 $P 2>/dev/null; do
  n=$(grep -c '"exit_code"' $OUT/run-$LOAD.json 2>/dev/null || true)
  [ "${n:-0}" -ge $N ] && break
  sleep 5
done
sleep 5
echo "== $LOAD: $N VMs ended after $(( $(date +%s) - t0 )) s; exit codes:" $(grep -o '"exit_code": *-\?[0-9]*' $OUT/run-$LOAD.json | sort | uniq -c)
grep -E '^(anon|kernel|kernel_stack|pagetables|sec_pagetables|slab|slab_unreclaimable|slab_reclaimable|percpu|vmalloc) ' $CG/memory.stat | awk -v n=$N '{ printf "cg %-22s %10.1f KiB/VM\n", $1, $2/1024/n }'
vm > $OUT/vm1; slab > $OUT/slab1; grep -E 'Vmalloc|SUnreclaim|SecPage|PageTables|MemAvail|AnonPages' /proc/meminfo > $OUT/mi1
join -a2 -e0 -o 0,1.2,2.2 $OUT/vm0 $OUT/vm1 | awk -v n=$N '{ d=$3-$2; if (d*d > 1) printf "vmalloc %-45s %9.1f KiB/VM\n", $1, d/n }' | sort -k3 -nr
join -a2 -e0 -o 0,1.2,2.2 $OUT/slab0 $OUT/slab1 | awk -v n=$N '{ d=$3-$2; if (d/n > 0.3 || d/n < -0.3) printf "slab %-30s %9.1f KiB/VM\n", $1, d/n }' | sort -k3 -nr | head -25
paste $OUT/mi0 $OUT/mi1 | awk -v n=$N '{ printf "meminfo %-15s %9.1f KiB/VM\n", $1, ($5-$2)/n }'
kill -TERM $P; wait $P
rmdir $CG 2>/dev/null || { sleep 10; rmdir $CG; }
