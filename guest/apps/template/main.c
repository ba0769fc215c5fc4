/* template: "key=value ... key=a,b,c ... :: template text". A value with
 * commas becomes a list. Renders the template (uktmpl syntax) against
 * those variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <uktmpl.h>

int main(int argc, char **argv)
{
	struct tmpl_ctx *ctx = tmpl_ctx_new();
	const char *err = NULL;
	char *tmpl, *out;
	int i;

	if (!ctx)
		return 1;
	for (i = 1; i < argc && strcmp(argv[i], "::") != 0; i++) {
		char *value = args_kv(argv[i]);

		if (!value) {
			printf("template: expected key=value before ::, got %s\n", argv[i]);
			return 2;
		}
		if (strchr(value, ',')) {
			char *items[64];
			int n = args_split(value, ',', items, 64), k;

			for (k = 0; k < n && k < 64; k++)
				if (tmpl_push(ctx, argv[i], items[k]))
					return 1;
		} else if (tmpl_set(ctx, argv[i], value)) {
			return 1;
		}
	}
	tmpl = args_join(argc, argv, i + 1);
	if (!tmpl)
		return 1;
	out = tmpl_render(ctx, tmpl, strlen(tmpl), &err);
	if (!out) {
		printf("template: %s\n", err);
		return 2;
	}
	printf("%s\n", out);
	free(out);
	free(tmpl);
	tmpl_ctx_free(ctx);
	return 0;
}
