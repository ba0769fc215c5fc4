#!/bin/bash
# In the emulated KVM host: where a unipool process's MMU-notifier
# invalidations come from (each walks every VM of the process). K VMs of
# each hello-* unikernel in one process; the function tracer on
# __mmu_notifier_invalidate_range_start with a kernel stack per call;
# prints the callers (the 4 frames below it) by count.
#   invalidation-stacks.sh WORKDIR OUT K
set -u
C=${1:?the own corpus work dir}; OUT=${2:?an output dir}; mkdir -p $OUT; K=${3:-20}
NAMES=$(cd $C/corpus && ls -d hello-* | tr '\n' ' ')
export UNIPOOL_POOL=$C/pool
T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs tracefs $T
echo 0 > $T/tracing_on; echo nop > $T/current_tracer; echo 65536 > $T/buffer_size_kb
echo __mmu_notifier_invalidate_range_start > $T/set_ftrace_filter
grep -q . $T/set_ftrace_filter && ! grep -q "all functions" $T/set_ftrace_filter || { echo "no function to trace"; exit 1; }
echo function > $T/current_tracer
echo 1 > $T/options/func_stack_trace
echo 1 > $T/tracing_on
unipool run --monitor kvm --load shared --json -n $K $NAMES > $OUT/run.json 2> $OUT/run.err &
P=$!
echo "$P" > $OUT/pid
wait $P; echo "exit $?"
echo 0 > $T/tracing_on
cat $T/trace > $OUT/trace.txt
echo 0 > $T/options/func_stack_trace; echo nop > $T/current_tracer
# Only this run's process (its threads' names are unipool): the stack below each hit.
awk '/__mmu_notifier_invalidate_range_start/ { own = ($0 ~ /unipool-/); getline; n = 0; key = ""; next }
	own && /=> / { if (n < 4) { sub(/^ *=> /, ""); key = key (n ? " < " : "") $0 } n++; next }
	own && key != "" && !/=> / { c[key]++; key = ""; own = 0 }
	END { for (k in c) printf "%6d  %s\n", c[k], k }' $OUT/trace.txt | sort -rn | head -20
echo "hits by unipool threads: $(grep -c 'unipool-.*__mmu_notifier_invalidate_range_start' $OUT/trace.txt)"
