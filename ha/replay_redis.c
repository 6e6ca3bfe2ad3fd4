/* The replay store in Redis: a nonce is recorded with SET NX EX 240 on
 * the master, so a request replayed to any coordinator of the cluster is
 * refused. The checks asked for during one event-loop turn go out as one
 * script call (one round trip and one command for the whole batch). It
 * must not fall back to a local store when Redis is away (that would let
 * a replay through another node): it answers REPLAY_UNAVAILABLE instead,
 * and the broker refuses with 503. */
#include "ha/ha_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/mailbox.h"
#include "signaling/replay.h"

/* Nonces per script call; more wait for the next one. */
#define BATCH_MAX 256
/* A batch goes out as soon as it holds this many, so Redis works while
 * the coordinator is still reading requests (no lock-step waves). */
#ifndef BATCH_EAGER
#define BATCH_EAGER 8
#endif

struct rop {
	TAILQ_ENTRY(rop) link;
	struct replay_redis *rp;
	replay_cb cb;
	void *arg;
	char nonce[NONCE_HEX_LEN + 1];
};
TAILQ_HEAD(rop_list, rop);

struct batch {
	TAILQ_ENTRY(batch) link;
	struct replay_redis *rp;
	struct rop_list ops;
	size_t n;
};
TAILQ_HEAD(batch_list, batch);

struct replay_redis {
	struct replay base;
	struct ha *ha;
	struct rop_list queued;    /* not sent yet */
	struct rop_list deferred;  /* answered UNAVAILABLE from the loop */
	struct batch_list sent;
	struct event *flush_ev;
	size_t nqueued;
	bool stopped;
	/* Nonces this coordinator recorded, per second of the window, for
	 * size() (the cluster-wide count lives in Redis, uncounted). */
	uint32_t per_sec[HA_NONCE_TTL_S];
	int64_t sec_of[HA_NONCE_TTL_S];
	int64_t last_log_ms;
};

void replay_redis_count_fresh(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	int64_t sec = ha_now_ms() / 1000;
	size_t i = (size_t)(sec % HA_NONCE_TTL_S);
	if (rp->sec_of[i] != sec) {
		rp->sec_of[i] = sec;
		rp->per_sec[i] = 0;
	}
	rp->per_sec[i]++;
}

static void batch_reply(redisReply *r, void *arg)
{
	struct batch *b = arg;
	struct replay_redis *rp = b->rp;
	TAILQ_REMOVE(&rp->sent, b, link);
	bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
	for (size_t i = 0; ok && i < r->elements; i++)
		ok = r->element[i]->type == REDIS_REPLY_INTEGER &&
		     (r->element[i]->integer == 0 || r->element[i]->integer == 1);
	enum replay_result all = REPLAY_UNAVAILABLE;
	if (!ok && r) {
		if (r->type == REDIS_REPLY_ERROR) {
			if (ha_reply_is_error(r, "OOM"))
				all = REPLAY_FULL;
			else
				ha_master_suspect(rp->ha, r);
		} else {
			ha_ctr(rp->ha)->err_protocol++;
		}
		int64_t now = ha_now_ms();
		if (now - rp->last_log_ms > 5000) {
			rp->last_log_ms = now;
			log_warn("ha", "replay check: Redis answered %.200s",
				 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
		}
	}
	size_t i = 0;
	struct rop *op;
	while ((op = TAILQ_FIRST(&b->ops))) {
		TAILQ_REMOVE(&b->ops, op, link);
		enum replay_result res = all;
		if (ok) {
			res = r->element[i]->integer == 1 ? REPLAY_FRESH : REPLAY_SEEN;
			if (res == REPLAY_FRESH)
				replay_redis_count_fresh(&rp->base);
		}
		i++;
		replay_cb cb = op->cb;
		void *cbarg = op->arg;
		free(op);
		cb(res, cbarg);
	}
	free(b);
}

/* Answers every deferred check UNAVAILABLE (callbacks may queue more). */
static void answer_deferred(struct replay_redis *rp)
{
	struct rop *op;
	while ((op = TAILQ_FIRST(&rp->deferred))) {
		TAILQ_REMOVE(&rp->deferred, op, link);
		replay_cb cb = op->cb;
		void *cbarg = op->arg;
		free(op);
		cb(REPLAY_UNAVAILABLE, cbarg);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replay_redis *rp = arg;
	struct rop *op;
	/* Answered locally (no master): from the loop, never inside check(). */
	answer_deferred(rp);
	rp->nqueued = 0;
	while (!TAILQ_EMPTY(&rp->queued)) {
		struct batch *b = calloc(1, sizeof(*b));
		const char **argv = calloc(BATCH_MAX + 2, sizeof(*argv));
		size_t *lens = calloc(BATCH_MAX + 2, sizeof(*lens));
		if (!b || !argv || !lens) {
			free(b);
			free(argv);
			free(lens);
			TAILQ_CONCAT(&rp->deferred, &rp->queued, link);
			event_active(rp->flush_ev, EV_READ, 0);
			return;
		}
		char ttl[16];
		int lt = snprintf(ttl, sizeof(ttl), "%d", HA_NONCE_TTL_S);
		b->rp = rp;
		TAILQ_INIT(&b->ops);
		argv[0] = HA_PREFIX;
		lens[0] = strlen(HA_PREFIX);
		argv[1] = ttl;
		lens[1] = (size_t)lt;
		while (b->n < BATCH_MAX && (op = TAILQ_FIRST(&rp->queued))) {
			TAILQ_REMOVE(&rp->queued, op, link);
			TAILQ_INSERT_TAIL(&b->ops, op, link);
			argv[2 + b->n] = op->nonce;
			lens[2 + b->n] = NONCE_HEX_LEN;
			b->n++;
		}
		TAILQ_INSERT_TAIL(&rp->sent, b, link);
		/* Not usable: rconn answers NULL from the loop (UNAVAILABLE). */
		rconn_script(ha_data(rp->ha), HA_SCRIPT_REPLAY, batch_reply, b, 0, (int)(2 + b->n),
			     argv, lens);
		free(argv);
		free(lens);
	}
}

static void rr_check(struct replay *base, const char *nonce, replay_cb cb, void *arg)
{
	/* The broker holds the owner's store; each HTTP thread works on its
	 * own instance (ha_bind_thread). */
	struct replay_redis *rp =
		(struct replay_redis *)ha_thread_replay(((struct replay_redis *)base)->ha);
	if (rp->stopped) {
		cb(REPLAY_UNAVAILABLE, arg);
		return;
	}
	struct rop *op = calloc(1, sizeof(*op));
	if (!op) {
		cb(REPLAY_FULL, arg);
		return;
	}
	op->rp = rp;
	op->cb = cb;
	op->arg = arg;
	bool good = strlen(nonce) == NONCE_HEX_LEN;
	for (size_t i = 0; good && i < NONCE_HEX_LEN; i++)
		good = (nonce[i] >= '0' && nonce[i] <= '9') || (nonce[i] >= 'a' && nonce[i] <= 'f');
	if (good)
		memcpy(op->nonce, nonce, NONCE_HEX_LEN + 1);
	if (!good || !ha_usable(rp->ha, NULL, 0)) {
		TAILQ_INSERT_TAIL(&rp->deferred, op, link);
	} else {
		TAILQ_INSERT_TAIL(&rp->queued, op, link);
		if (++rp->nqueued >= BATCH_EAGER) {
			flush_cb(-1, 0, rp);
			rconn_push(ha_data(rp->ha));
			return;
		}
	}
	/* Runs after the callbacks already due in this loop turn: the
	 * requests read together are checked together. */
	event_active(rp->flush_ev, EV_READ, 0);
}

size_t replay_redis_own_size(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	int64_t sec = ha_now_ms() / 1000;
	size_t n = 0;
	for (size_t i = 0; i < HA_NONCE_TTL_S; i++)
		if (sec - rp->sec_of[i] < HA_NONCE_TTL_S)
			n += rp->per_sec[i];
	return n;
}

static size_t rr_size(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	if (!ha_is_threaded(rp->ha))
		return replay_redis_own_size(base);
	struct mb_stats st;
	size_t n = 0;
	ha_sum_stats(rp->ha, &st, &n);
	return n;
}

static void rr_free(struct replay *base)
{
	/* Owned by the ha: released by ha_free (replay_redis_destroy). */
}

static const struct replay_ops rr_ops = {
	.check = rr_check,
	.size = rr_size,
	.free = rr_free,
};

struct replay *replay_redis_new(struct event_base *base, struct ha *ha)
{
	struct replay_redis *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return NULL;
	rp->base.ops = &rr_ops;
	rp->ha = ha;
	TAILQ_INIT(&rp->queued);
	TAILQ_INIT(&rp->deferred);
	TAILQ_INIT(&rp->sent);
	for (size_t i = 0; i < HA_NONCE_TTL_S; i++)
		rp->sec_of[i] = -HA_NONCE_TTL_S - 1;
	rp->flush_ev = event_new(base, -1, 0, flush_cb, rp);
	if (!rp->flush_ev) {
		free(rp);
		return NULL;
	}
	return &rp->base;
}

static void free_ops(struct rop_list *l)
{
	struct rop *op;
	while ((op = TAILQ_FIRST(l))) {
		TAILQ_REMOVE(l, op, link);
		free(op);
	}
}

void replay_redis_destroy(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	if (!rp)
		return;
	/* The connection is gone first (ha_free): no reply reaches these. */
	free_ops(&rp->queued);
	free_ops(&rp->deferred);
	struct batch *b;
	while ((b = TAILQ_FIRST(&rp->sent))) {
		TAILQ_REMOVE(&rp->sent, b, link);
		free_ops(&b->ops);
		free(b);
	}
	if (rp->flush_ev)
		event_free(rp->flush_ev);
	free(rp);
}

void replay_redis_quiesce(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	if (!rp)
		return;
	rp->stopped = true;
	TAILQ_CONCAT(&rp->deferred, &rp->queued, link);
	answer_deferred(rp);
}

void replay_redis_stop(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	if (!rp)
		return;
	if (rp->flush_ev) {
		event_free(rp->flush_ev);
		rp->flush_ev = NULL;
	}
	rp->stopped = true;
}
