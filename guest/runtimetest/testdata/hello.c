/* A guest app for the link and run tests: exercises boot (arguments,
 * constructors), stdio, printf with floats, the heap, ukrand and uktime. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/random.h>
#include <uk/time.h>

static int constructed;

__attribute__((constructor)) static void init(void)
{
	constructed = 1;
}

int main(int argc, char **argv)
{
	printf("hello argc=%d", argc);
	for (int i = 1; i < argc; i++)
		printf(" [%s]", argv[i]);
	printf(" ctor=%d pi=%.5f e=%g\n", constructed, 3.14159265358979, 2.718281828459045e10);
	size_t total = 0;
	void *blocks[64];
	for (int i = 0; i < 64; i++) {
		blocks[i] = malloc(1000 * (size_t)(i + 1));
		if (!blocks[i])
			return 2;
		memset(blocks[i], i, 1000 * (size_t)(i + 1));
		total += 1000 * (size_t)(i + 1);
	}
	for (int i = 0; i < 64; i++)
		free(blocks[i]);
	uint64_t t0 = uk_time_ns();
	uint64_t r = uk_random_u64() | uk_random_u64();
	uint64_t t1 = uk_time_ns();
	printf("heap %zu random %s clock %s\n", total, r ? "ok" : "zero", t1 >= t0 ? "ok" : "backwards");
	fprintf(stderr, "to stderr\n");
	return argc;
}
