/* Build-time configuration:
 *   JSON_MAX_DEPTH  nesting limit of the recursive parser (stack bound);
 *   JSON_FLOAT      1: fractions, exponents and big integers become doubles
 *                   (own conversion, no libm); 0: only int64 numbers. */
#include <stdlib.h>
#include <string.h>
#include <ukjson.h>
#include <ukstrbuf.h>

#ifndef JSON_MAX_DEPTH
#define JSON_MAX_DEPTH 64
#endif
#ifndef JSON_FLOAT
#define JSON_FLOAT 1
#endif

struct parser {
	const char *s;
	size_t n, pos;
	int flags;
	const char *err;
};

static struct json_value *new_value(enum json_type t)
{
	struct json_value *v = calloc(1, sizeof(*v));

	if (v)
		v->type = t;
	return v;
}

struct json_value *json_new_null(void) { return new_value(JSON_NULL); }
struct json_value *json_new_array(void) { return new_value(JSON_ARRAY); }
struct json_value *json_new_object(void) { return new_value(JSON_OBJECT); }

struct json_value *json_new_bool(int b)
{
	struct json_value *v = new_value(JSON_BOOL);

	if (v)
		v->boolean = !!b;
	return v;
}

struct json_value *json_new_int(int64_t i)
{
	struct json_value *v = new_value(JSON_NUMBER);

	if (v) {
		v->is_int = 1;
		v->integer = i;
		v->number = JSON_FLOAT ? (double)i : 0;
	}
	return v;
}

struct json_value *json_new_double(double d)
{
	struct json_value *v = new_value(JSON_NUMBER);

	if (!v)
		return NULL;
	v->number = d;
	if (d >= -9.2e18 && d <= 9.2e18 && (double)(int64_t)d == d) {
		v->is_int = 1;
		v->integer = (int64_t)d;
	}
	return v;
}

struct json_value *json_new_string(const char *s, size_t len)
{
	struct json_value *v = new_value(JSON_STRING);

	if (!v)
		return NULL;
	v->string = malloc(len + 1);
	if (!v->string) {
		free(v);
		return NULL;
	}
	memcpy(v->string, s, len);
	v->string[len] = '\0';
	v->len = len;
	return v;
}

void json_free(struct json_value *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->count; i++) {
		json_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->keylens);
	free(v->string);
	free(v);
}

static int ensure(struct json_value *c)
{
	size_t cap;
	void *p;

	if (c->count < c->cap)
		return 0;
	cap = c->cap ? c->cap * 2 : 4;
	p = realloc(c->items, cap * sizeof(*c->items));
	if (!p)
		return -1;
	c->items = p;
	if (c->type == JSON_OBJECT) {
		p = realloc(c->keys, cap * sizeof(*c->keys));
		if (!p)
			return -1;
		c->keys = p;
		p = realloc(c->keylens, cap * sizeof(*c->keylens));
		if (!p)
			return -1;
		c->keylens = p;
	}
	c->cap = cap;
	return 0;
}

int json_array_push(struct json_value *arr, struct json_value *v)
{
	if (!v || arr->type != JSON_ARRAY || ensure(arr)) {
		json_free(v);
		return -1;
	}
	arr->items[arr->count++] = v;
	return 0;
}

static long find_key(const struct json_value *obj, const char *key, size_t len)
{
	size_t i;

	if (obj->type != JSON_OBJECT)
		return -1;
	for (i = 0; i < obj->count; i++)
		if (obj->keylens[i] == len && memcmp(obj->keys[i], key, len) == 0)
			return (long)i;
	return -1;
}

static int object_set_n(struct json_value *obj, const char *key, size_t len,
			struct json_value *v)
{
	long i;
	char *k;

	if (!v || obj->type != JSON_OBJECT) {
		json_free(v);
		return -1;
	}
	i = find_key(obj, key, len);
	if (i >= 0) {
		json_free(obj->items[i]);
		obj->items[i] = v;
		return 0;
	}
	k = malloc(len + 1);
	if (!k || ensure(obj)) {
		free(k);
		json_free(v);
		return -1;
	}
	memcpy(k, key, len);
	k[len] = '\0';
	obj->keys[obj->count] = k;
	obj->keylens[obj->count] = len;
	obj->items[obj->count++] = v;
	return 0;
}

int json_object_set(struct json_value *obj, const char *key, struct json_value *v)
{
	return object_set_n(obj, key, strlen(key), v);
}

struct json_value *json_object_get(const struct json_value *obj, const char *key)
{
	long i = find_key(obj, key, strlen(key));

	return i < 0 ? NULL : obj->items[i];
}

int json_object_remove(struct json_value *obj, const char *key)
{
	long i = find_key(obj, key, strlen(key));
	size_t j;

	if (i < 0)
		return 0;
	json_free(obj->items[i]);
	free(obj->keys[i]);
	for (j = (size_t)i; j + 1 < obj->count; j++) {
		obj->items[j] = obj->items[j + 1];
		obj->keys[j] = obj->keys[j + 1];
		obj->keylens[j] = obj->keylens[j + 1];
	}
	obj->count--;
	return 1;
}

struct json_value *json_array_get(const struct json_value *arr, size_t i)
{
	if (arr->type != JSON_ARRAY || i >= arr->count)
		return NULL;
	return arr->items[i];
}

struct json_value *json_path(const struct json_value *v, const char *path)
{
	while (v && *path) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		if (v->type == JSON_OBJECT) {
			long i = find_key(v, path, len);

			v = i < 0 ? NULL : v->items[i];
		} else if (v->type == JSON_ARRAY) {
			size_t idx = 0, k;

			if (len == 0)
				return NULL;
			for (k = 0; k < len; k++) {
				if (path[k] < '0' || path[k] > '9')
					return NULL;
				idx = idx * 10 + (size_t)(path[k] - '0');
			}
			v = json_array_get(v, idx);
		} else {
			return NULL;
		}
		path += len;
		if (*path == '.')
			path++;
	}
	return (struct json_value *)v;
}

struct json_value *json_clone(const struct json_value *v)
{
	struct json_value *c;
	size_t i;

	if (v->type == JSON_STRING)
		return json_new_string(v->string, v->len);
	c = new_value(v->type);
	if (!c)
		return NULL;
	c->boolean = v->boolean;
	c->is_int = v->is_int;
	c->integer = v->integer;
	c->number = v->number;
	for (i = 0; i < v->count; i++) {
		struct json_value *item = json_clone(v->items[i]);
		int rc = v->type == JSON_OBJECT
				 ? object_set_n(c, v->keys[i], v->keylens[i], item)
				 : json_array_push(c, item);

		if (rc) {
			json_free(c);
			return NULL;
		}
	}
	return c;
}

int json_equal(const struct json_value *a, const struct json_value *b)
{
	size_t i;

	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case JSON_NULL:
		return 1;
	case JSON_BOOL:
		return a->boolean == b->boolean;
	case JSON_NUMBER:
		if (a->is_int && b->is_int)
			return a->integer == b->integer;
		return a->number == b->number;
	case JSON_STRING:
		return a->len == b->len && memcmp(a->string, b->string, a->len) == 0;
	case JSON_ARRAY:
		if (a->count != b->count)
			return 0;
		for (i = 0; i < a->count; i++)
			if (!json_equal(a->items[i], b->items[i]))
				return 0;
		return 1;
	case JSON_OBJECT:
		if (a->count != b->count)
			return 0;
		for (i = 0; i < a->count; i++) {
			long j = find_key(b, a->keys[i], a->keylens[i]);

			if (j < 0 || !json_equal(a->items[i], b->items[j]))
				return 0;
		}
		return 1;
	}
	return 0;
}

const char *json_type_name(enum json_type t)
{
	static const char *const names[] = {
		"null", "bool", "number", "string", "array", "object",
	};

	return (unsigned)t < 6 ? names[t] : "invalid";
}

/* ---- parsing ---- */

static void skip_ws(struct parser *p)
{
	while (p->pos < p->n) {
		char c = p->s[p->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int fail(struct parser *p, const char *msg)
{
	if (!p->err)
		p->err = msg;
	return -1;
}

static int hex4(struct parser *p, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	if (p->pos + 4 > p->n)
		return fail(p, "short \\u escape");
	for (i = 0; i < 4; i++) {
		char c = p->s[p->pos++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return fail(p, "bad hex digit in \\u escape");
	}
	*out = v;
	return 0;
}

static void put_utf8(struct strbuf *sb, uint32_t cp)
{
	if (cp < 0x80) {
		strbuf_putc(sb, (char)cp);
	} else if (cp < 0x800) {
		strbuf_putc(sb, (char)(0xc0 | cp >> 6));
		strbuf_putc(sb, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		strbuf_putc(sb, (char)(0xe0 | cp >> 12));
		strbuf_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(sb, (char)(0x80 | (cp & 0x3f)));
	} else {
		strbuf_putc(sb, (char)(0xf0 | cp >> 18));
		strbuf_putc(sb, (char)(0x80 | ((cp >> 12) & 0x3f)));
		strbuf_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(sb, (char)(0x80 | (cp & 0x3f)));
	}
}

/* parse_string reads a quoted string at p->pos into sb. */
static int parse_string(struct parser *p, struct strbuf *sb)
{
	p->pos++; /* opening quote */
	while (p->pos < p->n) {
		unsigned char c = (unsigned char)p->s[p->pos++];
		uint32_t cp, lo;

		if (c == '"')
			return sb->oom ? fail(p, "out of memory") : 0;
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c != '\\') {
			strbuf_putc(sb, (char)c);
			continue;
		}
		if (p->pos >= p->n)
			break;
		c = (unsigned char)p->s[p->pos++];
		switch (c) {
		case '"': strbuf_putc(sb, '"'); break;
		case '\\': strbuf_putc(sb, '\\'); break;
		case '/': strbuf_putc(sb, '/'); break;
		case 'b': strbuf_putc(sb, '\b'); break;
		case 'f': strbuf_putc(sb, '\f'); break;
		case 'n': strbuf_putc(sb, '\n'); break;
		case 'r': strbuf_putc(sb, '\r'); break;
		case 't': strbuf_putc(sb, '\t'); break;
		case 'u':
			if (hex4(p, &cp))
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00 && p->pos + 6 <= p->n &&
			    p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
				size_t save = p->pos;

				p->pos += 2;
				if (hex4(p, &lo))
					return -1;
				if (lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					p->pos = save;
			}
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd; /* lone surrogate */
			put_utf8(sb, cp);
			break;
		default:
			return fail(p, "bad escape in string");
		}
	}
	return fail(p, "unterminated string");
}

static int is_word_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_word_char(char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* parse_key reads a member name: a string, or in relaxed mode a bare word. */
static int parse_key(struct parser *p, struct strbuf *sb)
{
	if (p->pos < p->n && p->s[p->pos] == '"')
		return parse_string(p, sb);
	if ((p->flags & JSON_RELAXED) && p->pos < p->n && is_word_start(p->s[p->pos])) {
		size_t start = p->pos;

		while (p->pos < p->n && is_word_char(p->s[p->pos]))
			p->pos++;
		strbuf_append(sb, p->s + start, p->pos - start);
		return sb->oom ? fail(p, "out of memory") : 0;
	}
	return fail(p, "expected member name");
}

#if JSON_FLOAT
static const double pow10_exact[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* scale10 returns m * 10^e; exact when m < 2^53 and |e| <= 22, otherwise
 * within a few ulp. */
static double scale10(double m, int e)
{
	while (e > 22) {
		m *= 1e22;
		e -= 22;
		if (m - m != 0)
			return m; /* overflowed to infinity */
	}
	while (e < -22) {
		m /= 1e22;
		e += 22;
		if (m == 0)
			return m;
	}
	return e >= 0 ? m * pow10_exact[e] : m / pow10_exact[-e];
}
#endif

static struct json_value *parse_number(struct parser *p)
{
	size_t start = p->pos;
	int neg = 0, digits = 0, exp10 = 0, isfloat = 0, overflow = 0;
	uint64_t mant = 0;

	if (p->s[p->pos] == '-') {
		neg = 1;
		p->pos++;
	}
	if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
		fail(p, "bad number");
		return NULL;
	}
	if (p->s[p->pos] == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' &&
	    p->s[p->pos + 1] <= '9') {
		fail(p, "leading zero in number");
		return NULL;
	}
	while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		unsigned d = (unsigned)(p->s[p->pos++] - '0');

		if (digits < 19) {
			mant = mant * 10 + d;
			if (mant || d)
				digits += mant != 0;
		} else {
			exp10++; /* keep 19 significant digits */
			overflow = 1;
		}
	}
	if (p->pos < p->n && p->s[p->pos] == '.') {
		isfloat = 1;
		p->pos++;
		if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
			fail(p, "bad fraction");
			return NULL;
		}
		while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
			unsigned d = (unsigned)(p->s[p->pos++] - '0');

			if (digits < 19) {
				mant = mant * 10 + d;
				digits += mant != 0;
				exp10--;
			}
		}
	}
	if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		int eneg = 0, e = 0;

		isfloat = 1;
		p->pos++;
		if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			eneg = p->s[p->pos++] == '-';
		if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
			fail(p, "bad exponent");
			return NULL;
		}
		while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
			if (e < 100000)
				e = e * 10 + (p->s[p->pos] - '0');
			p->pos++;
		}
		exp10 += eneg ? -e : e;
	}
	if (!isfloat && !overflow &&
	    (mant <= (uint64_t)INT64_MAX || (neg && mant == (uint64_t)INT64_MAX + 1)))
		return json_new_int(neg ? (int64_t)(0 - mant) : (int64_t)mant);
#if JSON_FLOAT
	{
		double d = scale10((double)mant, exp10);

		(void)start;
		return json_new_double(neg ? -d : d);
	}
#else
	(void)exp10;
	p->pos = start;
	fail(p, "fractional or out-of-range number (integer-only build)");
	return NULL;
#endif
}

static struct json_value *parse_value(struct parser *p, int depth);

static struct json_value *parse_container(struct parser *p, int depth, int obj)
{
	struct json_value *c = new_value(obj ? JSON_OBJECT : JSON_ARRAY);
	char close = obj ? '}' : ']';

	if (!c) {
		fail(p, "out of memory");
		return NULL;
	}
	p->pos++;
	skip_ws(p);
	if (p->pos < p->n && p->s[p->pos] == close) {
		p->pos++;
		return c;
	}
	for (;;) {
		struct json_value *v;
		struct strbuf key;

		strbuf_init(&key);
		skip_ws(p);
		if (obj) {
			if (parse_key(p, &key))
				goto bad;
			skip_ws(p);
			if (p->pos >= p->n || p->s[p->pos] != ':') {
				fail(p, "expected ':'");
				goto bad;
			}
			p->pos++;
		}
		v = parse_value(p, depth + 1);
		if (!v)
			goto bad;
		if (obj ? object_set_n(c, strbuf_cstr(&key), key.len, v)
			: json_array_push(c, v)) {
			fail(p, "out of memory");
			goto bad;
		}
		strbuf_free(&key);
		skip_ws(p);
		if (p->pos < p->n && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->n && p->s[p->pos] == close) {
			p->pos++;
			return c;
		}
		fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		json_free(c);
		return NULL;
bad:
		strbuf_free(&key);
		json_free(c);
		return NULL;
	}
}

static int match_word(struct parser *p, const char *w)
{
	size_t n = strlen(w);

	if (p->n - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
		return 0;
	if ((p->flags & JSON_RELAXED) && p->pos + n < p->n && is_word_char(p->s[p->pos + n]))
		return 0; /* "nullable" is a bare word, not null */
	p->pos += n;
	return 1;
}

static struct json_value *parse_value(struct parser *p, int depth)
{
	char c;

	if (depth > JSON_MAX_DEPTH) {
		fail(p, "nesting too deep");
		return NULL;
	}
	skip_ws(p);
	if (p->pos >= p->n) {
		fail(p, "unexpected end of input");
		return NULL;
	}
	c = p->s[p->pos];
	if (c == '{' || c == '[')
		return parse_container(p, depth, c == '{');
	if (c == '"') {
		struct strbuf sb;
		struct json_value *v;

		strbuf_init(&sb);
		if (parse_string(p, &sb)) {
			strbuf_free(&sb);
			return NULL;
		}
		v = json_new_string(strbuf_cstr(&sb), sb.len);
		strbuf_free(&sb);
		if (!v)
			fail(p, "out of memory");
		return v;
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return parse_number(p);
	if (match_word(p, "true"))
		return json_new_bool(1);
	if (match_word(p, "false"))
		return json_new_bool(0);
	if (match_word(p, "null"))
		return json_new_null();
	if ((p->flags & JSON_RELAXED) && is_word_start(c)) {
		size_t start = p->pos;

		while (p->pos < p->n && is_word_char(p->s[p->pos]))
			p->pos++;
		return json_new_string(p->s + start, p->pos - start);
	}
	fail(p, "unexpected character");
	return NULL;
}

struct json_value *json_parse(const char *text, size_t len, int flags,
			      struct json_error *err)
{
	struct parser p = { text, len, 0, flags, NULL };
	struct json_value *v = parse_value(&p, 1);

	if (v) {
		skip_ws(&p);
		if (p.pos != p.n) {
			fail(&p, "trailing characters");
			json_free(v);
			v = NULL;
		}
	}
	if (!v && !p.err)
		p.err = "out of memory";
	if (err) {
		err->pos = p.pos;
		err->msg = v ? NULL : p.err;
	}
	return v;
}

/* ---- serializing ---- */

static void put_string(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	strbuf_putc(sb, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"': strbuf_puts(sb, "\\\""); break;
		case '\\': strbuf_puts(sb, "\\\\"); break;
		case '\n': strbuf_puts(sb, "\\n"); break;
		case '\r': strbuf_puts(sb, "\\r"); break;
		case '\t': strbuf_puts(sb, "\\t"); break;
		case '\b': strbuf_puts(sb, "\\b"); break;
		case '\f': strbuf_puts(sb, "\\f"); break;
		default:
			if (c < 0x20) {
				strbuf_puts(sb, "\\u00");
				strbuf_putc(sb, hex[c >> 4]);
				strbuf_putc(sb, hex[c & 15]);
			} else {
				strbuf_putc(sb, (char)c);
			}
		}
	}
	strbuf_putc(sb, '"');
}

#if JSON_FLOAT
/* put_double prints 15 significant digits, trailing zeros dropped,
 * positional for exponents in [-5, 15), else d.ddde[+-]x. */
static void put_double(struct strbuf *sb, double d)
{
	char digits[16];
	uint64_t m;
	int e10 = 0, nd, i;

	if (d - d != 0) { /* NaN or infinity */
		strbuf_puts(sb, "null"); /* JSON has no NaN or infinity */
		return;
	}
	if (d < 0) {
		strbuf_putc(sb, '-');
		d = -d;
	}
	if (d == 0) {
		strbuf_putc(sb, '0');
		return;
	}
	while (d >= 1e15) {
		d /= 10;
		e10++;
	}
	while (d < 1e14) {
		d *= 10;
		e10--;
	}
	m = (uint64_t)(d + 0.5);
	if (m >= 1000000000000000ull) {
		m /= 10;
		e10++;
	}
	for (i = 14; i >= 0; i--) {
		digits[i] = (char)('0' + m % 10);
		m /= 10;
	}
	nd = 15;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	e10 += 14; /* value = d.ddd * 10^e10 */
	if (e10 >= -5 && e10 < 15) {
		if (e10 < 0) {
			strbuf_puts(sb, "0.");
			strbuf_repeat(sb, '0', (size_t)(-e10 - 1));
			strbuf_append(sb, digits, (size_t)nd);
		} else if (nd <= e10 + 1) {
			strbuf_append(sb, digits, (size_t)nd);
			strbuf_repeat(sb, '0', (size_t)(e10 + 1 - nd));
		} else {
			strbuf_append(sb, digits, (size_t)e10 + 1);
			strbuf_putc(sb, '.');
			strbuf_append(sb, digits + e10 + 1, (size_t)(nd - e10 - 1));
		}
		return;
	}
	strbuf_putc(sb, digits[0]);
	if (nd > 1) {
		strbuf_putc(sb, '.');
		strbuf_append(sb, digits + 1, (size_t)nd - 1);
	}
	strbuf_putc(sb, 'e');
	strbuf_puti64(sb, e10);
}
#endif

static void indent(struct strbuf *sb, int flags, int depth)
{
	if (flags & JSON_PRETTY) {
		strbuf_putc(sb, '\n');
		strbuf_repeat(sb, ' ', (size_t)depth * 2);
	}
}

struct member_ref {
	const char *key;
	size_t len;
	size_t index;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void put_value(struct strbuf *sb, const struct json_value *v, int flags,
		      int depth)
{
	size_t i;

	switch (v->type) {
	case JSON_NULL:
		strbuf_puts(sb, "null");
		break;
	case JSON_BOOL:
		strbuf_puts(sb, v->boolean ? "true" : "false");
		break;
	case JSON_NUMBER:
#if JSON_FLOAT
		if (!v->is_int) {
			put_double(sb, v->number);
			break;
		}
#endif
		strbuf_puti64(sb, v->integer);
		break;
	case JSON_STRING:
		put_string(sb, v->string, v->len);
		break;
	case JSON_ARRAY:
		strbuf_putc(sb, '[');
		for (i = 0; i < v->count; i++) {
			if (i)
				strbuf_putc(sb, ',');
			indent(sb, flags, depth + 1);
			put_value(sb, v->items[i], flags, depth + 1);
		}
		if (v->count)
			indent(sb, flags, depth);
		strbuf_putc(sb, ']');
		break;
	case JSON_OBJECT: {
		struct member_ref *order = NULL;

		if ((flags & JSON_SORT_KEYS) && v->count > 1) {
			order = malloc(v->count * sizeof(*order));
			if (!order) {
				sb->oom = 1;
				return;
			}
			for (i = 0; i < v->count; i++) {
				order[i].key = v->keys[i];
				order[i].len = v->keylens[i];
				order[i].index = i;
			}
			qsort(order, v->count, sizeof(*order), member_cmp);
		}
		strbuf_putc(sb, '{');
		for (i = 0; i < v->count; i++) {
			size_t k = order ? order[i].index : i;

			if (i)
				strbuf_putc(sb, ',');
			indent(sb, flags, depth + 1);
			put_string(sb, v->keys[k], v->keylens[k]);
			strbuf_putc(sb, ':');
			if (flags & JSON_PRETTY)
				strbuf_putc(sb, ' ');
			put_value(sb, v->items[k], flags, depth + 1);
		}
		if (v->count)
			indent(sb, flags, depth);
		strbuf_putc(sb, '}');
		free(order);
		break;
	}
	}
}

char *json_serialize(const struct json_value *v, int flags, size_t *len)
{
	struct strbuf sb;

	strbuf_init(&sb);
	put_value(&sb, v, flags, 0);
	if (sb.oom) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, len);
}
