import os
n=0
for p in os.listdir('/proc'):
    if not p.isdigit(): continue
    try:
        if not open('/proc/%s/comm'%p).read().startswith('uk:'): continue
        pp=int(open('/proc/%s/stat'%p).read().rsplit(')',1)[1].split()[1])
        if 'snapvma13' in os.readlink('/proc/%d/exe'%pp): n+=1
    except: pass
print(n)
