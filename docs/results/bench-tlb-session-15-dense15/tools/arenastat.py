#!/usr/bin/env python3
# arenastat.py DIR: per aligned image in DIR, the data-arena pages holding initialised data
# (.data.* sections with bytes), holding any file bytes (slots/data), and spanned by private parts.
import subprocess, sys, os, re, collections
tot = collections.Counter(); n = 0
for img in sorted(os.listdir(sys.argv[1])):
    if not img.endswith('.img'): continue
    p = os.path.join(sys.argv[1], img)
    out = subprocess.run(['readelf', '-SW', p], capture_output=True, text=True).stdout
    data, filep, span = set(), set(), set()
    for l in out.splitlines():
        m = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)', l)
        if not m: continue
        name, typ, addr, size = m.group(1), m.group(2), int(m.group(3),16), int(m.group(5),16)
        if size == 0 or not (0x60080000 <= addr < 0x60100000 or 0x70000000 <= addr < 0x80000000): continue
        pages = set(range(addr & ~0xfff, addr + size, 0x1000))
        span |= pages
        if typ != 'NOBITS': filep |= pages
        if typ != 'NOBITS' and (name.startswith('.data') or name in ('uk_init_phase', '.init_array')): data |= pages
    tot['data_pages'] += len(data); tot['file_pages'] += len(filep); tot['span_pages'] += len(span); n += 1
print(n, 'images', dict(tot), {k: round(v/n, 3) for k, v in tot.items()})
