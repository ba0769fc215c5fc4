/* ukstrbuf: a growable, always NUL-terminated byte string. */
#ifndef UKSTRBUF_H
#define UKSTRBUF_H
#include <stddef.h>
#include <stdint.h>

struct strbuf {
	char *buf;   /* NUL-terminated once anything was appended */
	size_t len;
	size_t cap;
	int oom;     /* set when an allocation failed; later appends are dropped */
};

void strbuf_init(struct strbuf *sb);
int strbuf_reserve(struct strbuf *sb, size_t extra);
void strbuf_append(struct strbuf *sb, const char *s, size_t n);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_putu64(struct strbuf *sb, uint64_t v);
void strbuf_puti64(struct strbuf *sb, int64_t v);
void strbuf_puthex(struct strbuf *sb, uint64_t v, int width);
void strbuf_repeat(struct strbuf *sb, char c, size_t n);
void strbuf_truncate(struct strbuf *sb, size_t len);
/* strbuf_cstr never returns NULL: an empty buffer reads as "". */
const char *strbuf_cstr(const struct strbuf *sb);
/* strbuf_detach hands the malloc'd string to the caller and resets sb. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_free(struct strbuf *sb);

#endif
