import json,sys
for f in sys.argv[1:]:
    r=json.load(open(f))
    for m in r['modes']:
        h=m.get('final') or m.get('host') or {}
        keys=[k for k in m.keys()]
        fin=m.get('final_host') or m.get('final')
        if fin is None:
            # find dict containing monitor_anon_bytes
            for k,v in m.items():
                if isinstance(v,dict) and 'monitor_anon_bytes' in v: fin=v
        first=m.get('first_host') or m.get('first')
        g=lambda d,k: d.get(k,0)/2**20 if d else 0
        print(f"{f.split('/')[-2]:18s} {m.get('mode') or m.get('name'):16s} total={g(fin,'total_bytes'):.1f} inst={g(fin,'instances_bytes'):.1f} mon={g(fin,'monitor_bytes'):.2f} (anon {g(fin,'monitor_anon_bytes'):.2f} file {g(fin,'monitor_file_bytes'):.2f}) kernel={g(fin,'kernel_bytes'):.1f}")
