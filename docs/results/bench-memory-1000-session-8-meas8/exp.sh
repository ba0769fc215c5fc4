#!/bin/sh
# The same fleet, three modes, in two orders, each twice with the monitor as a process of its own,
# once each with the old in-process monitor (--monitor-in-process): does the monitor column repeat?
set -e
N=${N:-1000}
cd /work/cache/meas8
B=./unipool-exp
W=/work/cache/meas8/f1000
run() { # name modes [flags]
  name=$1; modes=$2; shift 2
  echo "== $name $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  nice -n 10 $B bench memory --reuse --count $N --seed 1 --inputs distinct --work $W --modes $modes --out OUT/$name "$@" > OUT/$name.log 2>&1
  grep -A4 "host MiB" OUT/$name.log
}
mkdir -p OUT
run A1 shared,packed-naive,shared-aslr
run oldA shared,packed-naive,shared-aslr --monitor-in-process
run B1 shared-aslr,packed-naive,shared
run oldB shared-aslr,packed-naive,shared --monitor-in-process
run A2 shared,packed-naive,shared-aslr
run B2 shared-aslr,packed-naive,shared
echo "== done $(date -u +%T)"
