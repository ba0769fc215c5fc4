import re,sys
for run in sys.argv[1:]:
    log=open('/work/cache/mon11/%s.log'%run).read()
    per={}
    m=re.search(r'per instance beyond.*?\n.*?\n((?:\s+\S+\s+1000.*\n)+)',log)
    for line in m.group(1).splitlines():
        f=line.split(); per[f[0]]=(f[3],f[4],f[5])
    for mm in re.finditer(r'^mode (\S+): ([\d.]+) MiB final \(instances ([\d.]+), monitor ([\d.]+), kernel ([\d.]+)\), ([\d.]+) MiB first sample',log,re.M):
        mode,final,inst,mon,kern,first=mm.groups()
        a=per[mode]
        print('%-16s %-12s first %6s final %6s | inst %5s mon %5s kern %5s | mon KiB/inst %s (anon %s file %s)'%(run,mode,first,final,inst,mon,kern,a[0],a[1],a[2]))
