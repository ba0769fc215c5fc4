#!/bin/bash
BIN=$1; SPEC=$2; LABEL=$3
out=$(mktemp)
GODEBUG=gctrace=1 nice -n 10 $BIN bench monitor-process --spec $SPEC --hold 15s > $out 2>gc-po2.txt &
pid=$!
for i in $(seq 1 6000); do grep -q resident $out && break; sleep 0.05; done
r() { awk '/^Pss:/{p=$2} /^Pss_Anon:/{a=$2} /^Pss_File:/{f=$2} END{print p, a, f}' /proc/$pid/smaps_rollup; }
echo "$LABEL +0: $(r) gcs $(grep -c ^gc gc-po2.txt)"
sleep 0.3; echo "$LABEL +0.3: $(r) gcs $(grep -c ^gc gc-po2.txt)"
sleep 1; echo "$LABEL +1.3: $(r) gcs $(grep -c ^gc gc-po2.txt)"; cp /proc/$pid/smaps smaps-po2.txt
sleep 3; echo "$LABEL +4.3: $(r) gcs $(grep -c ^gc gc-po2.txt)"
sleep 5; echo "$LABEL +9.3: $(r) gcs $(grep -c ^gc gc-po2.txt)"
wait $pid; rm -f $out
