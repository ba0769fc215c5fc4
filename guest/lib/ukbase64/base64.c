/* BASE64_NO_TABLE decodes characters with comparisons instead of a
 * 256-byte reverse table: smaller rodata, more branches. */
#include <ukbase64.h>

static const char alpha_std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alpha_url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#if defined(BASE64_NO_TABLE) && BASE64_NO_TABLE
static int b64_value(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}
#else
/* 0xff marks a byte outside both alphabets; '+' '/' '-' '_' are resolved
 * per alphabet below. */
#define X 0xff
static const uint8_t rev[256] = {
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, 62, X, 62, X, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
	X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
	X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X

static int b64_value(unsigned char c, int url)
{
	/* the table accepts both alphabets' 62/63; reject the other one's */
	if (url ? (c == '+' || c == '/') : (c == '-' || c == '_'))
		return -1;
	return rev[c] == 0xff ? -1 : rev[c];
}
#endif

size_t base64_encoded_len(size_t n, int flags)
{
	if (flags & BASE64_NOPAD)
		return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
	return (n + 2) / 3 * 4;
}

size_t base64_encode(const void *src, size_t n, char *out, int flags)
{
	const uint8_t *p = src;
	const char *a = (flags & BASE64_URL) ? alpha_url : alpha_std;
	size_t i, o = 0;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		if (!(flags & BASE64_NOPAD)) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		if (!(flags & BASE64_NOPAD))
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

long base64_decode(const char *src, size_t n, uint8_t *out, int flags)
{
	int url = flags & BASE64_URL;
	uint32_t acc = 0;
	size_t i, pad = 0, o = 0;
	int bits = 0, digits = 0;

	/* strip padding: at most two '=' and only where a group ends */
	while (n > 0 && src[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (pad && (n + pad) % 4)
		return -1;
	for (i = 0; i < n; i++) {
		int v = b64_value((unsigned char)src[i], url);

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		digits++;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (digits % 4 == 1)
		return -1;
	if (pad && (digits % 4 == 0 || 4 - digits % 4 != (int)pad))
		return -1;
	/* RFC 4648 canonical form: the unused low bits must be zero */
	if (acc != 0)
		return -1;
	return (long)o;
}
