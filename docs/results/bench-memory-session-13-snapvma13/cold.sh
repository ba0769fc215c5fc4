#!/bin/bash
# cold pool: each fleet copy on a freshly mounted ext4 loop image (its inodes and dentries not cached)
cd /work/cache/snapvma13
for x in "main A" "snapvma13 B"; do set -- $x
  echo "== $1 cold $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /work/notes/ksm.lock nice -n 10 ./unipool-$1 bench memory --reuse --count 300 --seed 1 --inputs distinct --work mnt/$2 \
    --modes shared-snapshot --out out-$1-cold > bench-$1-cold.log 2>&1
  echo "rc $? $(date -u +%T)"
done
