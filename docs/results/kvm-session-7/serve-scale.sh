#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): the FaaS host at scale. One
# daemon (`unipool serve --monitor kvm --vms-per-process PER`: jails of at
# most PER VMs, each a process of its own) is asked through its API
# (`unipool run --host`) for K VMs of each of the 9 hello-* unikernels of
# the own corpus. Sampled every 10 s: the VMs resident on the host (open
# KVM VM descriptors over every process), the jail processes, the jails'
# memory cgroups (their parent unipool/ group: memory.current and its
# kernel part), MemAvailable. Then the daemon's GET /metrics, and the
# start latency (each VM's load time: create + build) p50/p99.
#   serve-scale.sh WORKDIR OUT K PER
set -u
C=${1:?the own corpus work dir}; OUT=${2:?an output dir}; mkdir -p $OUT
K=${3:?VMs per unikernel}; PER=${4:?VMs per process}
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
SOCK=/run/tmp/unipool-scale.sock
# The pool on the emulated host's tmpfs: jails hard-link the blobs they map
# into their roots, on the pool's file system (not the 9p mount).
POOL=/run/tmp/pool; cp -a $C/pool $POOL
{ date -u +%T; uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; sysctl vm.max_map_count kernel.threads-max; echo "names: $NAMES K=$K PER=$PER"; } > $OUT/env.txt
unipool serve --monitor kvm --socket $SOCK --pool $POOL --vms-per-process $PER --jail-memory 3G --console-cap 16K \
	--max-instances 20000 --retain 20000 --default-timeout 60m 2> $OUT/serve.err &
D=$!
for i in $(seq 100); do [ -S $SOCK ] && break; sleep 0.5; done
t0=$(date +%s)
unipool run --host $SOCK --json -n $K --timeout 60m $NAMES > $OUT/run.json 2> $OUT/run.err &
P=$!
CG=/sys/fs/cgroup/unipool
peak=0
while kill -0 $P 2>/dev/null; do
	now=$(( $(date +%s) - t0 ))
	vms=$(ls -l /proc/[0-9]*/fd 2>/dev/null | grep -c 'kvm-vm')
	jails=$(ls -d $CG/jail-* 2>/dev/null | wc -l)
	cur=$(cat $CG/memory.current 2>/dev/null); kern=$(awk '$1=="kernel" {print $2}' $CG/memory.stat 2>/dev/null)
	av=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
	echo "t=$now vms=$vms jails=$jails cg_current=$cur cg_kernel=$kern memavail_kb=$av load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/samples.log
	if [ "$vms" -gt "$peak" ]; then
		peak=$vms
		curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-at-peak.json
		echo "t=$now vms=$vms cg_current=$cur cg_kernel=$kern memavail_kb=$av" > $OUT/peak.txt
		grep -E '^(anon|file|kernel|kernel_stack|pagetables|sec_pagetables|percpu|sock|vmalloc|shmem|slab|slab_reclaimable|slab_unreclaimable) ' $CG/memory.stat >> $OUT/peak.txt
	fi
	sleep 10
done
wait $P; echo "run exit $? after $(( $(date +%s) - t0 )) s" | tee -a $OUT/samples.log
curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-end.json
kill -TERM $D; wait $D; echo "serve exit $?" >> $OUT/samples.log
date -u +%T >> $OUT/env.txt
echo "peak: $(cat $OUT/peak.txt | head -1)"
jq -r '[.[] | select(.exit_code == 0 and .error == null)] | length' $OUT/run.json | sed 's/^/exit 0: /'
jq -r '[.[].load_time_ns] | sort | "VMs \(length); load p50 \(.[length/2|floor]/1e6) ms, p99 \(.[(length*0.99)|floor]/1e6) ms, mean \((add/length)/1e6) ms"' $OUT/run.json
