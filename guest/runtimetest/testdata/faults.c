/* A guest app that fails on purpose, to check the runtime's failure paths:
 * "smash ARG" overflows a stack buffer (the canary at %fs:0x28 must catch
 * it), "assert" fails an assertion, "abort" aborts, "exit N" exits with N
 * from a nested call after buffering output. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void overflow(const char *s)
{
	char buf[8];
	strcpy(buf, s);
	__asm__ volatile("" : : "r"(buf) : "memory");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 100;
	printf("mode %s\n", argv[1]);
	if (!strcmp(argv[1], "smash") && argc > 2)
		overflow(argv[2]);
	else if (!strcmp(argv[1], "assert"))
		assert(argc == 0);
	else if (!strcmp(argv[1], "abort"))
		abort();
	else if (!strcmp(argv[1], "exit") && argc > 2) {
		printf("unterminated line");
		exit(atoi(argv[2]));
	}
	printf("survived\n");
	return 0;
}
