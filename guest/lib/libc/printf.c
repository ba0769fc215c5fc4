/* The printf engine: every conversion of C11 7.21.6.1 (no wide chars),
 * with glibc's output for the unspecified cases ("(nil)", "(null)",
 * "-nan"). Floating point is formatted exactly: the double is expanded to
 * all of its decimal digits with big integers in base 10^9, then rounded
 * half-to-even, which is what glibc prints in the default rounding mode. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "libc_impl.h"

enum { F_MINUS = 1, F_PLUS = 2, F_SPACE = 4, F_HASH = 8, F_ZERO = 16 };

struct spec {
	int flags;
	int width;
	int prec; /* -1: none */
	char conv;
};

struct sink {
	uk_out_fn out;
	void *ctx;
	size_t count;
};

/* A piece of a field: n bytes at s, or n copies of fill when s is NULL. */
struct piece {
	const char *s;
	size_t n;
	char fill;
};

#define MAXPIECES 10

struct field {
	struct piece p[MAXPIECES];
	int np;
	int prefix; /* pieces before which zero padding goes (sign, 0x) */
};

static void emit(struct sink *o, const char *s, size_t n)
{
	if (n) {
		o->out(o->ctx, s, n);
		o->count += n;
	}
}

static void emit_fill(struct sink *o, char c, size_t n)
{
	char buf[64];
	size_t k = n < sizeof buf ? n : sizeof buf;
	memset(buf, c, k);
	while (n) {
		k = n < sizeof buf ? n : sizeof buf;
		emit(o, buf, k);
		n -= k;
	}
}

static void add(struct field *f, const char *s, size_t n)
{
	if (n)
		f->p[f->np++] = (struct piece){s, n, 0};
}

static void add_fill(struct field *f, char c, size_t n)
{
	if (n)
		f->p[f->np++] = (struct piece){NULL, n, c};
}

/* Writes f padded to the spec's width: spaces on the left, zeros after the
 * prefix (zeropad), or spaces on the right (F_MINUS). */
static void put_field(struct sink *o, const struct spec *sp, struct field *f, int zeropad)
{
	size_t total = 0;
	for (int i = 0; i < f->np; i++)
		total += f->p[i].n;
	size_t padn = sp->width > 0 && (size_t)sp->width > total ? (size_t)sp->width - total : 0;
	if (!(sp->flags & F_MINUS) && !zeropad)
		emit_fill(o, ' ', padn);
	for (int i = 0; i < f->np; i++) {
		if (i == f->prefix && zeropad && !(sp->flags & F_MINUS))
			emit_fill(o, '0', padn);
		if (f->p[i].s)
			emit(o, f->p[i].s, f->p[i].n);
		else
			emit_fill(o, f->p[i].fill, f->p[i].n);
	}
	if (f->np == f->prefix && zeropad && !(sp->flags & F_MINUS))
		emit_fill(o, '0', padn);
	if (sp->flags & F_MINUS)
		emit_fill(o, ' ', padn);
}

static const char xdigits_l[] = "0123456789abcdef";
static const char xdigits_u[] = "0123456789ABCDEF";

static void fmt_int(struct sink *o, const struct spec *sp, uintmax_t v, int neg)
{
	char buf[24];
	char *e = buf + sizeof buf, *p = e;
	const char *xd = sp->conv == 'X' ? xdigits_u : xdigits_l;
	unsigned base = 10;
	if (sp->conv == 'o')
		base = 8;
	else if (sp->conv == 'x' || sp->conv == 'X' || sp->conv == 'p')
		base = 16;
	uintmax_t x = v;
	while (x) {
		*--p = xd[x % base];
		x /= base;
	}
	if (p == e && sp->prec != 0)
		*--p = '0';
	size_t nd = (size_t)(e - p);
	size_t zeros = sp->prec > 0 && (size_t)sp->prec > nd ? (size_t)sp->prec - nd : 0;
	if (sp->conv == 'o' && (sp->flags & F_HASH) && zeros == 0 && (nd == 0 || *p != '0'))
		zeros = 1;
	struct field f = {.np = 0};
	const char *sign = NULL;
	if (neg)
		sign = "-";
	else if ((sp->flags & F_PLUS) && (sp->conv == 'd' || sp->conv == 'i'))
		sign = "+";
	else if ((sp->flags & F_SPACE) && (sp->conv == 'd' || sp->conv == 'i'))
		sign = " ";
	if (sign)
		add(&f, sign, 1);
	if (((sp->flags & F_HASH) && v && (sp->conv == 'x' || sp->conv == 'X')) || sp->conv == 'p')
		add(&f, sp->conv == 'X' ? "0X" : "0x", 2);
	f.prefix = f.np;
	add_fill(&f, '0', zeros);
	add(&f, p, nd);
	put_field(o, sp, &f, (sp->flags & F_ZERO) && sp->prec < 0);
}

static void fmt_str(struct sink *o, const struct spec *sp, const char *s, size_t n)
{
	struct field f = {.np = 0};
	add(&f, s, n);
	put_field(o, sp, &f, 0);
}

/* A double's exact decimal expansion: value = 0.dig[0..n) * 10^dexp, no
 * leading or trailing zeros; n == 0 means zero. The largest expansion,
 * that of the smallest subnormal times a 53-bit mantissa, has 767 digits. */
#define FP_MAXDIG 800
#define FP_LIMBS 96 /* base 1e9: 767 digits need 86 limbs */

struct fpdec {
	char dig[FP_MAXDIG];
	int n;
	int dexp;
};

static void big_mul_small(uint32_t *a, int *n, uint32_t f)
{
	uint64_t carry = 0;
	for (int i = 0; i < *n; i++) {
		uint64_t t = (uint64_t)a[i] * f + carry;
		a[i] = (uint32_t)(t % 1000000000u);
		carry = t / 1000000000u;
	}
	while (carry) {
		a[(*n)++] = (uint32_t)(carry % 1000000000u);
		carry /= 1000000000u;
	}
}

static void fp_expand(double v, struct fpdec *d)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	int ex = (int)((bits >> 52) & 0x7ff);
	uint64_t m = bits & ((1ULL << 52) - 1);
	int e;
	if (ex) {
		m |= 1ULL << 52;
		e = ex - 1075;
	} else {
		e = -1074;
	}
	d->n = 0;
	d->dexp = 0;
	if (!m)
		return;
	/* value = m * 2^e. For e < 0 use m * 2^e = m * 5^-e / 10^-e so that
	 * everything stays an integer. */
	uint32_t a[FP_LIMBS];
	int na = 0;
	while (m) {
		a[na++] = (uint32_t)(m % 1000000000u);
		m /= 1000000000u;
	}
	int frac10 = 0;
	if (e > 0) {
		for (int k = e; k > 0; k -= 29)
			big_mul_small(a, &na, 1u << (k > 29 ? 29 : k));
	} else if (e < 0) {
		static const uint32_t pow5[14] = {1, 5, 25, 125, 625, 3125, 15625, 78125,
			390625, 1953125, 9765625, 48828125, 244140625, 1220703125};
		for (int k = -e; k > 0; k -= 13)
			big_mul_small(a, &na, pow5[k > 13 ? 13 : k]);
		frac10 = -e;
	}
	/* Most significant limb without leading zeros, the others with 9. */
	char *p = d->dig;
	uint32_t top = a[na - 1];
	char tmp[10];
	int tn = 0;
	while (top) {
		tmp[tn++] = (char)('0' + top % 10);
		top /= 10;
	}
	while (tn)
		*p++ = tmp[--tn];
	for (int i = na - 2; i >= 0; i--) {
		uint32_t w = a[i];
		for (int j = 8; j >= 0; j--) {
			p[j] = (char)('0' + w % 10);
			w /= 10;
		}
		p += 9;
	}
	int total = (int)(p - d->dig);
	d->dexp = total - frac10;
	while (total > 0 && d->dig[total - 1] == '0')
		total--;
	d->n = total;
}

/* Rounds to keep significant digits, half to even. keep may be <= 0: the
 * rounding then happens left of the first digit. */
static void fp_round(struct fpdec *d, int keep)
{
	if (keep >= d->n)
		return;
	if (keep < 0) {
		d->n = 0;
		return;
	}
	char r = d->dig[keep];
	int up;
	if (r != '5') {
		up = r > '5';
	} else {
		up = 0;
		for (int i = keep + 1; i < d->n; i++)
			if (d->dig[i] != '0') {
				up = 1;
				break;
			}
		if (!up && keep > 0)
			up = (d->dig[keep - 1] - '0') & 1;
	}
	d->n = keep;
	if (up) {
		int i = keep - 1;
		while (i >= 0 && d->dig[i] == '9')
			i--;
		if (i < 0) {
			d->dig[0] = '1';
			d->n = 1;
			d->dexp++;
		} else {
			d->dig[i]++;
			d->n = i + 1;
		}
	}
	while (d->n > 0 && d->dig[d->n - 1] == '0')
		d->n--;
}

/* Adds digits [from, to) of d (zeros beyond n) to f. */
static void add_digits(struct field *f, const struct fpdec *d, int from, int to)
{
	if (from >= to)
		return;
	if (from < 0) {
		int z = (to < 0 ? to : 0) - from;
		add_fill(f, '0', (size_t)z);
		from = 0;
	}
	if (from >= to)
		return;
	int avail = d->n < to ? d->n : to;
	if (avail > from)
		add(f, d->dig + from, (size_t)(avail - from));
	int start = avail > from ? avail : from;
	add_fill(f, '0', (size_t)(to - start));
}

static void fmt_fixed(struct field *f, const struct fpdec *d, int prec, int point)
{
	int dexp = d->n ? d->dexp : 0;
	if (dexp <= 0)
		add(f, "0", 1);
	else
		add_digits(f, d, 0, dexp);
	if (prec > 0 || point)
		add(f, ".", 1);
	add_digits(f, d, dexp, dexp + prec);
}

static void fmt_expo(struct field *f, const struct fpdec *d, int prec, int point, char e,
		     char *ebuf)
{
	int x = d->n ? d->dexp - 1 : 0;
	if (d->n)
		add(f, d->dig, 1);
	else
		add(f, "0", 1);
	if (prec > 0 || point)
		add(f, ".", 1);
	add_digits(f, d, 1, 1 + prec);
	char *p = ebuf;
	*p++ = e;
	*p++ = x < 0 ? '-' : '+';
	unsigned ux = x < 0 ? (unsigned)-x : (unsigned)x;
	char t[6];
	int tn = 0;
	do {
		t[tn++] = (char)('0' + ux % 10);
		ux /= 10;
	} while (ux);
	if (tn < 2)
		t[tn++] = '0';
	while (tn)
		*p++ = t[--tn];
	add(f, ebuf, (size_t)(p - ebuf));
}

static void fmt_hexfloat(struct field *f, uint64_t bits, int prec, int upper, int point,
			 char *buf)
{
	const char *xd = upper ? xdigits_u : xdigits_l;
	int ex = (int)((bits >> 52) & 0x7ff);
	uint64_t m = bits & ((1ULL << 52) - 1);
	int lead = ex ? 1 : 0;
	int e2 = ex ? ex - 1023 : (m ? -1022 : 0);
	int nd = 13; /* hex digits of the fraction */
	if (prec >= 0 && prec < 13) {
		int drop = (13 - prec) * 4;
		uint64_t rem = m & ((1ULL << drop) - 1);
		uint64_t half = 1ULL << (drop - 1);
		m >>= drop;
		if (rem > half || (rem == half && (m & 1)))
			m++;
		if (m >> (prec * 4)) { /* carried into the leading digit */
			lead++;
			m &= (1ULL << (prec * 4)) - 1;
		}
		nd = prec;
	} else {
		while (nd > 0 && !(m & 15) && prec < 0) {
			m >>= 4;
			nd--;
		}
	}
	char *p = buf;
	*p++ = xd[lead];
	if (nd > 0 || point || prec > 0)
		*p++ = '.';
	for (int i = nd - 1; i >= 0; i--)
		*p++ = xd[(m >> (i * 4)) & 15];
	add(f, buf, (size_t)(p - buf));
	if (prec > 13)
		add_fill(f, '0', (size_t)(prec - 13));
	char *q = p;
	*q++ = upper ? 'P' : 'p';
	*q++ = e2 < 0 ? '-' : '+';
	unsigned ue = e2 < 0 ? (unsigned)-e2 : (unsigned)e2;
	char t[6];
	int tn = 0;
	do {
		t[tn++] = (char)('0' + ue % 10);
		ue /= 10;
	} while (ue);
	while (tn)
		*q++ = t[--tn];
	add(f, p, (size_t)(q - p));
}

static void fmt_float(struct sink *o, const struct spec *sp, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	int neg = (int)(bits >> 63);
	int upper = sp->conv >= 'A' && sp->conv <= 'Z';
	int point = (sp->flags & F_HASH) != 0;
	struct field f = {.np = 0};
	if (neg)
		add(&f, "-", 1);
	else if (sp->flags & F_PLUS)
		add(&f, "+", 1);
	else if (sp->flags & F_SPACE)
		add(&f, " ", 1);
	if (((bits >> 52) & 0x7ff) == 0x7ff) {
		int nan = (bits & ((1ULL << 52) - 1)) != 0;
		add(&f, nan ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf"), 3);
		f.prefix = f.np;
		put_field(o, sp, &f, 0);
		return;
	}
	if (neg)
		v = -v;
	char lc = (char)(sp->conv | 32);
	if (lc == 'a') {
		char hbuf[40];
		add(&f, upper ? "0X" : "0x", 2);
		f.prefix = f.np;
		fmt_hexfloat(&f, bits & ~(1ULL << 63), sp->prec, upper, point, hbuf);
		put_field(o, sp, &f, (sp->flags & F_ZERO) != 0);
		return;
	}
	f.prefix = f.np;
	struct fpdec d;
	fp_expand(v, &d);
	char ebuf[8];
	int prec = sp->prec < 0 ? 6 : sp->prec;
	if (lc == 'f') {
		fp_round(&d, d.dexp + prec);
		fmt_fixed(&f, &d, prec, point);
	} else if (lc == 'e') {
		fp_round(&d, prec + 1);
		fmt_expo(&f, &d, prec, point, upper ? 'E' : 'e', ebuf);
	} else { /* g */
		int p = prec == 0 ? 1 : prec;
		fp_round(&d, p);
		int x = d.n ? d.dexp - 1 : 0;
		if (p > x && x >= -4) {
			int fp = p - 1 - x;
			if (!point) { /* drop trailing zeros */
				int have = d.n - (d.n ? d.dexp : 0);
				fp = have < fp ? (have > 0 ? have : 0) : fp;
			}
			fmt_fixed(&f, &d, fp, point);
		} else {
			int fp = p - 1;
			if (!point)
				fp = d.n - 1 < fp ? (d.n > 1 ? d.n - 1 : 0) : fp;
			fmt_expo(&f, &d, fp, point, upper ? 'E' : 'e', ebuf);
		}
	}
	put_field(o, sp, &f, (sp->flags & F_ZERO) != 0);
}

int uk_vformat(uk_out_fn out, void *ctx, const char *fmt, va_list ap0)
{
	struct sink o = {out, ctx, 0};
	va_list ap;
	va_copy(ap, ap0);
	while (*fmt) {
		if (*fmt != '%') {
			const char *s = fmt;
			while (*fmt && *fmt != '%')
				fmt++;
			emit(&o, s, (size_t)(fmt - s));
			continue;
		}
		fmt++;
		struct spec sp = {0, 0, -1, 0};
		for (;; fmt++) {
			if (*fmt == '-')
				sp.flags |= F_MINUS;
			else if (*fmt == '+')
				sp.flags |= F_PLUS;
			else if (*fmt == ' ')
				sp.flags |= F_SPACE;
			else if (*fmt == '#')
				sp.flags |= F_HASH;
			else if (*fmt == '0')
				sp.flags |= F_ZERO;
			else if (*fmt != '\'') /* thousands grouping: none in "C" */
				break;
		}
		if (*fmt == '*') {
			sp.width = va_arg(ap, int);
			if (sp.width < 0) {
				sp.flags |= F_MINUS;
				sp.width = sp.width == INT_MIN ? INT_MAX : -sp.width;
			}
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				sp.width = sp.width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			sp.prec = 0;
			if (*fmt == '*') {
				sp.prec = va_arg(ap, int);
				if (sp.prec < 0)
					sp.prec = -1;
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					sp.prec = sp.prec * 10 + (*fmt++ - '0');
			}
		}
		/* length: 'H' hh, 'h', 'l', 'L' ll/q/j, 'z' (size_t/ptrdiff_t), 'D' long double */
		char len = 0;
		switch (*fmt) {
		case 'h':
			len = 'h';
			if (*++fmt == 'h') {
				len = 'H';
				fmt++;
			}
			break;
		case 'l':
			len = 'l';
			if (*++fmt == 'l') {
				len = 'L';
				fmt++;
			}
			break;
		case 'q':
		case 'j':
			len = 'L';
			fmt++;
			break;
		case 'z':
		case 't':
			len = 'l';
			fmt++;
			break;
		case 'L':
			len = 'D';
			fmt++;
			break;
		}
		sp.conv = *fmt;
		if (!*fmt)
			break;
		fmt++;
		switch (sp.conv) {
		case 'd':
		case 'i': {
			intmax_t v;
			if (len == 'L')
				v = va_arg(ap, long long);
			else if (len == 'l')
				v = va_arg(ap, long);
			else if (len == 'h')
				v = (short)va_arg(ap, int);
			else if (len == 'H')
				v = (signed char)va_arg(ap, int);
			else
				v = va_arg(ap, int);
			fmt_int(&o, &sp, v < 0 ? -(uintmax_t)v : (uintmax_t)v, v < 0);
			break;
		}
		case 'u':
		case 'o':
		case 'x':
		case 'X': {
			uintmax_t v;
			if (len == 'L')
				v = va_arg(ap, unsigned long long);
			else if (len == 'l')
				v = va_arg(ap, unsigned long);
			else if (len == 'h')
				v = (unsigned short)va_arg(ap, unsigned);
			else if (len == 'H')
				v = (unsigned char)va_arg(ap, unsigned);
			else
				v = va_arg(ap, unsigned);
			fmt_int(&o, &sp, v, 0);
			break;
		}
		case 'p': {
			void *p = va_arg(ap, void *);
			if (!p) {
				sp.prec = -1;
				fmt_str(&o, &sp, "(nil)", 5);
			} else {
				sp.flags &= ~(F_PLUS | F_SPACE);
				fmt_int(&o, &sp, (uintptr_t)p, 0);
			}
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			fmt_str(&o, &sp, &c, 1);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = sp.prec < 0 || sp.prec >= 6 ? "(null)" : "";
			size_t n = sp.prec < 0 ? strlen(s) : strnlen(s, (size_t)sp.prec);
			fmt_str(&o, &sp, s, n);
			break;
		}
		case 'm': {
			const char *s = strerror(errno);
			fmt_str(&o, &sp, s, strlen(s));
			break;
		}
		case 'n': {
			void *p = va_arg(ap, void *);
			if (len == 'L')
				*(long long *)p = (long long)o.count;
			else if (len == 'l')
				*(long *)p = (long)o.count;
			else if (len == 'h')
				*(short *)p = (short)o.count;
			else if (len == 'H')
				*(signed char *)p = (signed char)o.count;
			else
				*(int *)p = (int)o.count;
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
			double v = len == 'D' ? (double)va_arg(ap, long double) : va_arg(ap, double);
			fmt_float(&o, &sp, v);
			break;
		}
		case '%':
			emit(&o, "%", 1);
			break;
		default: /* unknown conversion: print it as written */
			emit(&o, "%", 1);
			emit(&o, &sp.conv, 1);
			break;
		}
	}
	va_end(ap);
	if (o.count > INT_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	return (int)o.count;
}
