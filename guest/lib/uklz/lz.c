/* LZ_WORD_COPY: copy matches and compare candidates 8 bytes at a time
 * (unaligned loads through memcpy) instead of byte by byte. The output is
 * the same either way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uklz.h>

#define MIN_MATCH 4
#define HASH_BITS 14
/* Table entries hold a position plus one: 0, what calloc gives, is "none",
 * so the tables need no filling and their pages nothing hashes to stay
 * untouched (a 64 KiB + 128 KiB pair per compression otherwise). */
#define NO_POS 0

size_t lz_bound(size_t n)
{
	/* literals plus a varint per 2^7 of them, plus the header */
	return n + n / 64 + 32;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t i = 0;

	while (v >= 0x80) {
		p[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[i++] = (uint8_t)v;
	return i;
}

static int get_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;
	int shift = 0;

	while (*pos < n && shift < 64) {
		uint8_t b = p[(*pos)++];

		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
		shift += 7;
	}
	return -1;
}

static uint32_t hash4(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;

	return (v * 2654435761u) >> (32 - HASH_BITS);
}

static size_t match_len(const uint8_t *a, const uint8_t *b, size_t max)
{
	size_t n = 0;

#if defined(LZ_WORD_COPY) && LZ_WORD_COPY
	while (n + 8 <= max) {
		uint64_t x, y;

		memcpy(&x, a + n, 8);
		memcpy(&y, b + n, 8);
		if (x != y)
			return n + (size_t)(__builtin_ctzll(x ^ y) >> 3);
		n += 8;
	}
#endif
	while (n < max && a[n] == b[n])
		n++;
	return n;
}

struct lzc {
	uint32_t *head;
	uint32_t *prev;
	int chain;
};

static void insert(struct lzc *c, const uint8_t *src, size_t i)
{
	uint32_t h = hash4(src + i);

	c->prev[i % LZ_WINDOW] = c->head[h];
	c->head[h] = (uint32_t)i + 1;
}

/* best_match finds the longest earlier match at i (ties: the nearest). */
static size_t best_match(struct lzc *c, const uint8_t *src, size_t n, size_t i,
			 size_t *off)
{
	uint32_t slot = c->head[hash4(src + i)];
	size_t best = 0, max = n - i;
	int tries = c->chain;

	while (slot != NO_POS && tries-- > 0) {
		uint32_t cand = slot - 1;
		size_t d = i - cand, l;

		if (d == 0 || d > LZ_WINDOW - 1)
			break;
		l = match_len(src + cand, src + i, max);
		/* a match must be shorter encoded than as literals, or
		 * lz_bound would not hold: far offsets need longer matches */
		if (l > best && l >= (size_t)(MIN_MATCH + (d > 128) + (d > 16384))) {
			best = l;
			*off = d;
			if (l == max)
				break;
		}
		{
			uint32_t nx = c->prev[cand % LZ_WINDOW];

			/* chains only go backwards; a slot reused by a newer
			 * position ends the chain */
			if (nx != NO_POS && nx - 1 >= cand)
				break;
			slot = nx;
		}
	}
	return best;
}

long lz_compress(const void *srcv, size_t n, void *dstv, size_t cap, int level)
{
	const uint8_t *src = srcv;
	uint8_t *dst = dstv;
	struct lzc c;
	size_t i = 0, lit = 0, o, k;
	int lazy;

	if (level < LZ_LEVEL_MIN)
		level = LZ_LEVEL_MIN;
	if (level > LZ_LEVEL_MAX)
		level = LZ_LEVEL_MAX;
	c.chain = 1 << (level - 1);
	lazy = level >= 5;
	if (cap < lz_bound(n))
		return -1;
	c.head = calloc((size_t)1 << HASH_BITS, sizeof(uint32_t));
	c.prev = calloc(LZ_WINDOW, sizeof(uint32_t));
	if (!c.head || !c.prev) {
		free(c.head);
		free(c.prev);
		return -1;
	}
	o = put_varint(dst, n);
	while (i + MIN_MATCH <= n) {
		size_t off = 0, len = best_match(&c, src, n, i, &off), from = i;

		if (!len) {
			insert(&c, src, i);
			lit++;
			i++;
			continue;
		}
		if (lazy && i + 1 + MIN_MATCH <= n) {
			size_t off2 = 0, len2;

			insert(&c, src, i);
			from = i + 1;
			len2 = best_match(&c, src, n, i + 1, &off2);
			if (len2 > len) {
				/* a longer match starts one byte later: emit
				 * src[i] as a literal and take that one */
				lit++;
				i++;
				len = len2;
				off = off2;
			}
		}
		o += put_varint(dst + o, lit);
		memcpy(dst + o, src + i - lit, lit);
		o += lit;
		lit = 0;
		o += put_varint(dst + o, len - MIN_MATCH);
		o += put_varint(dst + o, off - 1);
		for (k = from; k < i + len; k++)
			if (k + MIN_MATCH <= n)
				insert(&c, src, k);
		i += len;
	}
	lit += n - i;
	if (lit || n == 0) {
		o += put_varint(dst + o, lit);
		memcpy(dst + o, src + n - lit, lit);
		o += lit;
	}
	free(c.head);
	free(c.prev);
	return (long)o;
}

long lz_decompressed_size(const void *src, size_t n)
{
	size_t pos = 0;
	uint64_t len;

	if (get_varint(src, n, &pos, &len) || len > (uint64_t)0x7fffffffffffffffull)
		return -1;
	return (long)len;
}

long lz_decompress(const void *srcv, size_t n, void *dstv, size_t cap)
{
	const uint8_t *src = srcv;
	uint8_t *dst = dstv;
	size_t pos = 0, o = 0;
	uint64_t total, lit, mlen, off;

	if (get_varint(src, n, &pos, &total) || total > cap)
		return -1;
	while (o < total) {
		if (get_varint(src, n, &pos, &lit) || lit > total - o || lit > n - pos)
			return -1;
		memcpy(dst + o, src + pos, (size_t)lit);
		pos += (size_t)lit;
		o += (size_t)lit;
		if (o == total)
			break;
		if (get_varint(src, n, &pos, &mlen) || get_varint(src, n, &pos, &off))
			return -1;
		mlen += MIN_MATCH;
		off += 1;
		if (off > o || mlen > total - o)
			return -1;
#if defined(LZ_WORD_COPY) && LZ_WORD_COPY
		if (off >= 8) {
			size_t k = 0;

			/* 8-byte steps never read bytes this copy has yet to write */
			for (; k + 8 <= mlen; k += 8)
				memcpy(dst + o + k, dst + o + k - off, 8);
			for (; k < mlen; k++)
				dst[o + k] = dst[o + k - off];
			o += (size_t)mlen;
			continue;
		}
#endif
		while (mlen--) {
			dst[o] = dst[o - off];
			o++;
		}
	}
	if (pos != n)
		return -1; /* trailing garbage */
	return (long)o;
}
