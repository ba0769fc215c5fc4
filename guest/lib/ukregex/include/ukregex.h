/* ukregex: regular expressions over bytes with leftmost-first (Perl/Go)
 * semantics and linear-time matching.
 * Syntax: literals, '.', [abc] [^a-z] classes, \d \w \s \D \W \S, escapes
 * \n \t \r \f \v and \<punct>, groups ( ) and (?: ), alternation |, anchors
 * ^ $ (of the whole text), repetition * + ? {n} {n,} {n,m} and their lazy
 * forms *? +? ?? {n,m}?. '.' does not match '\n'. */
#ifndef UKREGEX_H
#define UKREGEX_H
#include <stddef.h>

#define REGEX_ICASE 1 /* ASCII case-insensitive */

struct regex;

/* regex_compile returns NULL and sets *err (a static message) on a syntax
 * error or when out of memory. */
struct regex *regex_compile(const char *pattern, int flags, const char **err);
void regex_free(struct regex *re);
/* regex_search finds the leftmost-first match starting at or after from;
 * returns 1 and its [*ms, *me), 0 if none, -1 if out of memory. */
int regex_search(const struct regex *re, const char *s, size_t n, size_t from,
		 size_t *ms, size_t *me);
/* regex_fullmatch reports whether the whole of s matches. */
int regex_fullmatch(const struct regex *re, const char *s, size_t n);
/* regex_find_all calls fn for each successive match the way Go's FindAll
 * does (an empty match right after a match is skipped); returns the count,
 * or -1 if out of memory. fn may be NULL. */
long regex_find_all(const struct regex *re, const char *s, size_t n,
		    void (*fn)(void *arg, size_t ms, size_t me), void *arg);
/* regex_replace returns a malloc'd copy of s with every match replaced by
 * repl (literally); NULL if out of memory. */
char *regex_replace(const struct regex *re, const char *s, size_t n,
		    const char *repl, size_t *outlen);
/* regex_engine names the matcher this build uses. */
const char *regex_engine(void);

#endif
