#!/usr/bin/env python3
"""fitopt.py BIN LBDIR: per image of a link bench's aligned layout, private pages now vs a beam-searched fit."""
import json, subprocess, sys, os
P = 4096
BIN, D = sys.argv[1], sys.argv[2]
def units_of(path):
    d = json.loads(subprocess.run([BIN, 'inspect', '--json', path], capture_output=True, text=True).stdout)
    units = {}; app = 0
    for l in d['libraries']:
        r = l['region']
        if l['name'].startswith('pack-'): continue
        if l.get('app'):
            app = r.get('private_size', 0) if r.get('private_start') else 0
            appiv = (r.get('private_start', 0), r.get('private_size', 0)); continue
        if not r.get('private_start'): continue
        s = l.get('shift', 0)
        key = ('pack', l['pack']) if l.get('pack') else ('lib', l['name'])
        units.setdefault(key, []).append((r['private_start'] - s, r['private_size']))
    return list(units.values()), app, appiv, d
def pages_of(ivs, sh):
    out = set()
    for a, n in ivs:
        a += sh
        out |= set(range(a // P, (a + n - 1) // P + 1))
    return out
def overl(ivs, sh, taken_iv):
    for a, n in ivs:
        a += sh
        for b, m in taken_iv:
            if a < b + m and b < a + n: return True
    return False
def current(d):
    pg = set()
    for l in d['libraries']:
        r = l['region']
        if r.get('private_start') and r.get('private_size'):
            pg |= set(range(r['private_start'] // P, (r['private_start'] + r['private_size'] - 1) // P + 1))
    return len(pg)
def gaps_fit(taken_iv, pages, size):
    # can size bytes (16-aligned) go into a gap of taken pages?
    for pgn in sorted(pages):
        ivs = sorted([(a, n) for a, n in taken_iv if a < (pgn + 1) * P and a + n > pgn * P])
        lo = pgn * P
        for a, n in ivs + [((pgn + 1) * P, 0)]:
            st = (lo + 15) // 16 * 16
            if st + size <= a: return True
            lo = max(lo, a + n)
    return False
def opt(units, app, W=64):
    units = sorted(units, key=lambda u: -sum(n for _, n in u))
    states = [(frozenset(), ())]  # pages, taken intervals
    first = True
    for u in units:
        nxt = []
        for pages, tiv in states:
            own = pages_of(u, 0)
            cands = {0}
            for pg in pages:
                for o in own: cands.add((pg - o) * P)
            top = max(pages) + 1 if pages else 0
            cands.add((top - min(own)) * P)
            for sh in (cands if not first else {0}):
                if overl(u, sh, tiv): continue
                np_ = pages | pages_of(u, sh)
                nxt.append((np_, tiv + tuple((a + sh, n) for a, n in u)))
        first = False
        nxt.sort(key=lambda s: len(s[0]))
        seen = set(); states = []
        for s in nxt:
            k = s[0]
            if k in seen: continue
            seen.add(k); states.append(s)
            if len(states) >= W: break
    best = None
    for pages, tiv in states:
        n = len(pages) + (0 if app == 0 or gaps_fit(tiv, pages, app) else (app + P - 1) // P)
        best = n if best is None else min(best, n)
    return best
tot_now = tot_opt = 0; n = 0
for name in sorted(os.listdir(os.path.join(D, 'aligned'))):
    units, app, appiv, d = units_of(os.path.join(D, 'aligned', name))
    now = current(d); o = opt(units, app)
    tot_now += now; tot_opt += o; n += 1
print(f"{D}: private pages per image now {tot_now/n:.2f}, beam-searched fit {tot_opt/n:.2f}")
