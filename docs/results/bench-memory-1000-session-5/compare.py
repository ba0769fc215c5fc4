#!/usr/bin/env python3
"""Session 5 vs session 4 at 1000 unikernels (distinct): host MiB per mode, the kernel part apart.
usage: compare.py S4DIR S5DIR   (S4DIR holds distinct/ and distinct-ksm/; S5DIR holds distinct/)"""
import json, sys
s4, s5 = sys.argv[1], sys.argv[2]
M = 1 << 20
def load(p):
    return {m['mode']: m for m in json.load(open(p))['modes']}
a = load(f'{s4}/distinct/results.json')
a.update(load(f'{s4}/distinct-ksm/results.json'))  # session 4's valid KSM rows
b = load(f'{s5}/distinct/results.json')
order = ['packed-stock', 'packed-naive', 'packed-ksm', 'dce-ksm', 'aligned-ksm', 'shared', 'shared-aslr', 'shared-ksm', 'shared-snapshot']
print('| mode | s4 host | s5 host | s4 inst / mon / kernel | s5 inst / mon / kernel | s4 kernel: pt + stacks + slab rise | s5 kernel: charged + KSM rmap (slab rise beside) | s5 cgroup anon / Pss_Anon+mon / file | s5 stable s | s5 ksmd CPU s | s5 failed |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for n in order:
    if n not in a or n not in b:
        continue
    x, y = a[n], b[n]
    fx, fy = x['final'], y['final']
    kx, ky = fx['kernel'], fy['kernel']
    cg = fy.get('cgroup') or {}
    print(f"| {n} | {x['final_bytes']/M:.1f} | {y['final_bytes']/M:.1f} | "
          f"{fx['instances_bytes']/M:.1f} / {fx['monitor_bytes']/M:.1f} / {kx['total_bytes']/M:.1f} | "
          f"{fy['instances_bytes']/M:.1f} / {fy['monitor_bytes']/M:.1f} / {ky['total_bytes']/M:.1f} | "
          f"{kx['page_tables_bytes']/M:.1f} + {kx['kernel_stacks_bytes']/M:.1f} + {kx['slab_unreclaimable_rise_bytes']/M:.1f} | "
          f"{ky.get('cgroup_charged_bytes',0)/M:.1f} + {ky.get('ksm_metadata_bytes',0)/M:.1f} ({ky['slab_unreclaimable_rise_bytes']/M:+.1f}) | "
          f"{cg.get('anon_bytes',0)/M:.1f} / {(fy.get('instances_anon_bytes',0)+fy['monitor_bytes'])/M:.1f} / {cg.get('file_bytes',0)/M:.1f} | "
          f"{y['time_to_stable_s']:.0f} | {y['ksmd_cpu_s']:.2f} | {y['failed']} |")
for name, r in (('s4', f'{s4}/distinct/results.json'), ('s5', f'{s5}/distinct/results.json')):
    d = json.load(open(r))
    print(f"{name} ideals: load-time {d['ideal_load_time_bytes']/M:.1f} MiB, ideal {d['ideal_bytes']/M:.1f} MiB (all-zero {d['zero_bytes']/M:.1f} apart)")
