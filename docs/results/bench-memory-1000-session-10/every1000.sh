#!/bin/sh
# lead, session 9: every mode of bench memory at 1000 on a fresh fleet of main's final guest, both request sets.
# usage: every1000.sh BIN W   (BIN: bin/unipool built at main's final commit; W: work dir)
set -e
BIN=$1; W=$2; mkdir -p $W; cd $W
date -u +"fleet start %T"
nice -n 5 $BIN bench memory --count 1000 --seed 1 --inputs distinct --work $W/w --fleet-only > fleet.log 2>&1
date -u +"fleet done %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/distinct > distinct.log 2>&1
date -u +"distinct done %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs repeated --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/repeated > repeated.log 2>&1
date -u +"repeated done %T"
