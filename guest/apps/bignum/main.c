/* bignum: "fact N", "fib N", "pow B E" or "mul A B" in arbitrary
 * precision; prints the number of digits, their sum, and the leading and
 * trailing digits (the whole number when short). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukbignum.h>

int main(int argc, char **argv)
{
	struct bignum r, a, b;
	long x, y;
	char *dec;
	size_t len;
	int rc;

	bignum_init(&r);
	bignum_init(&a);
	bignum_init(&b);
	if (argc == 3 && strcmp(argv[1], "fact") == 0 && !args_long(argv[2], 0, 20000, &x)) {
		rc = bignum_factorial(&r, (uint32_t)x);
	} else if (argc == 3 && strcmp(argv[1], "fib") == 0 && !args_long(argv[2], 0, 200000, &x)) {
		rc = bignum_fib(&r, (uint32_t)x);
	} else if (argc == 4 && strcmp(argv[1], "pow") == 0 &&
		   !args_long(argv[2], 0, 1000000000, &x) && !args_long(argv[3], 0, 100000, &y)) {
		rc = bignum_set_u64(&a, (uint64_t)x) || bignum_pow(&r, &a, (uint32_t)y);
	} else if (argc == 4 && strcmp(argv[1], "mul") == 0) {
		rc = bignum_from_dec(&a, argv[2], strlen(argv[2])) ||
		     bignum_from_dec(&b, argv[3], strlen(argv[3])) || bignum_mul(&r, &a, &b);
	} else {
		printf("usage: bignum fact N | fib N | pow B E | mul A B\n");
		return 2;
	}
	if (rc)
		return 1;
	dec = bignum_to_dec(&r, &len);
	if (!dec)
		return 1;
	if (len <= 40)
		printf("%s %s digits=%zu sum=%llu value=%s\n", argv[1], argv[2], len,
		       (unsigned long long)bignum_digit_sum(&r), dec);
	else
		printf("%s %s digits=%zu sum=%llu head=%.20s tail=%s\n", argv[1], argv[2], len,
		       (unsigned long long)bignum_digit_sum(&r), dec, dec + len - 20);
	free(dec);
	bignum_free(&r);
	bignum_free(&a);
	bignum_free(&b);
	return 0;
}
