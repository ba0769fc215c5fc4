#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): the VMs-held sweep of
# internal/kvm's BenchmarkCreateVMWithVMsHeld under the function_graph
# tracer, limited to KVM_CREATE_VM's parts, so every KVM_CREATE_VM's time
# is split into its kernel functions. Output: the sweep's table, then per
# step of 250 VMs the mean time of each traced function.
#   trace-create.sh BIN OUT [MAX [STEP]]   (BIN: go test -c ./internal/kvm; OUT: a writable dir)
set -u
BIN=${1:?the internal/kvm test binary}
OUT=${2:?an output directory}; mkdir -p $OUT
MAX=${3:-2000} STEP=${4:-250}
T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs tracefs $T
echo 0 > $T/tracing_on
echo nop > $T/current_tracer
echo 65536 > $T/buffer_size_kb
: > $T/set_ftrace_filter
for f in kvm_dev_ioctl __mmu_notifier_register mm_take_all_locks mm_drop_all_locks \
	kvm_create_vm_debugfs kvm_arch_init_vm kvm_uevent_notify_change anon_inode_getfile \
	kvm_init_mmu_notifier hardware_enable_all kvm_arch_post_init_vm; do
	grep -q "^$f\b" $T/available_filter_functions && { echo "$f" >> $T/set_ftrace_filter; } 2>/dev/null
done
grep -q . $T/set_ftrace_filter && ! grep -q "all functions" $T/set_ftrace_filter || { echo "no function to trace"; exit 1; }
echo "traced: $(tr '\n' ' ' < $T/set_ftrace_filter)"
echo function_graph > $T/current_tracer
echo funcgraph-abstime > $T/trace_options 2>/dev/null
echo 1 > $T/tracing_on
UNIPOOL_SWEEP_MAX=$MAX UNIPOOL_SWEEP_STEP=$STEP $BIN -test.run '^$' -test.bench 'CreateVMWithVMsHeld' -test.benchtime 1x -test.v
echo 0 > $T/tracing_on
cat $T/trace > $OUT/trace.txt
echo "trace lines: $(wc -l < $OUT/trace.txt); overruns: $(grep -h overrun $T/per_cpu/cpu0/stats)"
# Per KVM_CREATE_VM (a kvm_dev_ioctl entry), the time of each traced function
# inside it; grouped by step of 250 creates.
awk -v step=$STEP '
	/kvm_dev_ioctl\(\) \{/ { n++ }
	/\|/ && /us/ {
		# "... | 123.456 us | } /* fn */" or "| 1.234 us | fn();"
		line=$0
		if (match(line, /[0-9]+\.[0-9]+ us/)) { d=substr(line, RSTART, RLENGTH-3) } else next
		fn=""
		if (match(line, /\/\* [a-z_0-9]+ \*\//)) fn=substr(line, RSTART+3, RLENGTH-6)
		else if (match(line, /[a-z_0-9]+\(\);/)) fn=substr(line, RSTART, RLENGTH-3)
		if (fn == "" || n == 0) next
		s=int((n-1)/step); sum[s, fn]+=d; cnt[s, fn]++; fns[fn]=1; if (s>maxs) maxs=s
	}
	END {
		printf "%-8s", "creates"; for (f in fns) printf " %26s", f; printf "\n"
		for (s=0; s<=maxs; s++) { printf "%-8d", (s+1)*step; for (f in fns) printf " %26.1f", (cnt[s,f] ? sum[s,f]/cnt[s,f] : 0); printf "\n" }
	}' $OUT/trace.txt
