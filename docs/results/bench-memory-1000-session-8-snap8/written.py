import subprocess,time,re,sys,collections,json
pool=sys.argv[1]; names=open(sys.argv[2]).read().split()
p=subprocess.Popen(['unipool','run','--pool',pool]+(['--snapshot'] if len(sys.argv)<4 else [])+names+['--hold','40s'],stdout=subprocess.PIPE,stderr=subprocess.STDOUT,text=True)
pids=None
for line in p.stdout:
    m=re.search(r'holding \d+ finished instances resident for \S+ \(pids ([\d ,-]+)\)',line)
    if m:
        pids=[]
        for part in m.group(1).replace(' ','').split(','):
            if '-' in part:
                a,b=map(int,part.split('-')); pids+= [str(x) for x in range(a,b+1)]
            else: pids.append(part)
        break
stats=collections.Counter()
per=[]
for pid in pids:
    cur=None; vmas=[]
    for l in open(f'/proc/{pid}/smaps'):
        m=re.match(r'([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(\S*)',l)
        if m:
            cur=[int(m.group(1),16),int(m.group(2),16),m.group(4),0]; vmas.append(cur); continue
        if l.startswith('Anonymous:') and cur: cur[3]=int(l.split()[1])
    heap0=None
    # classify file-backed 1-page snapshot mappings (blobs under pool, size 4096, rw-p)
    for a,b,f,anon in vmas:
        if 'blobs' in f and b-a==4096 and a<0x40000000 or ('blobs' in f and b-a==4096 and a>=0x60100000):
            place='data' if a>=0x70000000 else 'heap-or-stack'
            stats[(place,'mapped')]+=1
            if anon: stats[(place,'written')]+=1
    per.append(len(vmas))
p.stdout.close(); p.kill()
print(dict(stats)); print('mappings per instance mean', sum(per)/len(per))
