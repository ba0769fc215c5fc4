#!/usr/bin/env python3
"""ksm8.py RESULTS.json...: KSM's counters at the first, 30th and last sample of each KSM mode, and
the pages the census says KSM merged in the fleet: what session 8's runs saw."""
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    for m in r['modes']:
        ss = [s for s in m['samples'] if s.get('ksm')]
        if not ss:
            continue
        pp = m.get('private_by_place') or {}
        merged = sum(p.get('ksm_pages', 0) for place, p in pp.items() if place != 'all')
        lib = pp.get('libraries', {})
        print(f"{f} {m['mode']}: ksmd {m['ksmd_cpu_s']:.2f} s CPU in {m['seconds']:.0f} s; fleet pages KSM-merged (census) {merged}; library pages {lib.get('pages')}, duplicates within the fleet {lib.get('duplicate_pages')}, KSM-merged {lib.get('ksm_pages')}")
        for s in (ss[0], ss[min(29, len(ss) - 1)], ss[-1]):
            k = s['ksm']
            print(f"   t={s['t_s']:6.1f}s full_scans={k['full_scans']} pages_volatile={k['pages_volatile']} pages_unshared={k['pages_unshared']} pages_shared={k['pages_shared']} pages_sharing={k['pages_sharing']}")
