import json,sys
# means.py "LABEL:run1,run2,..." ...: per mode, mean over the runs of instances / monitor / kernel (page tables) / host, MiB (min-max of host)
sets=[(a.split(':')[0],a.split(':')[1].split(',')) for a in sys.argv[1:]]
modes=None; data={}
for lab,runs in sets:
    for r in runs:
        d=json.load(open(f'tlb-{r}/results.json'))
        if modes is None: modes=[m['mode'] for m in d['modes']]
        for m in d['modes']:
            f=m['final'];k=f['kernel']
            data.setdefault((lab,m['mode']),[]).append((f['instances_bytes'],f['monitor_bytes'],k['total_bytes'],k['page_tables_bytes'],f['total_bytes']))
M=lambda x:x/2**20
print('| mode | '+' | '.join(f'{lab} ({len(runs)} runs): instances / monitor / kernel (page tables KiB) / **host** MiB' for lab,runs in sets)+' |')
print('|---|'+'---|'*len(sets))
for mo in modes:
    row=[]
    for lab,_ in sets:
        v=data.get((lab,mo),[])
        if not v: row.append('-'); continue
        n=len(v); avg=[sum(x[i] for x in v)/n for i in range(5)]
        hs=[x[4] for x in v]
        row.append(f"{M(avg[0]):.3f} / {M(avg[1]):.3f} / {M(avg[2]):.3f} ({avg[3]/1024:.0f}) / **{M(avg[4]):.3f}** ({M(min(hs)):.2f}–{M(max(hs)):.2f})")
    print(f'| {mo} | '+' | '.join(row)+' |')
