import subprocess,re,sys,collections,struct,os
pool=sys.argv[1]; names=open(sys.argv[2]).read().split(); snap=len(sys.argv)<4
p=subprocess.Popen(['/work/wt/snap9/W/unipool','run','--pool',pool]+(['--snapshot'] if snap else [])+names+['--hold','60s'],stdout=subprocess.PIPE,stderr=subprocess.STDOUT,text=True)
pids=None; outs={}
for line in p.stdout:
    m=re.search(r'\(pids ([\d ,-]+)\)',line)
    if m:
        pids=[]
        for part in m.group(1).replace(' ','').split(','):
            if '-' in part:
                a,b=map(int,part.split('-')); pids+=list(range(a,b+1))
            else: pids.append(int(part))
        break
zero=collections.Counter(); dup=collections.Counter(); where=collections.Counter()
contents=collections.defaultdict(list)
for pid in pids:
    comm=open(f'/proc/{pid}/comm').read().strip()
    app=comm.split('-')[0]
    maps=[]
    for l in open(f'/proc/{pid}/maps'):
        a,b=[int(x,16) for x in l.split()[0].split('-')]
        if 0x60100000<=a<0x70000000 and 'rw-p' in l and len(l.split())<6: maps.append((a,b))
    pm=open(f'/proc/{pid}/pagemap','rb'); mem=open(f'/proc/{pid}/mem','rb')
    for a,b in maps:
        for va in range(a,b,4096):
            pm.seek(va//4096*8); e=struct.unpack('<Q',pm.read(8))[0]
            if not (e>>63)&1: continue
            if (e>>61)&1: continue # file page
            mem.seek(va); d=mem.read(4096)
            if d.count(0)==4096: zero[app]+=1; where[(app,(va-a)//4096)]+=1
            else: contents[d].append(app)
for d,apps in contents.items():
    if len(apps)>1:
        for a in apps: dup[a]+=1
p.kill()
print('zero by app', zero.most_common()); print('dup by app', dup.most_common()); print('where', where.most_common(12))
