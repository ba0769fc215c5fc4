#!/bin/bash
# In the emulated KVM host (scripts/kvmhost): start latency from snapshots against cold
# boots, alternated round by round, the pool copied to the emulated host's tmpfs first (on
# kvmhost's 9p mount every mmap of a blob is a 9p round trip).
#   scripts/kvmhost --mem 4G --timeout 1500 --pool POOL -- startkvm.sh POOL ARGS...
set -eu
cp -a "$1" /run/tmp/pool
shift
unipool bench start --monitor kvm --pool /run/tmp/pool "$@"
