/* "<hex>" -> "<count> <valid> <upper hex> <lower hex> <reversed hex>
 * <first decode length> <first code point>". */
#include "common.h"
#include <ukutf8.h>

int main(void)
{
	while (next_line()) {
		size_t n = unhex(line), k;
		char *o = malloc(3 * n + 1);
		uint32_t cp = 0;
		int l;

		printf("%zu %d ", utf8_count(line, n), utf8_valid(line, n));
		k = utf8_upper(line, n, o);
		put_hex(o, k);
		putchar(' ');
		k = utf8_lower(line, n, o);
		put_hex(o, k);
		putchar(' ');
		k = utf8_reverse(line, n, o);
		put_hex(o, k);
		l = utf8_decode(line, n, &cp);
		printf(" %d %u\n", l, (unsigned)cp);
		free(o);
	}
	return 0;
}
