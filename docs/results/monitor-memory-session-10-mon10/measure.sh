#!/bin/bash
# usage: measure.sh BINARY MODE [extra env...]; prints one line: binary mode Pss Pss_Anon Pss_File Threads fds
BIN=$1; MODE=$2; shift 2
SPEC=${SPEC:-/work/cache/every9/W/distinct/monitor-$MODE.json}
OUTF=$(mktemp /tmp/mon10-out.XXXXXX)
start=$(date +%s.%N)
env "$@" nice -n 5 $BIN bench monitor-process --spec $SPEC --hold 8s > $OUTF 2>$OUTF.err &
PID=$!
while ! grep -q resident $OUTF 2>/dev/null; do
  if ! kill -0 $PID 2>/dev/null; then echo "died"; cat $OUTF.err | tail -5; exit 1; fi
  sleep 0.2
done
held=$(date +%s.%N)
sleep 2
pss=$(awk '/^Pss:/{print $2}' /proc/$PID/smaps_rollup)
anon=$(awk '/^Pss_Anon:/{print $2}' /proc/$PID/smaps_rollup)
file=$(awk '/^Pss_File:/{print $2}' /proc/$PID/smaps_rollup)
thr=$(awk '/^Threads:/{print $2}' /proc/$PID/status)
fds=$(ls /proc/$PID/fd | wc -l)
cpu=$(awk '{print ($14+$15)/100 "(u" $14/100 ",s" $15/100 ")"}' /proc/$PID/stat)
wait $PID
ok=$(python3 -c "import json,sys
for l in open('$OUTF'):
  m=json.loads(l)
  if m.get('done'): print(sum(1 for o in m['outcomes'] if o['ok']))")
printf "%s %s pss=%s anon=%s file=%s threads=%s fds=%s cpu=%s toheld=%.1f ok=%s %s\n" $(basename $BIN) $MODE $pss $anon $file $thr $fds $cpu $(echo "$held - $start" | bc) "$ok" "$*"
grep MEMSTATS $OUTF.err; if [ -n "$KEEPERR" ]; then cp $OUTF.err $KEEPERR; fi; rm -f $OUTF $OUTF.err
