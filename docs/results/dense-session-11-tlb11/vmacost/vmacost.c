// Charged kernel memory per VMA: N anonymous pages, touched, either each in
// a mapping of its own (a gap after each) or all in one mapping.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static unsigned long long rd(const char *g){char p[512];snprintf(p,sizeof p,"%s/memory.kmem.usage_in_bytes",g);FILE*f=fopen(p,"r");unsigned long long v=0;fscanf(f,"%llu",&v);fclose(f);return v;}
int main(int argc,char**argv){
  const char*g=argv[1]; int n=atoi(argv[2]); int sep=atoi(argv[3]); long P=4096;
  unsigned long base=0x100000000000UL;
  usleep(200000);
  unsigned long long a=rd(g);
  if(sep){ for(int i=0;i<n;i++){ char*p=mmap((void*)(base+2*P*i),P,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE,-1,0); if(p==MAP_FAILED){perror("mmap");return 1;} p[0]=1; } }
  else { char*p=mmap((void*)base,2*P*n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE,-1,0); if(p==MAP_FAILED){perror("mmap");return 1;} for(int i=0;i<n;i++) p[2*P*i]=1; }
  usleep(200000);
  unsigned long long b=rd(g);
  FILE*m=fopen("/proc/self/status","r"); char l[256]; unsigned long pte=0; while(fgets(l,sizeof l,m)) if(!strncmp(l,"VmPTE:",6)) pte=strtoul(l+6,0,10); fclose(m);
  printf("n=%d sep=%d kmem_delta=%lld VmPTE_kB=%lu per_page=%.1f\n",n,sep,(long long)(b-a),pte,(double)(long long)(b-a)/n);
  return 0;
}
