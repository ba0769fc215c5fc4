/* MATRIX_BLOCK > 0 tiles the product (i, k, j order inside tiles, k tiles
 * in increasing order). Each element still sums its products in increasing
 * k, one rounding per step, so naive and blocked builds agree bit for bit. */
#include <stdlib.h>
#include <string.h>
#include <ukmatrix.h>

#ifndef MATRIX_BLOCK
#define MATRIX_BLOCK 0
#endif

struct matrix *matrix_new(int rows, int cols)
{
	struct matrix *m;

	if (rows <= 0 || cols <= 0 || rows > 8192 || cols > 8192)
		return NULL;
	m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	m->a = calloc((size_t)rows * (size_t)cols, sizeof(double));
	if (!m->a) {
		free(m);
		return NULL;
	}
	m->rows = rows;
	m->cols = cols;
	return m;
}

struct matrix *matrix_identity(int n)
{
	struct matrix *m = matrix_new(n, n);
	int i;

	if (m)
		for (i = 0; i < n; i++)
			MATRIX_AT(m, i, i) = 1;
	return m;
}

struct matrix *matrix_clone(const struct matrix *m)
{
	struct matrix *c = matrix_new(m->rows, m->cols);

	if (c)
		memcpy(c->a, m->a, (size_t)m->rows * (size_t)m->cols * sizeof(double));
	return c;
}

void matrix_free(struct matrix *m)
{
	if (m) {
		free(m->a);
		free(m);
	}
}

struct matrix *matrix_mul(const struct matrix *a, const struct matrix *b)
{
	struct matrix *c;
	int n = a->rows, m = b->cols, p = a->cols;

	if (a->cols != b->rows)
		return NULL;
	c = matrix_new(n, m);
	if (!c)
		return NULL;
#if MATRIX_BLOCK > 0
	{
		int ii, kk, jj, i, k, j;

		for (ii = 0; ii < n; ii += MATRIX_BLOCK)
			for (kk = 0; kk < p; kk += MATRIX_BLOCK)
				for (jj = 0; jj < m; jj += MATRIX_BLOCK) {
					int ie = ii + MATRIX_BLOCK < n ? ii + MATRIX_BLOCK : n;
					int ke = kk + MATRIX_BLOCK < p ? kk + MATRIX_BLOCK : p;
					int je = jj + MATRIX_BLOCK < m ? jj + MATRIX_BLOCK : m;

					for (i = ii; i < ie; i++)
						for (k = kk; k < ke; k++) {
							double aik = MATRIX_AT(a, i, k);

							for (j = jj; j < je; j++)
								MATRIX_AT(c, i, j) += aik * MATRIX_AT(b, k, j);
						}
				}
	}
#else
	{
		int i, j, k;

		for (i = 0; i < n; i++)
			for (j = 0; j < m; j++) {
				double s = 0;

				for (k = 0; k < p; k++)
					s += MATRIX_AT(a, i, k) * MATRIX_AT(b, k, j);
				MATRIX_AT(c, i, j) = s;
			}
	}
#endif
	return c;
}

struct matrix *matrix_pow(const struct matrix *m, unsigned n)
{
	struct matrix *r, *base, *t;

	if (m->rows != m->cols)
		return NULL;
	r = matrix_identity(m->rows);
	base = matrix_clone(m);
	if (!r || !base)
		goto fail;
	while (n) {
		if (n & 1) {
			t = matrix_mul(r, base);
			if (!t)
				goto fail;
			matrix_free(r);
			r = t;
		}
		n >>= 1;
		if (n) {
			t = matrix_mul(base, base);
			if (!t)
				goto fail;
			matrix_free(base);
			base = t;
		}
	}
	matrix_free(base);
	return r;
fail:
	matrix_free(r);
	matrix_free(base);
	return NULL;
}

struct matrix *matrix_transpose(const struct matrix *m)
{
	struct matrix *t = matrix_new(m->cols, m->rows);
	int i, j;

	if (t)
		for (i = 0; i < m->rows; i++)
			for (j = 0; j < m->cols; j++)
				MATRIX_AT(t, j, i) = MATRIX_AT(m, i, j);
	return t;
}

int matrix_add(struct matrix *dst, const struct matrix *src, double scale)
{
	size_t i, n;

	if (dst->rows != src->rows || dst->cols != src->cols)
		return -1;
	n = (size_t)dst->rows * (size_t)dst->cols;
	for (i = 0; i < n; i++)
		dst->a[i] += scale * src->a[i];
	return 0;
}

double matrix_trace(const struct matrix *m)
{
	double t = 0;
	int i;

	for (i = 0; i < m->rows && i < m->cols; i++)
		t += MATRIX_AT(m, i, i);
	return t;
}

static double absd(double x)
{
	return x < 0 ? -x : x;
}

/* lu factors m in place (Doolittle, partial pivoting) into lu with the row
 * permutation perm; returns the permutation's sign, or 0 if singular. */
static int lu(struct matrix *m, int *perm)
{
	int n = m->rows, i, j, k, sign = 1;

	for (i = 0; i < n; i++)
		perm[i] = i;
	for (k = 0; k < n; k++) {
		int piv = k;
		double best = absd(MATRIX_AT(m, k, k));

		for (i = k + 1; i < n; i++)
			if (absd(MATRIX_AT(m, i, k)) > best) {
				best = absd(MATRIX_AT(m, i, k));
				piv = i;
			}
		if (best == 0)
			return 0;
		if (piv != k) {
			for (j = 0; j < n; j++) {
				double t = MATRIX_AT(m, k, j);

				MATRIX_AT(m, k, j) = MATRIX_AT(m, piv, j);
				MATRIX_AT(m, piv, j) = t;
			}
			i = perm[k];
			perm[k] = perm[piv];
			perm[piv] = i;
			sign = -sign;
		}
		for (i = k + 1; i < n; i++) {
			double f = MATRIX_AT(m, i, k) / MATRIX_AT(m, k, k);

			MATRIX_AT(m, i, k) = f;
			for (j = k + 1; j < n; j++)
				MATRIX_AT(m, i, j) -= f * MATRIX_AT(m, k, j);
		}
	}
	return sign;
}

double matrix_det(const struct matrix *m)
{
	struct matrix *c;
	int *perm, sign, i;
	double d;

	if (m->rows != m->cols)
		return 0;
	c = matrix_clone(m);
	perm = malloc((size_t)m->rows * sizeof(int));
	if (!c || !perm) {
		matrix_free(c);
		free(perm);
		return 0;
	}
	sign = lu(c, perm);
	d = sign;
	for (i = 0; sign && i < m->rows; i++)
		d *= MATRIX_AT(c, i, i);
	matrix_free(c);
	free(perm);
	return d;
}

static void lu_solve(const struct matrix *lu_m, const int *perm, const double *b,
		     double *x)
{
	int n = lu_m->rows, i, j;

	for (i = 0; i < n; i++) {
		double s = b[perm[i]];

		for (j = 0; j < i; j++)
			s -= MATRIX_AT(lu_m, i, j) * x[j];
		x[i] = s;
	}
	for (i = n - 1; i >= 0; i--) {
		double s = x[i];

		for (j = i + 1; j < n; j++)
			s -= MATRIX_AT(lu_m, i, j) * x[j];
		x[i] = s / MATRIX_AT(lu_m, i, i);
	}
}

int matrix_solve(const struct matrix *a, const double *b, double *x)
{
	struct matrix *c;
	int *perm, ok;

	if (a->rows != a->cols)
		return -1;
	c = matrix_clone(a);
	perm = malloc((size_t)a->rows * sizeof(int));
	ok = c && perm && lu(c, perm);
	if (ok)
		lu_solve(c, perm, b, x);
	matrix_free(c);
	free(perm);
	return ok ? 0 : -1;
}

struct matrix *matrix_inverse(const struct matrix *m)
{
	struct matrix *c, *inv;
	int *perm, n = m->rows, i, j;
	double *e, *x;

	if (m->rows != m->cols)
		return NULL;
	c = matrix_clone(m);
	inv = matrix_new(n, n);
	perm = malloc((size_t)n * sizeof(int));
	e = calloc((size_t)n, sizeof(double));
	x = malloc((size_t)n * sizeof(double));
	if (!c || !inv || !perm || !e || !x || !lu(c, perm)) {
		matrix_free(inv);
		inv = NULL;
		goto out;
	}
	for (j = 0; j < n; j++) {
		e[j] = 1;
		lu_solve(c, perm, e, x);
		e[j] = 0;
		for (i = 0; i < n; i++)
			MATRIX_AT(inv, i, j) = x[i];
	}
out:
	matrix_free(c);
	free(perm);
	free(e);
	free(x);
	return inv;
}
