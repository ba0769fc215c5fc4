#!/bin/bash
# jailbench.sh BIN: serve --vms-per-process 250 (process monitor), then run --host -n 250 of 4 unikernels
# (1000 instances, 4 jails); prints the run's wall time and the jails' peak cgroup memory seen by metrics.
set -u
BIN=$1; P=/work/lead7/W/pool; S=/tmp/jb-$$.sock
$BIN serve --pool $P --socket $S --vms-per-process 250 2>/dev/null & D=$!
for i in $(seq 50); do [ -S $S ] && break; sleep 0.1; done
peak=0
( while sleep 0.2; do m=$($BIN metrics --host $S 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["jails"]["memory_bytes"])' 2>/dev/null || echo 0); echo $m; done ) > /tmp/jb-$$.mem & W=$!
t0=$(date +%s.%N)
$BIN run --host $S -n 250 --json sort-0000 lz4pack-0001 sha256-0002 digest-0003 > /tmp/jb-$$.out 2>/tmp/jb-$$.err
rc=$?
t1=$(date +%s.%N)
kill $W; kill -TERM $D; wait $D 2>/dev/null
ok=$(python3 -c 'import json; r=json.load(open("/tmp/jb-'$$'.out")); print(sum(1 for x in r if x["exit_code"]==0 and not x.get("error")), len(r))' 2>/dev/null)
echo "$BIN rc=$rc ok/all=$ok seconds=$(python3 -c "print(round($t1-$t0,2))") jails_peak_MiB=$(sort -n /tmp/jb-$$.mem | tail -1 | python3 -c 'import sys; print(round(int(sys.stdin.read() or 0)/2**20,1))')"
rm -f /tmp/jb-$$.*
