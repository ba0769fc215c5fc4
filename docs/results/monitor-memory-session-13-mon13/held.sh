#!/bin/bash
# held.sh BIN SPEC LABEL: run the monitor process held; 3 s after resident: smaps_rollup, binary pages -> pages-LABEL
BIN=$1; SPEC=$2; LABEL=$3
D=/work/cache/mon13/held; mkdir -p $D
out=$(mktemp)
UNIPOOL_METRICS=$D/metrics-$LABEL nice -n 10 $BIN bench monitor-process --spec $SPEC --hold 8s > $out 2>$D/err-$LABEL &
pid=$!
for i in $(seq 1 2400); do grep -q resident $out && break; sleep 0.25; done
sleep 3
cp /proc/$pid/smaps $D/smaps-$LABEL; python3 /work/cache/mon13/pages.py $pid $(readlink -f $BIN) $D/pages-$LABEL
thr=$(awk "/^Threads:/{print \$2}" /proc/$pid/status)
pss=$(awk '/^Pss:/{p=$2} /^Pss_Anon:/{a=$2} /^Pss_File:/{f=$2} END{print p, a, f}' /proc/$pid/smaps_rollup)
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
echo "$LABEL pss,anon,file KiB: $pss binpages: $(wc -l < $D/pages-$LABEL) cpu_s: $cpu threads: $thr load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $D/held.log
wait $pid
echo "ok: $(grep -o '"ok":true' $out | wc -l)"; grep -o '"error":"[^"]*' $out | head -3
rm -f $out
