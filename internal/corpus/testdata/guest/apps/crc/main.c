#include <stdio.h>
#include <string.h>
#include <ukmix.h>
unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);
static void hex(unsigned long v, char *out) { for (int i = 7; i >= 0; i--) { out[i] = "0123456789abcdef"[v & 15]; v >>= 4; } out[8] = 0; }
int main(int argc, char **argv)
{
	char out[9];
	(void)argc; (void)argv;
	hex(crc32(0, (const unsigned char *)"abc", 3), out);
	(void)uk_mix(1);
	puts(out);
	return 0;
}
