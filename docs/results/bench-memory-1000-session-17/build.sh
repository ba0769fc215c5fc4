#!/bin/sh
# build.sh: clone main's HEAD, make build, then the 1000 fleet (only when fleet-changing work landed)
set -e
D=/work/cache/s17/final
rm -rf $D/src $D/W; mkdir -p $D/W
git clone -q /work/main $D/src
cd $D/src && git log --oneline -1 > $D/commit.txt && make build > $D/build.log 2>&1
echo "fleet start $(date -u +%T) $(cat $D/commit.txt)" > $D/status.txt
cd $D
set +e
nice -n 5 $D/src/bin/unipool bench memory --count 1000 --seed 1 --inputs distinct --work $D/W/w --fleet-only > $D/W/fleet.log 2>&1
rc=$?
echo "fleet done $(date -u +%T) rc=$rc" >> $D/status.txt
