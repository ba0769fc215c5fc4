#!/bin/bash
# jails.sh LABEL UNIPOOL: serve --vms-per-process ${PER:-50}, 100 held instances, PSS of the jails and the daemon
label=$1; B=$2
P=/work/cache/vmm14/W/pool
sock=/tmp/vmm14probe/j-$label.sock; rm -f $sock
names=$($B pool ls --pool $P 2>/dev/null | tail -n +2 | head -${NUM:-100} | awk '{print $1}')
$B serve --socket $sock --pool $P --vms-per-process ${PER:-50} 2>/tmp/vmm14probe/serve-$label.log &
dpid=$!
for i in $(seq 50); do [ -S $sock ] && break; sleep 0.2; done
$B run --host $sock --hold 60s $names > /tmp/vmm14probe/jrun-$label.out 2>&1
sleep 6
line="$label daemon $(awk '/^Pss_File/{f=$2} /^Pss_Anon/{a=$2} END{print "file="f" anon="a}' /proc/$dpid/smaps_rollup)"
for j in $(ps -o pid= --ppid $dpid); do
  line="$line | jail $(cat /proc/$j/comm) $(awk '/^Pss_File/{f=$2} /^Pss_Anon/{a=$2} END{print "file="f" anon="a}' /proc/$j/smaps_rollup)"
done
echo "$line"
kill -TERM $dpid; wait $dpid
