#ifndef STDLIB_H
#define STDLIB_H
#include <stddef.h>
void *malloc(size_t n);
void free(void *p);
#endif
