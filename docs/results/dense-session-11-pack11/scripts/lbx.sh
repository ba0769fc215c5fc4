#!/bin/bash
# lbx.sh BIN TAG [link bench flags]: link bench on the seed 1-4 corpora, ratio line each.
BIN=$1; TAG=$2; shift 2
for s in 1 2 3 4; do
  C=/work/cache/pack11/corpus20s$s
  nice -n 10 $BIN link bench --corpus $C --out lb$TAG$s --json lb$TAG$s.json "$@" > lb$TAG$s.txt 2>&1 || echo "seed $s failed"
  python3 ratio.py lb$TAG$s.json
done
