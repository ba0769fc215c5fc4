import json,sys
# kern.py DIR...: per KSM mode the kernel part: charged = page tables + kernel stacks + rest (slab, percpu, ...); rmap
for p in sys.argv[1:]:
    d=json.load(open(p+'/results.json'))
    for m in d['modes']:
        if m['mode'] not in ('dce-ksm','aligned-ksm','packed-naive','shared'): continue
        k=m['final']['kernel']; f=m['final']
        rest=k['cgroup_charged_bytes']-k['page_tables_bytes']-k['kernel_stacks_bytes']
        print(f"{p:12s} {m['mode']:13s} charged {k['cgroup_charged_bytes']/1024:5.0f} = pt {k['page_tables_bytes']/1024:4.0f} + stacks {k['kernel_stacks_bytes']/1024:4.0f} + rest {rest/1024:4.0f}; rmap {k['ksm_metadata_bytes']/1024:3.0f}; mon {f['monitor_bytes']/1024:6.0f} (anon {f['monitor_anon_bytes']/1024:5.0f}) inst {f['instances_bytes']/1024:5.0f} host {f['total_bytes']/1024:6.0f}")
