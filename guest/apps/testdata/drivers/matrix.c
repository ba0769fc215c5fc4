/* "mul n seed" -> the product of two seeded integer matrices, row-major;
 * "det n seed" -> det of the first, as bits; "inv n seed" -> the largest
 * |A inv(A) - I| entry, as bits, or "singular". */
#include "common.h"
#include <stdint.h>
#include <ukmatrix.h>

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 16;
}

int main(void)
{
	while (next_line()) {
		char *op = strtok(line, " ");
		int n = atoi(strtok(NULL, " ")), i, j;
		uint32_t s = (uint32_t)strtoul(strtok(NULL, " "), NULL, 10);
		struct matrix *a = matrix_new(n, n), *b = matrix_new(n, n), *c;
		double r;
		uint64_t u;

		for (i = 0; i < n; i++)
			for (j = 0; j < n; j++) {
				MATRIX_AT(a, i, j) = (double)((int)(lcg(&s) % 19) - 9);
				MATRIX_AT(b, i, j) = (double)((int)(lcg(&s) % 19) - 9);
			}
		if (!strcmp(op, "mul")) {
			c = matrix_mul(a, b);
			for (i = 0; i < n * n; i++)
				printf(i ? " %lld" : "%lld", (long long)c->a[i]);
			putchar('\n');
			matrix_free(c);
		} else if (!strcmp(op, "det")) {
			r = matrix_det(a);
			memcpy(&u, &r, 8);
			printf("%016llx\n", (unsigned long long)u);
		} else {
			struct matrix *inv = matrix_inverse(a);

			if (!inv) {
				puts("singular");
			} else {
				double worst = 0;

				c = matrix_mul(a, inv);
				for (i = 0; i < n; i++)
					for (j = 0; j < n; j++) {
						double e = MATRIX_AT(c, i, j) - (i == j);

						if (e < 0)
							e = -e;
						if (e > worst)
							worst = e;
					}
				memcpy(&u, &worst, 8);
				printf("%016llx\n", (unsigned long long)u);
				matrix_free(c);
				matrix_free(inv);
			}
		}
		matrix_free(a);
		matrix_free(b);
	}
	return 0;
}
