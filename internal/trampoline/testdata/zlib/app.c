/* An app over Debian's libz.a (built with Debian's flags: red zone, PLT
   calls, stack protector): compresses and decompresses a buffer and prints
   the sizes and a checksum. It gives zlib its libc: a bump allocator and
   byte loops (built with -fno-tree-loop-distribute-patterns so gcc does
   not turn them back into calls to themselves). */
typedef unsigned long size_t;
int compress2(unsigned char *, unsigned long *, const unsigned char *, unsigned long, int);
int uncompress(unsigned char *, unsigned long *, const unsigned char *, unsigned long);

static long sys(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static char heap[1 << 20];
static size_t top;

void *malloc(size_t n) {
	n = (n + 15) & ~15UL;
	if (top + n > sizeof heap)
		return 0;
	void *p = heap + top;
	top += n;
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
void *memset(void *d, int c, size_t n) {
	char *dd = d;
	while (n--)
		*dd++ = c;
	return d;
}
void __stack_chk_fail(void) { sys(231, 99, 0, 0); }

static unsigned char src[20000], packed[30000], back[20000];
static char out[256];
static int pos;

static void num(unsigned long v) {
	char t[24];
	int n = 0;
	do
		t[n++] = '0' + v % 10;
	while ((v /= 10) != 0);
	while (n)
		out[pos++] = t[--n];
	out[pos++] = ' ';
}

void app_main(void) {
	for (int i = 0; i < (int)sizeof src; i++)
		src[i] = "the quick brown fox "[i % 20] + (i / 1000);
	unsigned long plen = sizeof packed, blen = sizeof back;
	num(compress2(packed, &plen, src, sizeof src, 6));
	num(plen);
	num(uncompress(back, &blen, packed, plen));
	num(blen);
	unsigned long sum = 0;
	for (int i = 0; i < (int)sizeof back; i++)
		sum = sum * 31 + back[i] - src[i];
	num(sum);
	out[pos++] = '\n';
	sys(1, 1, (long)out, pos);
	sys(231, 0, 0, 0);
}
