import json,subprocess,sys,os,collections
pool=sys.argv[1]; names=open(sys.argv[2]).read().split()
uses=collections.Counter(); per=[]
for n in names:
    d=json.loads(subprocess.check_output(['unipool','pool','inspect','--json','--pool',pool,n]))
    c=d['config']; s=c.get('snapshot')
    if not s: continue
    arena=[(e['addr'],e['addr']+e['size']) for e in c['arena']]
    size=sum((b-a)//4096 for a,b in arena)
    ap=[pg for pg in s['pages'] if any(a<=pg['addr']<b for a,b in arena)]
    other=[pg for pg in s['pages'] if not any(a<=pg['addr']<b for a,b in arena)]
    for pg in s['pages']: uses[(pg['digest'], 'arena' if pg in ap else 'other')]+=1
    per.append((n,size,len(ap),len(other)))
ar=[k for k in uses if k[1]=='arena']
print('snapshots',len(per),'arena pages (range)',sum(p[1] for p in per),'stored arena pages',sum(p[2] for p in per),'other stored',sum(p[3] for p in per))
print('distinct arena digests',len(ar),'arena page uses',sum(uses[k] for k in ar),'uses of digests shared by >1',sum(uses[k] for k in ar if uses[k]>1), 'digests shared', sum(1 for k in ar if uses[k]>1))
print('arena ranges per snapshot', collections.Counter(len(json.loads(subprocess.check_output(['unipool','pool','inspect','--json','--pool',pool,n]))['config']['arena']) for n in names[:20]))
