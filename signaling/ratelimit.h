/* Per-peer token buckets for the publish rate limit. */
#ifndef MESH_SIGNALING_RATELIMIT_H
#define MESH_SIGNALING_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

/* rate: tokens per second (0 disables the limit); burst: bucket size. */
struct ratelimit *ratelimit_new(unsigned rate, unsigned burst);
void ratelimit_free(struct ratelimit *rl);
/* Takes one token for key at now_ms. When none is left returns false
 * and the milliseconds until the next token in *retry_ms. */
bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_ms);
/* Forgets buckets that have been full for a while (bounded memory). */
void ratelimit_sweep(struct ratelimit *rl, int64_t now_ms);

#endif
