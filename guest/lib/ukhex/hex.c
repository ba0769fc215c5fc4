#include <ukhex.h>

static const char hex_digits[] = "0123456789abcdef";

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void hex_encode(const void *src, size_t n, char *out)
{
	const uint8_t *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex_digits[p[i] >> 4];
		out[2 * i + 1] = hex_digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

long hex_decode(const char *src, size_t n, uint8_t *out)
{
	size_t i;

	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		int hi = hex_value(src[i]), lo = hex_value(src[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

void hex_dump(const void *src, size_t n, char *out)
{
	const uint8_t *p = src;
	size_t i;

	if (n == 0) {
		out[0] = '\0';
		return;
	}
	for (i = 0; i < n; i++) {
		out[3 * i] = hex_digits[p[i] >> 4];
		out[3 * i + 1] = hex_digits[p[i] & 15];
		out[3 * i + 2] = ' ';
	}
	out[3 * n - 1] = '\0';
}
