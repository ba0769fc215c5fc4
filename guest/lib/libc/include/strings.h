#ifndef _STRINGS_H
#define _STRINGS_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
int strcasecmp(const char *a, const char *b);
int strncasecmp(const char *a, const char *b, size_t n);
void bzero(void *d, size_t n);
int bcmp(const void *a, const void *b, size_t n);
void bcopy(const void *s, void *d, size_t n);
int ffs(int i);
int ffsl(long i);
int ffsll(long long i);
#ifdef __cplusplus
}
#endif
#endif
