/* The Redis mailbox backend: the mailbox.h operations as calls of the Lua
 * scripts in scripts.c over ha.c's master connection, the local table of
 * long-poll watchers woken by the one subscriber connection per
 * coordinator, and (with --ha) the WAIT barrier that answers a publish or
 * an acknowledgement only once a replica holds it. It must not decide
 * anything the scripts decide (epochs, caps, TTL): it builds arguments,
 * validates every reply (type and bounds) and maps it to mb_* results.
 * Publishes of one loop turn share a script call (as the replay checks
 * do). Callbacks run from the event loop; only at shutdown, or when a
 * write to Redis fails inside the call, do they run before it returns
 * (the broker takes both, as with the memory backend). */
#include "ha/ha_priv.h"
#include "ha/reply_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/strmap.h"
#include "signaling/auth.h"
#include "signaling/mailbox.h"
#include "signaling/wire.h"

#define LOG_EVERY_MS 5000

struct op;
TAILQ_HEAD(op_list, op);

enum op_kind { OP_PUBLISH, OP_FETCH };
/* PH_SCRIPT: acknowledge and read in one call; with --ha PH_ACK, then
 * PH_BARRIER (WAIT) when something was deleted, then PH_READ. */
enum op_phase { PH_SCRIPT, PH_ACK, PH_READ, PH_BARRIER };

struct op {
	TAILQ_ENTRY(op) link;   /* mailbox's list of live ops */
	TAILQ_ENTRY(op) blink;  /* barrier list */
	struct mailbox_redis *m;
	enum op_kind kind;
	enum op_phase phase;
	enum mb_status forced;  /* answer decided locally (deferred) */
	mb_publish_cb pcb;
	mb_fetch_cb fcb;
	void *arg;
	struct mb_publish_result pres;
	/* publish: a copy of the message until its batch is sent */
	struct publish_msg msg;
	char *payload;
	char epoch_s[24];
	char nonce[NONCE_HEX_LEN + 1]; /* "" when the broker checked it */
	/* fetch */
	char peer[PEER_ID_MAX + 1];
	char ack[MSG_ID_MAX];   /* the cursor as given ("" none) */
	char ack_gen[17];
	char ack_minid[48];     /* stream id just above the acknowledged seq */
	size_t max;
};

struct barrier {
	TAILQ_ENTRY(barrier) link;
	struct mailbox_redis *m;
	struct op_list ops;
};
TAILQ_HEAD(barrier_list, barrier);

/* Publishes of one loop turn, sent as one script call. */
struct pbatch {
	TAILQ_ENTRY(pbatch) link;
	struct mailbox_redis *m;
	struct op_list ops;
	size_t n;
};
TAILQ_HEAD(pbatch_list, pbatch);

/* Messages per batch, and their payload bytes (a batch is one command). */
#define PBATCH_MAX 64
#define PBATCH_BYTES (1024 * 1024)
/* A batch goes out as soon as it holds this many, so Redis works while
 * the coordinator is still busy (no lock-step waves). */
#ifndef PBATCH_EAGER
#define PBATCH_EAGER 8
#endif
/* Script arguments (scripts.c): a head, then this many per message. */
#define PB_HEAD 7
#define PB_PER_MSG 7

struct mb_watch {
	LIST_ENTRY(mb_watch) link;
	struct wbox *box;
	struct mailbox_redis *m;  /* the instance (thread) it was made on */
	struct event *ev; /* activated per wake; runs the callback from the loop */
	mb_wake_cb wake;
	void *arg;
};
LIST_HEAD(watch_list, mb_watch);

/* A peer polled through this instance. It outlives its last watcher by
 * up to HA_MARK_REFRESH_MS so a peer that polls again and again (the
 * normal case) is marked in Redis once per refresh period, not per poll. */
struct wbox {
	char peer[PEER_ID_MAX + 1];
	struct watch_list watchers;
	int64_t marked_ms;   /* when its mark was last sent; 0: not marked */
};

struct mailbox_redis {
	struct mailbox base;
	struct event_base *evbase;
	struct ha *ha;
	struct mailbox_redis_config cfg;
	struct strmap *boxes;        /* peer -> struct wbox (only peers being watched) */
	struct op_list ops;          /* every op not yet answered */
	struct op_list bar_pending;  /* waiting for the next WAIT */
	struct barrier_list barriers;
	struct op_list pub_queue;    /* publishes not sent yet (blink) */
	struct pbatch_list pbatches; /* sent, not answered */
	struct event *pub_flush;
	size_t pub_queued;
	bool stopped;                /* its thread ended: answer UNAVAILABLE at once */
	bool wait_inflight;
	bool remark;                 /* a mark failed: send them all again */
	int64_t last_mark_pass_ms;   /* mailbox_redis_tick's last walk */
	struct mb_stats stats;   /* queued: cluster-wide from the sweep; counters: ours */
	int64_t last_log_ms;
	char ttl_ms[24], idle_ms[24], cap[16], mark_ttl[16], nonce_ttl[16]; /* command arguments */
};

static struct mailbox_redis *upcast(struct mailbox *mb)
{
	return (struct mailbox_redis *)mb;
}

/* The broker holds the owner's mailbox; each HTTP thread works on its
 * own instance (ha_bind_thread). */
static struct mailbox_redis *mine(struct mailbox *mb)
{
	return upcast(ha_thread_mailbox(upcast(mb)->ha));
}

static bool log_now(struct mailbox_redis *m)
{
	int64_t now = ha_now_ms();
	if (m->last_log_ms && now - m->last_log_ms < LOG_EVERY_MS)
		return false;
	m->last_log_ms = now;
	return true;
}

static struct op *op_new(struct mailbox_redis *m, enum op_kind kind, void *arg)
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->m = m;
	op->kind = kind;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&m->ops, op, link);
	return op;
}

static void op_free(struct op *op)
{
	TAILQ_REMOVE(&op->m->ops, op, link);
	free(op->payload);
	free(op);
}

static void publish_finish(struct op *op, enum mb_status st)
{
	if (st != MB_OK && st != MB_STALE)
		memset(&op->pres, 0, sizeof(op->pres));
	op->pres.status = st;
	mb_publish_cb cb = op->pcb;
	void *arg = op->arg;
	struct mb_publish_result res = op->pres;
	op_free(op);
	cb(&res, arg);
}

static void fetch_fail(struct op *op, enum mb_status st)
{
	struct mb_fetch_result res = { .status = st, .cursor = "" };
	mb_fetch_cb cb = op->fcb;
	void *arg = op->arg;
	op_free(op);
	cb(&res, arg);
}

/* A reply that is an error: what it means for the caller. */
static enum mb_status error_status(struct mailbox_redis *m, redisReply *r, const char *what)
{
	if (!r)
		return MB_UNAVAILABLE;
	if (ha_reply_is_error(r, "OOM"))
		return MB_OVERLOADED;
	if (ha_reply_is_error(r, "READONLY") || ha_reply_is_error(r, "NOREPLICAS") ||
	    ha_reply_is_error(r, "MASTERDOWN") || ha_reply_is_error(r, "LOADING") ||
	    ha_reply_is_error(r, "BUSY") || ha_reply_is_error(r, "NOAUTH")) {
		ha_master_suspect(m->ha, r);
		return MB_UNAVAILABLE;
	}
	if (log_now(m))
		log_error("ha", "%s: Redis answered %.200s", what,
			  r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
	if (r->type != REDIS_REPLY_ERROR)
		ha_ctr(m->ha)->err_protocol++;
	return MB_UNAVAILABLE;
}

/* ---- the WAIT barrier (--ha) -------------------------------------------- */

static void op_after_barrier(struct op *op, bool ok);

static void barrier_send(struct mailbox_redis *m);

static void wait_reply(redisReply *r, void *arg)
{
	struct barrier *b = arg;
	struct mailbox_redis *m = b->m;
	struct op *op;
	bool ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= HA_WAIT_REPLICAS;
	TAILQ_REMOVE(&m->barriers, b, link);
	m->wait_inflight = false;
	if (!ok) {
		ha_ctr(m->ha)->unreplicated++;
		if (log_now(m))
			log_warn("ha", "no replica confirmed a write within %d ms: answering 503 "
				       "(the write may still be on the master)", HA_WAIT_MS);
		if (r && r->type == REDIS_REPLY_INTEGER)
			ha_master_suspect(m->ha, NULL);
		else if (r)
			error_status(m, r, "WAIT");
	}
	while ((op = TAILQ_FIRST(&b->ops))) {
		TAILQ_REMOVE(&b->ops, op, blink);
		op_after_barrier(op, ok);
	}
	free(b);
	if (!TAILQ_EMPTY(&m->bar_pending) && !m->wait_inflight)
		barrier_send(m);
}

static void barrier_send(struct mailbox_redis *m)
{
	struct barrier *b = calloc(1, sizeof(*b));
	if (!b) {
		struct op *op;
		while ((op = TAILQ_FIRST(&m->bar_pending))) {
			TAILQ_REMOVE(&m->bar_pending, op, blink);
			op_after_barrier(op, false);
		}
		return;
	}
	b->m = m;
	TAILQ_INIT(&b->ops);
	TAILQ_CONCAT(&b->ops, &m->bar_pending, blink);
	TAILQ_INSERT_TAIL(&m->barriers, b, link);
	m->wait_inflight = true;
	char n[16], ms[16];
	int ln = snprintf(n, sizeof(n), "%d", HA_WAIT_REPLICAS);
	int lms = snprintf(ms, sizeof(ms), "%d", HA_WAIT_MS);
	const char *argv[] = { "WAIT", n, ms };
	size_t lens[] = { 4, (size_t)ln, (size_t)lms };
	rconn_cmd(ha_data(m->ha), wait_reply, b, 3, argv, lens);
}

/* One WAIT covers every write this connection made before it, so ops
 * whose script answered while a WAIT was out share the next one. */
static void barrier_add(struct op *op)
{
	struct mailbox_redis *m = op->m;
	op->phase = PH_BARRIER;
	TAILQ_INSERT_TAIL(&m->bar_pending, op, blink);
	if (!m->wait_inflight)
		barrier_send(m);
}

/* ---- publish ------------------------------------------------------------ */

static bool is_str(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING && r->str;
}

static bool is_count(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 1000000;
}

/* One message's result within the batch's answer (scripts.c, publish). */
static void publish_result(struct op *op, redisReply *r)
{
	struct mailbox_redis *m = op->m;
	struct rp_pub p;

	if (!is_str(r)) {
		publish_finish(op, error_status(m, r, "publish"));
		return;
	}
	rp_publish_reply(r->str, (size_t)r->len, &p);
	if (!p.words)
		goto bad;
	if (op->nonce[0] && !p.first_replay)
		replay_redis_count_fresh(ha_thread_replay(m->ha));
	switch (p.kind) {
	case RP_PUB_OK:
		m->stats.purged_total += p.purged;
		m->stats.expired_total += p.expired;
		op->pres.status = MB_OK;
		snprintf(op->pres.id, sizeof(op->pres.id), "%.*s-%" PRIu64, (int)p.gen_len, p.gen,
			 p.seq);
		if (m->cfg.wait_replicas) {
			barrier_add(op);
			return;
		}
		publish_finish(op, MB_OK);
		return;
	case RP_PUB_STALE:
		op->pres.status = MB_STALE;
		op->pres.epoch = p.epoch;
		publish_finish(op, MB_STALE);
		return;
	case RP_PUB_FULL:
		m->stats.expired_total += p.expired;
		publish_finish(op, MB_FULL);
		return;
	case RP_PUB_REPLAY:
		publish_finish(op, MB_REPLAY);
		return;
	case RP_PUB_BUSY:
		m->stats.purged_total += p.purged;
		m->stats.expired_total += p.expired;
		publish_finish(op, MB_OVERLOADED);
		return;
	case RP_PUB_BAD:
		break;
	}
bad:
	ha_ctr(m->ha)->err_protocol++;
	if (log_now(m))
		log_error("ha", "publish: Redis answered %.200s", r->str);
	publish_finish(op, MB_UNAVAILABLE);
}

static void pbatch_reply(redisReply *r, void *arg)
{
	struct pbatch *b = arg;
	struct mailbox_redis *m = b->m;
	TAILQ_REMOVE(&m->pbatches, b, link);
	bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
	enum mb_status all = MB_UNAVAILABLE;
	if (!ok && r)
		all = error_status(m, r, "publish");
	size_t i = 0;
	struct op *op;
	while ((op = TAILQ_FIRST(&b->ops))) {
		TAILQ_REMOVE(&b->ops, op, blink);
		if (ok)
			publish_result(op, r->element[i]);
		else
			publish_finish(op, all);
		i++;
	}
	free(b);
}

static void pub_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox_redis *m = arg;
	const char **argv = NULL;
	size_t *lens = NULL;
	m->pub_queued = 0;
	while (!TAILQ_EMPTY(&m->pub_queue)) {
		struct pbatch *b = calloc(1, sizeof(*b));
		if (!argv)
			argv = calloc(PB_HEAD + PB_PER_MSG * PBATCH_MAX, sizeof(*argv));
		if (!lens)
			lens = calloc(PB_HEAD + PB_PER_MSG * PBATCH_MAX, sizeof(*lens));
		if (!b || !argv || !lens) {
			free(b);
			struct op *op;
			while ((op = TAILQ_FIRST(&m->pub_queue))) {
				TAILQ_REMOVE(&m->pub_queue, op, blink);
				publish_finish(op, MB_OVERLOADED);
			}
			break;
		}
		b->m = m;
		TAILQ_INIT(&b->ops);
		const char *gen = ha_gen_candidate(m->ha);
		const char *head[PB_HEAD] = { HA_PREFIX, gen, m->ttl_ms, m->idle_ms, m->cap,
					      HA_WAKE_CHANNEL, m->nonce_ttl };
		for (int i = 0; i < PB_HEAD; i++) {
			argv[i] = head[i];
			lens[i] = strlen(head[i]);
		}
		size_t bytes = 0, a = PB_HEAD;
		struct op *op;
		while (b->n < PBATCH_MAX && (op = TAILQ_FIRST(&m->pub_queue)) &&
		       (b->n == 0 || bytes + op->msg.payload_len <= PBATCH_BYTES)) {
			TAILQ_REMOVE(&m->pub_queue, op, blink);
			TAILQ_INSERT_TAIL(&b->ops, op, blink);
			const char *f[PB_PER_MSG] = { op->msg.to, op->msg.from, op->epoch_s,
						      op->msg.kind, op->msg.psig, op->payload,
						      op->nonce };
			for (int i = 0; i < PB_PER_MSG; i++) {
				argv[a] = f[i];
				lens[a] = i == 5 ? op->msg.payload_len : strlen(f[i]);
				a++;
			}
			bytes += op->msg.payload_len;
			b->n++;
		}
		TAILQ_INSERT_TAIL(&m->pbatches, b, link);
		/* Not usable any more: rconn answers NULL from the loop. */
		rconn_script(ha_data(m->ha), HA_SCRIPT_PUBLISH, pbatch_reply, b, 0, (int)a, argv,
			     lens);
	}
	free(argv);
	free(lens);
}

static void forced_cb(redisReply *r, void *arg)
{
	struct op *op = arg;
	if (op->kind == OP_PUBLISH)
		publish_finish(op, op->forced);
	else
		fetch_fail(op, op->forced);
}

static void publish_queue(struct mailbox *mb, const struct publish_msg *in, const char *nonce,
			  mb_publish_cb cb, void *arg)
{
	struct mailbox_redis *m = mine(mb);
	if (m->stopped) {
		struct mb_publish_result res = { .status = MB_UNAVAILABLE };
		cb(&res, arg);
		return;
	}
	struct op *op = op_new(m, OP_PUBLISH, arg);
	if (!op) {
		struct mb_publish_result res = { .status = MB_OVERLOADED };
		cb(&res, arg);
		return;
	}
	op->pcb = cb;
	op->pres.epoch = in->epoch;
	struct rconn *rc = ha_data(m->ha);
	if (!ha_usable(m->ha, NULL, 0)) {
		op->forced = MB_UNAVAILABLE;
		rconn_defer(rc, forced_cb, op);
		return;
	}
	op->msg = *in;
	op->msg.payload = NULL;
	op->payload = malloc(in->payload_len + 1);
	if (!op->payload) {
		op->forced = MB_OVERLOADED;
		rconn_defer(rc, forced_cb, op);
		return;
	}
	if (in->payload_len)
		memcpy(op->payload, in->payload, in->payload_len);
	op->payload[in->payload_len] = '\0';
	snprintf(op->epoch_s, sizeof(op->epoch_s), "%" PRIu64, in->epoch);
	snprintf(op->nonce, sizeof(op->nonce), "%s", nonce ? nonce : "");
	TAILQ_INSERT_TAIL(&m->pub_queue, op, blink);
	if (++m->pub_queued >= PBATCH_EAGER) {
		pub_flush_cb(-1, 0, m);
		rconn_push(ha_data(m->ha));
		return;
	}
	/* Sent after the callbacks already due in this loop turn, together
	 * with every other publish they make. */
	event_active(m->pub_flush, EV_READ, 0);
}

static void rd_publish(struct mailbox *mb, const struct publish_msg *in, mb_publish_cb cb, void *arg)
{
	publish_queue(mb, in, NULL, cb, arg);
}

/* The nonce is recorded by the publish script under replay_redis.c's key
 * and lifetime, so a request replayed to any coordinator, or checked
 * there by replay_redis.c, is refused the same. */
static void rd_publish_once(struct mailbox *mb, const struct publish_msg *in, const char *nonce,
			    mb_publish_cb cb, void *arg)
{
	if (!nonce || !rp_is_hex(nonce, strlen(nonce), NONCE_HEX_LEN, NONCE_HEX_LEN)) {
		struct mb_publish_result res = { .status = MB_REPLAY };
		cb(&res, arg); /* the broker only passes parsed nonces */
		return;
	}
	publish_queue(mb, in, nonce, cb, arg);
}

/* ---- fetch ---------------------------------------------------------------- */

/* seq = ms * 1024 + n (scripts.c): the stream id of seq + 1, below which
 * XTRIM MINID deletes, i.e. everything up to and including seq. */
static void ack_minid(uint64_t seq, char *out, size_t len)
{
	if (seq == UINT64_MAX) {
		snprintf(out, len, "%" PRIu64 "-%" PRIu64, UINT64_MAX, UINT64_MAX);
		return;
	}
	uint64_t next = seq + 1;
	snprintf(out, len, "%" PRIu64 "-%" PRIu64, next / RP_SEQ_PER_MS, next % RP_SEQ_PER_MS);
}

/* A stream id reply "<ms>-<n>" with n < RP_SEQ_PER_MS, as a seq. */
static bool stream_seq(const redisReply *r, uint64_t *ms, uint64_t *seq)
{
	return is_str(r) && rp_stream_id_seq(r->str, (size_t)r->len, ms, seq);
}

/* "<from> <epoch> <kind> <psig>\n<payload>" */
static bool parse_entry(const redisReply *r, struct mb_message *o)
{
	return is_str(r) && rp_parse_entry(r->str, (size_t)r->len, o);
}

static void fetch_send(struct op *op, bool with_ack, size_t max);

static void fetch_reply(redisReply *r, void *arg)
{
	struct op *op = arg;
	struct mailbox_redis *m = op->m;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4 || (r->elements - 4) % 2 != 0 ||
	    (r->elements - 4) / 2 > op->max || !is_str(r->element[0]) ||
	    !rp_is_hex(r->element[0]->str, (size_t)r->element[0]->len, 1, 16) ||
	    !is_str(r->element[1]) || !is_count(r->element[2]) || !is_count(r->element[3])) {
		fetch_fail(op, r ? error_status(m, r, "fetch") : MB_UNAVAILABLE);
		return;
	}
	uint64_t now_u;
	if (!rp_parse_dec(r->element[1]->str, (size_t)r->element[1]->len, 16, INT64_MAX, &now_u)) {
		fetch_fail(op, error_status(m, r, "fetch"));
		return;
	}
	const char *gen = r->element[0]->str;
	m->stats.expired_total += (uint64_t)r->element[3]->integer;

	if (op->phase == PH_ACK) {
		/* --ha, acknowledge first: answer only once a replica holds the
		 * deletion, so a failover cannot bring acknowledged messages
		 * back. */
		if (r->element[2]->integer > 0) {
			barrier_add(op);
			return;
		}
		fetch_send(op, false, op->max);
		return;
	}

	size_t n = (r->elements - 4) / 2;
	struct mb_message *msgs = n ? calloc(n, sizeof(*msgs)) : NULL;
	if (n && !msgs) {
		fetch_fail(op, MB_OVERLOADED);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct mb_message *o = &msgs[k];
		uint64_t ms, seq;
		if (!stream_seq(r->element[4 + 2 * i], &ms, &seq) ||
		    !parse_entry(r->element[5 + 2 * i], o)) {
			ha_ctr(m->ha)->err_protocol++;
			if (log_now(m))
				log_error("ha", "mailbox of %s: a malformed message in Redis, skipped",
					  op->peer);
			continue;
		}
		o->age_ms = now_u > ms ? (int64_t)(now_u - ms) : 0;
		snprintf(o->id, sizeof(o->id), "%s-%" PRIu64, gen, seq);
		snprintf(o->to, sizeof(o->to), "%s", op->peer);
		k++;
	}
	char ack[MSG_ID_MAX];
	memcpy(ack, op->ack, sizeof(ack)); /* op is freed before the callback */
	struct mb_fetch_result res = {
		.status = MB_OK, .msgs = msgs, .count = k,
		.cursor = k ? msgs[k - 1].id : ack,
	};
	mb_fetch_cb cb = op->fcb;
	void *cbarg = op->arg;
	op_free(op);
	cb(&res, cbarg);
	free(msgs);
}

static void fetch_send(struct op *op, bool with_ack, size_t max)
{
	struct mailbox_redis *m = op->m;
	op->phase = with_ack && m->cfg.wait_replicas ? PH_ACK : (with_ack ? PH_SCRIPT : PH_READ);
	char maxs[16];
	int lm = snprintf(maxs, sizeof(maxs), "%zu", op->phase == PH_ACK ? (size_t)0 : max);
	const char *gen = ha_gen_candidate(m->ha);
	const char *ag = with_ack ? op->ack_gen : "", *as = with_ack ? op->ack_minid : "";
	const char *argv[] = { HA_PREFIX, gen, op->peer, ag, as, maxs, m->ttl_ms };
	size_t lens[] = { strlen(HA_PREFIX), strlen(gen), strlen(op->peer), strlen(ag),
			  strlen(as), (size_t)lm, strlen(m->ttl_ms) };
	rconn_script(ha_data(m->ha), HA_SCRIPT_FETCH, fetch_reply, op, 0, 7, argv, lens);
}

static void op_after_barrier(struct op *op, bool ok)
{
	if (op->kind == OP_PUBLISH) {
		publish_finish(op, ok ? MB_OK : MB_UNAVAILABLE);
		return;
	}
	if (!ok) {
		fetch_fail(op, MB_UNAVAILABLE);
		return;
	}
	if (!ha_usable(op->m->ha, NULL, 0)) {
		fetch_fail(op, MB_UNAVAILABLE);
		return;
	}
	fetch_send(op, false, op->max);
}

static void rd_fetch(struct mailbox *mb, const char *peer, const char *ack_cursor, size_t max,
		     mb_fetch_cb cb, void *arg)
{
	struct mailbox_redis *m = mine(mb);
	if (m->stopped) {
		struct mb_fetch_result res = { .status = MB_UNAVAILABLE, .cursor = "" };
		cb(&res, arg);
		return;
	}
	struct op *op = op_new(m, OP_FETCH, arg);
	if (!op) {
		struct mb_fetch_result res = { .status = MB_OVERLOADED, .cursor = "" };
		cb(&res, arg);
		return;
	}
	op->fcb = cb;
	snprintf(op->peer, sizeof(op->peer), "%s", peer);
	op->max = max > POLL_BATCH_MAX ? POLL_BATCH_MAX : max;
	struct rconn *rc = ha_data(m->ha);
	bool with_ack = false;
	if (ack_cursor && *ack_cursor) {
		uint64_t seq;
		if (strlen(ack_cursor) >= sizeof(op->ack) ||
		    rp_split_cursor(ack_cursor, op->ack_gen, &seq) != 0) {
			op->forced = MB_BAD_CURSOR;
			rconn_defer(rc, forced_cb, op);
			return;
		}
		snprintf(op->ack, sizeof(op->ack), "%s", ack_cursor);
		ack_minid(seq, op->ack_minid, sizeof(op->ack_minid));
		with_ack = true;
	}
	if (!ha_usable(m->ha, NULL, 0)) {
		op->forced = MB_UNAVAILABLE;
		rconn_defer(rc, forced_cb, op);
		return;
	}
	fetch_send(op, with_ack, op->max);
}

/* ---- watchers ----------------------------------------------------------------- */

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct mb_watch *w = arg;
	w->wake(w->arg);
}

static void mark_reply(redisReply *r, void *arg)
{
	struct mailbox_redis *m = arg;
	if (r && r->type == REDIS_REPLY_STATUS)
		return;
	/* Lost connection (data_up marks everything again) or an error
	 * reply: the next tick re-sends every mark. Until then a publish
	 * for that peer may not wake its poll, which then answers at its
	 * wait time and the client polls again: late, never lost. */
	m->remark = true;
	if (r)
		error_status(m, r, "watch mark");
}

/* Tells every coordinator's publishes that this peer is watched. Sent
 * on the data connection before the poll's first read, so Redis runs it
 * first. */
static void mark_send(struct mailbox_redis *m, struct wbox *b, int64_t now)
{
	char key[sizeof(HA_PREFIX) + 2 + PEER_ID_MAX];
	int lk = snprintf(key, sizeof(key), "%sw:%s", HA_PREFIX, b->peer);
	const char *argv[] = { "SET", key, "1", "PX", m->mark_ttl };
	size_t lens[] = { 3, (size_t)lk, 1, 2, strlen(m->mark_ttl) };
	b->marked_ms = now;
	rconn_cmd(ha_data(m->ha), mark_reply, m, 5, argv, lens);
}

static struct mb_watch *rd_watch(struct mailbox *mb, const char *peer, mb_wake_cb wake, void *arg)
{
	struct mailbox_redis *m = mine(mb);
	if (m->stopped)
		return NULL;
	struct wbox *b = strmap_get(m->boxes, peer);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		snprintf(b->peer, sizeof(b->peer), "%s", peer);
		LIST_INIT(&b->watchers);
		if (strmap_put(m->boxes, peer, b)) {
			free(b);
			return NULL;
		}
	}
	struct mb_watch *w = calloc(1, sizeof(*w));
	if (w)
		w->ev = event_new(m->evbase, -1, 0, watch_fire, w);
	if (!w || !w->ev) {
		free(w); /* an empty box goes with the next tick */
		return NULL;
	}
	w->box = b;
	w->m = m;
	w->wake = wake;
	w->arg = arg;
	LIST_INSERT_HEAD(&b->watchers, w, link);
	int64_t now = ha_now_ms();
	if (!b->marked_ms || now - b->marked_ms >= HA_MARK_REFRESH_MS)
		mark_send(m, b, now);
	return w;
}

static void rd_unwatch(struct mailbox *mb, struct mb_watch *w)
{
	if (!w)
		return;
	/* The box stays (see struct wbox); the tick removes it. */
	LIST_REMOVE(w, link);
	if (w->ev) /* NULL once its thread stopped (mailbox_redis_stop) */
		event_free(w->ev);
	free(w);
}

struct tick_ctx {
	struct mailbox_redis *m;
	int64_t now;
	bool all;
};

static int tick_box(const char *key, void *val, void *arg)
{
	struct tick_ctx *t = arg;
	struct wbox *b = val;
	bool stale = !b->marked_ms || t->now - b->marked_ms >= HA_MARK_REFRESH_MS;
	if (LIST_EMPTY(&b->watchers)) {
		if (!stale && !t->all)
			return 0;
		free(b);
		return 1;
	}
	if (stale || t->all)
		mark_send(t->m, b, t->now);
	return 0;
}

/* Periodic: refreshes the marks of watched peers before they expire,
 * forgets peers nobody polled for a refresh period, and after a failed
 * mark sends all of them again. */
void mailbox_redis_tick(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	if (m->stopped)
		return;
	int64_t now = ha_now_ms();
	/* Marks live 30 s between refreshes: a pass a second is plenty, and
	 * keeps the walk over every polled peer off most ticks. */
	if (!m->remark && now - m->last_mark_pass_ms < HA_MARK_PASS_MS)
		return;
	m->last_mark_pass_ms = now;
	struct tick_ctx t = { m, now, m->remark };
	m->remark = false;
	strmap_sweep(m->boxes, tick_box, &t);
}

/* The data connection is (re)connected, maybe to a new master that never
 * saw our marks (replication is asynchronous): mark every watched peer
 * again, then wake its polls, whose reads travel after the marks. */
void mailbox_redis_remark(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	if (m->stopped)
		return;
	struct tick_ctx t = { m, ha_now_ms(), true };
	m->remark = false;
	strmap_sweep(m->boxes, tick_box, &t);
	mailbox_redis_wake_all(mb);
}

void mailbox_redis_wake(struct mailbox *mb, const char *peer, size_t len)
{
	struct mailbox_redis *m = upcast(mb);
	char id[PEER_ID_MAX + 1];
	if (len == 0 || len > PEER_ID_MAX)
		return;
	memcpy(id, peer, len);
	id[len] = '\0';
	struct wbox *b = strmap_get(m->boxes, id);
	if (!b)
		return;
	struct mb_watch *w;
	LIST_FOREACH(w, &b->watchers, link)
		event_active(w->ev, EV_READ, 0);
}

static int wake_box(const char *key, void *val, void *arg)
{
	struct wbox *b = val;
	struct mb_watch *w;
	LIST_FOREACH(w, &b->watchers, link)
		event_active(w->ev, EV_READ, 0);
	return 0;
}

void mailbox_redis_wake_all(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	strmap_sweep(m->boxes, wake_box, NULL);
}

/* ---- the rest of the table --------------------------------------------------------- */

static bool rd_ready(struct mailbox *mb, char *why, size_t why_len)
{
	return ha_usable(mine(mb)->ha, why, why_len);
}

static void rd_stats(struct mailbox *mb, struct mb_stats *out)
{
	struct mailbox_redis *m = upcast(mb);
	if (m == mine(mb) && !ha_is_threaded(m->ha)) {
		*out = m->stats; /* one instance: its own figures, current */
		return;
	}
	ha_sum_stats(m->ha, out, NULL);
}

/* What ha.c snapshots of this instance. */
void mailbox_redis_own_stats(struct mailbox *mb, struct mb_stats *out)
{
	*out = upcast(mb)->stats;
}

void mailbox_redis_sweep_stats(struct mailbox *mb, uint64_t queued, uint64_t expired)
{
	struct mailbox_redis *m = upcast(mb);
	m->stats.queued_messages = queued;
	m->stats.expired_total += expired;
}

static void rd_free(struct mailbox *mb)
{
	/* Owned by the ha: released by ha_free (mailbox_redis_destroy). */
}

static const struct mailbox_ops redis_ops = {
	.name = "redis",
	.publish = rd_publish,
	.publish_once = rd_publish_once,
	.fetch = rd_fetch,
	.watch = rd_watch,
	.unwatch = rd_unwatch,
	.ready = rd_ready,
	.stats = rd_stats,
	.free = rd_free,
};

struct mailbox *mailbox_redis_new(struct event_base *base, struct ha *ha,
				  const struct mailbox_redis_config *cfg)
{
	struct mailbox_redis *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->base.ops = &redis_ops;
	m->evbase = base;
	m->ha = ha;
	m->cfg = *cfg;
	TAILQ_INIT(&m->ops);
	TAILQ_INIT(&m->bar_pending);
	TAILQ_INIT(&m->barriers);
	TAILQ_INIT(&m->pub_queue);
	TAILQ_INIT(&m->pbatches);
	snprintf(m->ttl_ms, sizeof(m->ttl_ms), "%llu", (unsigned long long)cfg->message_ttl_s * 1000);
	snprintf(m->idle_ms, sizeof(m->idle_ms), "%llu", (unsigned long long)cfg->pair_idle_s * 1000);
	snprintf(m->cap, sizeof(m->cap), "%d", MAILBOX_CAP);
	snprintf(m->mark_ttl, sizeof(m->mark_ttl), "%d", HA_MARK_TTL_MS);
	snprintf(m->nonce_ttl, sizeof(m->nonce_ttl), "%d", HA_NONCE_TTL_S);
	m->boxes = strmap_new();
	m->pub_flush = event_new(base, -1, 0, pub_flush_cb, m);
	if (!m->boxes || !m->pub_flush) {
		if (m->boxes)
			strmap_free(m->boxes);
		if (m->pub_flush)
			event_free(m->pub_flush);
		free(m);
		return NULL;
	}
	return &m->base;
}

static int free_box(const char *key, void *val, void *arg)
{
	struct wbox *b = val;
	struct mb_watch *w;
	/* Watchers belong to their callers, who unwatch before the mailbox
	 * goes; any left are detached so nothing dangles. */
	while ((w = LIST_FIRST(&b->watchers))) {
		LIST_REMOVE(w, link);
		if (w->ev)
			event_free(w->ev);
		free(w);
	}
	free(b);
	return 1;
}

static int stop_box(const char *key, void *val, void *arg)
{
	struct wbox *b = val;
	struct mb_watch *w;
	LIST_FOREACH(w, &b->watchers, link) {
		if (w->ev) {
			event_free(w->ev);
			w->ev = NULL;
		}
	}
	return 0;
}

void mailbox_redis_quiesce(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	if (!m)
		return;
	m->stopped = true;
	struct op *op;
	while ((op = TAILQ_FIRST(&m->pub_queue))) {
		TAILQ_REMOVE(&m->pub_queue, op, blink);
		publish_finish(op, MB_UNAVAILABLE);
	}
}

void mailbox_redis_stop(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	if (!m)
		return;
	/* Its loop is about to go (a worker thread ended): release every
	 * event on it now; the memory stays until ha_free, since the broker
	 * still unwatches when it closes that thread's connections. */
	if (m->pub_flush) {
		event_free(m->pub_flush);
		m->pub_flush = NULL;
	}
	strmap_sweep(m->boxes, stop_box, NULL);
	m->stopped = true;
}

void mailbox_redis_destroy(struct mailbox *mb)
{
	struct mailbox_redis *m = upcast(mb);
	if (!m)
		return;
	/* The connection is freed first (ha_free), so no reply can reach
	 * these ops any more: they are dropped without callbacks. */
	struct barrier *b;
	while ((b = TAILQ_FIRST(&m->barriers))) {
		TAILQ_REMOVE(&m->barriers, b, link);
		free(b);
	}
	struct pbatch *pb;
	while ((pb = TAILQ_FIRST(&m->pbatches))) {
		TAILQ_REMOVE(&m->pbatches, pb, link);
		free(pb);
	}
	if (m->pub_flush)
		event_free(m->pub_flush);
	struct op *op;
	while ((op = TAILQ_FIRST(&m->ops)))
		op_free(op);
	strmap_sweep(m->boxes, free_box, NULL);
	strmap_free(m->boxes);
	free(m);
}
