/* One op per line: "p key val" put, "a key delta" add, "g key" get,
 * "d key" remove, "s" size, "i" iterate -> the sum of key lengths and of
 * values (order-free). Keys are hex. */
#include "common.h"
#include <stdint.h>
#include <ukhashmap.h>

int main(void)
{
	struct hashmap *m = hashmap_new(0);

	while (next_line()) {
		char *op = strtok(line, " "), *k = strtok(NULL, " "), *v = strtok(NULL, " ");
		size_t kl = k ? unhex(k) : 0;
		void *val;

		switch (op[0]) {
		case 'p':
			printf("%d\n", hashmap_put(m, k, kl, (void *)(intptr_t)strtoll(v, NULL, 10)));
			break;
		case 'a':
			printf("%lld\n", (long long)hashmap_add(m, k, kl, strtoll(v, NULL, 10)));
			break;
		case 'g':
			if (hashmap_get(m, k, kl, &val))
				printf("%lld\n", (long long)(intptr_t)val);
			else
				puts("absent");
			break;
		case 'd':
			printf("%d\n", hashmap_remove(m, k, kl));
			break;
		case 's':
			printf("%zu\n", hashmap_size(m));
			break;
		case 'i': {
			size_t pos = 0, len, total = 0, n = 0;
			long long sum = 0;

			while (hashmap_next(m, &pos, NULL, &len, &val)) {
				total += len;
				sum += (long long)(intptr_t)val;
				n++;
			}
			printf("%zu %zu %lld\n", n, total, sum);
			break;
		}
		}
	}
	hashmap_free(m);
	return 0;
}
