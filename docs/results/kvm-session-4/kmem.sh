# kmem.sh: what the emulated host's kernel holds per held KVM VM, by slab
# cache, vmalloc caller and meminfo field: snapshots before any VM and while
# K VMs are held (all ended, memory resident), for each K in $KS.
set -e
UK=${UK:-sort-0000}
LOAD=${LOAD:-shared}
snap() { # DIR
  mkdir -p $1; cat /proc/slabinfo > $1/slabinfo; cat /proc/meminfo > $1/meminfo
  cat /proc/vmallocinfo > $1/vmallocinfo 2>/dev/null || true
}
sync; echo 3 > /proc/sys/vm/drop_caches || true
for K in ${KS:-100 300}; do
  D=/run/tmp/k$K; snap $D/before
  unipool run --monitor kvm --load $LOAD -n $K --json --hold 1200s --timeout 600s $EXTRA $UK > $D/out.json 2>$D/err.txt &
  P=$!
  while n=$(grep -c '"unikernel"' $D/out.json 2>/dev/null); [ "${n:-0}" -lt $K ]; do
    kill -0 $P 2>/dev/null || { echo "run ended early"; cat $D/err.txt | tail -5; break; }
    sleep 2
  done
  sleep 5
  snap $D/held
  echo "K=$K pid $P threads $(ls /proc/$P/task | wc -l) fds $(ls /proc/$P/fd | wc -l) maps $(wc -l < /proc/$P/maps) $(grep -E 'VmRSS|VmPTE' /proc/$P/status | tr -s ' \n' ' ')"
  grep -E '^(Pss|Rss)' /proc/$P/smaps_rollup | tr -s ' \n' ' '; echo
  kill -INT $P; wait $P || true
  python3 - $D $K <<'PY'
import sys,collections
d,k=sys.argv[1],int(sys.argv[2])
def slab(f):
    r={}
    for l in open(f):
        if l.startswith(('slabinfo','#')): continue
        x=l.split(); r[x[0]]=int(x[2])*int(x[3])  # num_objs*objsize... active
    return r
def mem(f):
    return {l.split(':')[0]:int(l.split()[1]) for l in open(f)}
def vm(f):
    r=collections.Counter()
    try:
        for l in open(f):
            x=l.split()
            if len(x)>2 and x[2].startswith(('vmalloc','ioremap'))==False:
                r[x[2]]+=int(x[1])
    except Exception: pass
    return r
b,h=slab(d+'/before/slabinfo'),slab(d+'/held/slabinfo')
diff=sorted(((h.get(c,0)-b.get(c,0),c) for c in set(b)|set(h)),reverse=True)
print('K=%d slab caches (bytes per VM, objects x objsize rise):'%k)
for v,c in diff[:18]:
    if v>0: print('  %-28s %8.0f'%(c,v/k))
print('  slab total rise per VM %.0f'%(sum(v for v,c in diff)/k))
mb,mh=mem(d+'/before/meminfo'),mem(d+'/held/meminfo')
print('meminfo rise per VM (KiB):',' '.join('%s=%.1f'%(f,(mh[f]-mb[f])/k) for f in ['MemFree','MemAvailable','Slab','SUnreclaim','KernelStack','PageTables','SecPageTables','VmallocUsed','AnonPages','Shmem','Percpu'] if f in mh))
known=['AnonPages','SUnreclaim','KernelStack','PageTables','SecPageTables','VmallocUsed','Percpu','Shmem']
drop=mb['MemAvailable']-mh['MemAvailable']
print('MemAvailable drop per VM %.1f KiB; of it in no meminfo field (page allocations KVM holds outside slab/vmalloc, e.g. its per-vCPU MMU page caches): %.1f KiB'%(drop/k,(drop-sum(mh[f]-mb[f] for f in known if f in mh))/k))
vb,vh=vm(d+'/before/vmallocinfo'),vm(d+'/held/vmallocinfo')
vd=sorted(((vh[c]-vb[c],c) for c in set(vb)|set(vh)),reverse=True)
print('vmalloc rise per VM by caller (bytes):',' '.join('%s=%.0f'%(c,v/k) for v,c in vd[:8] if v>0))
PY
done
