#ifndef STRING_H
#define STRING_H
#include <stddef.h>
size_t strlen(const char *s);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
#endif
