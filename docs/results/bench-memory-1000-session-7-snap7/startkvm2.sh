#!/bin/bash
# The second run of startkvm.sh's measurement, the monitors in the other order
# (process first, then KVM), to see whether the order matters. Same pool, same names.
set -x
N="sort-0000 lz4pack-0001 sha256-0002 gzip-0008 json-0010"
unipool bench start --monitor process -n 10 --rounds 3 $N
echo "process exit $?"
unipool bench start --monitor kvm -n 10 --rounds 3 $N
echo "kvm exit $?"
