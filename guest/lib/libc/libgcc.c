/* The few libgcc helpers gcc emits calls to for plain C on x86-64
 * (population count without -mpopcnt, 128-bit division), so that no link
 * needs libgcc.a. */
#include <stdint.h>

int __popcountdi2(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (int)((x * 0x0101010101010101ULL) >> 56);
}

int __popcountsi2(uint32_t x)
{
	return __popcountdi2(x);
}

/* Shift-subtract division; quotient and remainder of n / d, d != 0. */
unsigned __int128 __udivmodti4(unsigned __int128 n, unsigned __int128 d, unsigned __int128 *rem)
{
	if (d > n) {
		if (rem)
			*rem = n;
		return 0;
	}
	if (!(d >> 64) && !(n >> 64)) {
		uint64_t q = (uint64_t)n / (uint64_t)d;
		if (rem)
			*rem = (uint64_t)n % (uint64_t)d;
		return q;
	}
	/* Align d's top bit with n's, then subtract down. */
	int nb = (n >> 64) ? 128 - __builtin_clzll((uint64_t)(n >> 64))
			   : 64 - __builtin_clzll((uint64_t)n);
	int db = (d >> 64) ? 128 - __builtin_clzll((uint64_t)(d >> 64))
			   : 64 - __builtin_clzll((uint64_t)d);
	int s = nb - db;
	unsigned __int128 q = 0, dd = d << s;
	for (int i = s; i >= 0; i--) {
		if (n >= dd) {
			n -= dd;
			q |= (unsigned __int128)1 << i;
		}
		dd >>= 1;
	}
	if (rem)
		*rem = n;
	return q;
}

unsigned __int128 __udivti3(unsigned __int128 n, unsigned __int128 d)
{
	return __udivmodti4(n, d, 0);
}

unsigned __int128 __umodti3(unsigned __int128 n, unsigned __int128 d)
{
	unsigned __int128 r;
	__udivmodti4(n, d, &r);
	return r;
}

__int128 __divti3(__int128 n, __int128 d)
{
	int neg = (n < 0) != (d < 0);
	unsigned __int128 un = n < 0 ? -(unsigned __int128)n : (unsigned __int128)n;
	unsigned __int128 ud = d < 0 ? -(unsigned __int128)d : (unsigned __int128)d;
	unsigned __int128 q = __udivmodti4(un, ud, 0);
	return neg ? -(__int128)q : (__int128)q;
}

__int128 __modti3(__int128 n, __int128 d)
{
	unsigned __int128 un = n < 0 ? -(unsigned __int128)n : (unsigned __int128)n;
	unsigned __int128 ud = d < 0 ? -(unsigned __int128)d : (unsigned __int128)d;
	unsigned __int128 r;
	__udivmodti4(un, ud, &r);
	return n < 0 ? -(__int128)r : (__int128)r;
}
