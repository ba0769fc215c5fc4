#include <string.h>
#include <ukmd5.h>

static const uint32_t T[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
	0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
	0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
	0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
	0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
	0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const uint8_t R[64] = {
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};

static void md5_block(uint32_t st[4], const uint8_t *p)
{
	uint32_t m[16], a = st[0], b = st[1], c = st[2], d = st[3];
	int i;

	for (i = 0; i < 16; i++)
		m[i] = p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
		       (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
	for (i = 0; i < 64; i++) {
		uint32_t f, t;
		int g;

		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) & 15;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) & 15;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) & 15;
		}
		t = a + f + T[i] + m[g];
		a = d;
		d = c;
		c = b;
		b = b + ((t << R[i]) | (t >> (32 - R[i])));
	}
	st[0] += a; st[1] += b; st[2] += c; st[3] += d;
}

void md5_init(struct md5_ctx *ctx)
{
	ctx->state[0] = 0x67452301;
	ctx->state[1] = 0xefcdab89;
	ctx->state[2] = 0x98badcfe;
	ctx->state[3] = 0x10325476;
	ctx->count = 0;
}

void md5_update(struct md5_ctx *ctx, const void *data, size_t n)
{
	const uint8_t *p = data;

	while (n) {
		size_t used = (size_t)(ctx->count % 64), take = 64 - used;

		if (take > n)
			take = n;
		if (used == 0 && n >= 64) {
			md5_block(ctx->state, p);
			take = 64;
		} else {
			memcpy(ctx->block + used, p, take);
			if (used + take == 64)
				md5_block(ctx->state, ctx->block);
		}
		ctx->count += take;
		p += take;
		n -= take;
	}
}

void md5_final(struct md5_ctx *ctx, uint8_t digest[MD5_DIGEST_SIZE])
{
	uint64_t bits = ctx->count * 8;
	uint8_t pad[72];
	size_t used = (size_t)(ctx->count % 64);
	size_t padlen = used < 56 ? 56 - used : 120 - used;
	int i;

	memset(pad, 0, sizeof(pad));
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (8 * i));
	md5_update(ctx, pad, padlen + 8);
	for (i = 0; i < 4; i++) {
		digest[4 * i] = (uint8_t)ctx->state[i];
		digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 8);
		digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 16);
		digest[4 * i + 3] = (uint8_t)(ctx->state[i] >> 24);
	}
}

void md5(const void *data, size_t n, uint8_t digest[MD5_DIGEST_SIZE])
{
	struct md5_ctx ctx;

	md5_init(&ctx);
	md5_update(&ctx, data, n);
	md5_final(&ctx, digest);
}
