/* sort: "<algo> <n> <seed>": sorts n pseudo-random 64-bit keys (splitmix64
 * from seed) with merge, heap, quick, radix or insertion sort; prints
 * order statistics and an order-dependent checksum of the result. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <uksort.h>

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n, seed;
	uint64_t s, sum = 0;
	int64_t *a;
	const char *algo;
	size_t i, distinct;

	if (argc != 4 || args_long(argv[2], 1, 2000000, &n) ||
	    args_long(argv[3], 0, 0x7fffffff, &seed)) {
		printf("usage: sort merge|heap|quick|radix|insertion N SEED\n");
		return 2;
	}
	algo = argv[1];
	a = malloc((size_t)n * sizeof(*a));
	if (!a)
		return 1;
	s = (uint64_t)seed;
	/* keys in [-2^40, 2^40): negative numbers exercise signed order */
	for (i = 0; i < (size_t)n; i++)
		a[i] = (int64_t)(splitmix64(&s) >> 23) - ((int64_t)1 << 40);
	if (strcmp(algo, "merge") == 0) {
		if (sort_merge(a, (size_t)n, sizeof(*a), cmp_i64))
			return 1;
	} else if (strcmp(algo, "heap") == 0) {
		sort_heap(a, (size_t)n, sizeof(*a), cmp_i64);
	} else if (strcmp(algo, "quick") == 0) {
		sort_quick_i64(a, (size_t)n);
	} else if (strcmp(algo, "insertion") == 0 && n <= 5000) {
		sort_insertion(a, (size_t)n, sizeof(*a), cmp_i64);
	} else if (strcmp(algo, "radix") == 0) {
		/* flipping the sign bit maps signed order onto unsigned */
		for (i = 0; i < (size_t)n; i++)
			a[i] = (int64_t)((uint64_t)a[i] ^ (1ull << 63));
		if (sort_radix_u64((uint64_t *)a, (size_t)n))
			return 1;
		for (i = 0; i < (size_t)n; i++)
			a[i] = (int64_t)((uint64_t)a[i] ^ (1ull << 63));
	} else {
		printf("sort: unknown algorithm %s\n", algo);
		return 2;
	}
	if (!sort_is_sorted_i64(a, (size_t)n)) {
		printf("sort: result not sorted\n");
		return 1;
	}
	for (i = 0; i < (size_t)n; i++)
		sum = sum * 31 + (uint64_t)a[i];
	printf("n=%ld min=%lld median=%lld max=%lld checksum=%016llx", n,
	       (long long)a[0], (long long)a[n / 2], (long long)a[n - 1],
	       (unsigned long long)sum);
	distinct = sort_unique_i64(a, (size_t)n);
	printf(" distinct=%zu\n", distinct);
	free(a);
	return 0;
}
