/* ukmatrix: dense double matrices (row-major): products, powers,
 * transposes, LU decomposition with partial pivoting (determinant, solve,
 * inverse). */
#ifndef UKMATRIX_H
#define UKMATRIX_H
#include <stddef.h>

struct matrix {
	int rows, cols;
	double *a; /* a[i * cols + j] */
};

#define MATRIX_AT(m, i, j) ((m)->a[(size_t)(i) * (size_t)(m)->cols + (size_t)(j)])

struct matrix *matrix_new(int rows, int cols);
struct matrix *matrix_identity(int n);
struct matrix *matrix_clone(const struct matrix *m);
void matrix_free(struct matrix *m);
/* matrix_mul returns a*b, NULL if the shapes do not fit or out of memory. */
struct matrix *matrix_mul(const struct matrix *a, const struct matrix *b);
struct matrix *matrix_pow(const struct matrix *m, unsigned n);
struct matrix *matrix_transpose(const struct matrix *m);
int matrix_add(struct matrix *dst, const struct matrix *src, double scale);
double matrix_trace(const struct matrix *m);
double matrix_det(const struct matrix *m);
/* matrix_solve solves a x = b for square a; 0, or -1 if singular. */
int matrix_solve(const struct matrix *a, const double *b, double *x);
struct matrix *matrix_inverse(const struct matrix *m);

#endif
