#include <stdlib.h>
static unsigned char heap[1 << 16];
static size_t top, last;
void *malloc(size_t n) { n = (n + 15) & ~(size_t)15; if (top + n > sizeof heap) return 0; last = top; top += n; return heap + last; }
void free(void *p) { if (p == heap + last) top = last; }
