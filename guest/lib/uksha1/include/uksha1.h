/* uksha1: SHA-1 (FIPS 180-4), for legacy protocols and content ids. */
#ifndef UKSHA1_H
#define UKSHA1_H
#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_SIZE 20

struct sha1_ctx {
	uint32_t state[5];
	uint64_t count;
	uint8_t block[64];
};

void sha1_init(struct sha1_ctx *ctx);
void sha1_update(struct sha1_ctx *ctx, const void *data, size_t n);
void sha1_final(struct sha1_ctx *ctx, uint8_t digest[SHA1_DIGEST_SIZE]);
void sha1(const void *data, size_t n, uint8_t digest[SHA1_DIGEST_SIZE]);

#endif
