/* ukjson: a JSON (RFC 8259) DOM parser and serializer. Objects keep their
 * members in insertion order. Builds with JSON_FLOAT=0 accept integers only. */
#ifndef UKJSON_H
#define UKJSON_H
#include <stddef.h>
#include <stdint.h>

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_value {
	enum json_type type;
	int boolean;
	int is_int;      /* number: integral and within int64 */
	int64_t integer; /* number, when is_int */
	double number;   /* number, always (0 in integer-only builds) */
	char *string;    /* string: bytes plus a NUL; may contain NULs */
	size_t len;
	size_t count;    /* array items or object members */
	size_t cap;
	char **keys;     /* object: NUL-terminated member names */
	size_t *keylens;
	struct json_value **items;
};

/* Parse flags. JSON_RELAXED also accepts what survives a shell-less command
 * line: unquoted member names and bare words ([A-Za-z_][A-Za-z0-9_.-]*,
 * other than true/false/null) as strings. */
#define JSON_RELAXED 1
/* Serialize flags. */
#define JSON_PRETTY 1    /* newlines and two-space indents */
#define JSON_SORT_KEYS 2 /* members by byte order of their names */

struct json_error {
	size_t pos;      /* byte offset of the error */
	const char *msg; /* static string */
};

struct json_value *json_parse(const char *text, size_t len, int flags,
			      struct json_error *err);
void json_free(struct json_value *v);
/* json_serialize returns a malloc'd NUL-terminated string (NULL if out of
 * memory); *len, if given, gets its length. */
char *json_serialize(const struct json_value *v, int flags, size_t *len);

struct json_value *json_new_null(void);
struct json_value *json_new_bool(int b);
struct json_value *json_new_int(int64_t i);
struct json_value *json_new_double(double d);
struct json_value *json_new_string(const char *s, size_t len);
struct json_value *json_new_array(void);
struct json_value *json_new_object(void);
struct json_value *json_clone(const struct json_value *v);
/* The container takes ownership of v; -1 if out of memory (v is freed). */
int json_array_push(struct json_value *arr, struct json_value *v);
int json_object_set(struct json_value *obj, const char *key, struct json_value *v);
struct json_value *json_object_get(const struct json_value *obj, const char *key);
int json_object_remove(struct json_value *obj, const char *key);
struct json_value *json_array_get(const struct json_value *arr, size_t i);
/* json_path follows "a.b.0.c" (numbers index arrays); NULL if absent. */
struct json_value *json_path(const struct json_value *v, const char *path);
int json_equal(const struct json_value *a, const struct json_value *b);
const char *json_type_name(enum json_type t);

#endif
