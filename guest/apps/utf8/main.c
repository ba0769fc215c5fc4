/* utf8: code points, bytes and validity of the input, then the input
 * upper-cased and reversed by code point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukutf8.h>

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1), *up, *rev;
	size_t n;

	if (!text)
		return 1;
	n = strlen(text);
	up = malloc(3 * n + 1);
	rev = malloc(3 * n + 1);
	if (!up || !rev)
		return 1;
	utf8_upper(text, n, up);
	utf8_reverse(text, n, rev);
	printf("chars=%zu bytes=%zu valid=%s upper=%s reversed=%s\n", utf8_count(text, n),
	       n, utf8_valid(text, n) ? "yes" : "no", up, rev);
	free(text);
	free(up);
	free(rev);
	return 0;
}
