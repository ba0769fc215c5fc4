/* The scanf engine: %d %i %u %o %x %X %p %f %e %g %a %s %c %[...] %n %%,
 * assignment suppression, widths and the hh/h/l/ll/j/z/t/L lengths. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "libc_impl.h"

struct reader {
	FILE *f;
	int la; /* looked-ahead byte, or -2 */
	size_t count;
};

static int peek(struct reader *r)
{
	if (r->la == -2)
		r->la = uk_file_getc(r->f);
	return r->la;
}

static int next(struct reader *r)
{
	int c = peek(r);
	if (c != EOF) {
		r->la = -2;
		r->count++;
	}
	return c;
}

static void skip_space(struct reader *r)
{
	while (peek(r) != EOF && isspace(peek(r)))
		next(r);
}

#define NUMBUF 512

/* Collects an integer's characters into buf; returns their count. */
static int collect_int(struct reader *r, char *buf, int width, int base)
{
	int n = 0;
	int c = peek(r);
	if (n < width && (c == '+' || c == '-')) {
		buf[n++] = (char)next(r);
		c = peek(r);
	}
	if ((base == 0 || base == 16) && n < width && c == '0') {
		buf[n++] = (char)next(r);
		c = peek(r);
		if (n < width && (c == 'x' || c == 'X')) {
			buf[n++] = (char)next(r);
			base = 16;
		} else if (base == 0) {
			base = 8;
		}
	}
	if (base == 0)
		base = 10;
	for (;;) {
		c = peek(r);
		if (n >= width || c == EOF)
			break;
		int v = isdigit(c) ? c - '0' : isalpha(c) ? (c | 32) - 'a' + 10 : 99;
		if (v >= base)
			break;
		buf[n++] = (char)next(r);
	}
	buf[n] = 0;
	return n;
}

static int collect_float(struct reader *r, char *buf, int width)
{
	int n = 0;
	int c = peek(r);
	if (n < width && (c == '+' || c == '-')) {
		buf[n++] = (char)next(r);
		c = peek(r);
	}
	if (c == 'i' || c == 'I' || c == 'n' || c == 'N') {
		while (n < width && isalpha(peek(r)))
			buf[n++] = (char)next(r);
		buf[n] = 0;
		return n;
	}
	int hex = 0;
	if (n < width && c == '0') {
		buf[n++] = (char)next(r);
		if (n < width && (peek(r) == 'x' || peek(r) == 'X')) {
			buf[n++] = (char)next(r);
			hex = 1;
		}
	}
	int seen_point = 0, seen_exp = 0;
	while (n < width) {
		c = peek(r);
		if (c == EOF)
			break;
		if (hex ? isxdigit(c) : isdigit(c)) {
			buf[n++] = (char)next(r);
		} else if (c == '.' && !seen_point && !seen_exp) {
			seen_point = 1;
			buf[n++] = (char)next(r);
		} else if (!seen_exp && (hex ? (c | 32) == 'p' : (c | 32) == 'e')) {
			seen_exp = 1;
			buf[n++] = (char)next(r);
			if (n < width && (peek(r) == '+' || peek(r) == '-'))
				buf[n++] = (char)next(r);
			hex = 0; /* exponent digits are decimal */
		} else {
			break;
		}
	}
	buf[n] = 0;
	return n;
}

static void store_int(void *p, char len, uintmax_t v)
{
	switch (len) {
	case 'H': *(unsigned char *)p = (unsigned char)v; break;
	case 'h': *(unsigned short *)p = (unsigned short)v; break;
	case 'l': *(unsigned long *)p = (unsigned long)v; break;
	case 'L': *(unsigned long long *)p = (unsigned long long)v; break;
	default: *(unsigned int *)p = (unsigned int)v; break;
	}
}

int uk_vscan(FILE *f, const char *fmt, va_list ap0)
{
	struct reader r = {f, -2, 0};
	int assigned = 0, converted = 0;
	va_list ap;
	va_copy(ap, ap0);
	char buf[NUMBUF];
	while (*fmt) {
		if (isspace((unsigned char)*fmt)) {
			while (isspace((unsigned char)*fmt))
				fmt++;
			skip_space(&r);
			continue;
		}
		if (*fmt != '%' || fmt[1] == '%') {
			if (*fmt == '%') {
				fmt++;
				skip_space(&r);
			}
			if (peek(&r) != (unsigned char)*fmt)
				goto done;
			next(&r);
			fmt++;
			continue;
		}
		fmt++;
		int suppress = 0;
		if (*fmt == '*') {
			suppress = 1;
			fmt++;
		}
		int width = 0;
		while (isdigit((unsigned char)*fmt))
			width = width * 10 + (*fmt++ - '0');
		char len = 0;
		if (*fmt == 'h') {
			len = 'h';
			if (*++fmt == 'h') {
				len = 'H';
				fmt++;
			}
		} else if (*fmt == 'l') {
			len = 'l';
			if (*++fmt == 'l') {
				len = 'L';
				fmt++;
			}
		} else if (*fmt == 'j' || *fmt == 'q') {
			len = 'L';
			fmt++;
		} else if (*fmt == 'z' || *fmt == 't') {
			len = 'l';
			fmt++;
		} else if (*fmt == 'L') {
			len = 'D';
			fmt++;
		}
		char conv = *fmt++;
		if (!conv)
			break;
		if (conv == 'n') {
			if (!suppress)
				store_int(va_arg(ap, void *), len, r.count);
			continue;
		}
		if (conv != 'c' && conv != '[')
			skip_space(&r);
		if (peek(&r) == EOF) {
			if (converted == 0)
				assigned = EOF;
			goto done;
		}
		int w = width > 0 && width < NUMBUF - 1 ? width : NUMBUF - 1;
		switch (conv) {
		case 'd':
		case 'i':
		case 'u':
		case 'o':
		case 'x':
		case 'X':
		case 'p': {
			int base = conv == 'd' || conv == 'u' ? 10 : conv == 'i' ? 0 : conv == 'o' ? 8 : 16;
			int n = collect_int(&r, buf, w, base);
			char *end;
			uintmax_t v;
			if (conv == 'd' || conv == 'i')
				v = (uintmax_t)strtoll(buf, &end, base);
			else
				v = strtoull(buf, &end, base);
			if (n == 0 || end == buf)
				goto done;
			if (!suppress) {
				if (conv == 'p')
					*va_arg(ap, void **) = (void *)(uintptr_t)v;
				else
					store_int(va_arg(ap, void *), len, v);
				assigned++;
			}
			break;
		}
		case 'f':
		case 'F':
		case 'e':
		case 'E':
		case 'g':
		case 'G':
		case 'a':
		case 'A': {
			collect_float(&r, buf, w);
			char *end;
			double v = strtod(buf, &end);
			/* Like glibc: "1e" converts as 1 (C11 would fail), but "0x"
			 * without hex digits fails. */
			if (end == buf || *end == 'x' || *end == 'X')
				goto done;
			if (!suppress) {
				if (len == 'l')
					*va_arg(ap, double *) = v;
				else if (len == 'D')
					*va_arg(ap, long double *) = v;
				else
					*va_arg(ap, float *) = (float)v;
				assigned++;
			}
			break;
		}
		case 's': {
			char *d = suppress ? NULL : va_arg(ap, char *);
			int n = 0, lim = width > 0 ? width : -1;
			while (peek(&r) != EOF && !isspace(peek(&r)) && n != lim) {
				int c = next(&r);
				if (d)
					d[n] = (char)c;
				n++;
			}
			if (d) {
				d[n] = 0;
				assigned++;
			}
			break;
		}
		case 'c': {
			char *d = suppress ? NULL : va_arg(ap, char *);
			int n = 0, lim = width > 0 ? width : 1;
			while (n < lim && peek(&r) != EOF) {
				int c = next(&r);
				if (d)
					d[n] = (char)c;
				n++;
			}
			if (n < lim)
				goto done;
			if (d)
				assigned++;
			break;
		}
		case '[': {
			uint64_t set[4] = {0, 0, 0, 0};
			int invert = 0;
			if (*fmt == '^') {
				invert = 1;
				fmt++;
			}
			int first = 1;
			while (*fmt && (*fmt != ']' || first)) {
				unsigned char a = (unsigned char)*fmt++;
				unsigned char b = a;
				if (*fmt == '-' && fmt[1] && fmt[1] != ']') {
					b = (unsigned char)fmt[1];
					fmt += 2;
				}
				for (unsigned c = a; c <= b; c++)
					set[c >> 6] |= 1ULL << (c & 63);
				first = 0;
			}
			if (*fmt == ']')
				fmt++;
			char *d = suppress ? NULL : va_arg(ap, char *);
			int n = 0, lim = width > 0 ? width : -1;
			for (;;) {
				int c = peek(&r);
				if (c == EOF || n == lim)
					break;
				int in = (int)((set[c >> 6] >> (c & 63)) & 1);
				if (in == invert)
					break;
				next(&r);
				if (d)
					d[n] = (char)c;
				n++;
			}
			if (n == 0)
				goto done;
			if (d) {
				d[n] = 0;
				assigned++;
			}
			break;
		}
		default:
			goto done;
		}
		converted++;
	}
done:
	if (r.la >= 0)
		ungetc(r.la, f);
	va_end(ap);
	return assigned;
}

int vsscanf(const char *s, const char *fmt, va_list ap)
{
	struct _uk_file f = {
		.kind = UKF_MEM, .fd = -1, .flags = UKF_READ, .bufmode = _IONBF,
		.buf = (unsigned char *)s, .bufsize = strlen(s), .unget = EOF};
	f.len = f.bufsize;
	return uk_vscan(&f, fmt, ap);
}

int sscanf(const char *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsscanf(s, fmt, ap);
	va_end(ap);
	return r;
}

int vfscanf(FILE *f, const char *fmt, va_list ap)
{
	return uk_vscan(f, fmt, ap);
}

int fscanf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = uk_vscan(f, fmt, ap);
	va_end(ap);
	return r;
}

int vscanf(const char *fmt, va_list ap)
{
	return uk_vscan(stdin, fmt, ap);
}

int scanf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = uk_vscan(stdin, fmt, ap);
	va_end(ap);
	return r;
}

/* glibc's headers redirect the scanf family to these C99-conforming names. */
int __isoc99_sscanf(const char *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsscanf(s, fmt, ap);
	va_end(ap);
	return r;
}

int __isoc99_vsscanf(const char *s, const char *fmt, va_list ap)
{
	return vsscanf(s, fmt, ap);
}

int __isoc99_fscanf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = uk_vscan(f, fmt, ap);
	va_end(ap);
	return r;
}

int __isoc99_scanf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = uk_vscan(stdin, fmt, ap);
	va_end(ap);
	return r;
}
