/* wordcount: words (runs of letters, digits and apostrophes, case-folded),
 * distinct words, letters, and the five most frequent words (ties by
 * byte order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukhashmap.h>

struct entry {
	const char *word;
	long count;
};

static int by_count(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->word, y->word);
}

/* ASCII only, on purpose: the result must not depend on a locale */
static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_word_char(int c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '\'';
}

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	struct hashmap *m = hashmap_new(64);
	struct entry *all;
	size_t i = 0, n, k, words = 0, letters = 0, pos = 0;
	const char *key;
	void *val;

	if (!text || !m)
		return 1;
	n = strlen(text);
	while (i < n) {
		size_t start;

		while (i < n && !is_word_char((unsigned char)text[i]))
			i++;
		start = i;
		while (i < n && is_word_char((unsigned char)text[i])) {
			if (text[i] >= 'A' && text[i] <= 'Z')
				text[i] = (char)(text[i] + 32);
			if (is_alpha((unsigned char)text[i]))
				letters++;
			i++;
		}
		if (i > start) {
			words++;
			if (hashmap_add(m, text + start, i - start, 1) < 0)
				return 1;
		}
	}
	all = malloc((hashmap_size(m) + 1) * sizeof(*all));
	if (!all)
		return 1;
	k = 0;
	while (hashmap_next(m, &pos, &key, NULL, &val)) {
		all[k].word = key;
		all[k].count = (long)(intptr_t)val;
		k++;
	}
	qsort(all, k, sizeof(*all), by_count);
	printf("words=%zu distinct=%zu letters=%zu top=", words, k, letters);
	for (i = 0; i < k && i < 5; i++)
		printf("%s%s:%ld", i ? "," : "", all[i].word, all[i].count);
	printf("\n");
	free(all);
	hashmap_free(m);
	free(text);
	return 0;
}
