/* Three implementations of the compression function, chosen at build time:
 * the default keeps a 64-word schedule and loops over the rounds;
 * SHA256_UNROLL unrolls the rounds eight at a time with rotating variable
 * names; SHA256_SMALL computes the schedule in a 16-word ring to use less
 * stack. All three give the same digests. */
#include <string.h>
#include <uksha256.h>

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define S0(x) (ROR(x, 2) ^ ROR(x, 13) ^ ROR(x, 22))
#define S1(x) (ROR(x, 6) ^ ROR(x, 11) ^ ROR(x, 25))
#define s0(x) (ROR(x, 7) ^ ROR(x, 18) ^ ((x) >> 3))
#define s1(x) (ROR(x, 17) ^ ROR(x, 19) ^ ((x) >> 10))

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#if defined(SHA256_UNROLL) && SHA256_UNROLL
#define ROUND(a, b, c, d, e, f, g, h, i)                                \
	do {                                                            \
		uint32_t t1 = h + S1(e) + CH(e, f, g) + K[i] + W[i];    \
		uint32_t t2 = S0(a) + MAJ(a, b, c);                     \
		d += t1;                                                \
		h = t1 + t2;                                            \
	} while (0)

static void sha256_block(uint32_t st[8], const uint8_t *p)
{
	uint32_t W[64];
	uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
	uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
	int i;

	for (i = 0; i < 16; i++)
		W[i] = load_be32(p + 4 * i);
	for (i = 16; i < 64; i++)
		W[i] = s1(W[i - 2]) + W[i - 7] + s0(W[i - 15]) + W[i - 16];
	for (i = 0; i < 64; i += 8) {
		ROUND(a, b, c, d, e, f, g, h, i + 0);
		ROUND(h, a, b, c, d, e, f, g, i + 1);
		ROUND(g, h, a, b, c, d, e, f, i + 2);
		ROUND(f, g, h, a, b, c, d, e, i + 3);
		ROUND(e, f, g, h, a, b, c, d, i + 4);
		ROUND(d, e, f, g, h, a, b, c, i + 5);
		ROUND(c, d, e, f, g, h, a, b, i + 6);
		ROUND(b, c, d, e, f, g, h, a, i + 7);
	}
	st[0] += a; st[1] += b; st[2] += c; st[3] += d;
	st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}
#else
static void sha256_block(uint32_t st[8], const uint8_t *p)
{
#if defined(SHA256_SMALL) && SHA256_SMALL
	uint32_t W[16];
#define WORD(i) W[(i) & 15]
#else
	uint32_t W[64];
#define WORD(i) W[i]
#endif
	uint32_t v[8];
	int i, j;

	for (j = 0; j < 8; j++)
		v[j] = st[j];
	for (i = 0; i < 64; i++) {
		uint32_t t1, t2;

		if (i < 16)
			WORD(i) = load_be32(p + 4 * i);
		else
			WORD(i) = s1(WORD(i - 2)) + WORD(i - 7) +
				  s0(WORD(i - 15)) + WORD(i - 16);
		t1 = v[7] + S1(v[4]) + CH(v[4], v[5], v[6]) + K[i] + WORD(i);
		t2 = S0(v[0]) + MAJ(v[0], v[1], v[2]);
		for (j = 7; j > 0; j--)
			v[j] = v[j - 1];
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (j = 0; j < 8; j++)
		st[j] += v[j];
#undef WORD
}
#endif

void sha256_init(struct sha256_ctx *ctx)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(ctx->state, iv, sizeof(iv));
	ctx->count = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t used = (size_t)(ctx->count % SHA256_BLOCK_SIZE);

	ctx->count += n;
	if (used) {
		size_t take = SHA256_BLOCK_SIZE - used;

		if (take > n)
			take = n;
		memcpy(ctx->block + used, p, take);
		p += take;
		n -= take;
		if (used + take < SHA256_BLOCK_SIZE)
			return;
		sha256_block(ctx->state, ctx->block);
	}
	while (n >= SHA256_BLOCK_SIZE) {
		sha256_block(ctx->state, p);
		p += SHA256_BLOCK_SIZE;
		n -= SHA256_BLOCK_SIZE;
	}
	if (n)
		memcpy(ctx->block, p, n);
}

void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_SIZE])
{
	uint64_t bits = ctx->count * 8;
	size_t used = (size_t)(ctx->count % SHA256_BLOCK_SIZE);
	int i;

	ctx->block[used++] = 0x80;
	if (used > 56) {
		memset(ctx->block + used, 0, SHA256_BLOCK_SIZE - used);
		sha256_block(ctx->state, ctx->block);
		used = 0;
	}
	memset(ctx->block + used, 0, 56 - used);
	for (i = 0; i < 8; i++)
		ctx->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_block(ctx->state, ctx->block);
	for (i = 0; i < 8; i++)
		store_be32(digest + 4 * i, ctx->state[i]);
	memset(ctx, 0, sizeof(*ctx));
}

void sha256(const void *data, size_t n, uint8_t digest[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, data, n);
	sha256_final(&ctx, digest);
}

void sha256_hmac(const void *key, size_t keylen, const void *data, size_t n,
		 uint8_t mac[SHA256_DIGEST_SIZE])
{
	uint8_t k[SHA256_BLOCK_SIZE], pad[SHA256_BLOCK_SIZE];
	uint8_t inner[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	int i;

	memset(k, 0, sizeof(k));
	if (keylen > SHA256_BLOCK_SIZE)
		sha256(key, keylen, k);
	else if (keylen)
		memcpy(k, key, keylen);
	for (i = 0; i < SHA256_BLOCK_SIZE; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_init(&ctx);
	sha256_update(&ctx, pad, sizeof(pad));
	sha256_update(&ctx, data, n);
	sha256_final(&ctx, inner);
	for (i = 0; i < SHA256_BLOCK_SIZE; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_init(&ctx);
	sha256_update(&ctx, pad, sizeof(pad));
	sha256_update(&ctx, inner, sizeof(inner));
	sha256_final(&ctx, mac);
}
