import json,sys
# cols.py DIR...: per mode, instances / monitor / kernel (page tables, rmap) / host, in KiB
for p in sys.argv[1:]:
    d=json.load(open(p+'/results.json'))
    print(p)
    for m in d['modes']:
        f=m['final'];k=f['kernel']
        print(f"  {m['mode']:20s} inst {f['instances_bytes']/1024:7.0f}  mon {f['monitor_bytes']/1024:7.0f}  kernel {k['total_bytes']/1024:6.0f} (pt {k['page_tables_bytes']//1024}, charged {k['cgroup_charged_bytes']//1024}, rmap {k.get('ksm_metadata_bytes',0)//1024})  host {f['total_bytes']/1024:7.0f} KiB  first {m.get('first_bytes',0)/1024:7.0f} failed {m['failed']}")
