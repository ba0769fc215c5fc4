/* ukbase64: base64 (RFC 4648), standard and URL-safe alphabets. */
#ifndef UKBASE64_H
#define UKBASE64_H
#include <stddef.h>
#include <stdint.h>

#define BASE64_URL 1    /* '-' and '_' instead of '+' and '/' */
#define BASE64_NOPAD 2  /* no '=' padding when encoding; optional when decoding */

/* base64_encoded_len is the length of the encoding, without the NUL. */
size_t base64_encoded_len(size_t n, int flags);
/* base64_encode writes the encoding and a NUL; returns its length. */
size_t base64_encode(const void *src, size_t n, char *out, int flags);
/* base64_decode returns the number of bytes written to out (at most
 * 3*(n/4)+3), or -1 on a character outside the alphabet or bad padding. */
long base64_decode(const char *src, size_t n, uint8_t *out, int flags);

#endif
