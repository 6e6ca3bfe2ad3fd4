/* In-memory nonce store: two generations of open-addressing hash sets,
 * rotated every 2 * AUTH_MAX_SKEW_S seconds, so a nonce is remembered for
 * at least that long (any request older is refused by its ts anyway).
 * Owns its tables; must stay within max_entries. One mutex makes it
 * safe for the broker's worker threads. */
#include "signaling/replay.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "signaling/auth.h"

#define ROTATE_S (2 * AUTH_MAX_SKEW_S)
#define INITIAL_SLOTS 4096

struct slot {
	uint64_t hi, lo; /* both zero: empty */
};

struct nonce_set {
	struct slot *slots;
	size_t mask;  /* slots - 1, power of two */
	size_t count;
};

struct replay_mem {
	struct replay base;
	struct nonce_set gen[2]; /* [0] current, [1] previous */
	time_t rotated_at;
	size_t max_per_gen;
	pthread_mutex_t lock;
};

static int set_init(struct nonce_set *s, size_t slots)
{
	s->slots = calloc(slots, sizeof(*s->slots));
	if (!s->slots)
		return ENOMEM;
	s->mask = slots - 1;
	s->count = 0;
	return 0;
}

static size_t slot_index(const struct nonce_set *s, uint64_t hi, uint64_t lo)
{
	/* The nonce is random; mixing guards against a client that picks
	 * structured nonces to lengthen probe chains. */
	uint64_t h = hi * 0x9e3779b97f4a7c15ULL ^ lo * 0xc2b2ae3d27d4eb4fULL;
	h ^= h >> 29;
	return (size_t)h & s->mask;
}

static bool set_has(const struct nonce_set *s, uint64_t hi, uint64_t lo)
{
	for (size_t i = slot_index(s, hi, lo);; i = (i + 1) & s->mask) {
		const struct slot *sl = &s->slots[i];
		if (!sl->hi && !sl->lo)
			return false;
		if (sl->hi == hi && sl->lo == lo)
			return true;
	}
}

static void set_put(struct nonce_set *s, uint64_t hi, uint64_t lo)
{
	size_t i = slot_index(s, hi, lo);
	while (s->slots[i].hi || s->slots[i].lo)
		i = (i + 1) & s->mask;
	s->slots[i].hi = hi;
	s->slots[i].lo = lo;
	s->count++;
}

static int set_grow(struct nonce_set *s)
{
	struct nonce_set bigger;
	if (set_init(&bigger, (s->mask + 1) * 2))
		return ENOMEM;
	for (size_t i = 0; i <= s->mask; i++)
		if (s->slots[i].hi || s->slots[i].lo)
			set_put(&bigger, s->slots[i].hi, s->slots[i].lo);
	free(s->slots);
	*s = bigger;
	return 0;
}


static uint64_t hex16(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = p[i];
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return v;
}

static enum replay_result check_locked(struct replay_mem *r, const char *nonce)
{
	time_t now = (time_t)(clock_mono_ms() / 1000);
	if (now - r->rotated_at >= ROTATE_S) {
		struct nonce_set old = r->gen[1];
		r->gen[1] = r->gen[0];
		r->gen[0] = old;
		memset(r->gen[0].slots, 0, (r->gen[0].mask + 1) * sizeof(struct slot));
		r->gen[0].count = 0;
		r->rotated_at = now;
	}
	uint64_t hi = hex16(nonce), lo = hex16(nonce + 16);
	if (!hi && !lo)
		lo = 1; /* the empty marker; a 2^-128 alias is harmless */
	if (set_has(&r->gen[0], hi, lo) || set_has(&r->gen[1], hi, lo)) {
		return REPLAY_SEEN;
	}
	struct nonce_set *cur = &r->gen[0];
	if (cur->count >= r->max_per_gen) {
		return REPLAY_FULL;
	}
	if ((cur->count + 1) * 2 > cur->mask + 1 && set_grow(cur)) {
		return REPLAY_FULL;
	}
	set_put(cur, hi, lo);
	return REPLAY_FRESH;
}

static void mem_check(struct replay *rp, const char *nonce, replay_cb cb, void *arg)
{
	struct replay_mem *r = (struct replay_mem *)rp;
	pthread_mutex_lock(&r->lock);
	enum replay_result res = check_locked(r, nonce);
	pthread_mutex_unlock(&r->lock);
	cb(res, arg);
}

static size_t mem_size(struct replay *rp)
{
	struct replay_mem *r = (struct replay_mem *)rp;
	pthread_mutex_lock(&r->lock);
	size_t n = r->gen[0].count + r->gen[1].count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void mem_free(struct replay *rp)
{
	struct replay_mem *r = (struct replay_mem *)rp;
	if (!r)
		return;
	free(r->gen[0].slots);
	free(r->gen[1].slots);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static const struct replay_ops mem_ops = {
	.check = mem_check,
	.size = mem_size,
	.free = mem_free,
};

int replay_mem_new(struct replay **out, size_t max_entries)
{
	struct replay_mem *r = calloc(1, sizeof(*r));
	if (!r)
		return ENOMEM;
	r->base.ops = &mem_ops;
	r->max_per_gen = max_entries / 2 ? max_entries / 2 : 1;
	r->rotated_at = (time_t)(clock_mono_ms() / 1000);
	pthread_mutex_init(&r->lock, NULL);
	if (set_init(&r->gen[0], INITIAL_SLOTS) || set_init(&r->gen[1], INITIAL_SLOTS)) {
		mem_free(&r->base);
		return ENOMEM;
	}
	*out = &r->base;
	return 0;
}
