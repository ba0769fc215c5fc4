/* lz: "<level> <text>": builds a compressible buffer from the text (the
 * text repeated with a running counter, 16 KiB), compresses it with uklz at
 * the level, decompresses and verifies; prints sizes and CRC-32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <ukargs.h>
#include <ukcrc32.h>
#include <uklz.h>

#define SIZE 16384

/* Every request computes a CRC-32: the tables ukcrc32 derives for it (its
 * slicing-by-8 variant) are derived in the init phase, so a boot snapshot
 * holds them, mapped from the pool by every instance. */
static void crc_tables(void)
{
	crc32_prepare();
}
UK_INIT_PHASE(crc_tables);

int main(int argc, char **argv)
{
	char *text, *buf, *back;
	unsigned char *comp;
	long level, clen, dlen;
	size_t n = 0, tl;
	unsigned counter = 0;

	if (argc < 3 || args_long(argv[1], LZ_LEVEL_MIN, LZ_LEVEL_MAX, &level)) {
		printf("usage: lz LEVEL(1-9) TEXT\n");
		return 2;
	}
	text = args_join(argc, argv, 2);
	buf = malloc(SIZE + 64);
	back = malloc(SIZE);
	comp = malloc(lz_bound(SIZE));
	if (!text || !buf || !back || !comp)
		return 1;
	tl = strlen(text);
	while (n < SIZE) {
		int k = snprintf(buf + n, 64, "%u:", counter++);

		n += (size_t)k;
		if (n + tl + 1 > SIZE)
			break;
		memcpy(buf + n, text, tl);
		n += tl;
		buf[n++] = ' ';
	}
	if (n > SIZE)
		n = SIZE;
	clen = lz_compress(buf, n, comp, lz_bound(SIZE), (int)level);
	if (clen < 0)
		return 1;
	dlen = lz_decompress(comp, (size_t)clen, back, SIZE);
	printf("lz level=%ld in=%zu out=%ld crc=%08x %s\n", level, n, clen,
	       (unsigned)crc32_ieee(buf, n),
	       dlen == (long)n && memcmp(buf, back, n) == 0 ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(buf);
	free(back);
	free(comp);
	return 0;
}
