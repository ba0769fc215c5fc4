/* Number parsing, sorting and searching, integer helpers, rand, getenv. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int errno_value;

int *__errno_location(void)
{
	return &errno_value;
}

/* Parses an unsigned magnitude in base (0: by prefix) after optional
 * whitespace and sign. Sets *neg, *overflow (magnitude > max) and *end;
 * returns the magnitude clamped to max. */
static uintmax_t parse_uint(const char *s, char **end, int base, uintmax_t max, int *neg,
			    int *overflow)
{
	const char *p = s;
	*neg = 0;
	*overflow = 0;
	if (base < 0 || base == 1 || base > 36) {
		errno = EINVAL;
		if (end)
			*end = (char *)s;
		return 0;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '+' || *p == '-')
		*neg = *p++ == '-';
	if ((base == 0 || base == 16) && p[0] == '0' && (p[1] | 32) == 'x' &&
	    isxdigit((unsigned char)p[2])) {
		p += 2;
		base = 16;
	} else if (base == 0) {
		base = p[0] == '0' ? 8 : 10;
	}
	uintmax_t v = 0;
	const char *digits = p;
	for (;; p++) {
		int c = (unsigned char)*p, d;
		if (isdigit(c))
			d = c - '0';
		else if (isalpha(c))
			d = (c | 32) - 'a' + 10;
		else
			break;
		if (d >= base)
			break;
		if (v > (max - (uintmax_t)d) / (uintmax_t)base)
			*overflow = 1;
		else
			v = v * (uintmax_t)base + (uintmax_t)d;
	}
	if (p == digits) {
		*neg = 0;
		p = s;
	}
	if (end)
		*end = (char *)p;
	return *overflow ? max : v;
}

static intmax_t parse_int(const char *s, char **end, int base, intmax_t min, intmax_t max)
{
	int neg, ovf;
	uintmax_t lim = (uintmax_t)max + 1; /* -min */
	uintmax_t v = parse_uint(s, end, base, lim, &neg, &ovf);
	if (!neg && v > (uintmax_t)max) {
		errno = ERANGE;
		return max;
	}
	if (ovf) {
		errno = ERANGE;
		return neg ? min : max;
	}
	return neg ? (intmax_t)(0 - v) : (intmax_t)v;
}

static uintmax_t parse_unsigned(const char *s, char **end, int base, uintmax_t max)
{
	int neg, ovf;
	uintmax_t v = parse_uint(s, end, base, max, &neg, &ovf);
	if (ovf) {
		errno = ERANGE;
		return max;
	}
	return neg ? (0 - v) & max : v;
}

long strtol(const char *s, char **end, int base)
{
	return (long)parse_int(s, end, base, LONG_MIN, LONG_MAX);
}

long long strtoll(const char *s, char **end, int base)
{
	return (long long)parse_int(s, end, base, LLONG_MIN, LLONG_MAX);
}

intmax_t strtoimax(const char *s, char **end, int base)
{
	return parse_int(s, end, base, INTMAX_MIN, INTMAX_MAX);
}

unsigned long strtoul(const char *s, char **end, int base)
{
	return (unsigned long)parse_unsigned(s, end, base, ULONG_MAX);
}

unsigned long long strtoull(const char *s, char **end, int base)
{
	return (unsigned long long)parse_unsigned(s, end, base, ULLONG_MAX);
}

uintmax_t strtoumax(const char *s, char **end, int base)
{
	return parse_unsigned(s, end, base, UINTMAX_MAX);
}

int atoi(const char *s)
{
	return (int)strtol(s, NULL, 10);
}

long atol(const char *s)
{
	return strtol(s, NULL, 10);
}

long long atoll(const char *s)
{
	return strtoll(s, NULL, 10);
}

double atof(const char *s)
{
	return strtod(s, NULL);
}

int abs(int j)
{
	return j < 0 ? -j : j;
}

long labs(long j)
{
	return j < 0 ? -j : j;
}

long long llabs(long long j)
{
	return j < 0 ? -j : j;
}

intmax_t imaxabs(intmax_t j)
{
	return j < 0 ? -j : j;
}

div_t div(int num, int den)
{
	return (div_t){num / den, num % den};
}

ldiv_t ldiv(long num, long den)
{
	return (ldiv_t){num / den, num % den};
}

lldiv_t lldiv(long long num, long long den)
{
	return (lldiv_t){num / den, num % den};
}

imaxdiv_t imaxdiv(intmax_t num, intmax_t den)
{
	return (imaxdiv_t){num / den, num % den};
}

/* qsort: introsort (median-of-three quicksort, insertion sort for short
 * runs, heapsort when the recursion gets too deep), so no input is
 * quadratic. Not stable, like every qsort. */

typedef int (*cmp_r_fn)(const void *, const void *, void *);

static void swap_bytes(char *a, char *b, size_t n)
{
	if (a == b)
		return;
	if (!(((uintptr_t)a | (uintptr_t)b | n) & 7)) {
		for (; n; n -= 8, a += 8, b += 8) {
			uint64_t t = *(uint64_t *)a;
			*(uint64_t *)a = *(uint64_t *)b;
			*(uint64_t *)b = t;
		}
		return;
	}
	for (; n; n--, a++, b++) {
		char t = *a;
		*a = *b;
		*b = t;
	}
}

static void sift_down(char *base, size_t root, size_t n, size_t sz, cmp_r_fn cmp, void *arg)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && cmp(base + child * sz, base + (child + 1) * sz, arg) < 0)
			child++;
		if (cmp(base + root * sz, base + child * sz, arg) >= 0)
			return;
		swap_bytes(base + root * sz, base + child * sz, sz);
		root = child;
	}
}

static void heap_sort(char *base, size_t n, size_t sz, cmp_r_fn cmp, void *arg)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(base, i, n, sz, cmp, arg);
	for (size_t i = n; i-- > 1;) {
		swap_bytes(base, base + i * sz, sz);
		sift_down(base, 0, i, sz, cmp, arg);
	}
}

static void insertion_sort(char *base, size_t n, size_t sz, cmp_r_fn cmp, void *arg)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cmp(base + (j - 1) * sz, base + j * sz, arg) > 0; j--)
			swap_bytes(base + (j - 1) * sz, base + j * sz, sz);
}

static void intro_sort(char *base, size_t n, size_t sz, cmp_r_fn cmp, void *arg, int depth)
{
	while (n > 12) {
		if (depth-- == 0) {
			heap_sort(base, n, sz, cmp, arg);
			return;
		}
		char *lo = base, *mid = base + (n / 2) * sz, *hi = base + (n - 1) * sz;
		if (cmp(mid, lo, arg) < 0)
			swap_bytes(mid, lo, sz);
		if (cmp(hi, mid, arg) < 0) {
			swap_bytes(hi, mid, sz);
			if (cmp(mid, lo, arg) < 0)
				swap_bytes(mid, lo, sz);
		}
		/* Pivot at base: Hoare partition around it. */
		swap_bytes(base, mid, sz);
		size_t i = 0, j = n;
		for (;;) {
			do
				i++;
			while (i < n && cmp(base + i * sz, base, arg) < 0);
			do
				j--;
			while (cmp(base + j * sz, base, arg) > 0);
			if (i >= j)
				break;
			swap_bytes(base + i * sz, base + j * sz, sz);
		}
		swap_bytes(base, base + j * sz, sz);
		/* Recurse into the smaller side, loop on the larger. */
		size_t left = j, right = n - j - 1;
		if (left < right) {
			intro_sort(base, left, sz, cmp, arg, depth);
			base += (j + 1) * sz;
			n = right;
		} else {
			intro_sort(base + (j + 1) * sz, right, sz, cmp, arg, depth);
			n = left;
		}
	}
	insertion_sort(base, n, sz, cmp, arg);
}

void qsort_r(void *base, size_t n, size_t size, cmp_r_fn cmp, void *arg)
{
	if (n < 2 || !size)
		return;
	int depth = 0;
	for (size_t k = n; k; k >>= 1)
		depth += 2;
	intro_sort(base, n, size, cmp, arg, depth);
}

static int call_cmp(const void *a, const void *b, void *arg)
{
	int (*cmp)(const void *, const void *);
	memcpy(&cmp, arg, sizeof cmp);
	return cmp(a, b);
}

void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	qsort_r(base, n, size, call_cmp, &cmp);
}

void *bsearch(const void *key, const void *base, size_t n, size_t size,
	      int (*cmp)(const void *, const void *))
{
	const char *b = base;
	while (n) {
		const char *mid = b + (n / 2) * size;
		int c = cmp(key, mid);
		if (c == 0)
			return (void *)mid;
		if (c > 0) {
			b = mid + size;
			n -= n / 2 + 1;
		} else {
			n /= 2;
		}
	}
	return NULL;
}

/* rand: ukrand's generator when that library is linked (its symbols are
 * weak references here), else a 64-bit LCG (Knuth's MMIX constants). */
uint64_t uk_random_u64(void) __attribute__((weak));
void uk_random_seed(uint64_t seed) __attribute__((weak));
void uk_random_fill(void *buf, size_t n) __attribute__((weak));

static uint64_t lcg_state = 1;

static uint32_t lcg_next(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

int rand(void)
{
	if (uk_random_u64)
		return (int)(uk_random_u64() >> 33);
	return (int)(lcg_next(&lcg_state) & RAND_MAX);
}

void srand(unsigned int seed)
{
	if (uk_random_seed)
		uk_random_seed(seed);
	lcg_state = seed;
}

int rand_r(unsigned int *seed)
{
	uint64_t s = *seed;
	int r = (int)(lcg_next(&s) & RAND_MAX);
	*seed = (unsigned int)s;
	return r;
}

long random(void)
{
	return rand();
}

void srandom(unsigned int seed)
{
	srand(seed);
}

void arc4random_buf(void *buf, size_t n)
{
	if (uk_random_fill) {
		uk_random_fill(buf, n);
		return;
	}
	unsigned char *p = buf;
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(lcg_next(&lcg_state) >> 7);
}

unsigned int arc4random(void)
{
	unsigned int v;
	arc4random_buf(&v, sizeof v);
	return v;
}

/* A unikernel has no environment. */
char *getenv(const char *name)
{
	(void)name;
	return NULL;
}

int system(const char *cmd)
{
	/* system(NULL) asks whether a shell exists: there is none. */
	if (!cmd)
		return 0;
	errno = ENOSYS;
	return -1;
}
