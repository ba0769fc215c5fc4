// Charged kernel memory per file-backed VMA: one page of a file mapped
// shared read-only N times at separate addresses (touched), against one
// mapping of N pages of it.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static unsigned long long rd(const char *g){char p[512];snprintf(p,sizeof p,"%s/memory.kmem.usage_in_bytes",g);FILE*f=fopen(p,"r");unsigned long long v=0;fscanf(f,"%llu",&v);fclose(f);return v;}
int main(int argc,char**argv){
  const char*g=argv[1]; int n=atoi(argv[2]); int sep=atoi(argv[3]); long P=4096; volatile char s=0;
  int fd=open(argv[4],O_RDONLY); if(fd<0){perror("open");return 1;}
  unsigned long base=0x100000000000UL;
  usleep(200000);
  unsigned long long a=rd(g);
  for(int i=0;i<n;i++){ char*p=mmap((void*)(base+(sep?2:1)*P*i),P,PROT_READ,MAP_SHARED|MAP_FIXED_NOREPLACE,fd,sep?0:P*i); if(p==MAP_FAILED){perror("mmap");return 1;} s+=p[0]; }
  usleep(200000);
  unsigned long long b=rd(g);
  printf("file n=%d sep=%d kmem_delta=%lld per_page=%.1f\n",n,sep,(long long)(b-a),(double)(long long)(b-a)/n);
  return 0;
}
