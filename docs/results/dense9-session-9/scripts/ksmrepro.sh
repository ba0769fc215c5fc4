#!/bin/bash
# ksmrepro.sh BIN: bench tlb's KSM modes with the defaults, first beside a paused QEMU whose 1 GiB of
# guest RAM is preallocated with QEMU's default mem-merge=on (as scripts/kvmhost's QEMU had it), then alone.
BIN=$1; D=/work/cache/dense9
cd $D
qemu-system-x86_64 -nodefaults -display none -machine pc -m 1G -mem-prealloc -S -daemonize -pidfile $D/repro-q.pid
echo "qemu $(cat $D/repro-q.pid): $(grep -E 'mergeable' /proc/$(cat $D/repro-q.pid)/ksm_stat)"
nice -n 10 $BIN bench tlb --modes dce-ksm,aligned-ksm --work tlbwork --reuse --out tlbk-qemu > tlbk-qemu.log 2>&1
kill $(cat $D/repro-q.pid)
sleep 2
nice -n 10 $BIN bench tlb --modes dce-ksm,aligned-ksm --work tlbwork --reuse --out tlbk-clean > tlbk-clean.log 2>&1
echo repro done
