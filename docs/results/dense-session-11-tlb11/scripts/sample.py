# Samples every monitor-process fleet (a process `unipool bench monitor-process`
# with >= MIN children) every 3 s until DURATION ends; keeps each mode's last
# sample: VMAs of instances and monitor, anonymous VMAs, VmPTE, ksm rmap items,
# threads, the cgroup's kmem usage. Writes JSON to OUT.
import os,sys,time,json,re
out=sys.argv[1]; dur=float(sys.argv[2]); MIN=int(sys.argv[3]) if len(sys.argv)>3 else 20
def rd(p):
    try: return open(p).read()
    except Exception: return ''
def status(pid,key):
    m=re.search(r'^'+key+r':\s+(\d+)',rd(f'/proc/{pid}/status'),re.M); return int(m.group(1)) if m else 0
def children(pid):
    s=set()
    for t in os.listdir(f'/proc/{pid}/task'):
        for c in rd(f'/proc/{pid}/task/{t}/children').split(): s.add(int(c))
    return sorted(s)
res={}
end=time.time()+dur
while time.time()<end:
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        cmd=rd(f'/proc/{p}/cmdline').split('\0')
        if 'monitor-process' not in cmd: continue
        mm=re.search(r'monitor-([a-z-]+)\.json',' '.join(cmd)); mode=mm.group(1) if mm else p
        try: kids=children(int(p))
        except Exception: continue
        if len(kids)<MIN: continue
        s=dict(instances=len(kids),inst_vmas=0,inst_anon_vmas=0,inst_vmpte_kb=0,rmap_items=0,inst_threads=0,per_instance_vmas=[])
        for k in kids:
            maps=rd(f'/proc/{k}/maps').splitlines()
            s['inst_vmas']+=len(maps); s['per_instance_vmas'].append(len(maps))
            s['inst_anon_vmas']+=sum(1 for l in maps if len(l.split())<6)
            s['inst_vmpte_kb']+=status(k,'VmPTE'); s['inst_threads']+=status(k,'Threads')
            m=re.search(r'ksm_rmap_items\s+(\d+)',rd(f'/proc/{k}/ksm_stat')); s['rmap_items']+=int(m.group(1)) if m else 0
        s['mon_vmas']=len(rd(f'/proc/{p}/maps').splitlines()); s['mon_vmpte_kb']=status(p,'VmPTE'); s['mon_threads']=status(p,'Threads')
        m=re.search(r'ksm_rmap_items\s+(\d+)',rd(f'/proc/{p}/ksm_stat')); s['mon_rmap_items']=int(m.group(1)) if m else 0
        cg=[l.split(':',2)[2] for l in rd(f'/proc/{p}/cgroup').splitlines() if ':memory:' in l]
        if cg:
            d='/sys/fs/cgroup/memory'+cg[0]
            for f in ('memory.kmem.usage_in_bytes','memory.usage_in_bytes'):
                s[f]=int(rd(d+'/'+f) or 0)
        sm={}
        cur=None
        for l in rd(f'/proc/{p}/smaps').splitlines():
            f=l.split()
            if f and '-' in f[0] and not f[0].endswith(':'):
                cur=f[5] if len(f)>5 else '[anon]'
                sm.setdefault(cur,{'Rss':0,'Pss':0,'Pss_File':0,'Pss_Anon':0,'n':0}); sm[cur]['n']+=1
            elif f and f[0].rstrip(':') in ('Rss','Pss','Pss_File','Pss_Anon') and cur:
                sm[cur][f[0].rstrip(':')]+=int(f[1])
        s['mon_smaps']=sm
        s['t']=time.strftime('%H:%M:%S',time.gmtime())
        s['example_maps']=rd(f'/proc/{kids[0]}/maps')
        res[mode]=s
    json.dump(res,open(out,'w'),indent=1)
    time.sleep(3)
