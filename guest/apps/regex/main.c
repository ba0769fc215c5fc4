/* regex: "<pattern> <text>": counts the matches of pattern in text (Go's
 * FindAll rules), shows the first, and the text with every match replaced
 * by "<>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukregex.h>

int main(int argc, char **argv)
{
	const char *err;
	struct regex *re;
	char *text, *replaced;
	size_t ms = 0, me = 0, n;
	long count;
	int found;

	if (argc < 2) {
		printf("usage: regex PATTERN TEXT\n");
		return 2;
	}
	re = regex_compile(argv[1], 0, &err);
	if (!re) {
		printf("regex: %s\n", err);
		return 2;
	}
	text = args_join(argc, argv, 2);
	if (!text)
		return 1;
	n = strlen(text);
	found = regex_search(re, text, n, 0, &ms, &me);
	count = regex_find_all(re, text, n, NULL, NULL);
	replaced = regex_replace(re, text, n, "<>", NULL);
	if (found < 0 || count < 0 || !replaced)
		return 1;
	if (found)
		printf("matches=%ld first=%zu-%zu:%.*s replaced=%s\n", count, ms, me,
		       (int)(me - ms), text + ms, replaced);
	else
		printf("matches=0 replaced=%s\n", replaced);
	free(replaced);
	free(text);
	regex_free(re);
	return 0;
}
