/* ukhashmap: a string-keyed hash map (open addressing, linear probing,
 * backward-shift deletion). Keys are copied; values are opaque pointers or
 * integers. Iteration order depends on the hash function: sort if order
 * matters. */
#ifndef UKHASHMAP_H
#define UKHASHMAP_H
#include <stddef.h>
#include <stdint.h>

struct hashmap;

struct hashmap *hashmap_new(size_t capacity_hint);
void hashmap_free(struct hashmap *m);
size_t hashmap_size(const struct hashmap *m);
/* hashmap_put inserts or replaces; returns 0, or -1 if out of memory. */
int hashmap_put(struct hashmap *m, const char *key, size_t keylen, void *value);
/* hashmap_get returns 1 and sets *value if key is present, else 0. */
int hashmap_get(const struct hashmap *m, const char *key, size_t keylen, void **value);
/* hashmap_add adds delta to an integer value (absent keys start at 0) and
 * returns the new value; -1 with the map unchanged if out of memory. */
int64_t hashmap_add(struct hashmap *m, const char *key, size_t keylen, int64_t delta);
int hashmap_remove(struct hashmap *m, const char *key, size_t keylen);
/* hashmap_next iterates: start with *pos = 0; returns 0 at the end. The key
 * is NUL-terminated and owned by the map. */
int hashmap_next(const struct hashmap *m, size_t *pos, const char **key,
		 size_t *keylen, void **value);
uint64_t hashmap_hash(const char *key, size_t keylen);

#endif
