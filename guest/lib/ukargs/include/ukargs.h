/* ukargs: helpers for FaaS command lines. The boot code splits the command
 * line into words (argv[1..]); apps that take free text join them back
 * with single spaces. */
#ifndef UKARGS_H
#define UKARGS_H
#include <stddef.h>

/* args_join returns argv[first..argc) joined by single spaces (malloc'd,
 * "" if there are none), or NULL if out of memory. */
char *args_join(int argc, char **argv, int first);
/* args_long parses a whole decimal integer within [min, max]; returns 0
 * and sets *out, or -1. */
int args_long(const char *s, long min, long max, long *out);
/* args_split cuts s in place at each sep; returns the number of fields
 * (at most max are stored in fields). Empty fields are kept. */
int args_split(char *s, char sep, char **fields, int max);
/* args_kv splits "key=value" in place: returns the value (after '=') and
 * terminates the key, or NULL if s has no '='. */
char *args_kv(char *s);

#endif
