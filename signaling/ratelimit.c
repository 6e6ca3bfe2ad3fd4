/* Token buckets keyed by peer id, shared by the broker's worker threads
 * under one mutex. Owns the buckets; must not log (the caller decides
 * what a refusal means). */
#include "signaling/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/strmap.h"

struct bucket {
	double tokens;
	int64_t updated_ms;
};

struct ratelimit {
	struct strmap *buckets;
	double rate, burst;
	pthread_mutex_t lock;
};

struct ratelimit *ratelimit_new(unsigned rate, unsigned burst)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->buckets = strmap_new();
	if (!rl->buckets) {
		free(rl);
		return NULL;
	}
	rl->rate = rate;
	rl->burst = burst ? burst : 1;
	pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

static int drop_all(const char *key, void *val, void *arg)
{
	free(val);
	return 1;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	strmap_sweep(rl->buckets, drop_all, NULL);
	strmap_free(rl->buckets);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static void refill(const struct ratelimit *rl, struct bucket *b, int64_t now_ms)
{
	if (now_ms > b->updated_ms) {
		b->tokens += rl->rate * (double)(now_ms - b->updated_ms) / 1000.0;
		if (b->tokens > rl->burst)
			b->tokens = rl->burst;
		b->updated_ms = now_ms;
	}
}

static bool take_locked(struct ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_ms)
{
	struct bucket *b = strmap_get(rl->buckets, key);
	if (!b) {
		b = malloc(sizeof(*b));
		/* Out of memory: let the request through rather than refuse
		 * every peer; the mailbox has its own bounds. */
		if (!b)
			return true;
		b->tokens = rl->burst;
		b->updated_ms = now_ms;
		if (strmap_put(rl->buckets, key, b)) {
			free(b);
			return true;
		}
	}
	refill(rl, b, now_ms);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	*retry_ms = (int64_t)((1.0 - b->tokens) * 1000.0 / rl->rate) + 1;
	return false;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_ms)
{
	if (rl->rate <= 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	bool ok = take_locked(rl, key, now_ms, retry_ms);
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

struct sweep_arg {
	const struct ratelimit *rl;
	int64_t now_ms;
};

static int sweep_full(const char *key, void *val, void *arg)
{
	struct sweep_arg *a = arg;
	struct bucket *b = val;
	refill(a->rl, b, a->now_ms);
	if (b->tokens >= a->rl->burst) {
		free(b);
		return 1;
	}
	return 0;
}

void ratelimit_sweep(struct ratelimit *rl, int64_t now_ms)
{
	struct sweep_arg a = { rl, now_ms };
	pthread_mutex_lock(&rl->lock);
	strmap_sweep(rl->buckets, sweep_full, &a);
	pthread_mutex_unlock(&rl->lock);
}
