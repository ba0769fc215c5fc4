/* "<fn> <x bits hex> [<y bits hex>]" -> result bits in hex. */
#include "common.h"
#include <math.h>
#include <stdint.h>

static double from_bits(const char *s)
{
	uint64_t u = strtoull(s, NULL, 16);
	double d;

	memcpy(&d, &u, 8);
	return d;
}

int main(void)
{
	while (next_line()) {
		char *fn = strtok(line, " "), *xs = strtok(NULL, " "), *ys = strtok(NULL, " ");
		double x = from_bits(xs), y = ys ? from_bits(ys) : 0, r;
		uint64_t u;

		if (!strcmp(fn, "sqrt")) r = sqrt(x);
		else if (!strcmp(fn, "cbrt")) r = cbrt(x);
		else if (!strcmp(fn, "exp")) r = exp(x);
		else if (!strcmp(fn, "exp2")) r = exp2(x);
		else if (!strcmp(fn, "expm1")) r = expm1(x);
		else if (!strcmp(fn, "log")) r = log(x);
		else if (!strcmp(fn, "log2")) r = log2(x);
		else if (!strcmp(fn, "log10")) r = log10(x);
		else if (!strcmp(fn, "log1p")) r = log1p(x);
		else if (!strcmp(fn, "sin")) r = sin(x);
		else if (!strcmp(fn, "cos")) r = cos(x);
		else if (!strcmp(fn, "tan")) r = tan(x);
		else if (!strcmp(fn, "asin")) r = asin(x);
		else if (!strcmp(fn, "acos")) r = acos(x);
		else if (!strcmp(fn, "atan")) r = atan(x);
		else if (!strcmp(fn, "sinh")) r = sinh(x);
		else if (!strcmp(fn, "cosh")) r = cosh(x);
		else if (!strcmp(fn, "tanh")) r = tanh(x);
		else if (!strcmp(fn, "floor")) r = floor(x);
		else if (!strcmp(fn, "ceil")) r = ceil(x);
		else if (!strcmp(fn, "trunc")) r = trunc(x);
		else if (!strcmp(fn, "round")) r = round(x);
		else if (!strcmp(fn, "atan2")) r = atan2(x, y);
		else if (!strcmp(fn, "pow")) r = pow(x, y);
		else if (!strcmp(fn, "fmod")) r = fmod(x, y);
		else if (!strcmp(fn, "hypot")) r = hypot(x, y);
		else if (!strcmp(fn, "ldexp")) r = ldexp(x, (int)y);
		else if (!strcmp(fn, "frexp")) { int e; r = frexp(x, &e); r = r * 4096 + e; }
		else { fprintf(stderr, "unknown function %s\n", fn); return 2; }
		memcpy(&u, &r, 8);
		printf("%016llx\n", (unsigned long long)u);
	}
	return 0;
}
