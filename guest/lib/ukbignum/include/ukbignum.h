/* ukbignum: arbitrary-precision unsigned integers in base 10^9 limbs
 * (little-endian), so decimal conversion is linear. Results may alias
 * operands. Every function returns 0, or -1 when out of memory or, for
 * bignum_sub, when the result would be negative. */
#ifndef UKBIGNUM_H
#define UKBIGNUM_H
#include <stddef.h>
#include <stdint.h>

struct bignum {
	uint32_t *d; /* limbs < 10^9, no leading zero limbs; n == 0 is zero */
	size_t n, cap;
};

void bignum_init(struct bignum *a);
void bignum_free(struct bignum *a);
int bignum_set_u64(struct bignum *a, uint64_t v);
int bignum_copy(struct bignum *dst, const struct bignum *src);
/* bignum_from_dec parses decimal digits; -1 on any other character. */
int bignum_from_dec(struct bignum *a, const char *s, size_t n);
/* bignum_to_dec returns a malloc'd decimal string. */
char *bignum_to_dec(const struct bignum *a, size_t *len);
int bignum_cmp(const struct bignum *a, const struct bignum *b);
int bignum_add(struct bignum *r, const struct bignum *a, const struct bignum *b);
int bignum_sub(struct bignum *r, const struct bignum *a, const struct bignum *b);
int bignum_mul(struct bignum *r, const struct bignum *a, const struct bignum *b);
int bignum_mul_u32(struct bignum *r, const struct bignum *a, uint32_t m);
int bignum_add_u32(struct bignum *r, const struct bignum *a, uint32_t m);
/* bignum_divmod_u32: r = a / m, *rem = a % m (m > 0). */
int bignum_divmod_u32(struct bignum *r, const struct bignum *a, uint32_t m, uint32_t *rem);
int bignum_pow(struct bignum *r, const struct bignum *base, uint32_t e);
int bignum_factorial(struct bignum *r, uint32_t n);
int bignum_fib(struct bignum *r, uint32_t n);
size_t bignum_digits(const struct bignum *a);
uint64_t bignum_digit_sum(const struct bignum *a);

#endif
