import json,sys
for f in sys.argv[1:]:
    r=json.load(open(f))
    L={l['layout']:l for l in r['layouts']}
    p={i['unikernel']:i['loaded_bytes'] for i in L['packed']['images']}
    a={i['unikernel']:i['loaded_bytes'] for i in L['aligned']['images']}
    rs=[a[k]/p[k] for k in p]
    print(f"{f}: avg {sum(rs)/len(rs):.4f} total {sum(a.values())/sum(p.values()):.4f} worst {max(rs):.4f} identity {L['aligned']['identical_pages']}/{L['aligned']['sharable_pages']} ({L['aligned']['share']*100:.2f}%)")
