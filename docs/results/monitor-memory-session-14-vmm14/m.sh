#!/bin/sh
# m.sh LABEL BIN CMD...: run a monitor (CMD, whose binary is BIN), 4 s after its
# resident line print Pss_File, Pss_Anon (kB) and the binary's resident kB by segment.
label=$1; bin=$2; shift 2
out=/tmp/vmm14probe/out/$label.out
mkdir -p /tmp/vmm14probe/out
"$@" > $out 2>&1 </dev/null &
pid=$!
while ! grep -q resident $out 2>/dev/null; do
	if ! kill -0 $pid 2>/dev/null; then echo "$label: died: $(tail -2 $out)"; exit 1; fi
	sleep 0.5
done
sleep 4
pf=$(awk '/^Pss_File/{print $2}' /proc/$pid/smaps_rollup)
pa=$(awk '/^Pss_Anon/{print $2}' /proc/$pid/smaps_rollup)
segs=$(awk -v b="$bin" '/^[0-9a-f]+-/{m=($6==b)?$2:""} /^Rss:/{if (m!="") printf "%s=%s ", m, $2}' /proc/$pid/smaps)
echo "$label pss_file=$pf pss_anon=$pa $segs"
wait $pid
