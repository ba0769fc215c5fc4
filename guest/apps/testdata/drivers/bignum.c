/* "<op> a b" with op add, sub, mul, pow (b small), div (b < 2^32) ->
 * decimal result ("q r" for div, "err" for a negative difference). */
#include "common.h"
#include <ukbignum.h>

int main(void)
{
	while (next_line()) {
		char *op = strtok(line, " "), *as = strtok(NULL, " "), *bs = strtok(NULL, " ");
		struct bignum a, b, r;
		uint32_t rem = 0;
		int rc = 0;
		char *s;

		bignum_init(&a);
		bignum_init(&b);
		bignum_init(&r);
		bignum_from_dec(&a, as, strlen(as));
		bignum_from_dec(&b, bs, strlen(bs));
		if (!strcmp(op, "add")) rc = bignum_add(&r, &a, &b);
		else if (!strcmp(op, "sub")) rc = bignum_sub(&r, &a, &b);
		else if (!strcmp(op, "mul")) rc = bignum_mul(&r, &a, &b);
		else if (!strcmp(op, "pow")) rc = bignum_pow(&r, &a, (uint32_t)strtoul(bs, NULL, 10));
		else if (!strcmp(op, "div")) rc = bignum_divmod_u32(&r, &a, (uint32_t)strtoul(bs, NULL, 10), &rem);
		if (rc) {
			puts("err");
		} else {
			s = bignum_to_dec(&r, NULL);
			if (!strcmp(op, "div"))
				printf("%s %u\n", s, (unsigned)rem);
			else
				puts(s);
			free(s);
		}
		bignum_free(&a);
		bignum_free(&b);
		bignum_free(&r);
	}
	return 0;
}
