/* strtod, correctly rounded (round half to even) for every decimal and
 * hexadecimal input: the significant digits become a big integer ratio
 * num/den, a 64-bit quotient plus a sticky bit is extracted by long
 * division, and that is rounded once to the 53 (or, for subnormals, fewer)
 * bits of a double. Inputs with more than STRTOD_MAXDIG digits keep a
 * nonzero marker digit for the rest, which cannot change the rounding
 * (halfway cases have at most 767 significant digits). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STRTOD_MAXDIG 800
#define HEX_MAXDIG 40
/* 32-bit limbs: the largest operand is about 10^1124 shifted by 64 bits. */
#define BIG_LIMBS 136

struct big {
	uint32_t w[BIG_LIMBS];
	int n; /* limbs in use; w[n-1] != 0 unless n == 0 */
};

static void big_trim(struct big *a)
{
	while (a->n && !a->w[a->n - 1])
		a->n--;
}

static void big_mul_add(struct big *a, uint32_t f, uint32_t add)
{
	uint64_t carry = add;
	for (int i = 0; i < a->n; i++) {
		uint64_t t = (uint64_t)a->w[i] * f + carry;
		a->w[i] = (uint32_t)t;
		carry = t >> 32;
	}
	if (carry)
		a->w[a->n++] = (uint32_t)carry;
}

static void big_pow10(struct big *a, int e)
{
	for (; e >= 9; e -= 9)
		big_mul_add(a, 1000000000u, 0);
	static const uint32_t p10[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
					100000000};
	if (e)
		big_mul_add(a, p10[e], 0);
}

static int big_bitlen(const struct big *a)
{
	if (!a->n)
		return 0;
	return (a->n - 1) * 32 + (32 - __builtin_clz(a->w[a->n - 1]));
}

static void big_shl(struct big *a, int bits)
{
	if (!a->n || !bits)
		return;
	int limbs = bits / 32, sh = bits % 32;
	int n = a->n + limbs + 1;
	for (int i = n - 1; i >= limbs; i--) {
		int j = i - limbs;
		uint32_t hi = j < a->n ? a->w[j] : 0;
		uint32_t lo = j - 1 >= 0 && j - 1 < a->n ? a->w[j - 1] : 0;
		a->w[i] = sh ? (hi << sh) | (lo >> (32 - sh)) : hi;
	}
	for (int i = 0; i < limbs; i++)
		a->w[i] = 0;
	a->n = n;
	big_trim(a);
}

static void big_shr1(struct big *a)
{
	for (int i = 0; i < a->n; i++)
		a->w[i] = (a->w[i] >> 1) | (i + 1 < a->n ? a->w[i + 1] << 31 : 0);
	big_trim(a);
}

static int big_cmp(const struct big *a, const struct big *b)
{
	if (a->n != b->n)
		return a->n < b->n ? -1 : 1;
	for (int i = a->n - 1; i >= 0; i--)
		if (a->w[i] != b->w[i])
			return a->w[i] < b->w[i] ? -1 : 1;
	return 0;
}

static void big_sub(struct big *a, const struct big *b)
{
	int64_t borrow = 0;
	for (int i = 0; i < a->n; i++) {
		int64_t t = (int64_t)a->w[i] - (i < b->n ? b->w[i] : 0) - borrow;
		borrow = t < 0;
		a->w[i] = (uint32_t)t;
	}
	big_trim(a);
}

static double from_bits(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

/* Rounds num/den * 2^b2 (num, den > 0) to the nearest double. */
static double make_double(struct big *num, struct big *den, long b2)
{
	int s = 63 - (big_bitlen(num) - big_bitlen(den));
	if (s > 0)
		big_shl(num, s);
	else if (s < 0)
		big_shl(den, -s);
	/* Now num/den is in (2^62, 2^64): restoring division, one bit a step. */
	big_shl(den, 63);
	uint64_t q = 0;
	for (int i = 63; i >= 0; i--) {
		if (big_cmp(num, den) >= 0) {
			big_sub(num, den);
			q |= 1ULL << i;
		}
		big_shr1(den);
	}
	int rest = num->n != 0;
	long lsb0 = b2 - s; /* exponent of q's bit 0 */
	int len = 64 - __builtin_clzll(q);
	long top = len - 1 + lsb0;
	long lsb = top - 52 > -1074 ? top - 52 : -1074;
	if (lsb > 1100) { /* far beyond the largest double */
		errno = ERANGE;
		return from_bits(0x7ffULL << 52);
	}
	long drop = lsb - lsb0;
	uint64_t mant;
	int round, sticky;
	if (drop > 64) {
		mant = 0;
		round = 0;
		sticky = 1;
	} else if (drop == 64) {
		mant = 0;
		round = (int)(q >> 63);
		sticky = (q << 1) != 0 || rest;
	} else {
		mant = q >> drop;
		round = (int)((q >> (drop - 1)) & 1);
		sticky = (q & ((1ULL << (drop - 1)) - 1)) != 0 || rest;
	}
	/* Underflow as glibc (and IEEE 754 on x86) reports it: inexact, and
	 * tiny after rounding, i.e. below 2^-1022 even when rounded to 53 bits
	 * with an unbounded exponent. */
	if (top < -1022 && (round || sticky)) {
		int tiny = 1;
		if (top == -1023) {
			int d = len - 53;
			uint64_t m = q >> d;
			int r = (int)((q >> (d - 1)) & 1);
			int st = (q & ((1ULL << (d - 1)) - 1)) != 0 || rest;
			if (r && (st || (m & 1)) && m + 1 == 1ULL << 53)
				tiny = 0;
		}
		if (tiny)
			errno = ERANGE;
	}
	if (round && (sticky || (mant & 1)))
		mant++;
	if (mant >> 53) {
		mant >>= 1;
		lsb++;
	}
	if (!mant) {
		errno = ERANGE;
		return 0.0;
	}
	if (mant < (1ULL << 52)) /* subnormal: lsb is -1074 */
		return from_bits(mant);
	long biased = lsb + 52 + 1023;
	if (biased >= 2047) {
		errno = ERANGE;
		return from_bits(0x7ffULL << 52);
	}
	return from_bits(((uint64_t)biased << 52) | (mant & ((1ULL << 52) - 1)));
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : (c | 32) - 'a' + 10;
}

/* Parses an exponent ("e-12", "p+3") at p if digits follow; adds it to *e. */
static const char *parse_exp(const char *p, long *e)
{
	const char *q = p + 1;
	int neg = 0;
	if (*q == '+' || *q == '-')
		neg = *q++ == '-';
	if (!isdigit((unsigned char)*q))
		return p;
	long v = 0;
	for (; isdigit((unsigned char)*q); q++)
		if (v < 1000000)
			v = v * 10 + (*q - '0');
	*e += neg ? -v : v;
	return q;
}

static double parse_hex(const char *p, const char **endp)
{
	struct big num = {.n = 0};
	int nd = 0, point = 0, extra = 0;
	long b2 = 0;
	for (;; p++) {
		if (*p == '.' && !point) {
			point = 1;
			continue;
		}
		if (!isxdigit((unsigned char)*p))
			break;
		int v = hexval((unsigned char)*p);
		if (nd == 0 && v == 0) {
			if (point)
				b2 -= 4;
			continue;
		}
		if (nd < HEX_MAXDIG) {
			big_mul_add(&num, 16, (uint32_t)v);
			nd++;
			if (point)
				b2 -= 4;
		} else {
			extra |= v != 0;
			if (!point)
				b2 += 4;
		}
	}
	if ((*p | 32) == 'p')
		p = parse_exp(p, &b2);
	*endp = p;
	if (!num.n)
		return 0.0;
	if (extra) { /* a nonzero marker for the dropped digits */
		big_mul_add(&num, 16, 1);
		b2 -= 4;
	}
	struct big den = {.w = {1}, .n = 1};
	return make_double(&num, &den, b2);
}

double strtod(const char *s, char **end)
{
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	int neg = 0;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	double sign = neg ? -1.0 : 1.0;
	if (strncasecmp(p, "inf", 3) == 0) {
		p += 3;
		if (strncasecmp(p, "inity", 5) == 0)
			p += 5;
		if (end)
			*end = (char *)p;
		return sign * from_bits(0x7ffULL << 52);
	}
	if (strncasecmp(p, "nan", 3) == 0) {
		p += 3;
		if (*p == '(') {
			const char *q = p + 1;
			while (isalnum((unsigned char)*q) || *q == '_')
				q++;
			if (*q == ')')
				p = q + 1;
		}
		if (end)
			*end = (char *)p;
		return from_bits((neg ? 1ULL << 63 : 0) | 0x7ff8000000000000ULL);
	}
	if (p[0] == '0' && (p[1] | 32) == 'x' &&
	    (isxdigit((unsigned char)p[2]) || (p[2] == '.' && isxdigit((unsigned char)p[3])))) {
		const char *e;
		double v = parse_hex(p + 2, &e);
		if (end)
			*end = (char *)e;
		return sign * v;
	}

	char dig[STRTOD_MAXDIG + 1];
	int nd = 0, point = 0, any = 0, extra = 0;
	long e10 = 0;
	for (;; p++) {
		if (*p == '.' && !point) {
			point = 1;
			continue;
		}
		if (!isdigit((unsigned char)*p))
			break;
		any = 1;
		if (nd == 0 && *p == '0') {
			if (point)
				e10--;
			continue;
		}
		if (nd < STRTOD_MAXDIG) {
			dig[nd++] = *p;
			if (point)
				e10--;
		} else {
			extra |= *p != '0';
			if (!point)
				e10++;
		}
	}
	if (!any) {
		if (end)
			*end = (char *)s;
		return 0.0;
	}
	if ((*p | 32) == 'e')
		p = parse_exp(p, &e10);
	if (end)
		*end = (char *)p;
	if (!nd)
		return sign * 0.0;
	long decpos = nd + e10; /* value in [10^(decpos-1), 10^decpos) */
	if (decpos > 310) {
		errno = ERANGE;
		return sign * from_bits(0x7ffULL << 52);
	}
	if (decpos < -324) {
		errno = ERANGE;
		return sign * 0.0;
	}
	if (extra) {
		dig[nd++] = '1';
		e10--;
	}
	/* Exact fast path: both operands exact doubles, one IEEE operation. */
	if (nd <= 15 && e10 >= -22 && e10 <= 22) {
		static const double p10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
			1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
			1e21, 1e22};
		uint64_t m = 0;
		for (int i = 0; i < nd; i++)
			m = m * 10 + (uint64_t)(dig[i] - '0');
		double v = (double)m;
		v = e10 >= 0 ? v * p10[e10] : v / p10[-e10];
		return sign * v;
	}
	struct big num = {.n = 0}, den = {.w = {1}, .n = 1};
	for (int i = 0; i < nd; i++) {
		big_mul_add(&num, 10, (uint32_t)(dig[i] - '0'));
	}
	if (e10 > 0)
		big_pow10(&num, (int)e10);
	else if (e10 < 0)
		big_pow10(&den, (int)-e10);
	return sign * make_double(&num, &den, 0);
}

float strtof(const char *s, char **end)
{
	double d = strtod(s, end);
	float f = (float)d;
	if (d != 0 && (f == 0 || (f - f != 0 && d - d == 0)))
		errno = ERANGE;
	return f;
}

long double strtold(const char *s, char **end)
{
	return strtod(s, end);
}
