/* BIGNUM_KARATSUBA=T switches products of two operands of at least T limbs
 * to Karatsuba's method (three half-size products); below T, and in the
 * default build, schoolbook multiplication. Same results either way. */
#include <stdlib.h>
#include <string.h>
#include <ukbignum.h>
#include <ukstrbuf.h>

#define BASE 1000000000u

void bignum_init(struct bignum *a)
{
	a->d = NULL;
	a->n = a->cap = 0;
}

void bignum_free(struct bignum *a)
{
	free(a->d);
	bignum_init(a);
}

static int reserve(struct bignum *a, size_t n)
{
	uint32_t *d;
	size_t cap;

	if (n <= a->cap)
		return 0;
	cap = a->cap ? a->cap : 4;
	while (cap < n)
		cap *= 2;
	d = realloc(a->d, cap * sizeof(*d));
	if (!d)
		return -1;
	a->d = d;
	a->cap = cap;
	return 0;
}

static void trim(struct bignum *a)
{
	while (a->n && a->d[a->n - 1] == 0)
		a->n--;
}

/* take moves t's limbs into r (freeing r's old ones). */
static void take(struct bignum *r, struct bignum *t)
{
	free(r->d);
	*r = *t;
	bignum_init(t);
}

int bignum_set_u64(struct bignum *a, uint64_t v)
{
	if (reserve(a, 3))
		return -1;
	a->n = 0;
	while (v) {
		a->d[a->n++] = (uint32_t)(v % BASE);
		v /= BASE;
	}
	return 0;
}

int bignum_copy(struct bignum *dst, const struct bignum *src)
{
	if (dst == src)
		return 0;
	if (reserve(dst, src->n))
		return -1;
	if (src->n)
		memcpy(dst->d, src->d, src->n * sizeof(uint32_t));
	dst->n = src->n;
	return 0;
}

int bignum_from_dec(struct bignum *a, const char *s, size_t n)
{
	size_t i, limbs = (n + 8) / 9;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	if (reserve(a, limbs))
		return -1;
	a->n = limbs;
	for (i = 0; i < limbs; i++) {
		/* limb i holds digits [n-9(i+1), n-9i) */
		size_t end = n - 9 * i, start = end >= 9 ? end - 9 : 0, k;
		uint32_t v = 0;

		for (k = start; k < end; k++)
			v = v * 10 + (uint32_t)(s[k] - '0');
		a->d[i] = v;
	}
	trim(a);
	return 0;
}

char *bignum_to_dec(const struct bignum *a, size_t *len)
{
	struct strbuf sb;
	size_t i;

	strbuf_init(&sb);
	if (a->n == 0) {
		strbuf_putc(&sb, '0');
	} else {
		strbuf_putu64(&sb, a->d[a->n - 1]);
		for (i = a->n - 1; i-- > 0;) {
			char tmp[9];
			uint32_t v = a->d[i];
			int k;

			for (k = 8; k >= 0; k--) {
				tmp[k] = (char)('0' + v % 10);
				v /= 10;
			}
			strbuf_append(&sb, tmp, 9);
		}
	}
	if (sb.oom) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, len);
}

int bignum_cmp(const struct bignum *a, const struct bignum *b)
{
	size_t i;

	if (a->n != b->n)
		return a->n < b->n ? -1 : 1;
	for (i = a->n; i-- > 0;)
		if (a->d[i] != b->d[i])
			return a->d[i] < b->d[i] ? -1 : 1;
	return 0;
}

int bignum_add(struct bignum *r, const struct bignum *a, const struct bignum *b)
{
	struct bignum t;
	size_t n = a->n > b->n ? a->n : b->n, i;
	uint32_t carry = 0;

	bignum_init(&t);
	if (reserve(&t, n + 1))
		return -1;
	for (i = 0; i < n; i++) {
		uint32_t s = carry + (i < a->n ? a->d[i] : 0) + (i < b->n ? b->d[i] : 0);

		carry = s >= BASE;
		t.d[i] = carry ? s - BASE : s;
	}
	t.d[n] = carry;
	t.n = n + 1;
	trim(&t);
	take(r, &t);
	return 0;
}

int bignum_sub(struct bignum *r, const struct bignum *a, const struct bignum *b)
{
	struct bignum t;
	size_t i;
	int64_t borrow = 0;

	if (bignum_cmp(a, b) < 0)
		return -1;
	bignum_init(&t);
	if (reserve(&t, a->n))
		return -1;
	for (i = 0; i < a->n; i++) {
		int64_t s = (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0) - borrow;

		borrow = s < 0;
		t.d[i] = (uint32_t)(s < 0 ? s + BASE : s);
	}
	t.n = a->n;
	trim(&t);
	take(r, &t);
	return 0;
}

/* limb-array helpers for the products: out[0..na+nb) = a * b */
static void mul_school(uint32_t *out, const uint32_t *a, size_t na,
		       const uint32_t *b, size_t nb)
{
	size_t i, j;

	memset(out, 0, (na + nb) * sizeof(uint32_t));
	for (i = 0; i < na; i++) {
		uint64_t carry = 0;

		if (a[i] == 0)
			continue;
		for (j = 0; j < nb; j++) {
			uint64_t cur = out[i + j] + (uint64_t)a[i] * b[j] + carry;

			out[i + j] = (uint32_t)(cur % BASE);
			carry = cur / BASE;
		}
		for (j = i + nb; carry; j++) {
			uint64_t cur = out[j] + carry;

			out[j] = (uint32_t)(cur % BASE);
			carry = cur / BASE;
		}
	}
}

#if defined(BIGNUM_KARATSUBA) && BIGNUM_KARATSUBA > 1
/* add_into: acc[0..n) += x[0..nx), carry propagated within acc (n > nx) */
static void add_into(uint32_t *acc, size_t n, const uint32_t *x, size_t nx)
{
	uint32_t carry = 0;
	size_t i;

	for (i = 0; i < n && (i < nx || carry); i++) {
		uint32_t s = acc[i] + carry + (i < nx ? x[i] : 0);

		carry = s >= BASE;
		acc[i] = carry ? s - BASE : s;
	}
}

/* sub_from: acc[0..n) -= x[0..nx); the caller knows acc >= x */
static void sub_from(uint32_t *acc, size_t n, const uint32_t *x, size_t nx)
{
	int64_t borrow = 0;
	size_t i;

	for (i = 0; i < n && (i < nx || borrow); i++) {
		int64_t s = (int64_t)acc[i] - (i < nx ? x[i] : 0) - borrow;

		borrow = s < 0;
		acc[i] = (uint32_t)(s < 0 ? s + BASE : s);
	}
}

static int mul_kara(uint32_t *out, const uint32_t *a, size_t na,
		    const uint32_t *b, size_t nb)
{
	size_t m, sa, sb, nz;
	uint32_t *s1, *s2, *z1;

	if (na < BIGNUM_KARATSUBA || nb < BIGNUM_KARATSUBA) {
		mul_school(out, a, na, b, nb);
		return 0;
	}
	m = (na > nb ? na : nb) / 2;
	if (m >= na || m >= nb) {
		/* unbalanced: split the longer operand only */
		mul_school(out, a, na, b, nb);
		return 0;
	}
	/* a = a1 B^m + a0, b = b1 B^m + b0 */
	sa = (na - m > m ? na - m : m) + 1;
	sb = (nb - m > m ? nb - m : m) + 1;
	nz = sa + sb;
	s1 = calloc(sa, sizeof(uint32_t));
	s2 = calloc(sb, sizeof(uint32_t));
	z1 = calloc(nz, sizeof(uint32_t));
	if (!s1 || !s2 || !z1) {
		free(s1);
		free(s2);
		free(z1);
		return -1;
	}
	memset(out, 0, (na + nb) * sizeof(uint32_t));
	/* z0 = a0 b0 into out[0..2m), z2 = a1 b1 into out[2m..) */
	if (mul_kara(out, a, m, b, m) ||
	    mul_kara(out + 2 * m, a + m, na - m, b + m, nb - m))
		goto fail;
	memcpy(s1, a, m * sizeof(uint32_t));
	add_into(s1, sa, a + m, na - m);
	memcpy(s2, b, m * sizeof(uint32_t));
	add_into(s2, sb, b + m, nb - m);
	/* z1 = (a0+a1)(b0+b1) - z0 - z2 */
	if (mul_kara(z1, s1, sa, s2, sb))
		goto fail;
	sub_from(z1, nz, out, 2 * m);
	sub_from(z1, nz, out + 2 * m, na + nb - 2 * m);
	{
		/* z1 < B^(na+nb-m): add its significant limbs at offset m */
		size_t used = nz;

		while (used && z1[used - 1] == 0)
			used--;
		add_into(out + m, na + nb - m, z1, used);
	}
	free(s1);
	free(s2);
	free(z1);
	return 0;
fail:
	free(s1);
	free(s2);
	free(z1);
	return -1;
}
#endif

int bignum_mul(struct bignum *r, const struct bignum *a, const struct bignum *b)
{
	struct bignum t;

	bignum_init(&t);
	if (a->n == 0 || b->n == 0) {
		r->n = 0;
		return 0;
	}
	if (reserve(&t, a->n + b->n))
		return -1;
#if defined(BIGNUM_KARATSUBA) && BIGNUM_KARATSUBA > 1
	if (mul_kara(t.d, a->d, a->n, b->d, b->n)) {
		bignum_free(&t);
		return -1;
	}
#else
	mul_school(t.d, a->d, a->n, b->d, b->n);
#endif
	t.n = a->n + b->n;
	trim(&t);
	take(r, &t);
	return 0;
}

int bignum_mul_u32(struct bignum *r, const struct bignum *a, uint32_t m)
{
	uint64_t carry = 0;
	size_t i, n = a->n;

	if (reserve(r, n + 2))
		return -1;
	for (i = 0; i < n; i++) {
		uint64_t cur = (uint64_t)a->d[i] * m + carry;

		r->d[i] = (uint32_t)(cur % BASE);
		carry = cur / BASE;
	}
	while (carry) {
		r->d[n++] = (uint32_t)(carry % BASE);
		carry /= BASE;
	}
	r->n = n;
	trim(r);
	return 0;
}

int bignum_add_u32(struct bignum *r, const struct bignum *a, uint32_t m)
{
	struct bignum t;

	bignum_init(&t);
	if (bignum_set_u64(&t, m) || bignum_add(r, a, &t)) {
		bignum_free(&t);
		return -1;
	}
	bignum_free(&t);
	return 0;
}

int bignum_divmod_u32(struct bignum *r, const struct bignum *a, uint32_t m, uint32_t *rem)
{
	uint64_t cur = 0;
	size_t i;

	if (m == 0 || reserve(r, a->n))
		return -1;
	for (i = a->n; i-- > 0;) {
		cur = cur * BASE + a->d[i];
		r->d[i] = (uint32_t)(cur / m);
		cur %= m;
	}
	r->n = a->n;
	trim(r);
	if (rem)
		*rem = (uint32_t)cur;
	return 0;
}

int bignum_pow(struct bignum *r, const struct bignum *base, uint32_t e)
{
	struct bignum acc, b;
	int rc = -1;

	bignum_init(&acc);
	bignum_init(&b);
	if (bignum_set_u64(&acc, 1) || bignum_copy(&b, base))
		goto out;
	while (e) {
		if ((e & 1) && bignum_mul(&acc, &acc, &b))
			goto out;
		e >>= 1;
		if (e && bignum_mul(&b, &b, &b))
			goto out;
	}
	take(r, &acc);
	rc = 0;
out:
	bignum_free(&acc);
	bignum_free(&b);
	return rc;
}

/* product of [lo, hi] by splitting the range: balanced operands, so the
 * big multiplications (and Karatsuba) do the work */
static int range_product(struct bignum *r, uint32_t lo, uint32_t hi)
{
	struct bignum a, b;
	int rc;

	if (hi - lo < 8) {
		uint32_t k;

		if (bignum_set_u64(r, 1))
			return -1;
		for (k = lo; k <= hi; k++)
			if (bignum_mul_u32(r, r, k))
				return -1;
		return 0;
	}
	bignum_init(&a);
	bignum_init(&b);
	rc = range_product(&a, lo, lo + (hi - lo) / 2) ||
	     range_product(&b, lo + (hi - lo) / 2 + 1, hi) || bignum_mul(r, &a, &b);
	bignum_free(&a);
	bignum_free(&b);
	return rc ? -1 : 0;
}

int bignum_factorial(struct bignum *r, uint32_t n)
{
	if (n < 2)
		return bignum_set_u64(r, 1);
	return range_product(r, 2, n);
}

int bignum_fib(struct bignum *r, uint32_t n)
{
	/* fast doubling: F(2k) = F(k)(2F(k+1) - F(k)), F(2k+1) = F(k)^2 + F(k+1)^2 */
	struct bignum a, b, t1, t2;
	int bit, rc = -1;

	bignum_init(&a);
	bignum_init(&b);
	bignum_init(&t1);
	bignum_init(&t2);
	if (bignum_set_u64(&a, 0) || bignum_set_u64(&b, 1))
		goto out;
	for (bit = 31; bit >= 0; bit--) {
		/* (a, b) = (F(k), F(k+1)) -> (F(2k), F(2k+1)) */
		if (bignum_add(&t1, &b, &b) || bignum_sub(&t1, &t1, &a) ||
		    bignum_mul(&t1, &t1, &a) || bignum_mul(&t2, &a, &a) ||
		    bignum_mul(&a, &b, &b) || bignum_add(&t2, &t2, &a))
			goto out;
		take(&a, &t1);
		take(&b, &t2);
		if ((n >> bit) & 1) {
			if (bignum_add(&t1, &a, &b))
				goto out;
			take(&a, &b);
			take(&b, &t1);
		}
	}
	take(r, &a);
	rc = 0;
out:
	bignum_free(&a);
	bignum_free(&b);
	bignum_free(&t1);
	bignum_free(&t2);
	return rc;
}

size_t bignum_digits(const struct bignum *a)
{
	uint32_t top;
	size_t d = 0;

	if (a->n == 0)
		return 1;
	for (top = a->d[a->n - 1]; top; top /= 10)
		d++;
	return d + 9 * (a->n - 1);
}

uint64_t bignum_digit_sum(const struct bignum *a)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < a->n; i++)
		for (uint32_t v = a->d[i]; v; v /= 10)
			s += v % 10;
	return s;
}
