#include <stdlib.h>
static unsigned char heap[1 << 16];
static size_t used;
void *malloc(size_t n) { n = (n + 15) & ~(size_t)15; if (used + n > sizeof heap) return 0; used += n; return heap + used - n; }
void free(void *p) { (void)p; }
