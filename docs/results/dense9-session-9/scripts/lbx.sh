#!/bin/bash
# lbx.sh BIN TAG [env]: link bench on the three seeds (dense8's corpora), ratio line each.
BIN=$1; TAG=$2; shift 2
for s in 1 2 3; do
  env "$@" nice $BIN link bench --corpus /work/cache/dense8/corpus20s$s --out lb$TAG$s --json lb$TAG$s.json > lb$TAG$s.txt 2>&1 || echo "seed $s failed"
  python3 /work/cache/dense8/ratio.py lb$TAG$s.json
done
