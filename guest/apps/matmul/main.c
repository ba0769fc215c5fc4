/* matmul: "<n> <seed>": multiplies two n x n matrices of small integers
 * (so every product is exact), then reports a checksum of the product, its
 * trace, the trace of A^5, and det(A) for a 6x6 corner, rounded. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <ukargs.h>
#include <ukmatrix.h>

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 16;
}

int main(int argc, char **argv)
{
	struct matrix *a, *b, *c, *p, *corner;
	long n, seed;
	uint32_t s;
	uint64_t sum = 0;
	int i, j, k;

	if (argc != 3 || args_long(argv[1], 1, 512, &n) || args_long(argv[2], 0, 0x7fffffff, &seed)) {
		printf("usage: matmul N(1-512) SEED\n");
		return 2;
	}
	s = (uint32_t)seed;
	a = matrix_new((int)n, (int)n);
	b = matrix_new((int)n, (int)n);
	if (!a || !b)
		return 1;
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			MATRIX_AT(a, i, j) = (double)((int)(lcg(&s) % 19) - 9);
			MATRIX_AT(b, i, j) = (double)((int)(lcg(&s) % 19) - 9);
		}
	c = matrix_mul(a, b);
	p = matrix_pow(a, 5);
	k = n < 6 ? (int)n : 6;
	corner = matrix_new(k, k);
	if (!c || !p || !corner)
		return 1;
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++)
			sum = sum * 1000003u + (uint64_t)(int64_t)MATRIX_AT(c, i, j);
	for (i = 0; i < k; i++)
		for (j = 0; j < k; j++)
			MATRIX_AT(corner, i, j) = MATRIX_AT(a, i, j);
	printf("matmul n=%ld checksum=%016llx trace=%lld trace5=%lld det6=%lld\n", n,
	       (unsigned long long)sum, (long long)matrix_trace(c),
	       (long long)matrix_trace(p), (long long)round(matrix_det(corner)));
	matrix_free(a);
	matrix_free(b);
	matrix_free(c);
	matrix_free(p);
	matrix_free(corner);
	return 0;
}
