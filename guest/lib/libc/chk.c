/* glibc compatibility: the symbols objects compiled against glibc's
 * headers call (Debian's static archives are built with _FORTIFY_SOURCE
 * and -fstack-protector-strong), and __assert_fail. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noreturn)) static void die(const char *msg)
{
	fflush(stdout);
	fputs(msg, stderr);
	abort();
}

__attribute__((noreturn)) void __stack_chk_fail(void)
{
	die("*** stack smashing detected ***: terminated\n");
}

__attribute__((noreturn)) void __chk_fail(void)
{
	die("*** buffer overflow detected ***: terminated\n");
}

__attribute__((noreturn)) void __assert_fail(const char *expr, const char *file,
					     unsigned int line, const char *func)
{
	fflush(stdout);
	fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, func ? func : "?",
		expr);
	abort();
}

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	return memcpy(d, s, n);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	return memmove(d, s, n);
}

void *__mempcpy_chk(void *d, const void *s, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	return mempcpy(d, s, n);
}

void *__memset_chk(void *d, int c, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	return memset(d, c, n);
}

void __explicit_bzero_chk(void *d, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	explicit_bzero(d, n);
}

char *__strcpy_chk(char *d, const char *s, size_t dlen)
{
	size_t n = strlen(s);
	if (n >= dlen)
		__chk_fail();
	return memcpy(d, s, n + 1);
}

char *__stpcpy_chk(char *d, const char *s, size_t dlen)
{
	size_t n = strlen(s);
	if (n >= dlen)
		__chk_fail();
	return (char *)memcpy(d, s, n + 1) + n;
}

char *__strncpy_chk(char *d, const char *s, size_t n, size_t dlen)
{
	if (dlen < n)
		__chk_fail();
	return strncpy(d, s, n);
}

char *__strcat_chk(char *d, const char *s, size_t dlen)
{
	size_t dl = strlen(d), sl = strlen(s);
	if (dl + sl >= dlen)
		__chk_fail();
	memcpy(d + dl, s, sl + 1);
	return d;
}

char *__strncat_chk(char *d, const char *s, size_t n, size_t dlen)
{
	size_t dl = strlen(d), sl = strnlen(s, n);
	if (dl + sl >= dlen)
		__chk_fail();
	memcpy(d + dl, s, sl);
	d[dl + sl] = 0;
	return d;
}

int __vsnprintf_chk(char *s, size_t n, int flag, size_t slen, const char *fmt, va_list ap)
{
	(void)flag;
	if (slen < n)
		__chk_fail();
	return vsnprintf(s, n, fmt, ap);
}

int __snprintf_chk(char *s, size_t n, int flag, size_t slen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = __vsnprintf_chk(s, n, flag, slen, fmt, ap);
	va_end(ap);
	return r;
}

int __vsprintf_chk(char *s, int flag, size_t slen, const char *fmt, va_list ap)
{
	(void)flag;
	if (slen == 0)
		__chk_fail();
	int r = vsnprintf(s, slen, fmt, ap);
	if (r >= 0 && (size_t)r >= slen)
		__chk_fail();
	return r;
}

int __sprintf_chk(char *s, int flag, size_t slen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = __vsprintf_chk(s, flag, slen, fmt, ap);
	va_end(ap);
	return r;
}

int __vfprintf_chk(FILE *f, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	return vfprintf(f, fmt, ap);
}

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = __vfprintf_chk(f, flag, fmt, ap);
	va_end(ap);
	return r;
}

int __vprintf_chk(int flag, const char *fmt, va_list ap)
{
	(void)flag;
	return vfprintf(stdout, fmt, ap);
}

int __printf_chk(int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = __vprintf_chk(flag, fmt, ap);
	va_end(ap);
	return r;
}

int __vasprintf_chk(char **s, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	return vasprintf(s, fmt, ap);
}

int __asprintf_chk(char **s, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(s, fmt, ap);
	va_end(ap);
	(void)flag;
	return r;
}

char *__fgets_chk(char *s, size_t slen, int n, FILE *f)
{
	if ((size_t)n > slen)
		__chk_fail();
	return fgets(s, n, f);
}

size_t __fread_chk(void *p, size_t plen, size_t size, size_t n, FILE *f)
{
	if (size && n > plen / size)
		__chk_fail();
	return fread(p, size, n, f);
}

long __fdelt_chk(long d)
{
	if (d < 0 || d >= 1024)
		__chk_fail();
	return d / 64;
}
