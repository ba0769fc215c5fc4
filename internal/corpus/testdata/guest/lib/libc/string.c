#include <string.h>
size_t strlen(const char *s)
{
	size_t n = 0;
#ifdef LIBC_SMALL
	while (s[n]) n++;
#else
	while (s[n] && s[n + 1]) n += 2;
	if (s[n]) n++;
#endif
	return n;
}
void *memset(void *d, int c, size_t n) { unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
void *memcpy(void *d, const void *s, size_t n) { unsigned char *p = d; const unsigned char *q = s; while (n--) *p++ = *q++; return d; }
