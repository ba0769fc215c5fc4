#!/usr/bin/env python3
# pagedce.py FLEETDIR: for each unikernel, the aligned image's loaded (non-zero) code/rodata
# pages, and of them those a page-granular DCE would keep: a .text page that holds a byte of
# a function the DCE image kept (by name), any page with read-only data, stubs or data.
import subprocess, sys, os, re, collections
W = sys.argv[1]
def sections(img):
    out = subprocess.run(['readelf', '-SW', img], capture_output=True, text=True).stdout
    r = []
    for l in out.splitlines():
        m = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\S+)\s+(\S*)', l)
        if m:
            name, typ, addr, off, size = m.group(1), m.group(2), int(m.group(3),16), int(m.group(4),16), int(m.group(5),16)
            flags = l[l.index(m.group(5))+len(m.group(5)):].split()
            r.append((name, typ, addr, off, size, flags[1] if len(flags) > 1 else ''))
    return r
def funcs(img):
    out = subprocess.run(['nm', '-S', '--defined-only', img], capture_output=True, text=True).stdout
    r = []
    for l in out.splitlines():
        f = l.split()
        if len(f) == 4: r.append((int(f[0],16), int(f[1],16), f[2], f[3]))
    return r
def segs(img):
    out = subprocess.run(['readelf', '-lW', img], capture_output=True, text=True).stdout
    r = []
    for l in out.splitlines():
        f = l.split()
        if f and f[0] == 'LOAD': r.append((int(f[1],16), int(f[2],16), int(f[4],16)))
    return r
tot = collections.Counter()
for img in sorted(os.listdir(f'{W}/images/aligned')):
    a = f'{W}/images/aligned/{img}'; d = f'{W}/images/dce/{img}'
    data = open(a, 'rb').read()
    live = set(n for _, _, t, n in funcs(d) if t in 'TtRr')
    # non-zero file pages of the image
    pages = {}
    for off, va, fs in segs(a):
        for i in range(0, fs):
            pass
        p = va & ~0xfff
        while p < va + fs:
            lo, hi = max(p, va), min(p + 0x1000, va + fs)
            if any(data[off + lo - va: off + hi - va]):
                pages[p] = True
            p += 0x1000
    code = [p for p in pages if p < 0x60080000]   # libraries and app code/rodata
    keep = set()
    for name, typ, addr, off, size, fl in sections(a):
        if addr == 0 or size == 0 or 'A' not in fl: continue
        if (name.startswith('.text.') and 'X' in fl) or name.startswith('.rodata.'):
            continue  # decided by functions
        # rodata, stubs, pack fill, data: kept whole
        if name.startswith('.pkfill'): continue
        for p in range(addr & ~0xfff, addr + size, 0x1000): keep.add(p)
    for s, sz, t, n in funcs(a):
        if t in 'TtRr' and n in live:
            for p in range(s & ~0xfff, s + max(sz, 1), 0x1000): keep.add(p)
    kept = [p for p in code if p in keep]
    tot['code_pages'] += len(code); tot['kept'] += len(kept); tot['all_pages'] += len(pages)
    print(f'{img:22} loaded code/rodata pages {len(code):4}  kept by page-DCE {len(kept):4}')
print(dict(tot))
