#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): K VMs of each hello-*
# unikernel of the own corpus in one process (`unipool run --monitor kvm
# --load shared --json -n K`), with a CPU profile of the whole command
# (UNIPOOL_CPUPROFILE) and KVM_CREATE_VM's kernel functions under the
# function_graph tracer; then per step of STEP VMs (in build order) the
# mean load time (a VM's build) and the mean time of each traced function.
#   profile-build.sh POOLDIR OUT K [STEP] [extra run flags...]
set -u
C=${1:?the own corpus work dir (corpus/, pool/)}
OUT=${2:?an output directory}; mkdir -p $OUT
K=${3:?VMs per unikernel}
STEP=${4:-250}
shift 4 2>/dev/null || shift $#
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
export UNIPOOL_POOL=$C/pool
T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs tracefs $T
echo 0 > $T/tracing_on
echo nop > $T/current_tracer
echo 131072 > $T/buffer_size_kb
: > $T/set_ftrace_filter
for f in kvm_dev_ioctl mm_take_all_locks mm_drop_all_locks kvm_create_vm_debugfs kvm_arch_init_vm \
	kvm_uevent_notify_change kvm_vm_ioctl_create_vcpu kvm_vm_ioctl_set_memory_region \
	__mmu_notifier_invalidate_range_start __mmu_notifier_release kvm_destroy_vm; do
	grep -q "^$f\b" $T/available_filter_functions && { echo "$f" >> $T/set_ftrace_filter; } 2>/dev/null
done
grep -q . $T/set_ftrace_filter && ! grep -q "all functions" $T/set_ftrace_filter || { echo "no function to trace"; exit 1; }
echo "traced: $(tr '\n' ' ' < $T/set_ftrace_filter)" | tee $OUT/env.txt
{ uname -r; nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo; echo "names: $NAMES K=$K flags: $*"; } >> $OUT/env.txt
echo function_graph > $T/current_tracer
echo 1 > $T/tracing_on
t0=$(date +%s)
UNIPOOL_CPUPROFILE=$OUT/cpu.pprof unipool run --monitor kvm --load shared --json -n $K "$@" $NAMES > $OUT/run.json 2> $OUT/run.err
echo "exit $? after $(( $(date +%s) - t0 )) s" | tee -a $OUT/env.txt
echo 0 > $T/tracing_on
cat $T/trace > $OUT/trace.txt
echo "trace lines: $(wc -l < $OUT/trace.txt); $(grep -h overrun $T/per_cpu/cpu0/stats)" | tee -a $OUT/env.txt
echo "per step of $STEP KVM_CREATE_VM (kernel time, us)"
awk -v step=$STEP '
	/\|/ && / us / {
		line=$0
		if (match(line, /[0-9]+\.[0-9]+ us/)) { d=substr(line, RSTART, RLENGTH-3) } else next
		fn=""
		if (match(line, /\/\* [a-z_0-9]+ \*\//)) fn=substr(line, RSTART+3, RLENGTH-6)
		else if (match(line, /[a-z_0-9]+\(\);/)) fn=substr(line, RSTART, RLENGTH-3)
		if (fn == "") next
		if (fn == "mm_take_all_locks") n++
		if (n == 0) next
		s=int((n-1)/step); sum[s, fn]+=d; cnt[s, fn]++; fns[fn]=1; if (s>maxs) maxs=s
	}
	END {
		printf "%-8s", "creates"; for (f in fns) printf " %28s", f; printf "\n"
		for (s=0; s<=maxs; s++) { printf "%-8d", (s+1)*step; for (f in fns) printf " %28.1f", (cnt[s,f] ? sum[s,f]/cnt[s,f] : 0); printf "\n" }
	}' $OUT/trace.txt
