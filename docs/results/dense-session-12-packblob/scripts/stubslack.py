# stub room reserved (.stubs.X section size) vs used (description StubSize), and the shared
# pages a library would take with the reserved room between code and rodata instead of trimmed at the end
import json, subprocess, sys, glob, re
P=4096; up=lambda x:(x+P-1)//P*P
imgs=sorted(glob.glob(sys.argv[1]+'/*.img'))
tot_res=tot_used=extra=libs=cur=0
for im in imgs:
    secs={}
    for line in subprocess.run(['readelf','-SW',im],capture_output=True,text=True).stdout.splitlines():
        m=re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)',line)
        if m: secs[m.group(1)]=(int(m.group(2),16),int(m.group(3),16))
    subprocess.run(['objcopy','--dump-section','.unipool=/tmp/stubslack.json',im,'/tmp/stubslack.o'],check=True); cfg=json.load(open('/tmp/stubslack.json'))
    for l in cfg['libraries']:
        t=l.get('tramp',{})
        if not t.get('split') or l.get('pack') or not t.get('stub_size') and not ('.stubs.'+l['name']) in secs: continue
        s=secs.get('.stubs.'+l['name'])
        if not s: continue
        res=s[1]; used=t.get('stub_size',0); off=t.get('stub_off',0)
        tot_res+=res; tot_used+=used; libs+=1
        c=up(off+used); n=up(off+res); cur+=c//P; extra+=(n-c)//P
print(f"{len(imgs)} images, {libs} libraries with stubs: reserved {tot_res/libs:.0f} B, used {tot_used/libs:.0f} B per library; shared pages {cur/len(imgs):.2f} per image now, +{extra/len(imgs):.3f} with the reserved room kept")
