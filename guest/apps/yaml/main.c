/* yaml: parses the input as YAML (flow style fits a command line:
 * "{name: x, tags: [a, b]}") with Debian's libyaml.a as shipped; prints
 * the counts of mappings, sequences, scalars and aliases, the maximum
 * nesting, and the keys of the top-level mapping in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ukargs.h>
#include <yaml.h>

int main(int argc, char **argv)
{
	char *text = args_join(argc, argv, 1);
	yaml_parser_t parser;
	yaml_event_t ev;
	int maps = 0, seqs = 0, scalars = 0, aliases = 0, depth = 0, maxdepth = 0;
	/* expect_key: the next child of the top mapping is a key */
	int top_is_map = 0, expect_key = 0, done = 0, nkeys = 0;
	char keys[512];
	size_t kl = 0;

	if (!text || !yaml_parser_initialize(&parser))
		return 1;
	keys[0] = '\0';
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	while (!done) {
		/* the depth of the node's parent: 1 means a direct child of
		 * the top-level collection */
		int parent = depth, node = 0;

		if (!yaml_parser_parse(&parser, &ev)) {
			printf("yaml: %s at offset %zu\n", parser.problem ? parser.problem : "error",
			       parser.problem_mark.index);
			return 1;
		}
		switch (ev.type) {
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			node = 1;
			if (ev.type == YAML_MAPPING_START_EVENT)
				maps++;
			else
				seqs++;
			if (parent == 0) {
				top_is_map = ev.type == YAML_MAPPING_START_EVENT;
				expect_key = 1;
			}
			if (++depth > maxdepth)
				maxdepth = depth;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
			node = 1;
			scalars++;
			if (parent == 1 && top_is_map && expect_key) {
				size_t l = ev.data.scalar.length;

				if (kl + l + 2 < sizeof(keys)) {
					if (kl)
						keys[kl++] = ',';
					memcpy(keys + kl, ev.data.scalar.value, l);
					kl += l;
					keys[kl] = '\0';
				}
				nkeys++;
			}
			break;
		case YAML_ALIAS_EVENT:
			node = 1;
			aliases++;
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		/* children of the top mapping alternate: key, value, key... */
		if (node && parent == 1 && top_is_map)
			expect_key = !expect_key;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	printf("yaml maps=%d seqs=%d scalars=%d aliases=%d depth=%d keys=%d:%s\n", maps, seqs,
	       scalars, aliases, maxdepth, nkeys, keys);
	free(text);
	return 0;
}
