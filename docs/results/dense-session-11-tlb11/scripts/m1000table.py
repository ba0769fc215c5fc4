import json,sys
# m1000table.py RUN...: aligned-ksm and dce-ksm at 1000: host / first / instances / monitor (anon) / kernel (page tables, stacks, rest, rmap), MiB
print('| run | mode | host MiB final | first sample | instances | monitor (anon) | kernel (page tables, stacks, rest, KSM rmap) | present pages (census) |')
print('|---|---|---|---|---|---|---|---|')
for r in sys.argv[1:]:
    d=json.load(open(f'm1000-{r}/results.json'))
    for m in d['modes']:
        f=m['final'];k=f['kernel'];M=lambda x:f'{x/2**20:.1f}'
        rest=k['cgroup_charged_bytes']-k['page_tables_bytes']-k['kernel_stacks_bytes']
        c=m.get('census') or {}
        print(f"| {r} | {m['mode']} | **{M(m['final_bytes'])}** | {M(m['first_bytes'])} | {M(f['instances_bytes'])} | {M(f['monitor_bytes'])} ({M(f['monitor_anon_bytes'])}) | **{M(k['total_bytes'])}** ({M(k['page_tables_bytes'])}, {M(k['kernel_stacks_bytes'])}, {M(rest)}, {k['ksm_metadata_bytes']/2**20:.2f}) | {c.get('present_pages', c.get('pages','-'))} |")
