import json,sys
def find(d,k):
    if isinstance(d,dict):
        if k in d: return d[k]
        for v in d.values():
            r=find(v,k)
            if r is not None: return r
    elif isinstance(d,list):
        for v in d:
            r=find(v,k)
            if r is not None: return r
for r in sys.argv[1:]:
    d=json.load(open('%s/results.json'%r))
    for m in d['modes']:
        name=m.get('mode') or m.get('name')
        host=m.get('final') or m.get('host') or {}
        a=find(m,'monitor_anon_bytes'); f=find(m,'monitor_file_bytes'); c=find(m,'monitor_cpu_to_held_s')
        print('%-6s %-16s monitor anon %6.0f KiB file %6.0f KiB cpu_to_held %s'%(r,name,(a or 0)/1024,(f or 0)/1024,c))
