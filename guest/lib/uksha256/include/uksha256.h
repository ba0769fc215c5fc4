/* uksha256: SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104). */
#ifndef UKSHA256_H
#define UKSHA256_H
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64

struct sha256_ctx {
	uint32_t state[8];
	uint64_t count; /* bytes hashed so far */
	uint8_t block[SHA256_BLOCK_SIZE];
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t n);
void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_SIZE]);
void sha256(const void *data, size_t n, uint8_t digest[SHA256_DIGEST_SIZE]);
void sha256_hmac(const void *key, size_t keylen, const void *data, size_t n,
		 uint8_t mac[SHA256_DIGEST_SIZE]);

#endif
