#!/bin/bash
# held.sh BIN SPEC LABEL [PROFDIR]: run the monitor process held, report Pss/Pss_Anon 3 s after resident
BIN=$1; SPEC=$2; LABEL=$3; PROF=$4
out=$(mktemp)
if [ -n "$PROF" ]; then mkdir -p $PROF; export UNIPOOL_PROF=$PROF; fi
nice -n 10 $BIN bench monitor-process --spec $SPEC --hold 12s > $out 2>${ERR:-/dev/null} &
pid=$!
for i in $(seq 1 1200); do grep -q resident $out && break; sleep 0.5; done
sleep 3
[ -n "$SMAPS" ] && cp /proc/$pid/smaps $SMAPS
thr=$(awk "/^Threads:/{print \$2}" /proc/$pid/status)
pss=$(awk '/^Pss:/{p=$2} /^Pss_Anon:/{a=$2} /^Pss_File:/{f=$2} END{print p, a, f}' /proc/$pid/smaps_rollup)
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
[ -n "$PROF" ] && kill -USR1 $pid && sleep 2
echo "$LABEL pss,anon,file KiB: $pss cpu_s: $cpu threads: $thr load: $(cut -d' ' -f1-3 /proc/loadavg)"
wait $pid
grep -o "\"ok\":true" $out | wc -l | sed "s/^/ok: /"; grep -o "\"error\":\"[^\"]*" $out | head -3
rm -f $out
