/* lz4pack: "<text>": builds a 16 KiB buffer from the text, compresses it with
 * LZ4 (fast and HC level 9), decompresses each and verifies; prints sizes
 * and the CRC-32. Uses Debian's liblz4.a as shipped.
 *
 * The two compression states (16 KiB and 256 KiB) are allocated by each
 * request and freed when it is done: the free-page report then gives their
 * pages back whole, with the allocator's table entries for them. Made in
 * the init phase (sessions 5-10), they put nothing of theirs in a boot
 * snapshot but the allocator's entries for two large blocks (one non-zero
 * byte on each of three table pages with ukallocbuddy), which every
 * instance then held as private copies its request never changed; the
 * states themselves are cleared by every request before it compresses
 * (LZ4_compress_fast_extState, LZ4_compress_HC_extStateHC) either way.
 * The init phase derives the tables of the CRC-32 every request computes
 * (ukcrc32), which a snapshot keeps.
 */
#define LZ4_STATIC_LINKING_ONLY
#define LZ4_HC_STATIC_LINKING_ONLY
#include <lz4.h>
#include <lz4hc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <ukargs.h>
#include <ukcrc32.h>

#define SIZE 16384

static void lz4pack_init(void)
{
	crc32_prepare();
}
UK_INIT_PHASE(lz4pack_init);

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	char *buf = malloc(SIZE + 64), *back = malloc(SIZE), *comp;
	int bound = LZ4_compressBound(SIZE), fast, hc, ok = 1;
	size_t n = 0, tl;
	unsigned counter = 0;

	LZ4_stream_t *fast_state = malloc(sizeof(LZ4_stream_t));
	LZ4_streamHC_t *hc_state = malloc(sizeof(LZ4_streamHC_t));

	comp = malloc((size_t)bound);
	if (!text || !buf || !back || !comp || !fast_state || !hc_state)
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
	fast = LZ4_compress_fast_extState(fast_state, buf, comp, (int)n, bound, 1);
	ok = fast > 0 && LZ4_decompress_safe(comp, back, fast, SIZE) == (int)n &&
	     memcmp(back, buf, n) == 0;
	hc = LZ4_compress_HC_extStateHC(hc_state, buf, comp, (int)n, bound, 9);
	ok = ok && hc > 0 && LZ4_decompress_safe(comp, back, hc, SIZE) == (int)n &&
	     memcmp(back, buf, n) == 0;
	printf("lz4 %d in=%zu fast=%d hc9=%d crc=%08x %s\n", LZ4_versionNumber(), n, fast, hc,
	       (unsigned)crc32_ieee(buf, n), ok ? "roundtrip-ok" : "roundtrip-FAILED");
	free(text);
	free(buf);
	free(back);
	free(comp);
	free(hc_state);
	free(fast_state);
	return 0;
}
