# runall.py W BIN: run every aligned image of W's corpus as a plain image (copying load), default and --load naive; compare with expect
import json,subprocess,sys,os
W,BIN=sys.argv[1],sys.argv[2]
c=json.load(open(f'{W}/corpus/corpus.json'))
ok=bad=0; apps=set()
for u in c['unikernels']:
    img=f"{W}/images/aligned/{u['name']}.img"
    if not os.path.exists(img): continue
    for load in ([],['--load','naive']):
        out=subprocess.run([BIN,'run','--json','--timeout','20s','--image',img,'--cmdline',u['input']]+load,capture_output=True,text=True).stdout
        r=json.loads(out)[0]
        if r['output'].strip()==u['expect'].strip() and r['exit_code']==0: ok+=1; apps.add(u['app'])
        else: bad+=1; print('BAD',u['name'],load,r)
print('ok',ok,'bad',bad,'apps',len(apps))
