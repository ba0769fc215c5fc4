/* The one line every fleet app prints: "<app> <argv[1]> <hex8>", hex8 =
 * FNV-1a-32 of argv[1] XOR the app's work result. */
#ifndef UKFLEET_COMMON_H
#define UKFLEET_COMMON_H
#include <stdio.h>

static inline int report(const char *app, int argc, char *argv[], unsigned int work)
{
	const char *in = argc > 1 ? argv[1] : "";
	unsigned int h = 2166136261u;

	for (const char *p = in; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	printf("%s %s %08x\n", app, in, h ^ work);
	return 0;
}
#endif
