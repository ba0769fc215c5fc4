import sys,re
for f in sys.argv[1:]:
    rows=[];cur=None
    for line in open(f):
        m=re.match(r'^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$',line)
        if m:
            cur=[int(m.group(1),16),int(m.group(2),16),m.group(3),0,0]; rows.append(cur); continue
        if line.startswith('Anonymous:'): cur[3]=int(line.split()[1])
        if line.startswith('Rss:'): cur[4]=int(line.split()[1])
    tot=0;out=[]
    for s,e,n,a,r in rows:
        if a==0: continue
        tot+=a
        out.append((a,(e-s)//1024,n,hex(s)))
    print('==',f,'total anon',tot)
    for a,sz,n,s in sorted(out,reverse=True)[:14]: print('  %6d KiB anon in %8d KiB %s %s'%(a,sz,n,s))
