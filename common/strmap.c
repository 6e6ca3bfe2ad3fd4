/* String-keyed chained hash map. Owns the buckets and key copies; must
 * not free values. The seed keeps peers from choosing colliding ids. */
#include "common/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct node {
	struct node *next;
	uint64_t hash;
	void *val;
	char key[];
};

struct strmap {
	struct node **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t seed;
};

static uint64_t hash_key(uint64_t seed, const char *s)
{
	/* FNV-1a over the bytes, seeded, with a final avalanche (splitmix64). */
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nbuckets = 64;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	if (getrandom(&m->seed, sizeof(m->seed), 0) != sizeof(m->seed))
		m->seed = (uint64_t)(uintptr_t)m ^ 0x9e3779b97f4a7c15ULL;
	return m;
}

void strmap_free(struct strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct node *n = m->buckets[i];
		while (n) {
			struct node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->buckets);
	free(m);
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}

static struct node **find(const struct strmap *m, const char *key, uint64_t h)
{
	struct node **pp = &m->buckets[h & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			return pp;
	return pp;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct node **pp = find(m, key, hash_key(m->seed, key));
	return *pp ? (*pp)->val : NULL;
}

static void grow(struct strmap *m)
{
	size_t nb = m->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct node *n = m->buckets[i];
		while (n) {
			struct node *next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

int strmap_put(struct strmap *m, const char *key, void *val)
{
	uint64_t h = hash_key(m->seed, key);
	struct node **pp = find(m, key, h);
	if (*pp)
		return EEXIST;
	size_t len = strlen(key);
	struct node *n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return ENOMEM;
	memcpy(n->key, key, len + 1);
	n->hash = h;
	n->val = val;
	n->next = NULL;
	*pp = n;
	if (++m->count > m->nbuckets)
		grow(m);
	return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct node **pp = find(m, key, hash_key(m->seed, key));
	struct node *n = *pp;
	if (!n)
		return NULL;
	void *val = n->val;
	*pp = n->next;
	free(n);
	m->count--;
	return val;
}

void strmap_sweep(struct strmap *m, int (*fn)(const char *key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct node **pp = &m->buckets[i];
		while (*pp) {
			struct node *n = *pp;
			if (fn(n->key, n->val, arg)) {
				*pp = n->next;
				free(n);
				m->count--;
			} else {
				pp = &n->next;
			}
		}
	}
}
