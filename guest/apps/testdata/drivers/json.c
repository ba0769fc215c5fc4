/* "<hexjson>" -> "ok <hex of the compact serialization>" | "err". */
#include "common.h"
#include <ukjson.h>

int main(void)
{
	while (next_line()) {
		size_t n = unhex(line), len;
		struct json_error err;
		struct json_value *v = json_parse(line, n, 0, &err);
		char *out;

		if (!v) {
			puts("err");
			continue;
		}
		out = json_serialize(v, 0, &len);
		fputs("ok ", stdout);
		put_hex(out, len);
		putchar('\n');
		free(out);
		json_free(v);
	}
	return 0;
}
