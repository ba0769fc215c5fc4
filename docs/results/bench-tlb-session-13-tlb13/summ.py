import json,sys
# summ.py DIR...: every mode's final MiB and the split; aligned-ksm - dce-ksm in KiB.
for d in sys.argv[1:]:
    r=json.load(open(d+'/results.json'))
    ms={m['mode']:m['final'] for m in r['modes']}
    print(d)
    for name,f in ms.items():
        k=f['kernel']
        print('  %-20s %7.3f  inst %6.3f  mon %6.3f (anon %6.3f file %6.3f)  kernel %6.3f (pt %4d KiB, rmap %3d KiB)'%(name,f['total_bytes']/2**20,
            f['instances_bytes']/2**20,f['monitor_bytes']/2**20,f['monitor_anon_bytes']/2**20,f['monitor_file_bytes']/2**20,
            k['total_bytes']/2**20,k['page_tables_bytes']//1024,k.get('ksm_metadata_bytes',0)//1024))
    a,b=ms['aligned-ksm'],ms['dce-ksm']
    kib=lambda x:x/1024
    print('  aligned-ksm - dce-ksm: total %+.0f KiB: instances %+.0f, monitor %+.0f (anon %+.0f, file %+.0f), kernel %+.0f (rmap %+.0f)'%(
        kib(a['total_bytes']-b['total_bytes']),kib(a['instances_bytes']-b['instances_bytes']),kib(a['monitor_bytes']-b['monitor_bytes']),
        kib(a['monitor_anon_bytes']-b['monitor_anon_bytes']),kib(a['monitor_file_bytes']-b['monitor_file_bytes']),
        kib(a['kernel']['total_bytes']-b['kernel']['total_bytes']),kib(a['kernel'].get('ksm_metadata_bytes',0)-b['kernel'].get('ksm_metadata_bytes',0))))
