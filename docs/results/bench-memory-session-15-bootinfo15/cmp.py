#!/usr/bin/env python3
# cmp.py OLD NEW: per mode instances/monitor/kernel (MiB = 2^20) and the census's private pages by place
import json, sys
M = 1 << 20
def load(p): return {m['mode']: m for m in json.load(open(p + '/results.json'))['modes']}
o, n = load(sys.argv[1]), load(sys.argv[2])
print('| mode | total first / final MiB, old -> new | instances old -> new | monitor old -> new | kernel old -> new | failed |')
print('|---|---|---|---|---|---|')
for mode in o:
    a, b = o[mode], n[mode]
    fa, fb = a['final'], b['final']
    print('| %s | %.1f / %.1f -> %.1f / %.1f | %.2f -> %.2f (%+.2f) | %.2f -> %.2f | %.2f -> %.2f (%+.2f) | %d / %d |' % (mode,
        a['first_bytes']/M, a['final_bytes']/M, b['first_bytes']/M, b['final_bytes']/M,
        fa['instances_bytes']/M, fb['instances_bytes']/M, (fb['instances_bytes']-fa['instances_bytes'])/M,
        fa['monitor_bytes']/M, fb['monitor_bytes']/M,
        fa['kernel']['total_bytes']/M, fb['kernel']['total_bytes']/M, (fb['kernel']['total_bytes']-fa['kernel']['total_bytes'])/M,
        a['failed'], b['failed']))
print()
print('census, private pages by place (pages / all-zero / duplicate / KSM), old -> new')
for mode in o:
    for tag, m in (('old', o[mode]), ('new', n[mode])):
        pl = m.get('private_by_place') or {}
        tot = sum(v['pages'] for v in pl.values())
        print('  %-16s %s total %5d: %s' % (mode, tag, tot, ', '.join('%s %d/%d/%d/%d' % (k, v['pages'], v['zero_pages'], v['duplicate_pages'], v['ksm_pages']) for k, v in sorted(pl.items()))))
    for tag, m in (('old', o[mode]), ('new', n[mode])):
        c = m['census']
        print('  %-16s %s census pages %d runtime %d; tables %s' % (mode, tag, c['pages'], c['runtime_pages'], m.get('page_table_leaves_by_place')))
