/* ukrand. Default: xoshiro256** (Blackman & Vigna), its state filled by
 * splitmix64 from the seed. UKRAND_CHACHA20: the ChaCha20 keystream (RFC
 * 8439 block function) under a key expanded from the seed the same way,
 * nonce 0, counter from 0. The generator seeds itself from the boot info
 * on first use (after the ready point: a snapshot's instances each get
 * their own seed), so constructors may already draw numbers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uk/plat.h>
#include <uk/random.h>

static int seeded;

/* The exit code of a draw before the ready point: abort()'s (ukboot). */
#define UKRAND_EXIT_EARLY 134

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#ifndef UKRAND_CHACHA20

static uint64_t s[4];

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void uk_random_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		s[i] = splitmix64(&seed);
	seeded = 1;
}

static uint64_t next(void)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

#else /* UKRAND_CHACHA20 */

static uint32_t key[8];
static uint32_t counter;
static uint32_t block[16];
static int used = 16; /* 32-bit words of block already handed out */

#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d) \
	(a += b, d ^= a, d = ROTL32(d, 16), c += d, b ^= c, b = ROTL32(b, 12), \
	 a += b, d ^= a, d = ROTL32(d, 8), c += d, b ^= c, b = ROTL32(b, 7))

/* The ChaCha20 block function of RFC 8439, section 2.3. */
void ukrand_chacha20_block(const uint32_t k[8], uint32_t ctr, const uint32_t nonce[3],
			   uint32_t out[16])
{
	uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, k[0], k[1], k[2],
			  k[3], k[4], k[5], k[6], k[7], ctr, nonce[0], nonce[1], nonce[2]};
	uint32_t in[16];
	memcpy(in, x, sizeof in);
	for (int i = 0; i < 10; i++) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++)
		out[i] = x[i] + in[i];
}

void uk_random_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		uint64_t v = splitmix64(&seed);
		key[2 * i] = (uint32_t)v;
		key[2 * i + 1] = (uint32_t)(v >> 32);
	}
	counter = 0;
	used = 16;
	seeded = 1;
}

static uint32_t next32(void)
{
	if (used == 16) {
		static const uint32_t nonce[3];
		ukrand_chacha20_block(key, counter++, nonce, block);
		used = 0;
	}
	return block[used++];
}

static uint64_t next(void)
{
	uint64_t lo = next32();
	return lo | (uint64_t)next32() << 32;
}

#endif /* UKRAND_CHACHA20 */

static void ensure_seeded(void)
{
	if (!seeded) {
		/* Before the ready point (the init phase) the seed would be the
		 * snapshot boot's, the same in every instance restored from it. */
		if (!ukplat_is_ready()) {
			static const char msg[] = "ukrand: random numbers asked for before the ready point (the init phase): they would be shared by every instance of a snapshot\n";
			ukplat_console_write(msg, sizeof msg - 1);
			ukplat_exit(UKRAND_EXIT_EARLY);
		}
		/* The seed is the monitor's (host CSPRNG, independent of the
		 * canary and of every base); taken once and cleared, so the
		 * boot info keeps no copy of it. */
		volatile struct uk_bootinfo *bi = (volatile struct uk_bootinfo *)ukplat_bootinfo();
		uk_random_seed(bi ? bi->seed : 0);
		if (bi)
			bi->seed = 0;
	}
}

uint64_t uk_random_u64(void)
{
	ensure_seeded();
	return next();
}

uint32_t uk_random_u32(void)
{
	return (uint32_t)(uk_random_u64() >> 32);
}

uint64_t uk_random_below(uint64_t n)
{
	if (!n)
		return 0;
	/* Rejection: draw until the value falls below the largest multiple
	 * of n that fits in 64 bits. */
	uint64_t limit = -n % n; /* 2^64 mod n */
	for (;;) {
		uint64_t r = uk_random_u64();
		if (r >= limit)
			return r % n;
	}
}

void uk_random_fill(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n >= 8) {
		uint64_t v = uk_random_u64();
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = uk_random_u64();
		memcpy(p, &v, n);
	}
}
