import sys,struct
# pages.py PID EXE OUT: present pages of EXE's mappings in PID -> OUT (hex addresses)
pid=int(sys.argv[1]); exe=sys.argv[2]
present=[]
maps=[l.split() for l in open(f'/proc/{pid}/maps')]
pm=open(f'/proc/{pid}/pagemap','rb')
for m in maps:
    if len(m)<6 or m[5]!=exe: continue
    lo,hi=[int(x,16) for x in m[0].split('-')]
    for a in range(lo,hi,4096):
        pm.seek(a//4096*8); e=struct.unpack('<Q',pm.read(8))[0]
        if e>>63&1: present.append(a)
open(sys.argv[3],'w').write('\n'.join(hex(a) for a in present)+'\n')
