/* zstdpack: "<level> <text>": builds a 16 KiB buffer from the text, compresses
 * it with Zstandard's single-shot API at the level, decompresses and
 * verifies; prints sizes and the CRC-32. Uses Debian's libzstd.a as
 * shipped (single-shot entry points only: no threads, no files). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <ukargs.h>
#include <ukcrc32.h>
#include <zstd.h>

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
	char *text, *buf, *back, *comp;
	size_t n = 0, tl, bound = ZSTD_compressBound(SIZE), c, d;
	unsigned long long fcs;
	unsigned counter = 0;
	long level;
	int ok;

	if (argc < 3 || args_long(argv[1], 1, 19, &level)) {
		printf("usage: zstd LEVEL(1-19) TEXT\n");
		return 2;
	}
	text = args_join(argc, argv, 2);
	buf = malloc(SIZE + 64);
	back = malloc(SIZE);
	comp = malloc(bound);
	if (!text || !buf || !back || !comp)
		return 1;
	tl = strlen(text);
	while (n < SIZE) {
		int k = snprintf(buf + n, 64, "%u.", counter * counter);

		n += (size_t)k;
		if (n + tl + 1 > SIZE)
			break;
		memcpy(buf + n, text, tl);
		n += tl;
		buf[n++] = counter++ % 7 ? ' ' : '\n';
	}
	if (n > SIZE)
		n = SIZE;
	c = ZSTD_compress(comp, bound, buf, n, (int)level);
	if (ZSTD_isError(c)) {
		printf("zstd: %s\n", ZSTD_getErrorName(c));
		return 1;
	}
	fcs = ZSTD_getFrameContentSize(comp, c);
	d = ZSTD_decompress(back, SIZE, comp, c);
	ok = !ZSTD_isError(d) && d == n && fcs == n && memcmp(back, buf, n) == 0;
	printf("zstd %u level=%ld in=%zu out=%zu crc=%08x %s\n", ZSTD_versionNumber(), level,
	       n, c, (unsigned)crc32_ieee(buf, n), ok ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(buf);
	free(back);
	free(comp);
	return 0;
}
