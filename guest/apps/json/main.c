/* json: parses a JSON document (relaxed: bare words are strings, so it
 * survives a command line), transforms it and prints it compactly with
 * sorted keys. The transform doubles every integer, upper-cases every
 * string, reverses every array, and adds "_stats" to the top-level object:
 * the number of values of each kind and the maximum depth. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <ukjson.h>

struct stats {
	long counts[6];
	int maxdepth;
};

static void transform(struct json_value *v, struct stats *st, int depth)
{
	size_t i;

	st->counts[v->type]++;
	if (depth > st->maxdepth)
		st->maxdepth = depth;
	switch (v->type) {
	case JSON_NUMBER:
		if (v->is_int)
			v->integer *= 2;
		else
			v->number *= 2;
		break;
	case JSON_STRING:
		for (i = 0; i < v->len; i++)
			if (v->string[i] >= 'a' && v->string[i] <= 'z')
				v->string[i] = (char)(v->string[i] - 32);
		break;
	case JSON_ARRAY:
		for (i = 0; i < v->count / 2; i++) {
			struct json_value *t = v->items[i];

			v->items[i] = v->items[v->count - 1 - i];
			v->items[v->count - 1 - i] = t;
		}
		/* fall through */
	case JSON_OBJECT:
		for (i = 0; i < v->count; i++)
			transform(v->items[i], st, depth + 1);
		break;
	default:
		break;
	}
}

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1), *out;
	struct json_error err;
	struct json_value *doc, *s;
	struct stats st;
	int t;

	if (!text)
		return 1;
	doc = json_parse(text, strlen(text), JSON_RELAXED, &err);
	if (!doc) {
		printf("json: error at %zu: %s\n", err.pos, err.msg);
		return 1;
	}
	memset(&st, 0, sizeof(st));
	transform(doc, &st, 1);
	if (doc->type == JSON_OBJECT) {
		s = json_new_object();
		for (t = JSON_NULL; t <= JSON_OBJECT; t++)
			if (st.counts[t])
				json_object_set(s, json_type_name((enum json_type)t),
						json_new_int(st.counts[t]));
		json_object_set(s, "depth", json_new_int(st.maxdepth));
		json_object_set(doc, "_stats", s);
	}
	out = json_serialize(doc, JSON_SORT_KEYS, NULL);
	if (!out)
		return 1;
	printf("%s\n", out);
	free(out);
	json_free(doc);
	free(text);
	return 0;
}
