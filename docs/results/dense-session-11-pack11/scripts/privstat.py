import json,subprocess,sys,os
# privstat.py BIN WORK: dense private pages per image (inspect) over every 10th image of both aligned layouts
U,W=sys.argv[1],sys.argv[2]
for lay in ['aligned','aligned-no-packs']:
    fs=sorted(os.listdir(f'{W}/images/{lay}'))[::10]
    tot=0; pk=0
    for f in fs:
        d=json.loads(subprocess.run([U,'inspect','--json',f'{W}/images/{lay}/{f}'],capture_output=True,text=True).stdout)
        tot+=d['dense_private_pages']//4096; pk+=d.get('pack_pages',0)//4096
    print(f'{W} {lay}: {len(fs)} images, dense private pages per image {tot/len(fs):.2f}, pack pages per image {pk/len(fs):.2f}')
