#!/bin/bash
# Start latency under both monitors, side by side in one emulated KVM host
# (session 7, helper snapkvm7). Run from the repo root:
#   UNIPOOL_KVMHOST_CACHE=... scripts/kvmhost --mem 3G --timeout 1500 --pool P -- \
#     docs/results/bench-memory-1000-session-7-snap7/startkvm.sh
# P: a copy of snap7's 1000-unikernel pool (--count 1000 --seed 1 --inputs distinct,
# snapshots taken by its shared-snapshot run, main 17ebd2f).
set -x
N="sort-0000 lz4pack-0001 sha256-0002 gzip-0008 json-0010"
unipool bench start --monitor kvm -n 10 --rounds 3 $N
echo "kvm exit $?"
unipool bench start --monitor process -n 10 --rounds 3 $N
echo "process exit $?"
