/* A string-keyed hash map with a per-process random seed, for tables
 * whose keys come from the network (peer ids, pairs). Keys are copied;
 * values are borrowed and never freed by the map. */
#ifndef MESH_COMMON_STRMAP_H
#define MESH_COMMON_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m); /* values are the caller's */
size_t strmap_count(const struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key);
/* Returns 0, EEXIST when the key is present (nothing changed) or ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *val);
/* Removes the key and returns its value, or NULL. */
void *strmap_del(struct strmap *m, const char *key);
/* Calls fn for every entry; when fn returns non-zero the entry is
 * removed (fn has taken care of the value). */
void strmap_sweep(struct strmap *m, int (*fn)(const char *key, void *val, void *arg), void *arg);

#endif
