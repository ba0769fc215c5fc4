/* "E <hexdata>" -> "<std> <url-nopad> <decoded std hex> <decoded url hex>";
 * "D <text>" -> decoded hex with the standard alphabet, or "err". */
#include "common.h"
#include <ukbase64.h>

int main(void)
{
	while (next_line()) {
		char *data = line + 2;

		if (line[0] == 'E') {
			size_t n = unhex(data);
			char *a = malloc(base64_encoded_len(n, 0) + 1);
			char *b = malloc(base64_encoded_len(n, BASE64_URL | BASE64_NOPAD) + 1);
			uint8_t *back = malloc(n + 3);
			long k;

			base64_encode(data, n, a, 0);
			base64_encode(data, n, b, BASE64_URL | BASE64_NOPAD);
			printf("%s %s ", a[0] ? a : "-", b[0] ? b : "-");
			k = base64_decode(a, strlen(a), back, 0);
			if (k < 0)
				fputs("err", stdout);
			else
				put_hex(back, (size_t)k);
			putchar(' ');
			k = base64_decode(b, strlen(b), back, BASE64_URL);
			if (k < 0)
				fputs("err", stdout);
			else
				put_hex(back, (size_t)k);
			putchar('\n');
			free(a);
			free(b);
			free(back);
		} else {
			size_t n = strlen(data);
			uint8_t *out = malloc(n + 3);
			long k = base64_decode(data, n, out, 0);

			if (k < 0)
				puts("err");
			else {
				put_hex(out, (size_t)k);
				putchar('\n');
			}
			free(out);
		}
	}
	return 0;
}
