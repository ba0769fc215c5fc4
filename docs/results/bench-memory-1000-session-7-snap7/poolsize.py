#!/usr/bin/env python3
"""What the snapshots add to a pool: description bytes now against the
descriptions they replaced (still in the pool, unreferenced, until `pool gc`).
`unipool pool stats` reports the snapshot pages and how many unikernels share each.
usage: poolsize.py POOL   (a pool before `pool gc`)"""
import json, os, sys

pool = sys.argv[1]
B = os.path.join(pool, "blobs", "sha256")
dig = lambda d: d.split(":", 1)[1]
size = lambda h: os.path.getsize(os.path.join(B, h))
refs, desc_now = set(), 0
for m in json.load(open(os.path.join(pool, "index.json")))["manifests"]:
    man = json.load(open(os.path.join(B, dig(m["digest"]))))
    desc_now += size(dig(m["digest"])) + size(dig(man["config"]["digest"]))
    refs |= {dig(m["digest"]), dig(man["config"]["digest"])} | {dig(l["digest"]) for l in man.get("layers", [])}
old = [h for h in os.listdir(B) if h not in refs]
desc_old = sum(size(h) for h in old if open(os.path.join(B, h), "rb").read(1) == b"{")
print(f"descriptions now (manifest + config, 1 per unikernel): {desc_now} bytes ({desc_now/2**20:.1f} MiB)")
print(f"unreferenced JSON blobs (the descriptions before the snapshots): {desc_old} bytes ({desc_old/2**20:.1f} MiB), "
      f"{sum(1 for h in old if open(os.path.join(B, h), 'rb').read(1) == b'{')} of {len(old)} unreferenced blobs")
print(f"snapshots grew the descriptions by {(desc_now-desc_old)/2**20:.1f} MiB")
