#include <string.h>
#include <uksha1.h>

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t st[5], const uint8_t *p)
{
	uint32_t w[80], a, b, c, d, e;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 80; i++)
		w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = st[0]; b = st[1]; c = st[2]; d = st[3]; e = st[4];
	for (i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = ROL(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = ROL(b, 30);
		b = a;
		a = t;
	}
	st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e;
}

void sha1_init(struct sha1_ctx *ctx)
{
	ctx->state[0] = 0x67452301;
	ctx->state[1] = 0xefcdab89;
	ctx->state[2] = 0x98badcfe;
	ctx->state[3] = 0x10325476;
	ctx->state[4] = 0xc3d2e1f0;
	ctx->count = 0;
}

void sha1_update(struct sha1_ctx *ctx, const void *data, size_t n)
{
	const uint8_t *p = data;

	while (n) {
		size_t used = (size_t)(ctx->count % 64), take = 64 - used;

		if (take > n)
			take = n;
		if (used == 0 && n >= 64) {
			sha1_block(ctx->state, p);
			take = 64;
		} else {
			memcpy(ctx->block + used, p, take);
			if (used + take == 64)
				sha1_block(ctx->state, ctx->block);
		}
		ctx->count += take;
		p += take;
		n -= take;
	}
}

void sha1_final(struct sha1_ctx *ctx, uint8_t digest[SHA1_DIGEST_SIZE])
{
	uint64_t bits = ctx->count * 8;
	uint8_t pad[72];
	size_t used = (size_t)(ctx->count % 64);
	size_t padlen = used < 56 ? 56 - used : 120 - used;
	int i;

	memset(pad, 0, sizeof(pad));
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_update(ctx, pad, padlen + 8);
	for (i = 0; i < 5; i++) {
		digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
		digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
		digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
		digest[4 * i + 3] = (uint8_t)ctx->state[i];
	}
}

void sha1(const void *data, size_t n, uint8_t digest[SHA1_DIGEST_SIZE])
{
	struct sha1_ctx ctx;

	sha1_init(&ctx);
	sha1_update(&ctx, data, n);
	sha1_final(&ctx, digest);
}
