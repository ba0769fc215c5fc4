#!/bin/bash
# second pass on the same pools (snapshots taken in run.sh): the other order, then repeated inputs
S=/work/cache/s12/snappack
for spec in snappack:distinct main:distinct main:repeated snappack:repeated; do
  v=${spec%%:*}; in=${spec##*:}
  B=$S/unipool-$v
  date -u +"$v $in bench start %T (load $(cut -d' ' -f1-3 /proc/loadavg))"
  flock /work/notes/ksm.lock $B bench memory --reuse --count 1000 --seed 1 --inputs $in --work $S/$v \
    --modes shared-snapshot,aligned-ksm --ksm-wait 120s --ksm-pages-to-scan 1000 --out $S/out2-$v-$in > $S/bench2-$v-$in.log 2>&1
  echo "$v $in bench rc=$?"
  grep "^mode .*final" $S/bench2-$v-$in.log
done
date -u +"done %T"
