#!/bin/bash
# held.sh TAG N cmd... : slabinfo deltas + vma census of N held uk: instances
tag=$1; N=$2; shift 2
snap() { awk 'NR>2{print $1, $2*$4}' /proc/slabinfo | sort; }
snap > $tag.before
"$@" > $tag.out 2>&1 &
pid=$!
for i in $(seq 1 300); do n=$(python3 count.py); [ "$n" -ge $N ] && break; sleep 1; done
sleep 5
snap > $tag.after
python3 vmas.py ${POOL:-/work/cache/s12/final/W/w/pool} snapvma13 > $tag.vmas
wait $pid
join $tag.before $tag.after | awk '{d=$3-$2; if (d>50000||d<-50000) printf "%-28s %8.0f KiB\n",$1,d/1024}' | sort -k2 -n -r > $tag.diff
cat $tag.vmas $tag.diff
