/* ukhex: hexadecimal encoding of byte strings. */
#ifndef UKHEX_H
#define UKHEX_H
#include <stddef.h>
#include <stdint.h>

/* hex_encode writes 2*n lowercase digits and a NUL to out (2*n+1 bytes). */
void hex_encode(const void *src, size_t n, char *out);
/* hex_decode reads n digits (either case); returns bytes written or -1. */
long hex_decode(const char *src, size_t n, uint8_t *out);
/* hex_dump formats up to n bytes as "xx xx xx" into out (3*n bytes). */
void hex_dump(const void *src, size_t n, char *out);

#endif
