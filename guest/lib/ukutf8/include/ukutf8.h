/* ukutf8: UTF-8 decoding, encoding, validation (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF) and simple case mapping for
 * Latin-1, Latin Extended-A, Greek and Cyrillic. */
#ifndef UKUTF8_H
#define UKUTF8_H
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xfffd

/* utf8_decode reads one code point; returns its length (1-4), 0 if n == 0,
 * or -1 for an invalid sequence (*cp is then U+FFFD). */
int utf8_decode(const char *s, size_t n, uint32_t *cp);
/* utf8_encode writes cp; returns its length, or -1 if cp is not a scalar. */
int utf8_encode(uint32_t cp, char out[4]);
int utf8_valid(const char *s, size_t n);
/* utf8_count returns the number of code points, an invalid byte counting
 * as one (as U+FFFD). */
size_t utf8_count(const char *s, size_t n);
uint32_t utf8_toupper(uint32_t cp);
uint32_t utf8_tolower(uint32_t cp);
/* The transforms write to out (at least 3*n+1 bytes), replace invalid
 * bytes by U+FFFD, NUL-terminate and return the length. */
size_t utf8_upper(const char *s, size_t n, char *out);
size_t utf8_lower(const char *s, size_t n, char *out);
size_t utf8_reverse(const char *s, size_t n, char *out);

#endif
