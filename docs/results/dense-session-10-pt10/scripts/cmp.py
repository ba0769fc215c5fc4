import json,sys
# usage: cmp.py DIR_A DIR_B : per mode, instances / kernel / page tables / census page-table pages, side by side
runs=[(p,json.load(open(p+'/results.json'))) for p in sys.argv[1:]]
modes=[m['mode'] for m in runs[0][1]['modes']]
print('| mode | ' + ' | '.join(f'{p.split("/")[-1]}: instances / kernel MiB (page tables KiB, KSM rmap KiB) [leaf+middle pages per instance]' for p,_ in runs)+' |')
print('|---|'+'---|'*len(runs))
for mo in modes:
    row=[]
    for p,d in runs:
        m=[x for x in d['modes'] if x['mode']==mo]
        if not m: row.append('-'); continue
        m=m[0]; f=m['final']; k=f['kernel']
        c=m.get('census') or {}
        per=(c.get('page_table_leaf_pages',0)+c.get('page_table_middle_pages',0))/max(m['instances'],1)
        extra=''
        if m.get('ksm_not_converged'): extra+=' NOT CONVERGED'
        if m.get('ksm_other_processes'): extra+=f" others={len(m['ksm_other_processes'])}"
        row.append(f"{f['instances_bytes']/2**20:.3f} / {k['total_bytes']/2**20:.3f} ({k['page_tables_bytes']//1024}, {k.get('ksm_metadata_bytes',0)//1024}) [{per:.2f}] host {m['final_bytes']/2**20:.2f} failed {m['failed']}{extra}")
    print(f'| {mo} | '+' | '.join(row)+' |')
