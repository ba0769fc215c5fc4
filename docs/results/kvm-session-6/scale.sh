#!/bin/bash
# In the emulated host: K VMs of each hello unikernel of the corpus in one process,
# shared, measured by `run --measure --load shared` (internal/measure, cgroup kernel part),
# sampled every 15 s meanwhile.
set -u
C=/work/cache/slots6
OUT=$C/scale/${TAG:-run}; mkdir -p $OUT
K=${K:-1112}
NAMES=$(cd $C/own/work/corpus && ls -d hello-* | tr '\n' ' ')
export UNIPOOL_POOL=$C/own/work/pool
{ date -u +%T; uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; sysctl vm.max_map_count kernel.threads-max; ulimit -n; echo "names: $NAMES K=$K"; } > $OUT/env.txt
t0=$(date +%s)
unipool run --monitor kvm --measure --load shared --json -n $K $NAMES > $OUT/measure.json 2> $OUT/measure.err &
P=$!
while kill -0 $P 2>/dev/null; do
  now=$(( $(date +%s) - t0 ))
  th=$(awk '/^Threads/ {print $2}' /proc/$P/status 2>/dev/null)
  fds=$(ls /proc/$P/fd 2>/dev/null | wc -l)
  vms=$(ls -l /proc/$P/fd 2>/dev/null | grep -c 'kvm-vm')
  maps=$(wc -l < /proc/$P/maps 2>/dev/null)
  av=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  cg=$(ls -d /sys/fs/cgroup/unipool-measure-* 2>/dev/null | head -1)
  cur=""; kern=""
  [ -n "$cg" ] && cur=$(cat $cg/memory.current 2>/dev/null) && kern=$(awk '$1=="kernel" {print $2}' $cg/memory.stat 2>/dev/null)
  echo "t=$now threads=$th fds=$fds vms=$vms maps=$maps memavail_kb=$av cg_current=$cur cg_kernel=$kern load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/samples.log
  sleep 15
done
wait $P; echo "exit $? after $(( $(date +%s) - t0 )) s" >> $OUT/samples.log
date -u +%T >> $OUT/env.txt
