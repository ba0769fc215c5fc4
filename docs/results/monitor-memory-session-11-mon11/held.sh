#!/bin/bash
# held.sh BIN SPEC LABEL [PROFDIR]: run the monitor process held, report Pss/Pss_Anon 3 s after resident
BIN=$1; SPEC=$2; LABEL=$3; PROF=$4
out=$(mktemp)
if [ -n "$PROF" ]; then mkdir -p $PROF; export UNIPOOL_PROF=$PROF; fi
nice -n 10 $BIN bench monitor-process --spec $SPEC --hold 10s > $out 2>/dev/null &
pid=$!
for i in $(seq 1 600); do grep -q resident $out && break; sleep 0.5; done
sleep 3
mp=$(pgrep -P $pid -x nice >/dev/null; echo $pid)
cp /proc/$pid/smaps ${SMAPS:-/dev/null} 2>/dev/null; grep -c "" /proc/$pid/task/*/stat | wc -l > ${SMAPS:-/dev/null}.threads 2>/dev/null
pss=$(awk '/^Pss:/{p=$2} /^Pss_Anon:/{a=$2} END{print p, a}' /proc/$pid/smaps_rollup)
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
[ -n "$PROF" ] && kill -USR1 $pid && sleep 1
echo "$LABEL pss,pss_anon KiB: $pss cpu_s: $cpu"
wait $pid
rm -f $out
