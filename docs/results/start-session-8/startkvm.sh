#!/bin/bash
# In the emulated KVM host: cold starts by load mode, alternated, the pool on the emulated host's tmpfs.
#   startkvm.sh POOL LOADS ARGS...
set -eu
cp -a "$1" /run/tmp/pool
L=$2; shift 2
unipool bench start --monitor kvm --pool /run/tmp/pool --loads $L "$@"
