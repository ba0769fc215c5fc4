#!/bin/sh
# hostmem cross-check on the final 1000 fleet, shared-snapshot, run binary of the session-16 final main
D=/work/cache/s16/final; H=/work/cache/s16/hostmem
NAMES=$(ls $D/W/w/corpus | grep -v '\.json$' | grep -- '-[0-9]')
echo "$NAMES" | wc -l > $H/count
sync; echo 3 > /proc/sys/vm/drop_caches; cat /proc/meminfo > $H/meminfo-before
( sleep 35; cat /proc/meminfo > $H/meminfo-held ) &
/work/shared/tools/hostmem --settle 5 -- $D/runsrc/bin/unipool run --pool $D/W/w/pool --snapshot --hold 45s $NAMES > $H/hostmem.json 2> $H/hostmem.err
echo "rc=$?" >> $H/hostmem.err
wait
