/* The renderer walks the template text directly: a section finds its
 * matching close tag (counting nested sections of the same name) and
 * renders its body once per item, recursively. */
#include <stdlib.h>
#include <string.h>
#include <ukhashmap.h>
#include <ukstrbuf.h>
#include <uktmpl.h>

#define MAX_NEST 32

struct var {
	char *value; /* NULL for a list */
	char **items;
	size_t n, cap;
};

struct tmpl_ctx {
	struct hashmap *vars;
};

struct frame {
	const char *item;
	size_t index;
};

struct render {
	const struct tmpl_ctx *ctx;
	struct strbuf out;
	const char *err;
	struct frame stack[MAX_NEST];
	int depth;
};

struct tmpl_ctx *tmpl_ctx_new(void)
{
	struct tmpl_ctx *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	c->vars = hashmap_new(16);
	if (!c->vars) {
		free(c);
		return NULL;
	}
	return c;
}

static void var_clear(struct var *v)
{
	size_t i;

	free(v->value);
	for (i = 0; i < v->n; i++)
		free(v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

void tmpl_ctx_free(struct tmpl_ctx *ctx)
{
	size_t pos = 0;
	void *val;

	if (!ctx)
		return;
	while (hashmap_next(ctx->vars, &pos, NULL, NULL, &val)) {
		var_clear(val);
		free(val);
	}
	hashmap_free(ctx->vars);
	free(ctx);
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);

	if (d)
		memcpy(d, s, n + 1);
	return d;
}

static struct var *get_or_add(struct tmpl_ctx *ctx, const char *name)
{
	void *val;
	struct var *v;

	if (hashmap_get(ctx->vars, name, strlen(name), &val))
		return val;
	v = calloc(1, sizeof(*v));
	if (!v || hashmap_put(ctx->vars, name, strlen(name), v)) {
		free(v);
		return NULL;
	}
	return v;
}

int tmpl_set(struct tmpl_ctx *ctx, const char *name, const char *value)
{
	struct var *v = get_or_add(ctx, name);
	char *d;

	if (!v || !(d = dup_str(value)))
		return -1;
	var_clear(v);
	v->value = d;
	return 0;
}

int tmpl_push(struct tmpl_ctx *ctx, const char *name, const char *item)
{
	struct var *v = get_or_add(ctx, name);
	char *d;

	if (!v)
		return -1;
	if (v->value) {
		free(v->value);
		v->value = NULL;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		char **items = realloc(v->items, cap * sizeof(*items));

		if (!items)
			return -1;
		v->items = items;
		v->cap = cap;
	}
	d = dup_str(item);
	if (!d)
		return -1;
	v->items[v->n++] = d;
	return 0;
}

static const struct var *lookup(const struct render *r, const char *name, size_t n)
{
	void *val;

	if (!hashmap_get(r->ctx->vars, name, n, &val))
		return NULL;
	return val;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* resolve finds the text of a name: ".", "@index", "@number", or a
 * variable (a list yields its item count as text via count). */
static int resolve(struct render *r, const char *name, size_t n, const char **text,
		   char *numbuf, const struct var **list)
{
	const struct var *v;

	*list = NULL;
	if (n == 1 && name[0] == '.') {
		if (!r->depth) {
			r->err = "{{.}} outside a list section";
			return -1;
		}
		*text = r->stack[r->depth - 1].item;
		return 0;
	}
	if ((n == 6 && memcmp(name, "@index", 6) == 0) ||
	    (n == 7 && memcmp(name, "@number", 7) == 0)) {
		size_t idx, i = 0;
		char tmp[24];

		if (!r->depth) {
			r->err = "@index outside a list section";
			return -1;
		}
		idx = r->stack[r->depth - 1].index + (n == 7);
		do {
			tmp[i++] = (char)('0' + idx % 10);
			idx /= 10;
		} while (idx);
		for (n = 0; n < i; n++)
			numbuf[n] = tmp[i - 1 - n];
		numbuf[i] = '\0';
		*text = numbuf;
		return 0;
	}
	v = lookup(r, name, n);
	if (!v) {
		*text = "";
		return 0;
	}
	if (!v->value) {
		*list = v;
		*text = "";
		return 0;
	}
	*text = v->value;
	return 0;
}

static void put_escaped(struct strbuf *sb, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&quot;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_putc(sb, s[i]);
		}
	}
}

static int apply_filter(struct render *r, struct strbuf *val, const char *f,
			size_t n, const struct var *list)
{
	size_t i;

	if (n == 5 && memcmp(f, "upper", 5) == 0) {
		for (i = 0; i < val->len; i++)
			if (val->buf[i] >= 'a' && val->buf[i] <= 'z')
				val->buf[i] = (char)(val->buf[i] - 32);
	} else if (n == 5 && memcmp(f, "lower", 5) == 0) {
		for (i = 0; i < val->len; i++)
			if (val->buf[i] >= 'A' && val->buf[i] <= 'Z')
				val->buf[i] = (char)(val->buf[i] + 32);
	} else if (n == 5 && memcmp(f, "title", 5) == 0) {
		int start = 1;

		for (i = 0; i < val->len; i++) {
			char c = val->buf[i];

			if (start && c >= 'a' && c <= 'z')
				val->buf[i] = (char)(c - 32);
			else if (!start && c >= 'A' && c <= 'Z')
				val->buf[i] = (char)(c + 32);
			start = is_space(c);
		}
	} else if (n == 4 && memcmp(f, "trim", 4) == 0) {
		size_t a = 0, b = val->len;

		while (a < b && is_space(val->buf[a]))
			a++;
		while (b > a && is_space(val->buf[b - 1]))
			b--;
		if (val->len)
			memmove(val->buf, val->buf + a, b - a);
		strbuf_truncate(val, b - a);
	} else if ((n == 3 && memcmp(f, "len", 3) == 0) ||
		   (n == 5 && memcmp(f, "count", 5) == 0)) {
		size_t len = list ? list->n : val->len;

		strbuf_truncate(val, 0);
		strbuf_putu64(val, len);
	} else {
		r->err = "unknown filter";
		return -1;
	}
	return 0;
}

static int render_range(struct render *r, const char *t, size_t n);

/* find_close returns the offset of "{{/name}}" closing a section opened
 * before t (nested sections of the same name counted), or -1. *after gets
 * the offset just past it. */
static long find_close(const char *t, size_t n, const char *name, size_t nl,
		       size_t *after)
{
	size_t i = 0;
	int depth = 0;

	while (i + 4 <= n) {
		size_t j, a, b;
		char kind;

		if (t[i] != '{' || t[i + 1] != '{') {
			i++;
			continue;
		}
		j = i + 2;
		kind = j < n ? t[j] : 0;
		if (kind != '#' && kind != '^' && kind != '/') {
			i = j;
			continue;
		}
		a = j + 1;
		while (a < n && is_space(t[a]))
			a++;
		b = a;
		while (b < n && !(t[b] == '}' && b + 1 < n && t[b + 1] == '}'))
			b++;
		if (b >= n)
			return -1;
		j = b;
		while (j > a && is_space(t[j - 1]))
			j--;
		if (j - a == nl && memcmp(t + a, name, nl) == 0) {
			if (kind != '/') {
				depth++;
			} else if (depth-- == 0) {
				*after = b + 2;
				return (long)i;
			}
		}
		i = b + 2;
	}
	return -1;
}

static int truthy(const char *s)
{
	return s[0] && strcmp(s, "0") != 0 && strcmp(s, "false") != 0;
}

static int render_section(struct render *r, char kind, const char *name, size_t nl,
			  const char *body, size_t bodylen)
{
	const struct var *list;
	const char *text;
	char num[24];
	size_t i;

	if (resolve(r, name, nl, &text, num, &list))
		return -1;
	if (kind == '^') {
		if ((list && list->n == 0) || (!list && !truthy(text)))
			return render_range(r, body, bodylen);
		return 0;
	}
	if (!list)
		return truthy(text) ? render_range(r, body, bodylen) : 0;
	if (r->depth == MAX_NEST) {
		r->err = "sections nested too deep";
		return -1;
	}
	r->depth++;
	for (i = 0; i < list->n; i++) {
		r->stack[r->depth - 1].item = list->items[i];
		r->stack[r->depth - 1].index = i;
		if (render_range(r, body, bodylen)) {
			r->depth--;
			return -1;
		}
	}
	r->depth--;
	return 0;
}

static int render_range(struct render *r, const char *t, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t open = i, a, b, close_len = 2, end;
		int raw = 0;
		char kind = 0;

		while (open + 1 < n && !(t[open] == '{' && t[open + 1] == '{'))
			open++;
		if (open + 1 >= n) {
			strbuf_append(&r->out, t + i, n - i);
			break;
		}
		strbuf_append(&r->out, t + i, open - i);
		a = open + 2;
		if (a < n && t[a] == '{') {
			raw = 1;
			close_len = 3;
			a++;
		} else if (a < n && (t[a] == '#' || t[a] == '^' || t[a] == '/' ||
				     t[a] == '!' || t[a] == '&')) {
			kind = t[a++];
			if (kind == '&') {
				raw = 1;
				kind = 0;
			}
		}
		b = a;
		while (b + close_len <= n &&
		       memcmp(t + b, raw && close_len == 3 ? "}}}" : "}}", close_len) != 0)
			b++;
		if (b + close_len > n) {
			r->err = "unclosed tag";
			return -1;
		}
		end = b + close_len;
		if (kind == '!') {
			i = end;
			continue;
		}
		while (a < b && is_space(t[a]))
			a++;
		while (b > a && is_space(t[b - 1]))
			b--;
		if (a == b) {
			r->err = "empty tag";
			return -1;
		}
		if (kind == '/') {
			r->err = "close tag without a section";
			return -1;
		}
		if (kind == '#' || kind == '^') {
			size_t after;
			long cl = find_close(t + end, n - end, t + a, b - a, &after);

			if (cl < 0) {
				r->err = "section not closed";
				return -1;
			}
			if (render_section(r, kind, t + a, b - a, t + end, (size_t)cl))
				return -1;
			i = end + after;
			continue;
		}
		{
			const char *bar = memchr(t + a, '|', b - a);
			size_t nl = bar ? (size_t)(bar - (t + a)) : b - a;
			const struct var *list;
			const char *text;
			char num[24];
			struct strbuf val;

			while (nl > 0 && is_space(t[a + nl - 1]))
				nl--;
			if (resolve(r, t + a, nl, &text, num, &list))
				return -1;
			strbuf_init(&val);
			strbuf_puts(&val, text);
			while (bar) {
				const char *f = bar + 1, *fe;
				const char *next = memchr(f, '|', (size_t)(t + b - f));

				fe = next ? next : t + b;
				while (f < fe && is_space(*f))
					f++;
				while (fe > f && is_space(fe[-1]))
					fe--;
				if (apply_filter(r, &val, f, (size_t)(fe - f), list)) {
					strbuf_free(&val);
					return -1;
				}
				list = NULL; /* later filters see the text */
				bar = next;
			}
			if (raw)
				strbuf_append(&r->out, strbuf_cstr(&val), val.len);
			else
				put_escaped(&r->out, strbuf_cstr(&val), val.len);
			strbuf_free(&val);
		}
		i = end;
	}
	if (r->out.oom) {
		r->err = "out of memory";
		return -1;
	}
	return 0;
}

char *tmpl_render(const struct tmpl_ctx *ctx, const char *tmpl, size_t len,
		  const char **err)
{
	struct render r;

	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	strbuf_init(&r.out);
	if (render_range(&r, tmpl, len)) {
		if (err)
			*err = r.err;
		strbuf_free(&r.out);
		return NULL;
	}
	return strbuf_detach(&r.out, NULL);
}
