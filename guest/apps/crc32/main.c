/* crc32: CRC-32 and CRC-32C of the input, and of the input repeated 1000
 * times (computed incrementally). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukcrc32.h>

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
