/* "<hexdata>" -> hex of compress2(data, level 6) from Debian's libz.a. */
#include "common.h"
#include <zlib.h>

int main(void)
{
	static unsigned char out[1 << 20];

	while (next_line()) {
		size_t n = unhex(line);
		uLongf len = sizeof(out);

		if (compress2(out, &len, (const Bytef *)line, n, 6) != Z_OK)
			return 1;
		put_hex(out, len);
		putchar('\n');
	}
	return 0;
}
