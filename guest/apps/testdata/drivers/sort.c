/* "<algo> v1 v2 ..." -> the values sorted (algo: merge, heap, insertion,
 * quick, radix64 (unsigned), radix32 (unsigned, 32-bit)). */
#include "common.h"
#include <stdint.h>
#include <uksort.h>

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	static int64_t v[100000];
	static uint32_t w[100000];

	while (next_line()) {
		char *algo = strtok(line, " "), *tok;
		size_t n = 0, i;

		while ((tok = strtok(NULL, " ")))
			v[n++] = (int64_t)strtoull(tok, NULL, 10);
		if (!strcmp(algo, "merge")) sort_merge(v, n, 8, cmp);
		else if (!strcmp(algo, "heap")) sort_heap(v, n, 8, cmp);
		else if (!strcmp(algo, "insertion")) sort_insertion(v, n, 8, cmp);
		else if (!strcmp(algo, "quick")) sort_quick_i64(v, n);
		else if (!strcmp(algo, "radix64")) sort_radix_u64((uint64_t *)v, n);
		else if (!strcmp(algo, "radix32")) {
			for (i = 0; i < n; i++)
				w[i] = (uint32_t)v[i];
			sort_radix_u32(w, n);
			for (i = 0; i < n; i++)
				v[i] = w[i];
		}
		for (i = 0; i < n; i++) {
			if (i)
				putchar(' ');
			if (!strcmp(algo, "radix64"))
				printf("%llu", (unsigned long long)v[i]);
			else
				printf("%lld", (long long)v[i]);
		}
		putchar('\n');
	}
	return 0;
}
