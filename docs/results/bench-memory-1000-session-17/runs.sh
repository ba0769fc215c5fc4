#!/bin/sh
# runs.sh FLEETDIR: wait for $D/go, clone main's HEAD, make build, then both request sets, every mode, on FLEETDIR (a work dir with a built fleet)
D=/work/cache/s17/final
FW=$1
W=$D/W
mkdir -p $W
while [ ! -e $D/go ]; do sleep 10; done
rm -rf $D/runsrc && git clone -q /work/main $D/runsrc && cd $D/runsrc && git log --oneline -1 | cut -c1-80 > $D/run-commit.txt
make build > $D/runbuild.log 2>&1 || { echo "build failed"; exit 1; }
BIN=$D/runsrc/bin/unipool
cd $D
date -u +"distinct start %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $FW \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/distinct > $W/distinct.log 2>&1
echo "distinct rc=$?"
date -u +"distinct done %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs repeated --work $FW \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/repeated > $W/repeated.log 2>&1
echo "repeated rc=$?"
date -u +"repeated done %T"
