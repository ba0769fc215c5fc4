/* gzip: "<text>": builds an 8 KiB buffer from the text (repeated with a
 * running counter), compresses it with zlib (at levels 1 and 9, as compress2
 * does, and a raw deflate stream), inflates each back and verifies; prints the
 * sizes, CRC-32 and Adler-32. Uses Debian's libz.a as shipped.
 *
 * The two deflate streams (zlib-wrapped at memLevel 8, as compress2 makes
 * it; raw at memLevel 9) do not depend on the request: they are set up in the
 * init phase, before the ready point, so their cleared hash tables are part
 * of a snapshot and the pages of them the request does not write are never
 * touched. The wrapped one compresses at level 1, is reset and switched to
 * level 9 (deflateParams right after deflateReset: the same state
 * deflateInit at level 9 gives) and compresses again: what compress2 does
 * at each level (same output). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
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

/* On the heap, so that using them writes no page of the app's own data:
 * only the pointers are static, set in the init phase. */
static z_stream *wrapped, *raw_stream;

static z_stream *deflate_new(int level, int window_bits, int mem_level)
{
	z_stream *s = calloc(1, sizeof *s);

	if (s && deflateInit2(s, level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(s);
		s = NULL;
	}
	return s;
}

static void gzip_init(void)
{
	if (!wrapped)
		wrapped = deflate_new(1, 15, 8);
	if (!raw_stream)
		raw_stream = deflate_new(9, -15, 9);
}
UK_INIT_PHASE(gzip_init);

/* deflate_all compresses in into out with s (fresh, or just reset) in one
 * call, as compress2 does; returns the compressed size, or 0. */
static uLongf deflate_all(z_stream *s, const unsigned char *in, size_t n, unsigned char *out,
			  uLong cap)
{
	s->next_in = (unsigned char *)in;
	s->avail_in = (uInt)n;
	s->next_out = out;
	s->avail_out = (uInt)cap;
	if (deflate(s, Z_FINISH) != Z_STREAM_END)
		return 0;
	return s->total_out;
}

/* raw_roundtrip deflates with no zlib header (windowBits -15) and
 * inflates back; returns the compressed size or -1. */
static long raw_roundtrip(const unsigned char *in, size_t n, unsigned char *tmp,
			  size_t cap, unsigned char *back)
{
	z_stream s;
	long clen;

	if (!raw_stream)
		return -1;
	clen = (long)deflate_all(raw_stream, in, n, tmp, cap);
	deflateEnd(raw_stream);
	if (clen == 0)
		return -1;
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

	gzip_init();
	comp = malloc(bound);
	if (!text || !buf || !back || !comp || !wrapped)
		return 1;
	n = fill((char *)buf, text);
	clen1 = deflate_all(wrapped, buf, n, comp, bound);
	ok = clen1 > 0;
	dlen = SIZE;
	ok = ok && uncompress(back, &dlen, comp, clen1) == Z_OK && dlen == n &&
	     memcmp(back, buf, n) == 0;
	clen9 = 0;
	if (deflateReset(wrapped) == Z_OK && deflateParams(wrapped, 9, Z_DEFAULT_STRATEGY) == Z_OK)
		clen9 = deflate_all(wrapped, buf, n, comp, bound);
	deflateEnd(wrapped);
	ok = ok && clen9 > 0;
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
