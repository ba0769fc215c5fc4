#include <stdlib.h>
#include <string.h>
#include <ukstrbuf.h>

#ifndef STRBUF_GROWTH_NUM
#define STRBUF_GROWTH_NUM 2
#endif
#ifndef STRBUF_GROWTH_DEN
#define STRBUF_GROWTH_DEN 1
#endif
#ifndef STRBUF_MIN_CAP
#define STRBUF_MIN_CAP 16
#endif

void strbuf_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->oom = 0;
}

int strbuf_reserve(struct strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *nb;

	if (sb->oom)
		return -1;
	need = sb->len + extra + 1;
	if (need < sb->len) {
		sb->oom = 1;
		return -1;
	}
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
	while (cap < need)
		cap = cap / STRBUF_GROWTH_DEN * STRBUF_GROWTH_NUM + STRBUF_MIN_CAP;
	nb = realloc(sb->buf, cap);
	if (!nb) {
		sb->oom = 1;
		return -1;
	}
	sb->buf = nb;
	sb->cap = cap;
	return 0;
}

void strbuf_append(struct strbuf *sb, const char *s, size_t n)
{
	if (strbuf_reserve(sb, n))
		return;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(struct strbuf *sb, char c)
{
	if (strbuf_reserve(sb, 1))
		return;
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}

void strbuf_putu64(struct strbuf *sb, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	strbuf_append(sb, tmp + i, sizeof(tmp) - (size_t)i);
}

void strbuf_puti64(struct strbuf *sb, int64_t v)
{
	if (v < 0) {
		strbuf_putc(sb, '-');
		/* negate in unsigned arithmetic so INT64_MIN is fine */
		strbuf_putu64(sb, (uint64_t)0 - (uint64_t)v);
		return;
	}
	strbuf_putu64(sb, (uint64_t)v);
}

void strbuf_puthex(struct strbuf *sb, uint64_t v, int width)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	int i = 16;

	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v && i > 0);
	while (16 - i < width && i > 0)
		tmp[--i] = '0';
	strbuf_append(sb, tmp + i, (size_t)(16 - i));
}

void strbuf_repeat(struct strbuf *sb, char c, size_t n)
{
	if (strbuf_reserve(sb, n))
		return;
	memset(sb->buf + sb->len, c, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_truncate(struct strbuf *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->buf[len] = '\0';
	}
}

const char *strbuf_cstr(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
	char *s = sb->buf;

	if (!s) {
		s = malloc(1);
		if (s)
			s[0] = '\0';
	}
	if (len)
		*len = sb->len;
	strbuf_init(sb);
	return s;
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->buf);
	strbuf_init(sb);
}
