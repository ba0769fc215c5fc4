#!/bin/sh
# k300.sh: relink the first 300 unikernels of the session-14 1000 fleet's corpus against a copy of its map, old and new binary
D=/work/cache/dense15; C=/work/cache/s14/final/W/w/corpus; M=/work/cache/s14/final/W/w/pool
for t in old new; do
  rm -rf $D/k/$t; mkdir -p $D/k/$t; cp $M/map.json $M/map.json.uses $D/k/$t/
  ls $C | grep -v json | head -300 | xargs -P 2 -I{} nice -n 10 $D/bin-$t/unipool link --layout aligned --map $D/k/$t/map.json --corpus $C --unikernel {} -o $D/k/$t/{}.img > $D/k/$t.log 2>&1
  cmp -s $M/map.json $D/k/$t/map.json && echo "$t: map unchanged" || echo "$t: MAP CHANGED"
  python3 $D/tools/arenastat.py $D/k/$t
done
