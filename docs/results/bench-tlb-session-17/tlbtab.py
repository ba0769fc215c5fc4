import json,sys
D=sys.argv[1]
modes=['packed-naive','dce-ksm','aligned-ksm','shared','shared-snapshot']
rows={m:[] for m in modes}; diffs=[]
for r in range(1,19):
  try: d=json.load(open(f'{D}/run{r}/results.json'))
  except Exception as e: continue
  ms={m['mode']:m for m in d['modes']}
  for m in modes: rows[m].append(ms[m]['final_bytes']/2**20)
  a,b=ms['aligned-ksm'],ms['dce-ksm']
  fa,fb=a['final'],b['final']
  diffs.append(((a['final_bytes']-b['final_bytes'])/1024,(fa['instances_bytes']-fb['instances_bytes'])/1024,(fa['monitor_anon_bytes']-fb['monitor_anon_bytes'])/1024,(fa['monitor_file_bytes']-fb['monitor_file_bytes'])/1024,(fa['kernel']['total_bytes']-fb['kernel']['total_bytes'])/1024,(fa['kernel']['ksm_metadata_bytes']-fb['kernel']['ksm_metadata_bytes'])/1024, a['failed']+b['failed']))
for m in modes:
  v=rows[m]; print(f"| {m} | "+" | ".join(f"{x:.2f}" for x in v)+f" | {sum(v)/len(v):.2f} |")
print("total inst monanon monfile kern rmap failed")
for x in diffs: print(" ".join(f"{y:+.0f}" for y in x))
n=len(diffs); print("mean", " ".join(f"{sum(x[i] for x in diffs)/n:+.0f}" for i in range(6)))
