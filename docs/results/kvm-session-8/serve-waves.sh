#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): a FaaS host filled by
# requests that arrive one after another and are kept warm. One daemon
# (`unipool serve --monitor kvm --vms-per-process PER`) gets B start
# requests in turn, each `run --host --hold HOLD -n K` of the 9 hello-*
# unikernels of the own corpus (9K VMs, in jails of at most PER); each
# request's VMs run, answer, and stay resident (held by their jails) while
# the next request runs. After each request: the VMs on the host (open
# KVM VM descriptors over every process), the daemon's counts and the
# jails' memory cgroups. With all B requests resident: GET /metrics
# (jails' cgroup charge, jail processes' PSS, daemon PSS: internal/measure),
# the jails' memory.stat, MemAvailable; then every batch is released
# (`unipool stop --batch`) and the time until every VM is closed.
#   serve-waves.sh WORKDIR OUT K PER B HOLD
set -u
C=${1:?the own corpus work dir}; OUT=${2:?an output dir}; mkdir -p $OUT
K=${3:?VMs per unikernel per request}; PER=${4:?VMs per process}; B=${5:?requests}; HOLD=${6:?hold, e.g. 90m}
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
SOCK=/run/tmp/unipool-scale.sock
# The pool on the emulated host's tmpfs: jails hard-link the blobs they map
# into their roots, on the pool's file system (not the 9p mount).
POOL=/run/tmp/pool; cp -a $C/pool $POOL
{ date -u +%T; uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; sysctl vm.max_map_count kernel.threads-max; echo "names: $NAMES K=$K PER=$PER B=$B HOLD=$HOLD"; unipool version; } > $OUT/env.txt
unipool serve --monitor kvm --socket $SOCK --pool $POOL --vms-per-process $PER --jail-memory 3G --console-cap 16K \
	--max-instances 20000 --retain 20000 --default-timeout 60m 2> $OUT/serve.err &
D=$!
for i in $(seq 100); do [ -S $SOCK ] && break; sleep 0.5; done
CG=/sys/fs/cgroup/unipool
t0=$(date +%s)
sample() {
	now=$(( $(date +%s) - t0 ))
	vms=$(find /proc/[0-9]*/fd -lname 'anon_inode:kvm-vm' 2>/dev/null | wc -l)
	ins=$(curl -s --unix-socket $SOCK http://localhost/metrics | jq -r '.instances | "pending=\(.pending) running=\(.running) exited=\(.exited) failed=\(.failed) resident=\(.resident)"' 2>/dev/null)
	jails=$(ls -d $CG/jail-* 2>/dev/null | wc -l)
	cur=$(cat $CG/memory.current 2>/dev/null); kern=$(awk '$1=="kernel" {print $2}' $CG/memory.stat 2>/dev/null)
	av=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
	echo "t=$now $1 vms=$vms $ins jails=$jails cg_current=$cur cg_kernel=$kern memavail_kb=$av load=$(cut -d' ' -f1-3 /proc/loadavg) took=$(( $(date +%s) - t0 - now ))s" >> $OUT/samples.log
}
sample start
for b in $(seq $B); do
	tb=$(date +%s)
	unipool run --host $SOCK --json -n $K --timeout 30m --hold $HOLD $NAMES > $OUT/run-$b.json 2> $OUT/run-$b.err
	echo "request $b: exit $? after $(( $(date +%s) - tb )) s" >> $OUT/samples.log
	sample "after-request-$b"
done
sample all-resident
curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-held.json
grep -E '^(anon|file|kernel|kernel_stack|pagetables|sec_pagetables|percpu|sock|vmalloc|shmem|slab|slab_reclaimable|slab_unreclaimable) ' $CG/memory.stat > $OUT/memstat-held.txt
grep -E 'MemTotal|MemAvailable|MemFree' /proc/meminfo >> $OUT/memstat-held.txt
unipool ps --host $SOCK > $OUT/ps-held.txt 2>&1
t1=$(date +%s)
for b in $(seq $B); do unipool stop --host $SOCK --batch $b >> $OUT/stop.txt 2>&1; done
echo "stop (release) of every batch: $(( $(date +%s) - t1 )) s" >> $OUT/samples.log
for i in $(seq 60); do
	sample released
	[ "$vms" -eq 0 ] && break
	sleep 5
done
echo "every VM closed $(( $(date +%s) - t1 )) s after the release" >> $OUT/samples.log
curl -s --unix-socket $SOCK http://localhost/metrics > $OUT/metrics-end.json
kill -TERM $D; wait $D; echo "serve exit $?" >> $OUT/samples.log
date -u +%T >> $OUT/env.txt
jq -s 'add | [.[].load_time_ns] | sort | "start (create + build), \(length) VMs: p50 \(.[length/2|floor]/1e6) ms, p99 \(.[(length*0.99)|floor]/1e6) ms, mean \((add/length)/1e6|floor) ms"' $OUT/run-*.json
jq -s 'add | [.[] | select(.exit_code == 0 and .error == null)] | "exit 0 without error: \(length)"' $OUT/run-*.json
