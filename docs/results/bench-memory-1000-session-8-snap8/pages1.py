import subprocess,re,sys,struct
pool=sys.argv[1]; name=sys.argv[2]; snap='--snapshot' in sys.argv
p=subprocess.Popen(['unipool','run','--pool',pool]+(['--snapshot'] if snap else [])+[name,'--hold','20s'],stdout=subprocess.PIPE,stderr=subprocess.STDOUT,text=True)
for line in p.stdout:
    m=re.search(r'\(pids (\d+)\)',line)
    if m: pid=int(m.group(1)); break
pm=open(f'/proc/{pid}/pagemap','rb'); mem=open(f'/proc/{pid}/mem','rb')
for l in open(f'/proc/{pid}/maps'):
    a,b=[int(x,16) for x in l.split()[0].split('-')]
    if not (0x60100000<=a<0x80000000): continue
    for va in range(a,b,4096):
        pm.seek(va//4096*8); e=struct.unpack('<Q',pm.read(8))[0]
        if not (e>>63)&1 or (e>>61)&1: continue
        mem.seek(va); d=mem.read(4096)
        nz=4096-d.count(0)
        print(hex(va), 'nonzero bytes',nz, 'first nz at', next((i for i,c in enumerate(d) if c),None), d[:0].hex(), repr(bytes(c for c in d if 32<=c<127)[:60]))
p.kill()
