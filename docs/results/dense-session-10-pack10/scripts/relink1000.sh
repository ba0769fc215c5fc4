#!/bin/bash
# relink1000.sh BIN W: link the aligned images of dense9's 1000-unikernel fleet (seed 1, distinct inputs)
# with BIN, in corpus order, against a fresh pool W/pool, and pool them; the packed and no-packs
# layouts (not changed by this branch) are dense9's, copied/linked.
set -e
BIN=$1; W=$2; D=/work/cache/dense9/m1000work
mkdir -p $W/images/aligned
[ -e $W/corpus ] || ln -s $D/corpus $W/corpus
[ -e $W/images/packed ] || ln -s $D/images/packed $W/images/packed
[ -e $W/images/aligned-no-packs ] || ln -s $D/images/aligned-no-packs $W/images/aligned-no-packs
[ -e $W/pool-no-packs ] || cp -a $D/pool-no-packs $W/pool-no-packs
rm -rf $W/pool; $BIN pool init --pool $W/pool > /dev/null
python3 -c "
import json
c=json.load(open('$D/corpus/corpus.json'))
for u in c['unikernels']: print(u['name']+'\t'+u['input'])
" > $W/list.tsv
n=0
while IFS=$'\t' read -r name input; do
  $BIN link --corpus $W/corpus --unikernel $name --map $W/pool/map.json --cmdline "$input" -o $W/images/aligned/$name.img > /dev/null
  $BIN pool add --pool $W/pool --name $name --cmdline "$input" $W/images/aligned/$name.img > /dev/null
  n=$((n+1)); [ $((n % 100)) = 0 ] && echo "$(date -u +%T) $n linked"
done < $W/list.tsv
echo done
