#!/bin/sh
# wait for the fleet, build the run binary from main's HEAD (monitor changes after the fleet), then both request sets, every mode
D=/work/cache/s13/final
W=$D/W
while ! grep -q "fleet done" $D/status.txt; do sleep 10; done
while [ ! -e $D/go ]; do sleep 10; done
grep -q "rc=0" $D/status.txt || { echo "fleet failed"; exit 1; }
rm -rf $D/runsrc && git clone -q /work/main $D/runsrc && cd $D/runsrc && git log --oneline -1 | cut -c1-80 > $D/run-commit.txt
F=$(cut -d' ' -f3 $D/status.txt | head -1)
echo "fleet commit $(cut -c1-7 $D/commit.txt); changes since in guest/link/pool/corpus/libmap/desc:" >> $D/run-commit.txt
git diff --stat $(cut -c1-7 $D/commit.txt)..HEAD -- guest internal/link internal/pool internal/corpus internal/libmap internal/desc >> $D/run-commit.txt
go build -o $D/unipool-run ./cmd/unipool || exit 1
BIN=$D/unipool-run
cd $D
date -u +"distinct start %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs distinct --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/distinct > $W/distinct.log 2>&1
echo "distinct rc=$?"
date -u +"distinct done %T"
flock /work/notes/ksm.lock $BIN bench memory --reuse --count 1000 --seed 1 --inputs repeated --work $W/w \
  --ksm-wait 120s --ksm-pages-to-scan 1000 --out $W/repeated > $W/repeated.log 2>&1
echo "repeated rc=$?"
date -u +"repeated done %T"
