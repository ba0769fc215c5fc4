/* An app over Debian's libzstd.a: compresses and decompresses a buffer,
   prints "11" when the sizes and the bytes come back. zstd's weak trace
   hooks stay undefined: calls to address 0, guarded, which the rewrite
   sends through a constant word of the table. */
typedef unsigned long size_t;
size_t ZSTD_compress(void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level);
size_t ZSTD_decompress(void *dst, size_t dstCapacity, const void *src, size_t compressedSize);

static long sys(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static char heap[8 << 20];
static size_t top;

void *malloc(size_t n) {
	n = (n + 15) & ~15UL;
	if (top + n > sizeof heap)
		return 0;
	void *p = heap + top;
	top += n;
	return p;
}
void *calloc(size_t a, size_t b) {
	char *p = malloc(a * b);
	for (size_t i = 0; p && i < a * b; i++)
		p[i] = 0;
	return p;
}
void free(void *p) { (void)p; }
void *memcpy(void *d, const void *s, size_t n) {
	char *dd = d;
	const char *ss = s;
	while (n--)
		*dd++ = *ss++;
	return d;
}
void *memmove(void *d, const void *s, size_t n) {
	char *dd = d;
	const char *ss = s;
	if (dd < ss)
		while (n--)
			*dd++ = *ss++;
	else
		while (n--)
			dd[n] = ss[n];
	return d;
}
void *memset(void *d, int c, size_t n) {
	char *dd = d;
	while (n--)
		*dd++ = c;
	return d;
}
void __stack_chk_fail(void) { sys(231, 99, 0, 0); }

static unsigned char src[20000], packed[30000], back[20000];

void app_main(void) {
	for (int i = 0; i < (int)sizeof src; i++)
		src[i] = "the quick brown fox "[i % 20] + (i / 1000);
	size_t z = ZSTD_compress(packed, sizeof packed, src, sizeof src, 3);
	size_t y = ZSTD_decompress(back, sizeof back, packed, z);
	int bad = 0;
	for (int i = 0; i < (int)sizeof src; i++)
		bad += back[i] != src[i];
	char out[3] = {'0' + (y == sizeof src), '0' + (bad == 0), '\n'};
	sys(1, 1, (long)out, 3);
	sys(231, 0, 0, 0);
}
