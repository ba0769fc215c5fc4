# scale.sh: in the emulated KVM host. 1) the kernel's per-VM memory by
# slab cache / vmalloc caller (kmem.sh) 2) run --measure (internal/measure)
# 3) as many resident VMs as fit, in one process, growing.
rm -rf /run/tmp/dense; cp -a $UNIPOOL_POOL /run/tmp/dense; export UNIPOOL_POOL=/run/tmp/dense
UK=${UK:-crc32-0004}
echo "== emulated host: $(nproc) CPU, $(grep MemTotal /proc/meminfo), max_map_count $(cat /proc/sys/vm/max_map_count), threads-max $(cat /proc/sys/kernel/threads-max), nofile $(ulimit -n)/$(ulimit -Hn), kernel $(uname -r)"
if [ -z "$SKIPK" ]; then
echo "== 1) kernel memory per held VM (KS=${KSK:-200 800}, shared, $UK)"
KS="${KSK:-200 800}" LOAD=shared UK=$UK bash /work/cache/kvmscale/exp/kmem.sh
echo "== 2) unipool run --monitor kvm --measure -n ${NM:-500} $UK"
unipool run --monitor kvm --measure -n ${NM:-500} --timeout 600s $UK 2>&1 | tail -14
fi
echo "== 3) resident VMs in one process: unipool run --monitor kvm -n K --hold 600s --json $UK"
for K in ${KS3:-2000 5000 10000}; do
  D=/run/tmp/s$K; mkdir -p $D
  cat /proc/meminfo > $D/before
  t0=$(date +%s)
  unipool run --monitor kvm -n $K --hold 900s --json --timeout 900s $UK > $D/out.json 2>$D/err.txt &
  P=$!
  last=0
  while [ "$(grep -c '"unikernel"' $D/out.json 2>/dev/null)" -lt $K ]; do
    kill -0 $P 2>/dev/null || { echo "K=$K: the run ended early: $(tail -3 $D/err.txt)"; break; }
    sleep 5
    now=$(date +%s)
    if [ $((now - last)) -ge 120 ]; then last=$now
      echo "  K=$K after $((now - t0)) s: reported $(grep -c '"unikernel"' $D/out.json), threads $(ls /proc/$P/task 2>/dev/null | wc -l), fds $(ls /proc/$P/fd 2>/dev/null | wc -l), maps $(wc -l < /proc/$P/maps 2>/dev/null), $(grep MemAvailable /proc/meminfo | tr -s ' ')"
    fi
  done
  if kill -0 $P 2>/dev/null; then
    sleep 5
    cat /proc/meminfo > $D/held
    echo "K=$K all reported after $(( $(date +%s) - t0 )) s; held: threads $(ls /proc/$P/task | wc -l) fds $(ls /proc/$P/fd | wc -l) maps $(wc -l < /proc/$P/maps) $(grep -E 'VmRSS|VmPTE' /proc/$P/status | tr -s ' \n' ' ')"
    kill -INT $P; wait $P
  fi
  python3 - $D $K <<'PY'
import json,sys
d,k=sys.argv[1],int(sys.argv[2])
try:
    txt=open(d+'/out.json').read().strip()
    r=json.loads(txt) if txt.startswith('[') and txt.endswith(']') else [json.loads(l.rstrip(',')) for l in txt.strip('[]\n').split('\n},') if l.strip()] 
except Exception as e:
    r=[]
    import re
    r=[{'load_time_ns':int(x)} for x in re.findall(r'"load_time_ns": (\d+)', open(d+'/out.json').read())]
    errs=len(re.findall(r'"error": "', open(d+'/out.json').read()))
else:
    errs=sum(1 for x in r if x.get('error'))
l=sorted(x['load_time_ns'] for x in r)
if l: print('K=%d reported %d, errors %d, load p50 %.1f ms p99 %.1f ms mean %.1f ms'%(k,len(l),errs,l[len(l)//2]/1e6,l[min(len(l)-1,len(l)*99//100)]/1e6,sum(l)/len(l)/1e6))
def mem(f):
    try: return {x.split(':')[0]:int(x.split()[1]) for x in open(f)}
    except Exception: return {}
b,h=mem(d+'/before'),mem(d+'/held')
if h: print('K=%d meminfo rise per VM (KiB): '%k+' '.join('%s=%.1f'%(f,(h[f]-b[f])/k) for f in ['MemAvailable','AnonPages','Slab','SUnreclaim','KernelStack','PageTables','SecPageTables','VmallocUsed','Percpu'] if f in h))
PY
  grep -q "all reported" <(echo) ; [ -s $D/held ] || break
done
