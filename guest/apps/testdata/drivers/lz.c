/* "C <level> <hexdata>" -> "<compressed size> <ok|bad>" (round trip);
 * "D <hexgarbage>" -> "err" or the decompressed length (must not crash). */
#include "common.h"
#include <uklz.h>

int main(void)
{
	static uint8_t out[1 << 20], back[1 << 20];

	while (next_line()) {
		if (line[0] == 'C') {
			char *lv = strtok(line + 2, " "), *data = strtok(NULL, " ");
			size_t n = unhex(data);
			long c = lz_compress(data, n, out, sizeof(out), atoi(lv)), d;

			if (c < 0) {
				puts("-1 bad");
				continue;
			}
			d = lz_decompress(out, (size_t)c, back, n);
			printf("%ld %s\n", c,
			       d == (long)n && memcmp(back, data, n) == 0 && (size_t)c <= lz_bound(n) ? "ok" : "bad");
		} else {
			size_t n = unhex(line + 2);
			long d = lz_decompress(line + 2, n, back, 4096);

			if (d < 0)
				puts("err");
			else
				printf("%ld\n", d);
		}
	}
	return 0;
}
