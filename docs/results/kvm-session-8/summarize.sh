#!/bin/bash
# Prints the figures of a serve-scale.sh run (OUT): VMs at the peak and
# held, host memory per VM (the jails' cgroups: their whole charge and its
# kernel part from memory.stat; the jail processes' PSS and the daemon's
# PSS as internal/measure reads them, through GET /metrics), and the start
# latency (each VM's KVM_CREATE_VM + build, load_time_ns) p50/p99/mean.
#   summarize.sh OUT
set -u
OUT=${1:?a serve-scale.sh output dir}
cat $OUT/env.txt | grep -E 'names|MemTotal'
grep -E '^run exit|^request|^stop|released|closed|serve exit' $OUT/samples.log
M=$OUT/metrics-held.json; [ -f $M ] || M=$OUT/metrics-at-peak.json
echo "metrics from $(basename $M):"
jq -r '"  instances: \(.instances)"' $M
n=$(jq -r '.instances.resident // 0' $M); [ "$n" -gt 0 ] || n=$(jq -r '.instances.running + .instances.pending' $M)
vms=$(grep -o 'vms=[0-9]*' $OUT/samples.log | cut -d= -f2 | sort -n | tail -1)
echo "  VMs (open KVM VM descriptors, the most sampled): $vms; resident by the daemon's count: $n"
jq -r --argjson n $n '"  per VM: jails cgroup charge \(.jails.memory_bytes/$n/1024*10|floor/10) KiB; jail processes PSS \(.memory.instances_pss_bytes/$n/1024*10|floor/10) KiB (\(.memory.instances_measured) processes); daemon PSS \(.memory.daemon_pss_bytes/$n/1024*10|floor/10) KiB"' $M
if [ -f $OUT/memstat-held.txt ]; then
	awk -v n=$n '$2 ~ /^[0-9]+$/ && $1 != "MemTotal:" && $1 != "MemAvailable:" && $1 != "MemFree:" {printf "  memory.stat %s: %.1f KiB per VM (%.1f MiB)\n", $1, $2/n/1024, $2/1048576}' $OUT/memstat-held.txt
	grep Mem $OUT/memstat-held.txt
fi
RUNS=$(ls -v $OUT/run.json $OUT/run-*.json 2>/dev/null)
jq -rs 'add | [.[].load_time_ns] | sort | "start (create + build), \(length) VMs: p50 \(.[length/2|floor]/1e6) ms, p99 \(.[(length*0.99)|floor]/1e6) ms, mean \((add/length)/1e6|floor) ms, max \(.[-1]/1e6) ms"' $RUNS
jq -rs 'add | [.[] | select(.exit_code == 0 and .error == null)] | "exit 0 without error: \(length)"' $RUNS
jq -rs 'add | [.[] | select(.exit_code != 0 or .error != null)] | group_by(.error) | map("  failed: \(length) x \(.[0].error)") | .[]' $RUNS
for f in $RUNS; do
	jq -r --arg f $(basename $f) '[.[].load_time_ns] | sort | "  \($f): \(length) VMs, start p50 \(.[length/2|floor]/1e6|floor) ms, p99 \(.[(length*0.99)|floor]/1e6|floor) ms"' $f
done
