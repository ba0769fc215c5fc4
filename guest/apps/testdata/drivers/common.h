/* Shared by the test drivers: line input and hex fields ("-" is empty). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukhex.h>

static char line[1 << 20];

static inline int next_line(void)
{
	size_t n;

	/* answers must not wait in a buffer: the fuzz tests ask one line at
	 * a time */
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return 1;
}

/* unhex decodes a field in place; returns its byte length */
static inline size_t unhex(char *field)
{
	long n;

	if (strcmp(field, "-") == 0)
		return 0;
	n = hex_decode(field, strlen(field), (uint8_t *)field);
	if (n < 0) {
		fprintf(stderr, "bad hex field\n");
		exit(2);
	}
	return (size_t)n;
}

static inline void put_hex(const void *p, size_t n)
{
	char *h = malloc(2 * n + 1);

	hex_encode(p, n, h);
	fputs(n ? h : "-", stdout);
	free(h);
}
