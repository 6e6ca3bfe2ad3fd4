/* The simulated world of neg_sim.h: a discrete-event loop over a fake
 * broker (epoch rules, mailboxes, cursor acknowledgement), two peers'
 * negotiations and simulated links. Owns nothing beyond the test; it must
 * stay faithful to CONTRACT section 2's broker rules, because the tests
 * prove convergence against them. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re_types.h>
#include <re_mem.h>

#include "client/negotiate.h"
#include "client/sig_priv.h"
#include "signaling/auth.h"
#include "signaling/keys.h"
#include "tests/client/signaling/neg_sim.h"

#define T0 UINT64_C(1764000000000) /* wall clock at simulated time 0 */
#define LOG_LINES 400
#define MAILBOX_MAX 1024
#define DESC_MAX 96

static const char *const peer_ids[2] = { "alpha", "bravo" };
static const char fps[2][NEG_FP_LEN + 1] = {
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
};

enum ev_type {
	EV_START, EV_PUB_ARRIVE, EV_PUB_RESULT, EV_DELIVER, EV_GATHERED,
	EV_LINK_UP, EV_ICE_TIMEOUT, EV_DEAD, EV_TIMER,
};

struct smsg {
	uint64_t seq;
	int from, to;           /* peer index; from may be -1 (injected) */
	char from_id[PEER_ID_MAX + 1], to_id[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	char *payload;
	size_t len;
	char psig[SIG_HEX_LEN + 1];
	uint64_t queued_at;
};

struct event {
	uint64_t at, order;
	enum ev_type type;
	int peer;
	unsigned inc;           /* incarnation the event belongs to */
	uint64_t epoch;
	unsigned gen;           /* timer generation */
	int err;
	uint64_t current;
	char kind[KIND_MAX + 1];
	struct smsg *msg;       /* EV_PUB_ARRIVE: owned by the event */
	unsigned attempt;
};

struct speer {
	bool alive;
	unsigned inc;
	struct negotiation *neg;
	int64_t skew;
	unsigned timer_gen;
	bool deliver_pending;
	uint64_t ack_upto;      /* applied at this incarnation's next delivery */
	/* the simulated link */
	uint64_t prep_epoch;    /* link_prepare'd */
	char local[DESC_MAX];   /* our description of prep_epoch ("" until gathered) */
	bool connecting;
	uint64_t conn_epoch;
	char remote[DESC_MAX];
	bool up;
	uint64_t up_epoch;
};

struct sim {
	struct sim_cfg cfg;
	uint64_t now;           /* simulated ms */
	uint64_t order;
	uint32_t rng;
	struct event *q;        /* binary heap */
	size_t qn, qcap;
	struct speer p[2];
	/* the broker */
	uint64_t cur[2][2];     /* per ordered pair (from, to) */
	struct smsg *mb[2][MAILBOX_MAX];
	size_t mbn[2];
	uint64_t seq;
	struct mesh_keys keys;
	struct sim_counts cnt;
	char violation[200];
	char log[LOG_LINES][200];
	unsigned logn;
	int cb_peer;            /* whose callbacks run now */
};

/* --- small things -------------------------------------------------------- */

static uint32_t rnd(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 17;
	s->rng ^= s->rng << 5;
	return s->rng;
}

static uint64_t between(struct sim *s, uint32_t lo, uint32_t hi)
{
	return hi <= lo ? lo : lo + rnd(s) % (hi - lo + 1);
}

static bool chance(struct sim *s, unsigned pct)
{
	return pct && rnd(s) % 100 < pct;
}

static void slog(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void slog(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	char *line = s->log[s->logn++ % LOG_LINES];
	int n = snprintf(line, 200, "%8" PRIu64 " ", s->now);

	va_start(ap, fmt);
	vsnprintf(line + n, (size_t)(200 - n), fmt, ap);
	va_end(ap);
}

static uint64_t wall(const struct sim *s, int p)
{
	return (uint64_t)((int64_t)(T0 + s->now) + s->p[p].skew);
}

/* --- the event queue ----------------------------------------------------- */

static bool ev_less(const struct event *a, const struct event *b)
{
	return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static struct event *push(struct sim *s, uint64_t delay, enum ev_type t, int peer)
{
	if (s->qn == s->qcap) {
		s->qcap = s->qcap ? s->qcap * 2 : 256;
		s->q = realloc(s->q, s->qcap * sizeof(*s->q));
		if (!s->q)
			abort();
	}
	size_t i = s->qn++;
	struct event e = { .at = s->now + delay, .order = s->order++, .type = t,
			   .peer = peer, .inc = peer >= 0 ? s->p[peer].inc : 0 };
	while (i && ev_less(&e, &s->q[(i - 1) / 2])) {
		s->q[i] = s->q[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->q[i] = e;
	return &s->q[i];
}

static struct event pop(struct sim *s)
{
	struct event top = s->q[0], last = s->q[--s->qn];
	size_t i = 0;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct event *cand = &last;
		if (l < s->qn && ev_less(&s->q[l], cand)) {
			m = l;
			cand = &s->q[l];
		}
		if (r < s->qn && ev_less(&s->q[r], cand))
			m = r;
		if (m == i)
			break;
		s->q[i] = s->q[m];
		i = m;
	}
	if (s->qn)
		s->q[i] = last;
	return top;
}

static void msg_free(struct smsg *m)
{
	if (m) {
		free(m->payload);
		free(m);
	}
}

/* --- the broker (CONTRACT section 2) ------------------------------------- */

static int recipient_of(const struct smsg *m)
{
	return m->to;
}

/* Returns 202, 409 (with *current) or 429. */
static int broker_publish(struct sim *s, struct smsg *m, uint64_t *current)
{
	int to = recipient_of(m), from = m->from;
	uint64_t *cur;

	if (from < 0) {
		/* Injected (forged) messages skip the pair rules. */
		goto queue;
	}
	cur = &s->cur[from][to];
	/* Rule 1: below the pair's current epoch: refused, nothing queued. */
	if (m->epoch < *cur) {
		*current = *cur;
		s->cnt.stale_409++;
		return 409;
	}
	/* Rule 2: above it: the sender's older messages for `to` go. */
	if (m->epoch > *cur) {
		size_t k = 0;
		for (size_t i = 0; i < s->mbn[to]; i++) {
			struct smsg *q = s->mb[to][i];
			if (q->from == from && q->epoch < m->epoch) {
				s->cnt.purged++;
				msg_free(q);
			} else {
				s->mb[to][k++] = q;
			}
		}
		s->mbn[to] = k;
		*cur = m->epoch;
	}
 queue:
	if (s->mbn[to] >= MAILBOX_MAX)
		return 429;
	/* Rule 3: queued. */
	struct smsg *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	*q = *m;
	q->payload = malloc(m->len + 1);
	if (!q->payload)
		abort();
	memcpy(q->payload, m->payload, m->len + 1);
	q->seq = ++s->seq;
	q->queued_at = s->now;
	s->mb[to][s->mbn[to]++] = q;
	return 202;
}

static void schedule_deliver(struct sim *s, int p)
{
	if (!s->p[p].alive || s->p[p].deliver_pending)
		return;
	s->p[p].deliver_pending = true;
	push(s, between(s, s->cfg.poll_min, s->cfg.poll_max), EV_DELIVER, p);
}

/* --- the negotiation's actions ------------------------------------------- */

static void a_publish(const char *kind, uint64_t epoch, const char *payload,
		      size_t len, void *arg)
{
	struct sim *s = arg;
	int p = s->cb_peer;
	struct smsg *m = calloc(1, sizeof(*m));

	if (!m)
		abort();
	m->from = p;
	m->to = !p;
	snprintf(m->from_id, sizeof(m->from_id), "%s", peer_ids[p]);
	snprintf(m->to_id, sizeof(m->to_id), "%s", peer_ids[!p]);
	snprintf(m->kind, sizeof(m->kind), "%s", kind);
	m->epoch = epoch;
	m->payload = malloc(len + 1);
	if (!m->payload)
		abort();
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->len = len;
	psig_compute(s->keys.e2e, m->from_id, m->to_id, epoch, kind, payload, len, m->psig);
	s->cnt.publishes++;
	slog(s, "%s publishes %s %" PRIu64, peer_ids[p], kind, epoch);
	push(s, between(s, s->cfg.msg_min, s->cfg.msg_max), EV_PUB_ARRIVE, p)->msg = m;
}

static void desc_of(char *out, int p, unsigned inc, uint64_t epoch)
{
	snprintf(out, DESC_MAX, "desc/%s/%u/%" PRIu64, peer_ids[p], inc, epoch);
}

static void a_link_prepare(uint64_t epoch, void *arg)
{
	struct sim *s = arg;
	int p = s->cb_peer;
	struct speer *sp = &s->p[p];

	if (sp->prep_epoch || sp->connecting || sp->up) {
		snprintf(s->violation, sizeof(s->violation),
			 "%s: link_prepare(%" PRIu64 ") while epoch %" PRIu64 " was not torn down",
			 peer_ids[p], epoch, sp->prep_epoch);
	}
	sp->prep_epoch = epoch;
	sp->local[0] = '\0';
	push(s, between(s, s->cfg.gather_min, s->cfg.gather_max), EV_GATHERED, p)->epoch = epoch;
}

static bool matched(const struct sim *s, uint64_t e)
{
	const struct speer *a = &s->p[0], *b = &s->p[1];

	return a->alive && b->alive && a->connecting && b->connecting &&
		a->conn_epoch == e && b->conn_epoch == e &&
		!strcmp(a->remote, b->local) && !strcmp(b->remote, a->local) &&
		a->local[0] && b->local[0];
}

static void a_link_connect(const struct neg_remote *r, void *arg)
{
	struct sim *s = arg;
	int p = s->cb_peer;
	struct speer *sp = &s->p[p];

	if (sp->prep_epoch != r->epoch || !sp->local[0])
		snprintf(s->violation, sizeof(s->violation),
			 "%s: link_connect(%" PRIu64 ") without a gathered link of that epoch",
			 peer_ids[p], r->epoch);
	if (r->fp && strcmp(r->fp, fps[!p]))
		snprintf(s->violation, sizeof(s->violation),
			 "%s: got fingerprint %.8s.. for %s", peer_ids[p], r->fp, peer_ids[!p]);
	sp->connecting = true;
	sp->conn_epoch = r->epoch;
	snprintf(sp->remote, sizeof(sp->remote), "%.*s", (int)r->ice_len, r->ice);
	slog(s, "%s connects epoch %" PRIu64 " to %s", peer_ids[p], r->epoch, sp->remote);
	push(s, s->cfg.ice_timeout, EV_ICE_TIMEOUT, p)->epoch = r->epoch;
	if (matched(s, r->epoch)) {
		push(s, between(s, s->cfg.connect_min, s->cfg.connect_max), EV_LINK_UP, -1)->epoch = r->epoch;
	}
}

/* The other side notices a link that went away. */
static void other_notices(struct sim *s, int p, uint64_t epoch)
{
	struct speer *o = &s->p[!p];

	if (o->alive && (o->up || o->connecting) && o->conn_epoch == epoch) {
		push(s, between(s, s->cfg.dead_min, s->cfg.dead_max), EV_DEAD, !p)->epoch = epoch;
	}
}

static void link_clear(struct sim *s, int p)
{
	struct speer *sp = &s->p[p];
	uint64_t e = sp->conn_epoch;
	bool had = sp->up || sp->connecting;

	sp->prep_epoch = 0;
	sp->local[0] = '\0';
	sp->connecting = false;
	sp->up = false;
	sp->up_epoch = 0;
	sp->conn_epoch = 0;
	sp->remote[0] = '\0';
	if (had)
		other_notices(s, p, e);
}

static void a_link_down(uint64_t epoch, const char *why, void *arg)
{
	struct sim *s = arg;
	int p = s->cb_peer;

	slog(s, "%s link down epoch %" PRIu64 ": %s", peer_ids[p], epoch, why);
	if (s->p[p].prep_epoch == epoch)
		link_clear(s, p);
}

static void a_timer(uint32_t ms, void *arg)
{
	struct sim *s = arg;
	int p = s->cb_peer;

	s->p[p].timer_gen++;
	if (ms) {
		push(s, ms, EV_TIMER, p)->gen = s->p[p].timer_gen;
	}
}

static void a_note(const char *line, void *arg)
{
	struct sim *s = arg;

	slog(s, "%s: %s", peer_ids[s->cb_peer], line);
}

static const struct neg_actions actions = {
	.publish = a_publish, .link_prepare = a_link_prepare,
	.link_connect = a_link_connect, .link_down = a_link_down,
	.timer = a_timer, .note = a_note,
};

/* --- invariants ---------------------------------------------------------- */

static void check(struct sim *s)
{
	if (s->violation[0])
		return;
	for (int p = 0; p < 2; p++) {
		struct speer *sp = &s->p[p];
		if (!sp->alive)
			continue;
		if (neg_is_up(sp->neg) && sp->up_epoch != neg_epoch(sp->neg) &&
		    sp->up)
			snprintf(s->violation, sizeof(s->violation),
				 "%s is up in epoch %" PRIu64 " on a link of epoch %" PRIu64,
				 peer_ids[p], neg_epoch(sp->neg), sp->up_epoch);
	}
	if (s->p[0].alive && s->p[1].alive && neg_is_up(s->p[0].neg) &&
	    neg_is_up(s->p[1].neg) && neg_epoch(s->p[0].neg) != neg_epoch(s->p[1].neg))
		snprintf(s->violation, sizeof(s->violation),
			 "both up in different epochs: %" PRIu64 " and %" PRIu64,
			 neg_epoch(s->p[0].neg), neg_epoch(s->p[1].neg));
}

/* --- events -------------------------------------------------------------- */

static bool known_peer(const char *id, void *arg)
{
	(void)arg;
	return !strcmp(id, peer_ids[0]) || !strcmp(id, peer_ids[1]);
}

static void deliver(struct sim *s, int p)
{
	struct speer *sp = &s->p[p];
	struct smsg *batch[POLL_BATCH_MAX];
	size_t n = 0, k = 0;
	uint64_t upto = 0;

	sp->deliver_pending = false;
	/* The cursor this incarnation sent with its poll. */
	if (sp->ack_upto) {
		for (size_t i = 0; i < s->mbn[p]; i++) {
			struct smsg *q = s->mb[p][i];
			if (q->seq <= sp->ack_upto)
				msg_free(q);
			else
				s->mb[p][k++] = q;
		}
		s->mbn[p] = k;
		sp->ack_upto = 0;
	}
	/* TTL */
	k = 0;
	for (size_t i = 0; i < s->mbn[p]; i++) {
		struct smsg *q = s->mb[p][i];
		if (s->now - q->queued_at > s->cfg.ttl_ms)
			msg_free(q);
		else
			s->mb[p][k++] = q;
	}
	s->mbn[p] = k;
	for (size_t i = 0; i < s->mbn[p] && n < POLL_BATCH_MAX; i++)
		batch[n++] = s->mb[p][i];
	if (!n)
		return;
	upto = batch[n - 1]->seq;
	if (n > 1 && chance(s, s->cfg.p_reorder)) {
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = rnd(s) % (i + 1);
			struct smsg *t = batch[i];
			batch[i] = batch[j];
			batch[j] = t;
		}
	}
	bool dup = chance(s, s->cfg.p_dup);
	for (size_t i = 0; i < n && sp->alive; i++) {
		struct smsg *q = batch[i];
		struct sig_msg m = {
			.id = "x", .from = q->from_id, .to = q->to_id, .kind = q->kind,
			.epoch = q->epoch, .payload = q->payload, .payload_len = q->len,
			.psig = q->psig,
		};
		unsigned inc = sp->inc;
		switch (sig_msg_check(&s->keys, peer_ids[p], &m, known_peer, NULL)) {
		case SIG_DROP_PSIG: s->cnt.psig_dropped++; slog(s, "%s drops %s %" PRIu64 ": psig", peer_ids[p], q->kind, q->epoch); continue;
		case SIG_DROP_TO:   s->cnt.to_dropped++; continue;
		case SIG_DROP_FROM: s->cnt.from_dropped++; continue;
		case SIG_OK: break;
		}
		s->cnt.delivered++;
		s->cb_peer = p;
		enum neg_rx rx = neg_recv(sp->neg, wall(s, p), q->kind, q->epoch,
					  q->payload, q->len);
		slog(s, "%s got %s %" PRIu64 ": %s", peer_ids[p], q->kind, q->epoch,
		     neg_rx_name(rx));
		check(s);
		if (!sp->alive || sp->inc != inc)
			return;
	}
	if (dup) {
		/* The answer was handed over but the acknowledgement never
		 * made it: the next poll gets the same messages again. */
		slog(s, "%s: delivery not acknowledged (duplicates follow)", peer_ids[p]);
		schedule_deliver(s, p);
	} else {
		sp->ack_upto = upto;
		/* The next poll carries the cursor; if more is queued it
		 * returns at once. */
		if (s->mbn[p] > n)
			schedule_deliver(s, p);
	}
}

static void start_peer(struct sim *s, int p)
{
	struct speer *sp = &s->p[p];
	struct neg_config cfg = {
		.self = peer_ids[p], .peer = peer_ids[!p], .fp = fps[p],
		.seed = rnd(s) | 1,
	};

	if (sp->alive)
		return;
	sp->inc++;
	sp->alive = true;
	sp->timer_gen++;
	sp->ack_upto = 0;
	sp->deliver_pending = false;
	memset(&sp->prep_epoch, 0, sizeof(*sp) - offsetof(struct speer, prep_epoch));
	if (neg_alloc(&sp->neg, &cfg, &actions, s))
		abort();
	slog(s, "%s starts (run %u)", peer_ids[p], sp->inc);
	s->cb_peer = p;
	neg_start(sp->neg, wall(s, p));
	/* A fresh client polls at once: leftovers of the last run. */
	schedule_deliver(s, p);
}

static void on_event(struct sim *s, struct event *e)
{
	int p = e->peer;
	struct speer *sp = p >= 0 ? &s->p[p] : NULL;
	bool current = sp && sp->alive && sp->inc == e->inc;

	switch (e->type) {
	case EV_START:
		start_peer(s, p);
		break;
	case EV_PUB_ARRIVE: {
		struct smsg *m = e->msg;
		uint64_t cur = 0;
		/* A publish of a dead run lands only if it left before. */
		if (m->from >= 0 && chance(s, s->cfg.p_lost_publish)) {
			slog(s, "publish %s %" PRIu64 " from %s lost", m->kind, m->epoch, m->from_id);
			struct event *r = push(s, between(s, s->cfg.result_min, s->cfg.result_max),
					       EV_PUB_RESULT, p);
			r->inc = e->inc;
			r->epoch = m->epoch;
			r->err = EIO;
			snprintf(r->kind, sizeof(r->kind), "%s", m->kind);
			msg_free(m);
			break;
		}
		int st;
		if (chance(s, s->cfg.p_vanish)) {
			/* Accepted, then lost with its coordinator. */
			st = 202;
			slog(s, "broker: %s %s %" PRIu64 " -> 202, then lost", m->from_id,
			     m->kind, m->epoch);
		} else {
			st = broker_publish(s, m, &cur);
			slog(s, "broker: %s %s %" PRIu64 " -> %d", m->from_id, m->kind, m->epoch, st);
			if (st == 202)
				schedule_deliver(s, m->to);
		}
		if (m->from >= 0) {
			bool lost = chance(s, s->cfg.p_lost_result) && e->attempt < 3;
			if (lost) {
				/* The answer is lost: the client sends it again. */
				slog(s, "answer to %s's publish lost: resending", m->from_id);
				struct event *r = push(s, between(s, s->cfg.msg_min, s->cfg.msg_max) + 200,
						       EV_PUB_ARRIVE, p);
				r->inc = e->inc;
				r->attempt = e->attempt + 1;
				r->msg = m;
				break;
			}
			struct event *r = push(s, between(s, s->cfg.result_min, s->cfg.result_max),
					       EV_PUB_RESULT, p);
			r->inc = e->inc;
			r->epoch = m->epoch;
			r->err = st == 202 ? 0 : st == 409 ? ESTALE : EAGAIN;
			r->current = cur;
			snprintf(r->kind, sizeof(r->kind), "%s", m->kind);
		}
		msg_free(m);
		break;
	}
	case EV_PUB_RESULT:
		if (!current)
			break;
		s->cb_peer = p;
		neg_publish_result(sp->neg, wall(s, p), e->kind, e->epoch, e->err, e->current);
		break;
	case EV_DELIVER:
		if (!current)
			break;
		deliver(s, p);
		break;
	case EV_GATHERED:
		if (!current || sp->prep_epoch != e->epoch)
			break;
		desc_of(sp->local, p, sp->inc, e->epoch);
		s->cb_peer = p;
		neg_local_ready(sp->neg, wall(s, p), e->epoch, sp->local, strlen(sp->local));
		break;
	case EV_LINK_UP:
		if (!matched(s, e->epoch))
			break;
		for (int i = 0; i < 2; i++) {
			s->p[i].up = true;
			s->p[i].up_epoch = e->epoch;
		}
		s->cnt.links_up++;
		slog(s, "link up, epoch %" PRIu64, e->epoch);
		for (int i = 0; i < 2; i++) {
			s->cb_peer = i;
			if (s->p[i].alive && s->p[i].up)
				neg_link_up(s->p[i].neg, wall(s, i), e->epoch);
		}
		break;
	case EV_ICE_TIMEOUT:
		if (!current || !sp->connecting || sp->up || sp->conn_epoch != e->epoch)
			break;
		slog(s, "%s: ICE gave up on epoch %" PRIu64, peer_ids[p], e->epoch);
		sp->connecting = false;
		s->cb_peer = p;
		neg_link_failed(sp->neg, wall(s, p), e->epoch, "no candidate pair answered");
		break;
	case EV_DEAD:
		if (!current || !(sp->up || sp->connecting) || sp->conn_epoch != e->epoch)
			break;
		slog(s, "%s: link of epoch %" PRIu64 " dead", peer_ids[p], e->epoch);
		sp->up = false;
		sp->connecting = false;
		s->cb_peer = p;
		neg_link_failed(sp->neg, wall(s, p), e->epoch, "consent expired");
		break;
	case EV_TIMER:
		if (!current || e->gen != sp->timer_gen)
			break;
		s->cb_peer = p;
		neg_timeout(sp->neg, wall(s, p));
		break;
	}
	check(s);
}

/* --- API ----------------------------------------------------------------- */

void sim_cfg_default(struct sim_cfg *c, uint32_t seed)
{
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->msg_min = 2;      c->msg_max = 40;
	c->poll_min = 1;     c->poll_max = 30;
	c->result_min = 1;   c->result_max = 20;
	c->gather_min = 20;  c->gather_max = 300;
	c->connect_min = 20; c->connect_max = 400;
	c->dead_min = 3000;  c->dead_max = 15000;
	c->ice_timeout = 15000;
	c->ttl_ms = 120000;
}

struct sim *sim_new(const struct sim_cfg *cfg)
{
	static const uint8_t root[32] = "sim-root-secret-32-bytes-long!!";
	struct sim *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	s->cfg = *cfg;
	s->rng = cfg->seed ? cfg->seed * 2654435761u : 1;
	if (!s->rng)
		s->rng = 1;
	for (int i = 0; i < 2; i++)
		s->p[i].skew = cfg->skew[i];
	if (keys_derive(root, sizeof(root), &s->keys))
		abort();
	return s;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->qn; i++)
		msg_free(s->q[i].msg);
	free(s->q);
	for (int p = 0; p < 2; p++) {
		for (size_t i = 0; i < s->mbn[p]; i++)
			msg_free(s->mb[p][i]);
		mem_deref(s->p[p].neg);
	}
	free(s);
}

void sim_start(struct sim *s, int p, uint64_t delay)
{
	push(s, delay, EV_START, p);
}

static void count_epochs(struct sim *s, int p)
{
	struct neg_stats st;

	if (p == 0 && s->p[0].neg) {
		neg_stats(s->p[0].neg, &st);
		s->cnt.epochs_opened += st.epochs_opened;
	}
}

void sim_kill(struct sim *s, int p)
{
	struct speer *sp = &s->p[p];

	if (!sp->alive)
		return;
	slog(s, "%s killed", peer_ids[p]);
	sp->alive = false;
	count_epochs(s, p);
	sp->neg = mem_deref(sp->neg);
	link_clear(s, p);
	/* Publishes still in flight may or may not have left. */
	for (size_t i = 0; i < s->qn; i++) {
		struct event *e = &s->q[i];
		if (e->type == EV_PUB_ARRIVE && e->peer == p && e->inc == sp->inc &&
		    chance(s, 50)) {
			msg_free(e->msg);
			e->msg = NULL;
			e->type = EV_PUB_RESULT; /* becomes a no-op: run is gone */
		}
	}
}

void sim_stop(struct sim *s, int p)
{
	struct speer *sp = &s->p[p];

	if (!sp->alive)
		return;
	slog(s, "%s stops (SIGTERM)", peer_ids[p]);
	s->cb_peer = p;
	neg_stop(sp->neg, wall(s, p));
	sp->alive = false;
	count_epochs(s, p);
	sp->neg = mem_deref(sp->neg);
	link_clear(s, p);
}

void sim_path_fail(struct sim *s)
{
	slog(s, "the path fails");
	for (int p = 0; p < 2; p++) {
		struct speer *sp = &s->p[p];
		if (sp->alive && (sp->up || sp->connecting)) {
			push(s, between(s, s->cfg.dead_min, s->cfg.dead_max), EV_DEAD, p)->epoch = sp->conn_epoch;
		}
	}
}

void sim_inject(struct sim *s, int to, const char *from_id, const char *to_id,
		const char *kind, uint64_t epoch, const char *payload, bool bad_psig)
{
	struct smsg m = { .from = -1, .to = to, .epoch = epoch };
	uint64_t cur = 0;

	snprintf(m.from_id, sizeof(m.from_id), "%s", from_id);
	snprintf(m.to_id, sizeof(m.to_id), "%s", to_id);
	snprintf(m.kind, sizeof(m.kind), "%s", kind);
	m.payload = (char *)payload;
	m.len = strlen(payload);
	psig_compute(s->keys.e2e, from_id, to_id, epoch, kind, payload, m.len, m.psig);
	if (bad_psig)
		m.psig[0] = m.psig[0] == '0' ? '1' : '0';
	broker_publish(s, &m, &cur);
	schedule_deliver(s, to);
}

uint64_t sim_now(const struct sim *s)
{
	return s->now;
}

static void step(struct sim *s)
{
	struct event e = pop(s);

	s->now = e.at;
	on_event(s, &e);
}

void sim_run_for(struct sim *s, uint64_t ms)
{
	uint64_t end = s->now + ms;

	while (s->qn && s->q[0].at <= end && !s->violation[0])
		step(s);
	if (!s->violation[0])
		s->now = end;
}

bool sim_converged(const struct sim *s, uint64_t *epoch)
{
	const struct speer *a = &s->p[0], *b = &s->p[1];

	if (!a->alive || !b->alive || !neg_is_up(a->neg) || !neg_is_up(b->neg))
		return false;
	if (neg_epoch(a->neg) != neg_epoch(b->neg) || !a->up || !b->up ||
	    a->up_epoch != neg_epoch(a->neg) || b->up_epoch != neg_epoch(b->neg))
		return false;
	if (epoch)
		*epoch = a->up_epoch;
	return true;
}

uint64_t sim_run_until_converged(struct sim *s, uint64_t limit)
{
	uint64_t start = s->now, end = s->now + limit;

	while (!sim_converged(s, NULL)) {
		if (!s->qn || s->q[0].at > end || s->violation[0])
			return UINT64_MAX;
		step(s);
	}
	return s->now - start;
}

const char *sim_violation(const struct sim *s)
{
	return s->violation[0] ? s->violation : NULL;
}

struct negotiation *sim_neg(struct sim *s, int p)
{
	return s->p[p].alive ? s->p[p].neg : NULL;
}

bool sim_alive(const struct sim *s, int p)
{
	return s->p[p].alive;
}

void sim_counts(const struct sim *s, struct sim_counts *c)
{
	struct neg_stats st;

	*c = s->cnt;
	if (s->p[0].alive && s->p[0].neg) {
		neg_stats(s->p[0].neg, &st);
		c->epochs_opened += st.epochs_opened;
	}
}

void sim_dump(const struct sim *s, FILE *f, unsigned lines)
{
	unsigned n = s->logn < LOG_LINES ? s->logn : LOG_LINES;

	if (lines < n)
		n = lines;
	for (unsigned i = s->logn - n; i < s->logn; i++)
		fprintf(f, "#     %s\n", s->log[i % LOG_LINES]);
}
