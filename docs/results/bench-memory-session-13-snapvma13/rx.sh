#!/bin/bash
# experiment (not landed): a dense library's rodata and code|stubs mapped as one r-x mapping (UNIPOOL_EXPERIMENT_RX), on B
cd /work/cache/snapvma13
for t in off on off2 on2; do
  case $t in on*) export UNIPOOL_EXPERIMENT_RX=1;; *) unset UNIPOOL_EXPERIMENT_RX;; esac
  echo "== rx $t $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /work/notes/ksm.lock nice -n 10 ./unipool-rx bench memory --reuse --count 300 --seed 1 --inputs distinct --work B \
    --modes shared-snapshot --out out-rx-$t > bench-rx-$t.log 2>&1
  echo "rc $? $(date -u +%T)"
done
