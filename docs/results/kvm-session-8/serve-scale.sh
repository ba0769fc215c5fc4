#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): the FaaS host at scale. One
# daemon (`unipool serve --monitor kvm --vms-per-process PER`: jails of at
# most PER VMs, each a process of its own) is asked through its API
# (`unipool run --host`) for K VMs of each of the 9 hello-* unikernels of
# the own corpus; with HOLD (a duration, e.g. 30m) every VM stays resident
# after its guest ends (`run --host --hold HOLD`), until the script has
# measured the host with all of them held and stops them.
# Sampled every ~40 s (a sample itself takes up to a minute under TCG): the VMs resident on the host (open KVM VM
# descriptors over every process, counted with find -lname: session 7's
# ls -l took 30-60 s a sample), the jail processes, the jails' memory
# cgroups (their parent unipool/ group: memory.current and its kernel
# part), MemAvailable, and the daemon's own count of held instances. Then
# the daemon's GET /metrics, and the start latency (each VM's load time:
# create + build) p50/p99.
#   serve-scale.sh WORKDIR OUT K PER [HOLD]
set -u
C=${1:?the own corpus work dir}; OUT=${2:?an output dir}; mkdir -p $OUT
K=${3:?VMs per unikernel}; PER=${4:?VMs per process}; HOLD=${5:-}
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
N=$(( K * $(echo $NAMES | wc -w) ))
SOCK=/run/tmp/unipool-scale.sock
# The pool on the emulated host's tmpfs: jails hard-link the blobs they map
# into their roots, on the pool's file system (not the 9p mount).
POOL=/run/tmp/pool; cp -a $C/pool $POOL
{ date -u +%T; uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; sysctl vm.max_map_count kernel.threads-max; echo "names: $NAMES K=$K PER=$PER HOLD=$HOLD N=$N"; unipool version; } > $OUT/env.txt
unipool serve --monitor kvm --socket $SOCK --pool $POOL --vms-per-process $PER --jail-memory 3G --console-cap 16K \
	--max-instances 20000 --retain 20000 --default-timeout 60m 2> $OUT/serve.err &
D=$!
for i in $(seq 100); do [ -S $SOCK ] && break; sleep 0.5; done
t0=$(date +%s)
HOLDFLAG=""; [ -n "$HOLD" ] && HOLDFLAG="--hold $HOLD"
unipool run --host $SOCK --json -n $K --timeout 60m $HOLDFLAG $NAMES > $OUT/run.json 2> $OUT/run.err &
P=$!
CG=/sys/fs/cgroup/unipool
peak=0
sample() {
	now=$(( $(date +%s) - t0 ))
	vms=$(find /proc/[0-9]*/fd -lname 'anon_inode:kvm-vm' 2>/dev/null | wc -l)
	jails=$(ls -d $CG/jail-* 2>/dev/null | wc -l)
	cur=$(cat $CG/memory.current 2>/dev/null); kern=$(awk '$1=="kernel" {print $2}' $CG/memory.stat 2>/dev/null)
	av=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
	ins=$(curl -s --unix-socket $SOCK http://localhost/metrics | jq -r '.instances | "pending=\(.pending) running=\(.running) exited=\(.exited) failed=\(.failed) resident=\(.resident)"' 2>/dev/null)
	echo "t=$now vms=$vms $ins jails=$jails cg_current=$cur cg_kernel=$kern memavail_kb=$av load=$(cut -d' ' -f1-3 /proc/loadavg) took=$(( $(date +%s) - t0 - now ))s" >> $OUT/samples.log
	if [ "$vms" -gt "$peak" ]; then
		peak=$vms
		curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-at-peak.json
		echo "t=$now vms=$vms cg_current=$cur cg_kernel=$kern memavail_kb=$av" > $OUT/peak.txt
		grep -E '^(anon|file|kernel|kernel_stack|pagetables|sec_pagetables|percpu|sock|vmalloc|shmem|slab|slab_reclaimable|slab_unreclaimable) ' $CG/memory.stat >> $OUT/peak.txt
	fi
}
while kill -0 $P 2>/dev/null; do
	sample
	sleep 40
done
wait $P; echo "run exit $? after $(( $(date +%s) - t0 )) s" | tee -a $OUT/samples.log
if [ -n "$HOLD" ]; then
	# Every instance has ended and is held: measure the host with all of
	# them resident, then stop them.
	sample; sample
	curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-held.json
	grep -E '^(anon|file|kernel|kernel_stack|pagetables|sec_pagetables|percpu|sock|vmalloc|shmem|slab|slab_reclaimable|slab_unreclaimable) ' $CG/memory.stat > $OUT/memstat-held.txt
	grep -E 'MemTotal|MemAvailable|MemFree' /proc/meminfo >> $OUT/memstat-held.txt
	unipool ps --host $SOCK > $OUT/ps-held.txt 2>&1
	t1=$(date +%s)
	unipool stop --host $SOCK --batch 1 > $OUT/stop.txt 2>&1
	echo "stop exit $? after $(( $(date +%s) - t1 )) s" >> $OUT/samples.log
	# Released: wait for the jails to close their VMs and end.
	for i in $(seq 40); do
		sample
		[ "$vms" -eq 0 ] && break
		sleep 5
	done
	echo "all released and closed $(( $(date +%s) - t1 )) s after the stop" >> $OUT/samples.log
fi
curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-end.json
kill -TERM $D; wait $D; echo "serve exit $?" >> $OUT/samples.log
date -u +%T >> $OUT/env.txt
echo "peak: $(cat $OUT/peak.txt | head -1)"
jq -r '[.[] | select(.exit_code == 0 and .error == null)] | length' $OUT/run.json | sed 's/^/exit 0: /'
jq -r '[.[].load_time_ns] | sort | "VMs \(length); load p50 \(.[length/2|floor]/1e6) ms, p99 \(.[(length*0.99)|floor]/1e6) ms, mean \((add/length)/1e6) ms"' $OUT/run.json
