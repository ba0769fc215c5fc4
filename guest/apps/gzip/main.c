/* gzip: "<text>": builds an 8 KiB buffer from the text (repeated with a
 * running counter), compresses it with zlib (compress2 at levels 1 and 9,
 * and a raw deflate stream), inflates each back and verifies; prints the
 * sizes, CRC-32 and Adler-32. Uses Debian's libz.a as shipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <zlib.h>

#define SIZE 8192

static size_t fill(char *buf, const char *text)
{
	size_t n = 0, tl = strlen(text);
	unsigned counter = 0;

	while (n < SIZE) {
		int k = snprintf(buf + n, 64, "%u:", counter++);

		n += (size_t)k;
		if (n + tl + 1 > SIZE)
			break;
		memcpy(buf + n, text, tl);
		n += tl;
		buf[n++] = ' ';
	}
	return n > SIZE ? SIZE : n;
}

/* raw_roundtrip deflates with no zlib header (windowBits -15) and
 * inflates back; returns the compressed size or -1. */
static long raw_roundtrip(const unsigned char *in, size_t n, unsigned char *tmp,
			  size_t cap, unsigned char *back)
{
	z_stream s;
	long clen;

	memset(&s, 0, sizeof(s));
	if (deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	s.next_in = (unsigned char *)in;
	s.avail_in = (uInt)n;
	s.next_out = tmp;
	s.avail_out = (uInt)cap;
	if (deflate(&s, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&s);
		return -1;
	}
	clen = (long)s.total_out;
	deflateEnd(&s);
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, -15) != Z_OK)
		return -1;
	s.next_in = tmp;
	s.avail_in = (uInt)clen;
	s.next_out = back;
	s.avail_out = SIZE;
	if (inflate(&s, Z_FINISH) != Z_STREAM_END || s.total_out != n ||
	    memcmp(back, in, n) != 0) {
		inflateEnd(&s);
		return -1;
	}
	inflateEnd(&s);
	return clen;
}

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	unsigned char *buf = malloc(SIZE + 64), *comp, *back = malloc(SIZE);
	uLongf clen1, clen9, dlen;
	uLong bound = compressBound(SIZE);
	long raw;
	size_t n;
	int ok;

	comp = malloc(bound);
	if (!text || !buf || !back || !comp)
		return 1;
	n = fill((char *)buf, text);
	clen1 = bound;
	ok = compress2(comp, &clen1, buf, n, 1) == Z_OK;
	dlen = SIZE;
	ok = ok && uncompress(back, &dlen, comp, clen1) == Z_OK && dlen == n &&
	     memcmp(back, buf, n) == 0;
	clen9 = bound;
	ok = ok && compress2(comp, &clen9, buf, n, 9) == Z_OK;
	dlen = SIZE;
	ok = ok && uncompress(back, &dlen, comp, clen9) == Z_OK && dlen == n &&
	     memcmp(back, buf, n) == 0;
	raw = raw_roundtrip(buf, n, comp, bound, back);
	printf("zlib %s in=%zu z1=%lu z9=%lu raw9=%ld crc=%08lx adler=%08lx %s\n",
	       zlibVersion(), n, (unsigned long)clen1, (unsigned long)clen9, raw,
	       crc32(0, buf, (uInt)n), adler32(1, buf, (uInt)n),
	       ok && raw > 0 ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(buf);
	free(back);
	free(comp);
	return 0;
}
