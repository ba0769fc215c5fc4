/* sha256: the SHA-256 digest of the input text, in hex. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukhex.h>
#include <uksha256.h>

int main(int argc, char **argv)
{
	uint8_t digest[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	char *text = args_join(argc, argv, 1);

	if (!text)
		return 1;
	sha256(text, strlen(text), digest);
	hex_encode(digest, sizeof(digest), hex);
	printf("%s\n", hex);
	free(text);
	return 0;
}
