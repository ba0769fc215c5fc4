#!/bin/sh
# relink.sh BIN OUT: relink w0's aligned images against a copy of w0's final map
set -e
BIN=$1; OUT=$2; W=${3:-/work/cache/dense15/w0}
rm -rf $OUT; mkdir -p $OUT
cp $W/pool/map.json $W/pool/map.json.uses $OUT/
for f in $W/images/aligned/*.img; do
  n=$(basename $f .img)
  $BIN link --layout aligned --map $OUT/map.json --corpus $W/corpus --unikernel $n -o $OUT/$n.img >/dev/null
done
cmp -s $W/pool/map.json $OUT/map.json && echo "map unchanged" || echo "MAP CHANGED"
