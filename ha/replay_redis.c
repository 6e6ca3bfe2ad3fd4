/* The replay store in Redis: a nonce is recorded with SET NX EX 240 on
 * the master, so a request replayed to any coordinator of the cluster is
 * refused. It must not fall back to a local store when Redis is away
 * (that would let a replay through another node): it answers
 * REPLAY_UNAVAILABLE instead, and the broker refuses with 503. */
#include "ha/ha_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/replay.h"

struct rop {
	TAILQ_ENTRY(rop) link;
	struct replay_redis *rp;
	replay_cb cb;
	void *arg;
};
TAILQ_HEAD(rop_list, rop);

struct replay_redis {
	struct replay base;
	struct ha *ha;
	struct rop_list ops;
	/* Nonces this coordinator recorded, per second of the window, for
	 * size() (the cluster-wide count lives in Redis, uncounted). */
	uint32_t per_sec[HA_NONCE_TTL_S];
	int64_t sec_of[HA_NONCE_TTL_S];
	int64_t last_log_ms;
};

static void rop_done(struct rop *op, enum replay_result res)
{
	replay_cb cb = op->cb;
	void *arg = op->arg;
	TAILQ_REMOVE(&op->rp->ops, op, link);
	free(op);
	cb(res, arg);
}

static void count_fresh(struct replay_redis *rp)
{
	int64_t sec = ha_now_ms() / 1000;
	size_t i = (size_t)(sec % HA_NONCE_TTL_S);
	if (rp->sec_of[i] != sec) {
		rp->sec_of[i] = sec;
		rp->per_sec[i] = 0;
	}
	rp->per_sec[i]++;
}

static void set_reply(redisReply *r, void *arg)
{
	struct rop *op = arg;
	struct replay_redis *rp = op->rp;
	if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
		count_fresh(rp);
		rop_done(op, REPLAY_FRESH);
		return;
	}
	if (r && r->type == REDIS_REPLY_NIL) {
		rop_done(op, REPLAY_SEEN);
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR) {
		if (ha_reply_is_error(r, "OOM")) {
			rop_done(op, REPLAY_FULL);
			return;
		}
		ha_master_suspect(rp->ha, r);
	} else if (r) {
		ha_ctr(rp->ha)->err_protocol++;
	}
	int64_t now = ha_now_ms();
	if (r && now - rp->last_log_ms > 5000) {
		rp->last_log_ms = now;
		log_warn("ha", "replay check: Redis answered %.200s",
			 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
	}
	rop_done(op, REPLAY_UNAVAILABLE);
}

static void unavailable_cb(redisReply *r, void *arg)
{
	rop_done(arg, REPLAY_UNAVAILABLE);
}

static void rr_check(struct replay *base, const char *nonce, replay_cb cb, void *arg)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	struct rop *op = calloc(1, sizeof(*op));
	if (!op) {
		cb(REPLAY_FULL, arg);
		return;
	}
	op->rp = rp;
	op->cb = cb;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&rp->ops, op, link);
	struct rconn *rc = ha_data(rp->ha);
	if (!ha_usable(rp->ha, NULL, 0) || strlen(nonce) != NONCE_HEX_LEN) {
		rconn_defer(rc, unavailable_cb, op);
		return;
	}
	char key[sizeof(HA_PREFIX) + 8 + NONCE_HEX_LEN];
	int lk = snprintf(key, sizeof(key), HA_PREFIX "nonce:%s", nonce);
	char ttl[16];
	int lt = snprintf(ttl, sizeof(ttl), "%d", HA_NONCE_TTL_S);
	const char *argv[] = { "SET", key, "1", "NX", "EX", ttl };
	size_t lens[] = { 3, (size_t)lk, 1, 2, 2, (size_t)lt };
	rconn_cmd(rc, set_reply, op, 6, argv, lens);
}

static size_t rr_size(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	int64_t sec = ha_now_ms() / 1000;
	size_t n = 0;
	for (size_t i = 0; i < HA_NONCE_TTL_S; i++)
		if (sec - rp->sec_of[i] < HA_NONCE_TTL_S)
			n += rp->per_sec[i];
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
	TAILQ_INIT(&rp->ops);
	for (size_t i = 0; i < HA_NONCE_TTL_S; i++)
		rp->sec_of[i] = -HA_NONCE_TTL_S - 1;
	return &rp->base;
}

void replay_redis_destroy(struct replay *base)
{
	struct replay_redis *rp = (struct replay_redis *)base;
	if (!rp)
		return;
	struct rop *op;
	while ((op = TAILQ_FIRST(&rp->ops))) {
		TAILQ_REMOVE(&rp->ops, op, link);
		free(op);
	}
	free(rp);
}
