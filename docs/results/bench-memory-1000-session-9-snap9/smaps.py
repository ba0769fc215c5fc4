import subprocess,re,sys,collections,json,os
U='/work/wt/snap9/W/unipool'
w=sys.argv[1]; pool=w+'/pool'; names=open(sys.argv[2]).read().split(); snap=sys.argv[3]=='snap'
# blob kinds from descriptions
kind={}
for n in names:
    d=json.loads(subprocess.check_output([U,'pool','inspect','--json','--pool',pool,n]))
    c=d['config']
    kind[c['private']['digest'].split(':')[1]]='privblob'
    for l in c['libraries']:
        if 'shared' in l and l['shared'].get('digest'): kind[l['shared']['digest'].split(':')[1]]='sharedblob'
        for k in ('init','private'):
            v=l.get(k)
            if isinstance(v,dict) and v.get('digest'): kind[v['digest'].split(':')[1]]='initblob'
    s=c.get('snapshot')
    if s:
        for pg in s['pages']: kind[pg['digest'].split(':')[1]]='snappage'
        if s.get('zero'): kind[s['zero']['digest'].split(':')[1] if isinstance(s['zero'],dict) else s['zero'].split(':')[1]]='zeroblob'
p=subprocess.Popen([U,'run','--pool',pool]+(['--snapshot'] if snap else [])+names+['--hold','60s'],stdout=subprocess.PIPE,stderr=subprocess.STDOUT,text=True)
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
pss=collections.Counter(); cnt=collections.Counter()
for pid in pids:
    cur=None
    for l in open(f'/proc/{pid}/smaps'):
        m=re.match(r'([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(\S*)',l)
        if m:
            a=int(m.group(1),16); f=m.group(4)
            if 'blobs' in f: k=kind.get(os.path.basename(f),'otherblob')
            elif f: k='file:'+os.path.basename(f)
            else: k='anon@'+('arena' if a>=0x70000000 and a<0x80000000 else 'low' if a<0x60000000 else 'heapstack')
            cur=k; cnt[k]+=1; continue
        if l.startswith('Pss:') and cur: pss[cur]+=int(l.split()[1])
p.stdout.close(); p.kill()
n=len(pids)
print('instances',n)
for k in sorted(pss): print(f'{k:30s} maps/inst {cnt[k]/n:6.2f}  pss KiB/inst {pss[k]/n:7.2f}')
print('total maps/inst', sum(cnt.values())/n, 'pss/inst', sum(pss.values())/n)
