/* base64: encodes the input (standard and URL-safe unpadded alphabets),
 * decodes both back and checks they round-trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukbase64.h>

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1), *std, *url;
	uint8_t *back;
	size_t n;
	long b1, b2;
	int ok;

	if (!text)
		return 1;
	n = strlen(text);
	std = malloc(base64_encoded_len(n, 0) + 1);
	url = malloc(base64_encoded_len(n, BASE64_URL | BASE64_NOPAD) + 1);
	back = malloc(n + 4);
	if (!std || !url || !back)
		return 1;
	base64_encode(text, n, std, 0);
	base64_encode(text, n, url, BASE64_URL | BASE64_NOPAD);
	b1 = base64_decode(std, strlen(std), back, 0);
	ok = b1 == (long)n && memcmp(back, text, n) == 0;
	b2 = base64_decode(url, strlen(url), back, BASE64_URL);
	ok = ok && b2 == (long)n && memcmp(back, text, n) == 0;
	printf("%s %s %s\n", std, url, ok ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(std);
	free(url);
	free(back);
	return ok ? 0 : 1;
}
