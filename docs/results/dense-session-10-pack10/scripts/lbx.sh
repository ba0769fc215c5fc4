#!/bin/bash
# lbx.sh BIN TAG: link bench on seeds 1-4 (dense8's corpora 1-3, pack10's seed 4), ratio line each.
BIN=$1; TAG=$2; shift 2
for s in 1 2 3 4; do
  C=/work/cache/dense8/corpus20s$s; [ $s = 4 ] && C=/work/cache/pack10/corpus20s4
  env "$@" nice $BIN link bench --corpus $C --out lb$TAG$s --json lb$TAG$s.json > lb$TAG$s.txt 2>&1 || echo "seed $s failed"
  python3 ratio.py lb$TAG$s.json
done
