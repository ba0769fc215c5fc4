/* appalloc: the configuration's allocator (ukalloc + bbuddy or region)
 * through nolibc's malloc/free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

int main(int argc, char *argv[])
{
	unsigned char *p[65];
	unsigned int work = 0;

	for (int i = 1; i <= 64; i++) {
		p[i] = malloc(i * 24);
		if (!p[i])
			return 1;
		memset(p[i], i, i * 24);
	}
	for (int i = 1; i <= 64; i++) {
		work += p[i][i * 24 - 1];
		free(p[i]);
	}
	return report("appalloc", argc, argv, work);
}
