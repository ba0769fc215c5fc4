/* "<chunk> <hexkey> <hexdata>" -> "sha256 sha1 md5 crc32 crc32c hmac",
 * hashing data in chunks of the given size. */
#include "common.h"
#include <ukcrc32.h>
#include <ukmd5.h>
#include <uksha1.h>
#include <uksha256.h>

int main(void)
{
	while (next_line()) {
		char *chunk_s = strtok(line, " "), *key = strtok(NULL, " "), *data = strtok(NULL, " ");
		size_t chunk = (size_t)strtol(chunk_s, NULL, 10), kl = unhex(key), dl = unhex(data), off;
		struct sha256_ctx s2;
		struct sha1_ctx s1;
		struct md5_ctx m5;
		uint8_t d[32];
		uint32_t c = 0, cc = 0;

		sha256_init(&s2);
		sha1_init(&s1);
		md5_init(&m5);
		for (off = 0; off < dl; off += chunk) {
			size_t n = dl - off < chunk ? dl - off : chunk;

			sha256_update(&s2, data + off, n);
			sha1_update(&s1, data + off, n);
			md5_update(&m5, data + off, n);
			c = crc32_update(c, data + off, n);
			cc = crc32c_update(cc, data + off, n);
		}
		sha256_final(&s2, d);
		put_hex(d, 32);
		putchar(' ');
		sha1_final(&s1, d);
		put_hex(d, 20);
		putchar(' ');
		md5_final(&m5, d);
		put_hex(d, 16);
		printf(" %08x %08x ", (unsigned)c, (unsigned)cc);
		sha256_hmac(key, kl, data, dl, d);
		put_hex(d, 32);
		putchar('\n');
	}
	return 0;
}
