import json,sys,os
# summary.py RUN...: per run, dce-ksm and aligned-ksm: instances / monitor / kernel (page tables, charged rest, rmap) / host, KiB; VMAs of the 20 instances (sampler)
print('| run | mode | instances | monitor (anon) | kernel (page tables, stacks, rest, KSM rmap) | host | VMAs | rmap items |')
print('|---|---|---|---|---|---|---|---|')
for r in sys.argv[1:]:
    d=json.load(open(f'tlb-{r}/results.json'))
    s=json.load(open(f'sample-{r}.json')) if os.path.exists(f'sample-{r}.json') else {}
    for m in d['modes']:
        if m['mode'] not in ('dce-ksm','aligned-ksm'): continue
        f=m['final'];k=f['kernel']
        rest=k['cgroup_charged_bytes']-k['page_tables_bytes']-k['kernel_stacks_bytes']
        v=s.get(m['mode'],{})
        K=lambda x:f'{x/1024:.0f}'
        print(f"| {r} | {m['mode']} | {K(f['instances_bytes'])} | {K(f['monitor_bytes'])} ({K(f['monitor_anon_bytes'])}) | **{K(k['total_bytes'])}** ({K(k['page_tables_bytes'])}, {K(k['kernel_stacks_bytes'])}, {K(rest)}, {K(k['ksm_metadata_bytes'])}) | {K(f['total_bytes'])} | {v.get('inst_vmas','-')} | {v.get('rmap_items','-')} |")
