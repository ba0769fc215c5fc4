#!/bin/bash
# Summarizes a profile-build.sh output directory (on the machine, not in
# the emulated host): the wall time, the mean load time per step of VMs in
# build order, the kernel's KVM_CREATE_VM and MMU-notifier invalidation
# times (function_graph: wall time, preemption included), and where the
# process's CPU went at its system calls (the CPU profile).
#   summarize.sh DIR K [STEP]
set -u
D=${1:?a profile-build.sh output dir}; K=${2:?VMs per unikernel}; STEP=${3:-250}
HERE=$(cd "$(dirname "$0")" && pwd)
grep -h '^exit' $D/env.txt
echo "-- load time (build) and run time per step of $STEP VMs, in build order"
NAMES=$(jq -r '.[].unikernel' $D/run.json | sort -u | tr '\n' ' ')
jq -r '.[] | "\(.unikernel) \(.instance) \(.load_time_ns) \(.run_time_ns) \(.exit_code)"' $D/run.json | awk -v K=$K -v step=$STEP -v names="$NAMES" '
	BEGIN { n = split(names, ns, " "); for (i = 1; i <= n; i++) idx[ns[i]] = i - 1 }
	{ k = idx[$1] * K + $2; s = int(k / step); sum[s] += $3; c[s]++; rs[s] += $4; if ($5 != 0) bad++ }
	END { for (s = 0; s in c; s++) printf "%6d VMs: load mean %7.1f ms, run mean %8.1f ms\n", (s + 1) * step, sum[s] / c[s] / 1e6, rs[s] / c[s] / 1e6; print "exited non-zero:", bad + 0 }'
echo "-- KVM_CREATE_VM in the kernel, per step of $STEP creates (us)"
awk -v step=$STEP -f $HERE/create-breakdown.awk $D/trace.txt
echo "-- MMU-notifier invalidations, per 1000 in order (us, wall)"
awk 'function dur(l) { return match(l, /[0-9]+\.[0-9]+ us/) ? substr(l, RSTART, RLENGTH - 3) + 0 : 0 }
	/__mmu_notifier_invalidate_range_start/ { d = dur($0); t += d; b = int(n / 1000); n++; s[b] += d }
	/kvm_destroy_vm/ { ds += dur($0); nd++ }
	END { for (i = 0; i in s; i++) printf "  %5d-%5d: mean %6.0f\n", i * 1000, i * 1000 + 999, s[i] / (i * 1000 + 1000 <= n ? 1000 : n - i * 1000)
		printf "invalidations: %d, %.1f s in all; kvm_destroy_vm: %d, %.1f s\n", n, t / 1e6, nd, ds / 1e6 }' $D/trace.txt
echo "-- CPU (profile) at the system calls"
go tool pprof -top -cum -nodecount=400 $D/cpu.pprof 2>/dev/null | grep -E 'Duration|kvm\.\(\*System\)\.CreateVM|kvm\.\(\*VCPU\)\.Run$|unix\.munmap|unix\.Close$|kvm\.\(\*VM\)\.CreateVCPU|kvm\.ioctlArg|\(\*host\)\.buildMemory|\(\*host\)\.newMachine|binary\.littleEndian\.PutUint64'
