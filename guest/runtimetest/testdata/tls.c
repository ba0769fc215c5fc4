/* A guest app with thread-local variables: the platform must copy the
 * PT_TLS template (data and zeroed bss) below the thread pointer, aligned. */
#include <stdio.h>
static __thread int counter = 5;
static __thread char big[100];
__thread long aligned_var __attribute__((aligned(64))) = 77;
int main(void)
{
	counter++;
	big[99] = 'x';
	printf("tls counter=%d big0=%d big99=%c aligned=%ld aligned-ok=%d\n", counter, big[0], big[99], aligned_var, (int)(((unsigned long)&aligned_var) % 64 == 0));
	return 0;
}
