/* apphello: nolibc's formatting and strings. */
#include <stdio.h>
#include <string.h>
#include "common.h"

int main(int argc, char *argv[])
{
	char buf[32];
	unsigned int work = 0;

	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "unikraft %d", i);
		work += strlen(buf);
	}
	return report("apphello", argc, argv, work);
}
