/* "<hexpattern> <hextext>" -> "err" | "<start> <end> <count>" (-1 -1 when
 * there is no match; count as Go's FindAll). */
#include "common.h"
#include <ukregex.h>

int main(void)
{
	while (next_line()) {
		char *pat = strtok(line, " "), *text = strtok(NULL, " ");
		size_t pl = unhex(pat), tl = unhex(text), ms, me;
		const char *err;
		struct regex *re;
		int r;

		pat[pl] = '\0';
		re = regex_compile(pat, 0, &err);
		if (!re) {
			puts("err");
			continue;
		}
		r = regex_search(re, text, tl, 0, &ms, &me);
		if (r == 1)
			printf("%zu %zu %ld\n", ms, me, regex_find_all(re, text, tl, NULL, NULL));
		else
			printf("-1 -1 %ld\n", regex_find_all(re, text, tl, NULL, NULL));
		regex_free(re);
	}
	return 0;
}
