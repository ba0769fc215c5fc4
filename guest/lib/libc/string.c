/* Memory and string functions. The default uses `rep movsb/stosb` and
 * word-at-a-time scans; LIBC_STRING_BYTEWISE selects plain byte loops
 * (which gcc then unrolls and vectorises its own way). Both are exercised
 * by the host tests. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <stdlib.h>
#include <errno.h>

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Nonzero iff some byte of x is zero. */
#define HASZERO(x) (((x) - ONES) & ~(x) & HIGHS)

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
#ifdef LIBC_STRING_BYTEWISE
	unsigned char *dp = d;
	const unsigned char *sp = s;
	while (n--)
		*dp++ = *sp++;
#else
	void *ret = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	d = ret;
#endif
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	if (dp == sp || n == 0)
		return d;
	if (dp < sp || dp >= sp + n)
		return memcpy(d, s, n);
	/* Overlapping with d above s: copy from the end. */
#ifndef LIBC_STRING_BYTEWISE
	while (n >= 8 && ((uintptr_t)(dp + n) & 7)) {
		n--;
		dp[n] = sp[n];
	}
	while (n >= 8) {
		uint64_t w;
		n -= 8;
		__builtin_memcpy(&w, sp + n, 8);
		__builtin_memcpy(dp + n, &w, 8);
	}
#endif
	while (n) {
		n--;
		dp[n] = sp[n];
	}
	return d;
}

void *memset(void *d, int c, size_t n)
{
#ifdef LIBC_STRING_BYTEWISE
	unsigned char *dp = d;
	while (n--)
		*dp++ = (unsigned char)c;
	return d;
#else
	void *ret = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
#endif
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
#ifndef LIBC_STRING_BYTEWISE
	while (n >= 8) {
		uint64_t u, v;
		__builtin_memcpy(&u, x, 8);
		__builtin_memcpy(&v, y, 8);
		if (u != v)
			break;
		x += 8;
		y += 8;
		n -= 8;
	}
#endif
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

int bcmp(const void *a, const void *b, size_t n)
{
	return memcmp(a, b, n);
}

void *memchr(const void *s, int c, size_t n)
{
	const unsigned char *p = s;
	unsigned char ch = (unsigned char)c;
#ifndef LIBC_STRING_BYTEWISE
	for (; n && ((uintptr_t)p & 7); n--, p++)
		if (*p == ch)
			return (void *)p;
	uint64_t k = ONES * ch;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t w = *(const uint64_t *)p ^ k;
		if (HASZERO(w))
			break;
	}
#endif
	for (; n; n--, p++)
		if (*p == ch)
			return (void *)p;
	return NULL;
}

void *memrchr(const void *s, int c, size_t n)
{
	const unsigned char *p = s;
	while (n--)
		if (p[n] == (unsigned char)c)
			return (void *)(p + n);
	return NULL;
}

void *memmem(const void *h, size_t hl, const void *n, size_t nl)
{
	const unsigned char *hp = h, *np = n;
	if (nl == 0)
		return (void *)h;
	if (hl < nl)
		return NULL;
	const unsigned char *last = hp + hl - nl;
	for (; hp <= last; hp++) {
		hp = memchr(hp, np[0], (size_t)(last - hp) + 1);
		if (!hp)
			return NULL;
		if (memcmp(hp, np, nl) == 0)
			return (void *)hp;
	}
	return NULL;
}

void *mempcpy(void *restrict d, const void *restrict s, size_t n)
{
	return (char *)memcpy(d, s, n) + n;
}

void *memccpy(void *restrict d, const void *restrict s, int c, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	for (; n; n--) {
		*dp = *sp++;
		if (*dp++ == (unsigned char)c)
			return dp;
	}
	return NULL;
}

void explicit_bzero(void *d, size_t n)
{
	memset(d, 0, n);
	/* Keeps the compiler from dropping the stores as dead. */
	__asm__ volatile("" : : "r"(d) : "memory");
}

void bzero(void *d, size_t n)
{
	memset(d, 0, n);
}

void bcopy(const void *s, void *d, size_t n)
{
	memmove(d, s, n);
}

size_t strlen(const char *s)
{
	const char *p = s;
#ifndef LIBC_STRING_BYTEWISE
	for (; (uintptr_t)p & 7; p++)
		if (!*p)
			return (size_t)(p - s);
	/* Aligned 8-byte reads never cross a page, so reading past the NUL
	 * inside the last word is safe. */
	const uint64_t *w = (const uint64_t *)p;
	while (!HASZERO(*w))
		w++;
	p = (const char *)w;
#endif
	while (*p)
		p++;
	return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t n)
{
	const char *p = memchr(s, 0, n);
	return p ? (size_t)(p - s) : n;
}

char *stpcpy(char *restrict d, const char *restrict s)
{
	while ((*d = *s)) {
		d++;
		s++;
	}
	return d;
}

char *strcpy(char *restrict d, const char *restrict s)
{
	stpcpy(d, s);
	return d;
}

char *stpncpy(char *restrict d, const char *restrict s, size_t n)
{
	size_t l = strnlen(s, n);
	memcpy(d, s, l);
	memset(d + l, 0, n - l);
	return d + l;
}

char *strncpy(char *restrict d, const char *restrict s, size_t n)
{
	stpncpy(d, s, n);
	return d;
}

size_t strlcpy(char *restrict d, const char *restrict s, size_t n)
{
	size_t l = strlen(s);
	if (n) {
		size_t c = l < n - 1 ? l : n - 1;
		memcpy(d, s, c);
		d[c] = 0;
	}
	return l;
}

size_t strlcat(char *restrict d, const char *restrict s, size_t n)
{
	size_t dl = strnlen(d, n);
	if (dl == n)
		return n + strlen(s);
	return dl + strlcpy(d + dl, s, n - dl);
}

char *strcat(char *restrict d, const char *restrict s)
{
	strcpy(d + strlen(d), s);
	return d;
}

char *strncat(char *restrict d, const char *restrict s, size_t n)
{
	char *e = d + strlen(d);
	size_t l = strnlen(s, n);
	memcpy(e, s, l);
	e[l] = 0;
	return d;
}

int strcmp(const char *a, const char *b)
{
	for (; *a && *a == *b; a++, b++)
		;
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

int strcoll(const char *a, const char *b)
{
	return strcmp(a, b);
}

size_t strxfrm(char *restrict d, const char *restrict s, size_t n)
{
	size_t l = strlen(s);
	if (l < n)
		memcpy(d, s, l + 1);
	return l;
}

int strcasecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = tolower((unsigned char)*a), y = tolower((unsigned char)*b);
		if (x != y || !x)
			return x - y;
	}
}

int strncasecmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		int x = tolower((unsigned char)*a), y = tolower((unsigned char)*b);
		if (x != y || !x)
			return x - y;
	}
	return 0;
}

char *strchrnul(const char *s, int c)
{
	for (; *s && *s != (char)c; s++)
		;
	return (char *)s;
}

char *strchr(const char *s, int c)
{
	s = strchrnul(s, c);
	return *s == (char)c ? (char *)s : NULL;
}

char *strrchr(const char *s, int c)
{
	const char *r = NULL;
	for (;; s++) {
		if (*s == (char)c)
			r = s;
		if (!*s)
			return (char *)r;
	}
}

char *strstr(const char *h, const char *n)
{
	size_t nl = strlen(n);
	if (!nl)
		return (char *)h;
	for (; (h = strchr(h, n[0])); h++)
		if (strncmp(h, n, nl) == 0)
			return (char *)h;
	return NULL;
}

char *strcasestr(const char *h, const char *n)
{
	size_t nl = strlen(n);
	for (; *h; h++)
		if (strncasecmp(h, n, nl) == 0)
			return (char *)h;
	return nl ? NULL : (char *)h;
}

/* Byte-set membership for strspn/strcspn/strpbrk/strtok. */
struct byteset {
	uint64_t bits[4];
};

static void byteset_make(struct byteset *b, const char *chars)
{
	b->bits[0] = b->bits[1] = b->bits[2] = b->bits[3] = 0;
	for (const unsigned char *p = (const unsigned char *)chars; *p; p++)
		b->bits[*p >> 6] |= 1ULL << (*p & 63);
}

static int byteset_has(const struct byteset *b, unsigned char c)
{
	return (b->bits[c >> 6] >> (c & 63)) & 1;
}

size_t strspn(const char *s, const char *accept)
{
	struct byteset b;
	byteset_make(&b, accept);
	size_t i = 0;
	while (s[i] && byteset_has(&b, (unsigned char)s[i]))
		i++;
	return i;
}

size_t strcspn(const char *s, const char *reject)
{
	struct byteset b;
	byteset_make(&b, reject);
	size_t i = 0;
	while (s[i] && !byteset_has(&b, (unsigned char)s[i]))
		i++;
	return i;
}

char *strpbrk(const char *s, const char *accept)
{
	s += strcspn(s, accept);
	return *s ? (char *)s : NULL;
}

char *strtok_r(char *restrict s, const char *restrict delim, char **restrict save)
{
	if (!s)
		s = *save;
	if (!s)
		return NULL;
	s += strspn(s, delim);
	if (!*s) {
		*save = NULL;
		return NULL;
	}
	char *e = s + strcspn(s, delim);
	if (*e)
		*e++ = 0;
	else
		e = NULL;
	*save = e;
	return s;
}

char *strtok(char *restrict s, const char *restrict delim)
{
	static char *save;
	return strtok_r(s, delim, &save);
}

char *strsep(char **sp, const char *delim)
{
	char *s = *sp;
	if (!s)
		return NULL;
	char *e = s + strcspn(s, delim);
	if (*e)
		*e++ = 0;
	else
		e = NULL;
	*sp = e;
	return s;
}

char *strdup(const char *s)
{
	size_t l = strlen(s) + 1;
	char *d = malloc(l);
	return d ? memcpy(d, s, l) : NULL;
}

char *strndup(const char *s, size_t n)
{
	size_t l = strnlen(s, n);
	char *d = malloc(l + 1);
	if (!d)
		return NULL;
	memcpy(d, s, l);
	d[l] = 0;
	return d;
}

static const struct {
	int err;
	const char *msg;
} errmsgs[] = {
	{0, "Success"},
	{EPERM, "Operation not permitted"},
	{ENOENT, "No such file or directory"},
	{EINTR, "Interrupted system call"},
	{EIO, "Input/output error"},
	{EBADF, "Bad file descriptor"},
	{EAGAIN, "Resource temporarily unavailable"},
	{ENOMEM, "Cannot allocate memory"},
	{EACCES, "Permission denied"},
	{EFAULT, "Bad address"},
	{EEXIST, "File exists"},
	{EINVAL, "Invalid argument"},
	{ENOSPC, "No space left on device"},
	{ESPIPE, "Illegal seek"},
	{EPIPE, "Broken pipe"},
	{EDOM, "Numerical argument out of domain"},
	{ERANGE, "Numerical result out of range"},
	{ENOSYS, "Function not implemented"},
	{EOVERFLOW, "Value too large for defined data type"},
	{EILSEQ, "Invalid or incomplete multibyte or wide character"},
	{ENOTSUP, "Operation not supported"},
	{ETIMEDOUT, "Connection timed out"},
};

char *strerror(int err)
{
	for (size_t i = 0; i < sizeof errmsgs / sizeof errmsgs[0]; i++)
		if (errmsgs[i].err == err)
			return (char *)errmsgs[i].msg;
	return (char *)"Unknown error";
}

int strerror_r(int err, char *buf, size_t n)
{
	size_t l = strlcpy(buf, strerror(err), n);
	return l >= n ? ERANGE : 0;
}

int ffs(int i)
{
	return __builtin_ffs(i);
}

int ffsl(long i)
{
	return __builtin_ffsl(i);
}

int ffsll(long long i)
{
	return __builtin_ffsll(i);
}
