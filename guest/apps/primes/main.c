/* primes: counts the primes up to N (sieve of Eratosthenes over odd
 * numbers only) and reports the largest and their sum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>

int main(int argc, char **argv)
{
	long n;
	uint8_t *composite;
	uint64_t count = 0, sum = 0, last = 0, i, j;

	if (argc != 2 || args_long(argv[1], 0, 50000000, &n)) {
		printf("usage: primes N (0 <= N <= 50000000)\n");
		return 2;
	}
	if (n >= 2) {
		count = 1;
		sum = 2;
		last = 2;
	}
	/* composite[k] is for the odd number 2k+1 */
	composite = calloc((size_t)n / 2 + 1, 1);
	if (!composite)
		return 1;
	for (i = 3; i <= (uint64_t)n; i += 2) {
		if (composite[i / 2])
			continue;
		count++;
		sum += i;
		last = i;
		for (j = i * i; j <= (uint64_t)n; j += 2 * i)
			composite[j / 2] = 1;
	}
	printf("primes<=%ld count=%llu last=%llu sum=%llu\n", n,
	       (unsigned long long)count, (unsigned long long)last,
	       (unsigned long long)sum);
	free(composite);
	return 0;
}
