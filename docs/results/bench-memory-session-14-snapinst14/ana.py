import json,sys,collections
r=json.load(open(sys.argv[1]+'/pages.json'))
cnt=collections.Counter(x['sha'] for x in r)
bypid=collections.defaultdict(list)
for x in r: bypid[x['pid']].append(x)
def alloc(pid):
    return 'tlsf' if any(x['place']=='heap' and x['pg']==0 for x in bypid[pid]) else 'buddy'
t=collections.defaultdict(lambda:[0,0,0])
for x in r:
    k=(x['place'], alloc(x['pid']), str(x['pg']) if x['place']!='arena' else 'A', )
    if x['place']=='heap' and x['pg']>=4: k=(x['place'],alloc(x['pid']),'4+')
    if x['place']=='arena': k=('arena',alloc(x['pid']),'')
    t[k][0]+=1
    if cnt[x['sha']]>1: t[k][1]+=1
    if x['nz']==0: t[k][2]+=1
print('place alloc page: pages repeated zero')
for k in sorted(t): print(k, t[k])
print('total',len(r),'repeated',sum(1 for x in r if cnt[x['sha']]>1), 'distinct contents', len(cnt))
