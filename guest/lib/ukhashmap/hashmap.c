/* HASHMAP_MURMUR selects MurmurHash3's 64-bit finaliser over 8-byte words
 * instead of FNV-1a over bytes: different slots and iteration order, same
 * map semantics. */
#include <stdlib.h>
#include <string.h>
#include <ukhashmap.h>

struct slot {
	char *key;     /* NULL: empty */
	size_t keylen;
	uint64_t hash;
	void *value;
};

struct hashmap {
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t size;
};

#if defined(HASHMAP_MURMUR) && HASHMAP_MURMUR
static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

uint64_t hashmap_hash(const char *key, size_t keylen)
{
	uint64_t h = 0x9368e53c2f6af274ull ^ keylen;
	size_t i;

	for (i = 0; i + 8 <= keylen; i += 8) {
		uint64_t w;

		memcpy(&w, key + i, 8);
		h = fmix64(h ^ w) * 5 + 0x52dce729;
	}
	if (i < keylen) {
		uint64_t w = 0;

		memcpy(&w, key + i, keylen - i);
		h = fmix64(h ^ w);
	}
	return fmix64(h);
}
#else
uint64_t hashmap_hash(const char *key, size_t keylen)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < keylen; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#endif

struct hashmap *hashmap_new(size_t hint)
{
	struct hashmap *m = malloc(sizeof(*m));
	size_t cap = 8;

	if (!m)
		return NULL;
	while (cap < hint * 2)
		cap *= 2;
	m->slots = calloc(cap, sizeof(struct slot));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	m->cap = cap;
	m->size = 0;
	return m;
}

void hashmap_free(struct hashmap *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

size_t hashmap_size(const struct hashmap *m)
{
	return m->size;
}

static size_t find(const struct hashmap *m, const char *key, size_t keylen,
		   uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	for (;;) {
		const struct slot *s = &m->slots[i];

		if (!s->key)
			return i;
		if (s->hash == h && s->keylen == keylen &&
		    memcmp(s->key, key, keylen) == 0)
			return i;
		i = (i + 1) & (m->cap - 1);
	}
}

static int grow(struct hashmap *m)
{
	struct slot *old = m->slots;
	size_t oldcap = m->cap, i;

	m->slots = calloc(oldcap * 2, sizeof(struct slot));
	if (!m->slots) {
		m->slots = old;
		return -1;
	}
	m->cap = oldcap * 2;
	for (i = 0; i < oldcap; i++)
		if (old[i].key)
			m->slots[find(m, old[i].key, old[i].keylen, old[i].hash)] = old[i];
	free(old);
	return 0;
}

static struct slot *lookup_or_insert(struct hashmap *m, const char *key,
				     size_t keylen)
{
	uint64_t h = hashmap_hash(key, keylen);
	struct slot *s;
	size_t i;

	/* load factor at most 3/4 */
	if ((m->size + 1) * 4 > m->cap * 3 && grow(m))
		return NULL;
	i = find(m, key, keylen, h);
	s = &m->slots[i];
	if (!s->key) {
		s->key = malloc(keylen + 1);
		if (!s->key)
			return NULL;
		memcpy(s->key, key, keylen);
		s->key[keylen] = '\0';
		s->keylen = keylen;
		s->hash = h;
		s->value = NULL;
		m->size++;
	}
	return s;
}

int hashmap_put(struct hashmap *m, const char *key, size_t keylen, void *value)
{
	struct slot *s = lookup_or_insert(m, key, keylen);

	if (!s)
		return -1;
	s->value = value;
	return 0;
}

int64_t hashmap_add(struct hashmap *m, const char *key, size_t keylen, int64_t delta)
{
	struct slot *s = lookup_or_insert(m, key, keylen);

	if (!s)
		return -1;
	s->value = (void *)(intptr_t)((intptr_t)s->value + delta);
	return (int64_t)(intptr_t)s->value;
}

int hashmap_get(const struct hashmap *m, const char *key, size_t keylen, void **value)
{
	const struct slot *s = &m->slots[find(m, key, keylen, hashmap_hash(key, keylen))];

	if (!s->key)
		return 0;
	if (value)
		*value = s->value;
	return 1;
}

int hashmap_remove(struct hashmap *m, const char *key, size_t keylen)
{
	size_t i = find(m, key, keylen, hashmap_hash(key, keylen)), j;

	if (!m->slots[i].key)
		return 0;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->size--;
	/* backward shift: pull later entries of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j] */
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & (m->cap - 1);
		if (!m->slots[j].key)
			return 1;
		home = (size_t)m->slots[j].hash & (m->cap - 1);
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j].key = NULL;
		i = j;
	}
}

int hashmap_next(const struct hashmap *m, size_t *pos, const char **key,
		 size_t *keylen, void **value)
{
	while (*pos < m->cap) {
		const struct slot *s = &m->slots[(*pos)++];

		if (s->key) {
			if (key)
				*key = s->key;
			if (keylen)
				*keylen = s->keylen;
			if (value)
				*value = s->value;
			return 1;
		}
	}
	return 0;
}
