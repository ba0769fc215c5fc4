#!/bin/bash
# usage: smaps.sh BINARY MODE : run held, dump per-mapping Anonymous sizes
BIN=$1; MODE=$2; shift 2
SPEC=${SPEC:-/work/cache/every9/W/distinct/monitor-$MODE.json}
OUTF=$(mktemp /tmp/mon10-out.XXXXXX)
env "$@" nice -n 5 $BIN bench monitor-process --spec $SPEC --hold 8s > $OUTF 2>$OUTF.err &
PID=$!
while ! grep -q resident $OUTF 2>/dev/null; do sleep 0.2; done
sleep 2
python3 - $PID <<'PY'
import sys,re
pid=sys.argv[1]
cur=None; rows=[]
for l in open(f'/proc/{pid}/smaps'):
    if re.match(r'^[0-9a-f]+-[0-9a-f]+ ',l):
        parts=l.split()
        a,b=[int(x,16) for x in parts[0].split('-')]
        cur={'range':parts[0],'perm':parts[1],'name':parts[5] if len(parts)>5 else '','size':(b-a)//1024}
        rows.append(cur)
    elif ':' in l:
        k,v=l.split(':',1)
        v=v.split()
        if v and v[0].isdigit(): cur[k]=int(v[0])
tot=0
for r in rows:
    if r.get('Anonymous',0)>0 or r.get('Pss_File',0)>200:
        print(f"{r['range']} {r['perm']} size={r['size']} rss={r.get('Rss',0)} anon={r.get('Anonymous',0)} pssfile={r.get('Pss_File',0)} {r['name']}")
    tot+=r.get('Anonymous',0)
print('total anon',tot)
PY
grep MEMSTATS $OUTF.err
wait $PID; rm -f $OUTF $OUTF.err
