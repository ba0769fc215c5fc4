/* crc32: CRC-32 and CRC-32C of the input, and of the input repeated 1000
 * times (computed incrementally). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/boot.h>
#include <ukargs.h>
#include <ukcrc32.h>

/* Every request computes both CRCs: the tables ukcrc32 derives for them
 * (its slicing-by-8 variant) are derived in the init phase, so a boot
 * snapshot holds them, mapped from the pool by every instance. */
static void crc_tables(void)
{
	crc32_prepare();
	crc32c_prepare();
}
UK_INIT_PHASE(crc_tables);

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	uint32_t rep = 0;
	size_t n;
	int i;

	if (!text)
		return 1;
	n = strlen(text);
	for (i = 0; i < 1000; i++)
		rep = crc32_update(rep, text, n);
	printf("len=%zu crc32=%08x crc32c=%08x x1000=%08x\n", n,
	       (unsigned)crc32_ieee(text, n), (unsigned)crc32c(text, n), (unsigned)rep);
	free(text);
	return 0;
}
