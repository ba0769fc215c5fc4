/* lz4pack: "<text>": builds a 16 KiB buffer from the text, compresses it with
 * LZ4 (fast and HC level 9), decompresses each and verifies; prints sizes
 * and the CRC-32. Uses Debian's liblz4.a as shipped. */
#include <lz4.h>
#include <lz4hc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukcrc32.h>

#define SIZE 16384

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	char *buf = malloc(SIZE + 64), *back = malloc(SIZE), *comp;
	int bound = LZ4_compressBound(SIZE), fast, hc, ok = 1;
	size_t n = 0, tl;
	unsigned counter = 0;

	comp = malloc((size_t)bound);
	if (!text || !buf || !back || !comp)
		return 1;
	tl = strlen(text);
	/* the text and its running counter, every 3rd copy upper-cased */
	while (n < SIZE) {
		int k = snprintf(buf + n, 64, "[%u]", counter);
		size_t i;

		n += (size_t)k;
		if (n + tl + 1 > SIZE)
			break;
		for (i = 0; i < tl; i++)
			buf[n + i] = counter % 3 ? text[i] :
				     (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
		n += tl;
		buf[n++] = '\n';
		counter++;
	}
	if (n > SIZE)
		n = SIZE;
	fast = LZ4_compress_default(buf, comp, (int)n, bound);
	ok = fast > 0 && LZ4_decompress_safe(comp, back, fast, SIZE) == (int)n &&
	     memcmp(back, buf, n) == 0;
	hc = LZ4_compress_HC(buf, comp, (int)n, bound, 9);
	ok = ok && hc > 0 && LZ4_decompress_safe(comp, back, hc, SIZE) == (int)n &&
	     memcmp(back, buf, n) == 0;
	printf("lz4 %d in=%zu fast=%d hc9=%d crc=%08x %s\n", LZ4_versionNumber(), n, fast, hc,
	       (unsigned)crc32_ieee(buf, n), ok ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(buf);
	free(back);
	free(comp);
	return 0;
}
