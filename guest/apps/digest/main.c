/* digest: "<algo> <text>" with algo md5, sha1, sha256, crc32c, or
 * hmac-<key> (HMAC-SHA-256 keyed with <key>); prints "<algo> <hex>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukcrc32.h>
#include <ukhex.h>
#include <ukmd5.h>
#include <uksha1.h>
#include <uksha256.h>

int main(int argc, char **argv)
{
	uint8_t d[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	size_t dl;
	char *text;
	const char *algo;

	if (argc < 2) {
		printf("usage: digest md5|sha1|sha256|crc32c|hmac-KEY TEXT\n");
		return 2;
	}
	algo = argv[1];
	text = args_join(argc, argv, 2);
	if (!text)
		return 1;
	if (strcmp(algo, "md5") == 0) {
		md5(text, strlen(text), d);
		dl = MD5_DIGEST_SIZE;
	} else if (strcmp(algo, "sha1") == 0) {
		sha1(text, strlen(text), d);
		dl = SHA1_DIGEST_SIZE;
	} else if (strcmp(algo, "sha256") == 0) {
		sha256(text, strlen(text), d);
		dl = SHA256_DIGEST_SIZE;
	} else if (strcmp(algo, "crc32c") == 0) {
		uint32_t c = crc32c(text, strlen(text));

		d[0] = (uint8_t)(c >> 24);
		d[1] = (uint8_t)(c >> 16);
		d[2] = (uint8_t)(c >> 8);
		d[3] = (uint8_t)c;
		dl = 4;
	} else if (strncmp(algo, "hmac-", 5) == 0) {
		sha256_hmac(algo + 5, strlen(algo + 5), text, strlen(text), d);
		dl = SHA256_DIGEST_SIZE;
	} else {
		printf("digest: unknown algorithm %s\n", algo);
		free(text);
		return 2;
	}
	hex_encode(d, dl, hex);
	printf("%s %s\n", algo, hex);
	free(text);
	return 0;
}
