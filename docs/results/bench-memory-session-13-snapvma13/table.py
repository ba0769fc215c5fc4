import json,sys
M=1<<20
print('%-10s %-16s %7s %7s %9s %8s %8s %8s %8s %8s %8s'%('binary','mode','first','final','instances','monitor','kernel','pgtab','stacks','rest','ksm'))
for b in sys.argv[1:]:
    r=json.load(open(b+'/results.json'))
    for m in r['modes']:
        f=m['final'];k=f['kernel']
        rest=k['total_bytes']-k['page_tables_bytes']-k['kernel_stacks_bytes']-k['ksm_metadata_bytes']
        print('%-10s %-16s %7.2f %7.2f %9.2f %8.2f %8.3f %8.3f %8.3f %8.3f %8.3f'%(b,m['mode'],m['first_bytes']/M,m['final_bytes']/M,f['instances_bytes']/M,f['monitor_bytes']/M,k['total_bytes']/M,k['page_tables_bytes']/M,k['kernel_stacks_bytes']/M,rest/M,k['ksm_metadata_bytes']/M))
