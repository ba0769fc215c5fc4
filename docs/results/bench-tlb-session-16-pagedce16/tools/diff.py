# diff.py RUN...: aligned-ksm - dce-ksm per run, by column (KiB), and census
import json,sys
def row(r,mode):
    for m in r['modes']:
        if m['mode']==mode: return m
print(f"{'run':8} {'al-dce total':>12} {'inst':>7} {'mon':>7} {'kern':>7} {'rmap':>7} | al total MiB | al loaded/distinct | dce loaded/distinct | failed")
for d in sys.argv[1:]:
    r=json.load(open(d+'/results.json'))
    a,c=row(r,'aligned-ksm'),row(r,'dce-ksm')
    K=lambda x:x/1024
    fa,fc=a['final'],c['final']
    print(f"{d:8} {K(fa['total_bytes']-fc['total_bytes']):12.0f} {K(fa['instances_bytes']-fc['instances_bytes']):7.0f} {K(fa['monitor_bytes']-fc['monitor_bytes']):7.0f} {K(fa['kernel']['total_bytes']-fc['kernel']['total_bytes']):7.0f} {K(fa['kernel']['ksm_metadata_bytes']-fc['kernel']['ksm_metadata_bytes']):7.0f} | {fa['total_bytes']/2**20:6.2f} vs {fc['total_bytes']/2**20:6.2f} | {a['census']['image_loaded_pages']}/{a['census']['distinct_pages']} | {c['census']['image_loaded_pages']}/{c['census']['distinct_pages']} | {a['failed']}+{c['failed']}")
