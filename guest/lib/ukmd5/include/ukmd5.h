/* ukmd5: MD5 (RFC 1321), for checksums where collisions do not matter. */
#ifndef UKMD5_H
#define UKMD5_H
#include <stddef.h>
#include <stdint.h>

#define MD5_DIGEST_SIZE 16

struct md5_ctx {
	uint32_t state[4];
	uint64_t count;
	uint8_t block[64];
};

void md5_init(struct md5_ctx *ctx);
void md5_update(struct md5_ctx *ctx, const void *data, size_t n);
void md5_final(struct md5_ctx *ctx, uint8_t digest[MD5_DIGEST_SIZE]);
void md5(const void *data, size_t n, uint8_t digest[MD5_DIGEST_SIZE]);

#endif
