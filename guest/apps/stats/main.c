/* stats: summary statistics of the numbers on the command line (integers
 * or decimals): mean, standard deviation, geometric mean, median, and the
 * root mean square, each printed with four decimals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ukargs.h>
#include <uksort.h>

/* parse_decimal reads [-]digits[.digits] exactly (no libc strtod needed) */
static int parse_decimal(const char *s, double *out)
{
	double v = 0, scale = 1;
	int neg = 0, digits = 0, frac = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	for (; *s; s++) {
		if (*s == '.' && !frac) {
			frac = 1;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (frac)
			scale *= 10;
		digits++;
	}
	if (!digits)
		return -1;
	*out = (neg ? -v : v) / scale;
	return 0;
}

/* put4 prints x rounded to four decimals without relying on printf's %f */
static void put4(const char *name, double x)
{
	long long v = (long long)round(x * 10000);
	long long a = v < 0 ? -v : v;

	printf(" %s=%s%lld.%04lld", name, v < 0 ? "-" : "", a / 10000, a % 10000);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int n = argc - 1, i, allpos = 1;
	double *v, sum = 0, sq = 0, logsum = 0, mean, var, median;

	if (n < 1) {
		printf("usage: stats X...\n");
		return 2;
	}
	v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return 1;
	for (i = 0; i < n; i++) {
		if (parse_decimal(argv[i + 1], &v[i])) {
			printf("stats: not a number: %s\n", argv[i + 1]);
			return 2;
		}
		sum += v[i];
		sq += v[i] * v[i];
		if (v[i] > 0)
			logsum += log(v[i]);
		else
			allpos = 0;
	}
	mean = sum / n;
	var = 0;
	for (i = 0; i < n; i++)
		var += (v[i] - mean) * (v[i] - mean);
	var /= n;
	if (sort_merge(v, (size_t)n, sizeof(*v), cmp_double))
		return 1;
	median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("n=%d", n);
	put4("mean", mean);
	put4("stddev", sqrt(var));
	if (allpos)
		put4("geomean", exp(logsum / n));
	put4("median", median);
	put4("rms", sqrt(sq / n));
	put4("min", v[0]);
	put4("max", v[n - 1]);
	printf("\n");
	free(v);
	return 0;
}
