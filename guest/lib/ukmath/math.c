/* A small libm. Range reduction plus polynomials: Cody-Waite reduction by
 * ln2 for exp, by pi/2 (three-part constant, exact for |x| < 2^20) for the
 * trigonometric functions, atanh series for log. Accurate to a few ulp over
 * the ranges applications use; no errno (the guest has none to spare). */
#include <stdint.h>
#include <string.h>
#include <math.h>

static uint64_t bits_of(double x)
{
	uint64_t u;

	memcpy(&u, &x, sizeof(u));
	return u;
}

static double from_bits(uint64_t u)
{
	double x;

	memcpy(&x, &u, sizeof(x));
	return x;
}

static const double two52 = 4503599627370496.0;

double fabs(double x)
{
	return from_bits(bits_of(x) & ~(1ull << 63));
}

double copysign(double x, double y)
{
	return from_bits((bits_of(x) & ~(1ull << 63)) | (bits_of(y) & (1ull << 63)));
}

double sqrt(double x)
{
	double r;

	__asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
	return r;
}

double trunc(double x)
{
	if (!(fabs(x) < two52))
		return x; /* integral already, or inf/nan */
	return copysign((double)(int64_t)x, x);
}

double floor(double x)
{
	double t;

	if (!(fabs(x) < two52) || x == 0)
		return x;
	t = (double)(int64_t)x;
	if (t > x)
		t -= 1;
	return copysign(t, x);
}

double ceil(double x)
{
	double t;

	if (!(fabs(x) < two52) || x == 0)
		return x;
	t = (double)(int64_t)x;
	if (t < x)
		t += 1;
	return copysign(t, x);
}

double round(double x)
{
	double t;

	if (!(fabs(x) < two52))
		return x;
	t = trunc(x);
	if (fabs(x - t) >= 0.5) /* exact: x and t share the exponent range */
		t += copysign(1.0, x);
	return copysign(t, x);
}

double fmin(double x, double y)
{
	if (isnan(x))
		return y;
	if (isnan(y))
		return x;
	return x < y ? x : y;
}

double fmax(double x, double y)
{
	if (isnan(x))
		return y;
	if (isnan(y))
		return x;
	return x > y ? x : y;
}

double scalbn(double x, int n)
{
	double y = x;

	if (n > 1023) {
		y *= 0x1p1023;
		n -= 1023;
		if (n > 1023) {
			y *= 0x1p1023;
			n -= 1023;
			if (n > 1023)
				n = 1023;
		}
	} else if (n < -1022) {
		/* keep 53 extra bits so a subnormal result rounds once */
		y *= 0x1p-1022 * 0x1p53;
		n += 1022 - 53;
		if (n < -1022) {
			y *= 0x1p-1022 * 0x1p53;
			n += 1022 - 53;
			if (n < -1022)
				n = -1022;
		}
	}
	return y * from_bits((uint64_t)(0x3ff + n) << 52);
}

double ldexp(double x, int e)
{
	return scalbn(x, e);
}

double frexp(double x, int *e)
{
	uint64_t u = bits_of(x);
	int ex = (int)(u >> 52 & 0x7ff);

	if (ex == 0) {
		if (x == 0) {
			*e = 0;
			return x;
		}
		x = frexp(x * 0x1p64, e);
		*e -= 64;
		return x;
	}
	if (ex == 0x7ff) {
		*e = 0;
		return x;
	}
	*e = ex - 0x3fe;
	u &= 0x800fffffffffffffull;
	u |= 0x3feull << 52;
	return from_bits(u);
}

double modf(double x, double *ip)
{
	double t = trunc(x);

	*ip = t;
	if (isinf(x))
		return copysign(0.0, x);
	return copysign(x - t, x);
}

double fmod(double x, double y)
{
	double ax = fabs(x), ay = fabs(y), r;

	if (isnan(x) || isnan(y) || isinf(x) || y == 0)
		return NAN;
	if (isinf(y) || ax < ay)
		return x;
	r = ax;
	while (r >= ay) {
		int er, ey;
		double t;

		frexp(r, &er);
		frexp(ay, &ey);
		t = scalbn(ay, er - ey);
		if (t > r)
			t = scalbn(ay, er - ey - 1);
		r -= t; /* exact: t <= r < 2t */
	}
	return copysign(r, x);
}

static const double ln2_hi = 6.93147180369123816490e-01;
static const double ln2_lo = 1.90821492927058770002e-10;
static const double inv_ln2 = 1.44269504088896338700e+00;

/* e^r for |r| <= ln2/2, Taylor to degree 13 (error below 1e-17). */
static double exp_kernel(double r)
{
	static const double c[] = {
		1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
		1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
		1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0,
	};
	double p = 0;
	unsigned i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		p = p * r + c[i];
	return p;
}

double exp(double x)
{
	double k, r;

	if (isnan(x))
		return x;
	if (x > 709.782712893384)
		return HUGE_VAL;
	if (x < -745.1332191019412)
		return 0;
	k = round(x * inv_ln2);
	r = (x - k * ln2_hi) - k * ln2_lo;
	return scalbn(exp_kernel(r), (int)k);
}

double exp2(double x)
{
	double k;

	if (isnan(x))
		return x;
	if (x >= 1024)
		return HUGE_VAL;
	if (x < -1075)
		return 0;
	k = round(x);
	return scalbn(exp_kernel((x - k) * M_LN2), (int)k);
}

double expm1(double x)
{
	if (fabs(x) < 0.35) {
		/* direct series: no cancellation near 0 */
		double p = 0;
		int n;

		for (n = 16; n >= 1; n--)
			p = x / n * (1 + p);
		return p;
	}
	return exp(x) - 1;
}

double log(double x)
{
	double m, f, s, s2, sum, term;
	int e, k;

	if (isnan(x) || x == HUGE_VAL)
		return x;
	if (x < 0)
		return NAN;
	if (x == 0)
		return -HUGE_VAL;
	m = frexp(x, &e);
	if (m < M_SQRT2 / 2) {
		m *= 2;
		e--;
	}
	f = m - 1;
	s = f / (2 + f);
	s2 = s * s;
	/* log(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), |s| < 0.172 */
	sum = 0;
	for (k = 25; k >= 3; k -= 2)
		sum = (sum + 1.0 / k) * s2;
	term = 2 * s * (1 + sum);
	return e * ln2_hi + (term + e * ln2_lo);
}

double log2(double x)
{
	int e;
	double m;

	if (x > 0 && !isinf(x)) {
		m = frexp(x, &e);
		if (m == 0.5)
			return e - 1; /* exact for powers of two */
	}
	return log(x) * M_LOG2E;
}

double log10(double x)
{
	return log(x) * M_LOG10E;
}

double log1p(double x)
{
	double u = 1 + x;

	if (fabs(x) < 1e-4)
		return x * (1 - x * (0.5 - x * (1.0 / 3 - x * 0.25)));
	if (u == 1)
		return x;
	/* corrects the rounding of 1+x (Goldberg's trick) */
	return log(u) - ((u - 1) - x) / u;
}

static double pow_int(double x, uint64_t n)
{
	double r = 1;

	while (n) {
		if (n & 1)
			r *= x;
		x *= x;
		n >>= 1;
	}
	return r;
}

double pow(double x, double y)
{
	int yint = (trunc(y) == y);
	int yodd = yint && fabs(y) < 0x1p53 && fmod(y, 2.0) != 0;

	if (y == 0 || x == 1)
		return 1;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0) {
		if (y < 0)
			return yodd ? copysign(HUGE_VAL, x) : HUGE_VAL;
		return yodd ? x : 0;
	}
	if (isinf(y)) {
		if (fabs(x) == 1)
			return 1;
		return (fabs(x) > 1) == (y > 0) ? HUGE_VAL : 0;
	}
	if (isinf(x)) {
		if (x < 0)
			return pow(-0.0, -y) == 0 ? (yodd ? -0.0 : 0.0)
						  : (yodd ? -HUGE_VAL : HUGE_VAL);
		return y > 0 ? HUGE_VAL : 0;
	}
	if (x < 0 && !yint)
		return NAN;
	if (yint && fabs(y) <= 1024) {
		double r = pow_int(x, (uint64_t)fabs(y));

		return y < 0 ? 1 / r : r;
	}
	{
		double r = exp(y * log(fabs(x)));

		return (x < 0 && yodd) ? -r : r;
	}
}

/* pi/2 in three 33-bit pieces (fdlibm's), so k*piece is exact. */
static const double pio2_1 = 1.57079632673412561417e+00;
static const double pio2_2 = 6.07710050630396597660e-11;
static const double pio2_3 = 2.02226624871116645580e-21;
static const double inv_pio2 = 6.36619772367581382433e-01;

static int reduce_pio2(double x, double *r)
{
	double k;

	if (fabs(x) < 0x1p20) {
		k = round(x * inv_pio2);
		*r = ((x - k * pio2_1) - k * pio2_2) - k * pio2_3;
		return (int)((int64_t)k & 3);
	}
	/* Large arguments lose precision here; still in [-pi/4, pi/4]. */
	k = round(fmod(x, 2 * M_PI) * inv_pio2);
	*r = fmod(x, 2 * M_PI) - k * M_PI_2;
	return (int)((int64_t)k & 3);
}

/* sin(r) = r + r^3 P(r^2) and cos(r) = 1 + r^2 Q(r^2), Taylor to r^19 and
 * r^18 for |r| <= pi/4 (truncation error below 1e-18). */
static double sin_kernel(double r)
{
	static const double p[] = {
		-1.0 / 121645100408832000.0, 1.0 / 355687428096000.0,
		-1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0,
		1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0,
	};
	double r2 = r * r, s = 0;
	unsigned i;

	for (i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		s = s * r2 + p[i];
	return r + r * r2 * s;
}

static double cos_kernel(double r)
{
	static const double q[] = {
		-1.0 / 6402373705728000.0, 1.0 / 20922789888000.0,
		-1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0,
		1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0, -1.0 / 2.0,
	};
	double r2 = r * r, s = 0;
	unsigned i;

	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		s = s * r2 + q[i];
	return 1 + r2 * s;
}

double sin(double x)
{
	double r;
	int q;

	if (isnan(x) || isinf(x))
		return NAN;
	if (fabs(x) < 0x1p-27)
		return x;
	q = reduce_pio2(x, &r);
	switch (q) {
	case 0:
		return sin_kernel(r);
	case 1:
		return cos_kernel(r);
	case 2:
		return -sin_kernel(r);
	default:
		return -cos_kernel(r);
	}
}

double cos(double x)
{
	double r;
	int q;

	if (isnan(x) || isinf(x))
		return NAN;
	q = reduce_pio2(x, &r);
	switch (q) {
	case 0:
		return cos_kernel(r);
	case 1:
		return -sin_kernel(r);
	case 2:
		return -cos_kernel(r);
	default:
		return sin_kernel(r);
	}
}

double tan(double x)
{
	double r;
	int q;

	if (isnan(x) || isinf(x))
		return NAN;
	if (fabs(x) < 0x1p-27)
		return x;
	q = reduce_pio2(x, &r);
	if (q & 1)
		return -cos_kernel(r) / sin_kernel(r);
	return sin_kernel(r) / cos_kernel(r);
}

/* atan on [0, tan(pi/8)]: alternating series, 24 terms. */
static double atan_kernel(double t)
{
	double t2 = t * t, s = 0;
	int k;

	for (k = 47; k >= 3; k -= 2)
		s = (k & 2 ? -1.0 : 1.0) / k + t2 * s;
	/* s = -1/3 + t2/5 - ... ; k=3 has (k & 2) set, so its sign is - */
	return t + t * t2 * s;
}

double atan(double x)
{
	static const double pio4_lo = 3.06161699786838301793e-17;
	double ax = fabs(x), r;
	int invert = 0;

	if (isnan(x))
		return x;
	if (ax > 0x1p53)
		return copysign(M_PI_2, x);
	if (ax > 1) {
		ax = 1 / ax;
		invert = 1;
	}
	if (ax > 0.41421356237309503) /* tan(pi/8) */
		r = M_PI_4 + (atan_kernel((ax - 1) / (ax + 1)) + pio4_lo);
	else
		r = atan_kernel(ax);
	if (invert)
		r = M_PI_2 - r;
	return copysign(r, x);
}

double atan2(double y, double x)
{
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && y == 0)
		return signbit(x) ? copysign(M_PI, y) : copysign(0.0, y);
	if (isinf(x) && isinf(y))
		return copysign(x > 0 ? M_PI_4 : 3 * M_PI_4, y);
	if (x == 0 || isinf(y))
		return copysign(M_PI_2, y);
	if (isinf(x))
		return x > 0 ? copysign(0.0, y) : copysign(M_PI, y);
	if (x > 0)
		return atan(y / x);
	return copysign(M_PI - atan(fabs(y / x)), y);
}

double asin(double x)
{
	if (!(fabs(x) <= 1))
		return NAN;
	return atan2(x, sqrt((1 - x) * (1 + x)));
}

double acos(double x)
{
	if (!(fabs(x) <= 1))
		return NAN;
	return atan2(sqrt((1 - x) * (1 + x)), x);
}

double sinh(double x)
{
	double ax = fabs(x), t;

	if (ax < 22) {
		t = expm1(ax);
		return copysign((t + t / (t + 1)) / 2, x);
	}
	t = exp(ax / 2); /* avoids overflow before the product */
	return copysign(t / 2 * t, x);
}

double cosh(double x)
{
	double ax = fabs(x), t;

	if (ax < 22) {
		t = exp(ax);
		return (t + 1 / t) / 2;
	}
	t = exp(ax / 2);
	return t / 2 * t;
}

double tanh(double x)
{
	double t;

	if (isnan(x))
		return x;
	if (fabs(x) > 22)
		return copysign(1.0, x);
	t = expm1(2 * fabs(x));
	return copysign(t / (t + 2), x);
}

double hypot(double x, double y)
{
	double a = fabs(x), b = fabs(y), r;

	if (isinf(a) || isinf(b))
		return HUGE_VAL;
	if (isnan(a) || isnan(b))
		return NAN;
	if (a < b) {
		r = a;
		a = b;
		b = r;
	}
	if (a == 0)
		return 0;
	r = b / a;
	return a * sqrt(1 + r * r);
}

double cbrt(double x)
{
	double ax = fabs(x), t;
	int e, i;

	if (ax == 0 || isnan(x) || isinf(x))
		return x;
	t = frexp(ax, &e); /* ax = t 2^e, t in [0.5, 1) */
	while (e % 3) {
		t *= 2;
		e--;
	}
	/* t in [0.5, 4): a linear first guess, then Newton */
	t = scalbn(0.6 + 0.35 * t, e / 3);
	for (i = 0; i < 8; i++)
		t = t - (t * t * t - ax) / (3 * t * t);
	return copysign(t, x);
}

float fabsf(float x) { return (float)fabs(x); }
float floorf(float x) { return (float)floor(x); }
float ceilf(float x) { return (float)ceil(x); }
float roundf(float x) { return (float)round(x); }
float expf(float x) { return (float)exp(x); }
float logf(float x) { return (float)log(x); }
float powf(float x, float y) { return (float)pow(x, y); }
float sinf(float x) { return (float)sin(x); }
float cosf(float x) { return (float)cos(x); }
float tanf(float x) { return (float)tan(x); }
float atan2f(float y, float x) { return (float)atan2(y, x); }

float sqrtf(float x)
{
	float r;

	__asm__("sqrtss %1, %0" : "=x"(r) : "x"(x));
	return r;
}
