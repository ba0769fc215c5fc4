/* uktmpl: Mustache-style text templates.
 *   {{name}}            the value, HTML-escaped (& < > " ')
 *   {{{name}}} {{&name}} the value, raw
 *   {{name|upper}}      filters: upper, lower, len, trim, title, count
 *   {{#name}}..{{/name}} a list: once per item ({{.}} the item, {{@index}}
 *                        its 0-based index, {{@number}} 1-based); a value:
 *                        once if non-empty and not "0" or "false"
 *   {{^name}}..{{/name}} once if name is absent, empty, falsy or an empty list
 *   {{! comment }}
 * Sections nest; {{.}} is the innermost list item. */
#ifndef UKTMPL_H
#define UKTMPL_H
#include <stddef.h>

struct tmpl_ctx;

struct tmpl_ctx *tmpl_ctx_new(void);
void tmpl_ctx_free(struct tmpl_ctx *ctx);
/* tmpl_set makes name a value (replacing a value or list); 0 or -1. */
int tmpl_set(struct tmpl_ctx *ctx, const char *name, const char *value);
/* tmpl_push appends an item to the list name (creating it); 0 or -1. */
int tmpl_push(struct tmpl_ctx *ctx, const char *name, const char *item);
/* tmpl_render returns a malloc'd string, or NULL with *err set (a static
 * message: unclosed tag, mismatched section, unknown filter, no memory). */
char *tmpl_render(const struct tmpl_ctx *ctx, const char *tmpl, size_t len,
		  const char **err);

#endif
