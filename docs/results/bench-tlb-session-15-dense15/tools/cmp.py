#!/usr/bin/env python3
# cmp.py RUNDIR...: aligned-ksm minus dce-ksm per run, by column (KiB)
import json, sys
def cols(m):
    f = m['final']; k = f['kernel']
    return dict(total=m['final_bytes'], inst=f['instances_bytes'], mon=f['monitor_bytes'], mon_anon=f['monitor_anon_bytes'],
                kern=k['total_bytes'], ksm=k['ksm_metadata_bytes'], pt=k['page_tables_bytes'])
for d in sys.argv[1:]:
    r = json.load(open(d + '/results.json'))
    M = {m['mode']: m for m in r['modes']}
    a, b = cols(M['aligned-ksm']), cols(M['dce-ksm'])
    fail = sum(m['failed'] for m in r['modes'])
    ca, cb = M['aligned-ksm']['census'], M['dce-ksm']['census']
    print(f"{d:8} a-d KiB: total {(a['total']-b['total'])/1024:+7.1f}  inst {(a['inst']-b['inst'])/1024:+6.1f}  mon {(a['mon']-b['mon'])/1024:+7.1f} (anon {(a['mon_anon']-b['mon_anon'])/1024:+7.1f})  kern {(a['kern']-b['kern'])/1024:+6.1f} (ksm {(a['ksm']-b['ksm'])/1024:+5.1f}, pt {(a['pt']-b['pt'])/1024:+5.1f})  | a {a['total']/2**20:.3f} d {b['total']/2**20:.3f} MiB | written {ca['image_written_pages']}/{cb['image_written_pages']} pages {ca['pages']}/{cb['pages']} distinct {ca['distinct_pages']}/{cb['distinct_pages']} failed {fail}")
