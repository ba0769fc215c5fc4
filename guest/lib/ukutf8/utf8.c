#include <string.h>
#include <ukutf8.h>

int utf8_decode(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t c, min;
	int len, i;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		goto bad;
	}
	if ((size_t)len > n)
		goto bad;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto bad;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = UTF8_REPLACEMENT;
	return -1;
}

int utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp >= 0xd800 && cp <= 0xdfff)
		return -1;
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	if (cp <= 0x10ffff) {
		out[0] = (char)(0xf0 | cp >> 18);
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		return 4;
	}
	return -1;
}

int utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	uint32_t cp;

	while (i < n) {
		int l = utf8_decode(s + i, n - i, &cp);

		if (l < 0)
			return 0;
		i += (size_t)l;
	}
	return 1;
}

size_t utf8_count(const char *s, size_t n)
{
	size_t i = 0, count = 0;
	uint32_t cp;

	while (i < n) {
		int l = utf8_decode(s + i, n - i, &cp);

		i += l < 0 ? 1 : (size_t)l;
		count++;
	}
	return count;
}

uint32_t utf8_toupper(uint32_t c)
{
	if (c >= 'a' && c <= 'z')
		return c - 32;
	if ((c >= 0xe0 && c <= 0xfe && c != 0xf7))
		return c - 32;
	if (c == 0xff)
		return 0x178;
	if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 &&
	    c != 0x149 && c != 0x17f) {
		/* Latin Extended-A pairs: even upper, odd lower, except the
		 * ranges 0x139-0x148 and 0x179-0x17e, which are odd upper */
		int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);

		if (odd_upper ? !(c & 1) : (c & 1))
			return c - 1;
		return c;
	}
	if (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2)
		return c - 32;
	if (c == 0x3c2)
		return 0x3a3; /* final sigma */
	/* Greek with tonos */
	if (c == 0x3ac)
		return 0x386;
	if (c >= 0x3ad && c <= 0x3af)
		return c - 37;
	if (c == 0x3cc)
		return 0x38c;
	if (c == 0x3cd || c == 0x3ce)
		return c - 63;
	if (c >= 0x430 && c <= 0x44f)
		return c - 32;
	if (c >= 0x450 && c <= 0x45f)
		return c - 80;
	return c;
}

uint32_t utf8_tolower(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 32;
	if (c == 0x178)
		return 0xff;
	if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 &&
	    c != 0x149 && c != 0x17f) {
		int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);

		if (odd_upper ? (c & 1) : !(c & 1))
			return c + 1;
		return c;
	}
	if (c >= 0x391 && c <= 0x3ab && c != 0x3a2)
		return c + 32;
	if (c == 0x386)
		return 0x3ac;
	if (c >= 0x388 && c <= 0x38a)
		return c + 37;
	if (c == 0x38c)
		return 0x3cc;
	if (c == 0x38e || c == 0x38f)
		return c + 63;
	if (c >= 0x410 && c <= 0x42f)
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

static size_t map(const char *s, size_t n, char *out, uint32_t (*f)(uint32_t))
{
	size_t i = 0, o = 0;
	uint32_t cp;

	while (i < n) {
		int l = utf8_decode(s + i, n - i, &cp);

		i += l < 0 ? 1 : (size_t)l;
		o += (size_t)utf8_encode(f(cp), out + o);
	}
	out[o] = '\0';
	return o;
}

size_t utf8_upper(const char *s, size_t n, char *out)
{
	return map(s, n, out, utf8_toupper);
}

size_t utf8_lower(const char *s, size_t n, char *out)
{
	return map(s, n, out, utf8_tolower);
}

size_t utf8_reverse(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0, total;
	uint32_t cp;
	char tmp[4];

	/* first pass: the output length (an invalid byte becomes 3 bytes) */
	while (i < n) {
		int l = utf8_decode(s + i, n - i, &cp);

		o += l < 0 ? 3 : (size_t)l;
		i += l < 0 ? 1 : (size_t)l;
	}
	total = o;
	out[total] = '\0';
	for (i = 0; i < n;) {
		int l = utf8_decode(s + i, n - i, &cp);
		int e = utf8_encode(cp, tmp);

		o -= (size_t)e;
		memcpy(out + o, tmp, (size_t)e);
		i += l < 0 ? 1 : (size_t)l;
	}
	return total;
}
