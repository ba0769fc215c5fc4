#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): K VMs of each of the 9
# hello-* unikernels of the own corpus in one process, shared, measured by
# `unipool run --monitor kvm --measure --load shared` (internal/measure;
# the kernel part charged to the fleet's memory cgroup), sampled every 15 s
# meanwhile (threads, fds, VMs, mappings, MemAvailable, the cgroup).
#   scale.sh WORKDIR OUT K      (WORKDIR: corpus/ and pool/ of the own corpus)
set -u
C=${1:?the own corpus work dir}
OUT=${2:?an output dir}; mkdir -p $OUT
K=${3:?VMs per unikernel}
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
export UNIPOOL_POOL=$C/pool
{ date -u +%T; uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; sysctl vm.max_map_count kernel.threads-max; ulimit -n; echo "names: $NAMES K=$K"; } > $OUT/env.txt
t0=$(date +%s)
unipool run --monitor kvm --measure --load shared --json -n $K $NAMES > $OUT/measure.json 2> $OUT/measure.err &
P=$!
while kill -0 $P 2>/dev/null; do
	now=$(( $(date +%s) - t0 ))
	th=$(awk '/^Threads/ {print $2}' /proc/$P/status 2>/dev/null)
	vms=$(ls -l /proc/$P/fd 2>/dev/null | grep -c 'kvm-vm')
	maps=$(wc -l < /proc/$P/maps 2>/dev/null)
	av=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
	cg=$(ls -d /sys/fs/cgroup/unipool-measure-* 2>/dev/null | head -1)
	cur=""; kern=""
	[ -n "$cg" ] && cur=$(cat $cg/memory.current 2>/dev/null) && kern=$(awk '$1=="kernel" {print $2}' $cg/memory.stat 2>/dev/null)
	echo "t=$now threads=$th vms=$vms maps=$maps memavail_kb=$av cg_current=$cur cg_kernel=$kern load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/samples.log
	sleep 15
done
wait $P; echo "exit $? after $(( $(date +%s) - t0 )) s" >> $OUT/samples.log
date -u +%T >> $OUT/env.txt
