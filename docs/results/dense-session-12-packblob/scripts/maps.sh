#!/bin/bash
# maps.sh BIN POOL TAG [--snapshot]: kernel mappings (/proc/PID/maps lines) per held instance
B=$1; P=$2; TAG=$3; shift 3
names=$(python3 -c "import json;print(' '.join(m['annotations']['org.opencontainers.image.ref.name'] for m in json.load(open('$P/index.json'))['manifests']))")
n=$(echo $names | wc -w)
$B run --pool $P "$@" --hold 60s $names > /tmp/maps-$TAG.out 2>&1 &
pid=$!
mine() { # the uk: processes under $pid
  ps -e -o pid=,ppid=,comm= | awk -v root=$pid '{par[$1]=$2; com[$1]=$3} END{for(p in par){q=p; while(q!=""&&q!=1&&q!=root)q=par[q]; if(q==root&&com[p]~/^uk:/)print p}}'
}
for i in $(seq 1 120); do c=$(mine | wc -l); [ "$c" -ge $n ] && break; sleep 1; done
sleep 3
for p in $(mine); do echo "$(wc -l < /proc/$p/maps) $(cat /proc/$p/comm)"; done > /tmp/maps-$TAG.counts
wait $pid
awk -v t=$TAG '{s+=$1; if(min==""||$1<min)min=$1; if($1>max)max=$1; n++} END{printf "%s: %d instances, mappings per instance %.2f (min %d, max %d)\n", t, n, s/n, min, max}' /tmp/maps-$TAG.counts
