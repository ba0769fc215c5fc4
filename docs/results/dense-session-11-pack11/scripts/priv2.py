import json,sys,subprocess
U='/work/cache/pack11/unipool-main'
for img in sys.argv[1:]:
    d=json.loads(subprocess.run([U,'inspect','--json',img],capture_output=True,text=True).stdout)
    print(img, 'dense_private_pages',d['dense_private_pages']//4096)
    for l in sorted(d['libraries'], key=lambda l:l.get('region',{}).get('private_start',0)):
        r=l.get('region',{}); ps=r.get('private_start',0); sz=r.get('private_size',0)
        if not ps: continue
        print(f"  {l['name'][:28]:28s} pack {l.get('pack',0):#x} priv {ps:#x}+{sz:#x} pages {ps>>12:#x}-{(ps+sz-1)>>12:#x} data {l.get('data',0)} mem {l.get('private',0)} slots {l.get('slots',0)} ppages {l.get('private_pages',0)//4096} shift {l.get('shift',0)}")
