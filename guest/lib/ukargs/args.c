#include <stdlib.h>
#include <string.h>
#include <ukargs.h>

char *args_join(int argc, char **argv, int first)
{
	size_t len = 0, o = 0;
	char *s;
	int i;

	for (i = first; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = malloc(len + 1);
	if (!s)
		return NULL;
	for (i = first; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (o)
			s[o++] = ' ';
		memcpy(s + o, argv[i], n);
		o += n;
	}
	s[o] = '\0';
	return s;
}

int args_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	v = strtol(s, &end, 10);
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int args_split(char *s, char sep, char **fields, int max)
{
	int n = 0;

	for (;;) {
		char *e = strchr(s, sep);

		if (n < max)
			fields[n] = s;
		n++;
		if (!e)
			return n;
		*e = '\0';
		s = e + 1;
	}
}

char *args_kv(char *s)
{
	char *eq = strchr(s, '=');

	if (!eq)
		return NULL;
	*eq = '\0';
	return eq + 1;
}
