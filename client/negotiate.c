/* The per-peer negotiation state machine (negotiate.h): decides epochs,
 * offers, answers, renegotiation requests and byes from events, and asks
 * for publishes, link work and one timer through callbacks. It must not
 * do I/O, read a clock, log, or keep anything but this one pair's state:
 * that is what lets tests/client/signaling/ drive it through every
 * interleaving of a simulated world. docs/signaling-flow.md explains the
 * rules; the comments below say which rule each branch is. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <re_types.h>
#include <re_mem.h>

#include "client/negotiate.h"
#include "signaling/wire.h"

/* Defaults of struct neg_timing (docs/signaling-flow.md, "Timers"). */
static const struct neg_timing def_timing = {
	.prepare_ms       = 20000, /* ICE gathering: relays get 2.5 s head start, TURN over TLS is slow */
	.offer_retry_ms   = 15000,
	.offer_retry_max  = 60000,
	.offer_reuse_ms   = 15000, /* server-reflexive mappings outlive this (NAT UDP timeouts >= 30 s) */
	.connect_ms       = 40000, /* ICE gives up at 15 s, the QUIC handshake at 10 s */
	.wait_retry_ms    = 3000,
	.wait_retry_max   = 30000,
	.fail_backoff_ms  = 1000,
	.fail_backoff_max = 30000,
	.answer_resend_ms = 2000,
};

struct negotiation {
	enum neg_role role;
	enum neg_phase phase;
	char self[PEER_ID_MAX + 1];
	char peer[PEER_ID_MAX + 1];
	char fp[NEG_FP_LEN + 1];  /* our certificate fingerprint */
	struct neg_actions a;
	void *arg;
	struct neg_timing t;
	uint64_t epoch;      /* controlling: current offer's; controlled: last accepted offer's */
	uint64_t out_max;    /* highest epoch we published (our direction of the pair) */
	uint64_t in_last;    /* controlling: highest renegotiate/bye epoch handled */
	uint64_t reneg_last; /* controlled: our latest renegotiate's epoch */
	bool epoch_is_bye;   /* controlled: epoch came from a bye, not an offer */
	uint64_t max_known;  /* highest epoch seen for the pair, either direction */
	bool link;           /* link_prepare issued for epoch and not torn down */
	char *mine;          /* our offer or answer payload for epoch */
	size_t mine_len;
	uint64_t mine_at;    /* when the offer was first published */
	uint64_t resent_at;  /* last (re)publication of mine */
	char *rice;          /* controlled: the offer's ICE description */
	size_t rice_len;
	char rfp[NEG_FP_LEN + 1];
	size_t answer_len;   /* controlling: the answer accepted for epoch */
	uint64_t answer_hash;
	unsigned fails;      /* epochs in a row that failed before UP */
	unsigned retries;    /* backoff step of the phase's timer */
	uint32_t rng;
	struct neg_stats st;
};

static const char *const phase_names[] = {
	[NEG_INIT] = "init", [NEG_IDLE] = "idle", [NEG_WAITING] = "waiting",
	[NEG_PREPARING] = "preparing", [NEG_OFFERED] = "offered",
	[NEG_CONNECTING] = "connecting", [NEG_UP] = "up",
	[NEG_BACKOFF] = "backoff", [NEG_STOPPED] = "stopped",
};

const char *neg_phase_name(enum neg_phase ph)
{
	return (unsigned)ph < sizeof(phase_names) / sizeof(phase_names[0]) &&
		phase_names[ph] ? phase_names[ph] : "?";
}

const char *neg_rx_name(enum neg_rx rx)
{
	switch (rx) {
	case NEG_RX_ACCEPTED:   return "accepted";
	case NEG_RX_DUPLICATE:  return "duplicate";
	case NEG_RX_STALE:      return "stale";
	case NEG_RX_MALFORMED:  return "malformed";
	case NEG_RX_WRONG_ROLE: return "wrong-role";
	case NEG_RX_IGNORED:    return "ignored";
	}
	return "?";
}

/* --- Payloads ------------------------------------------------------------ */

static bool fp_ok(const char *s, size_t n)
{
	if (n != NEG_FP_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static char *dup_mem(const char *s, size_t n)
{
	char *d = mem_alloc(n + 1, NULL);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int dump_mem(json_t *o, char **outp, size_t *lenp)
{
	char *s = json_dumps(o, JSON_COMPACT);
	int err = 0;

	if (!s)
		return ENOMEM;
	if (strlen(s) > PAYLOAD_MAX) {
		err = EMSGSIZE;
	} else {
		*lenp = strlen(s);
		*outp = dup_mem(s, *lenp);
		if (!*outp)
			err = ENOMEM;
	}
	free(s);
	return err;
}

int neg_desc_encode(char **outp, size_t *lenp, const char *ice, size_t ice_len,
		    const char *fp)
{
	json_t *o, *is;
	int err;

	if (!outp || !lenp || !ice || !fp || !fp_ok(fp, strlen(fp)))
		return EINVAL;
	if (!ice_len || ice_len > NEG_ICE_MAX)
		return EMSGSIZE;
	if (memchr(ice, '\0', ice_len))
		return EINVAL;
	is = json_stringn(ice, ice_len); /* NULL for invalid UTF-8 */
	if (!is)
		return EINVAL;
	o = json_object();
	if (!o || json_object_set_new(o, "ice", is) ||
	    json_object_set_new(o, "fp", json_string(fp))) {
		json_decref(o);
		return ENOMEM;
	}
	err = dump_mem(o, outp, lenp);
	json_decref(o);
	return err;
}

int neg_desc_decode(const char *payload, size_t len, char **icep,
		    size_t *ice_len, char fp[NEG_FP_LEN + 1])
{
	json_error_t je;
	json_t *o, *ice, *f;
	int err = EBADMSG;

	if (!payload || len > PAYLOAD_MAX)
		return EBADMSG;
	o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o) || json_object_size(o) != 2)
		goto out;
	ice = json_object_get(o, "ice");
	f = json_object_get(o, "fp");
	if (!json_is_string(ice) || !json_is_string(f))
		goto out;
	size_t n = json_string_length(ice);
	if (!n || n > NEG_ICE_MAX || strlen(json_string_value(ice)) != n)
		goto out;
	if (!fp_ok(json_string_value(f), json_string_length(f)))
		goto out;
	*icep = dup_mem(json_string_value(ice), n);
	if (!*icep) {
		err = ENOMEM;
		goto out;
	}
	*ice_len = n;
	memcpy(fp, json_string_value(f), NEG_FP_LEN + 1);
	err = 0;
 out:
	json_decref(o);
	return err;
}

bool neg_reneg_decode(const char *payload, size_t len, uint64_t *seen)
{
	json_error_t je;
	json_t *o, *v;
	bool ok = false;

	o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o) || json_object_size(o) != 1)
		goto out;
	v = json_object_get(o, "seen");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > EPOCH_MAX)
		goto out;
	*seen = (uint64_t)json_integer_value(v);
	ok = true;
 out:
	json_decref(o);
	return ok;
}

/* --- Helpers ------------------------------------------------------------- */

static void note(struct negotiation *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct negotiation *n, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!n->a.note)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n->a.note(line, n->arg);
}

/* FNV-1a: tells two answers apart (both passed psig already). */
static uint64_t hash64(const char *p, size_t n)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* +-20 %: peers that fail together do not retry in lockstep. */
static uint32_t jit(struct negotiation *n, uint32_t ms)
{
	uint32_t span = ms / 5;

	n->rng ^= n->rng << 13;
	n->rng ^= n->rng >> 17;
	n->rng ^= n->rng << 5;
	return span ? ms - span + n->rng % (2 * span + 1) : ms;
}

static uint32_t backoff(uint32_t base, uint32_t cap, unsigned step)
{
	uint64_t ms = base;

	while (step-- && ms < cap)
		ms *= 2;
	return (uint32_t)(ms > cap ? cap : ms);
}

static void arm(struct negotiation *n, uint32_t ms)
{
	n->a.timer(ms, n->arg);
}

static void drop_remote(struct negotiation *n)
{
	n->rice = mem_deref(n->rice);
	n->rice_len = 0;
	n->rfp[0] = '\0';
}

/* Leaves the current epoch's link (if any) and our payload for it. */
static void teardown(struct negotiation *n, const char *why)
{
	if (n->link) {
		n->link = false;
		n->a.link_down(n->epoch, why, n->arg);
	}
	n->mine = mem_deref(n->mine);
	n->mine_len = 0;
	drop_remote(n);
}

static void publish_mine(struct negotiation *n, const char *kind, uint64_t now)
{
	n->resent_at = now;
	n->out_max = max64(n->out_max, n->epoch);
	n->a.publish(kind, n->epoch, n->mine, n->mine_len, n->arg);
}

/* --- Controlling side ---------------------------------------------------- */

/* Rule: a new epoch exceeds every epoch this side has seen or sent for
 * the pair, and the clock: a restarted side, which remembers nothing,
 * still lands above everything stale; the coordinator's 409 with
 * "current" covers a clock that went backwards. */
static void a_open(struct negotiation *n, uint64_t now, const char *why)
{
	uint64_t e = max64(max64(now, n->max_known + 1),
			   max64(n->out_max + 1, n->epoch + 1));

	teardown(n, why);
	if (e > EPOCH_MAX) {
		note(n, "epoch space exhausted (%" PRIu64 "): waiting", n->max_known);
		n->phase = NEG_BACKOFF;
		arm(n, jit(n, n->t.fail_backoff_max));
		return;
	}
	n->epoch = e;
	n->max_known = max64(n->max_known, e);
	n->phase = NEG_PREPARING;
	n->link = true;
	n->retries = 0;
	n->st.epochs_opened++;
	note(n, "epoch %" PRIu64 " with %s: %s", e, n->peer, why);
	n->a.link_prepare(e, n->arg);
	arm(n, jit(n, n->t.prepare_ms));
}

/* After a failure: at once the first time, paced when failures repeat
 * (a path that cannot work must not spin through epochs). */
static void a_open_paced(struct negotiation *n, uint64_t now, const char *why)
{
	if (n->fails < 2) {
		a_open(n, now, why);
		return;
	}
	teardown(n, why);
	n->phase = NEG_BACKOFF;
	uint32_t ms = jit(n, backoff(n->t.fail_backoff_ms, n->t.fail_backoff_max,
				     n->fails - 2));
	note(n, "%s; %u failed epochs in a row, next in %u ms", why, n->fails, ms);
	arm(n, ms);
}

static enum neg_rx a_answer(struct negotiation *n, uint64_t now, uint64_t e,
			    const char *payload, size_t len)
{
	char *ice = NULL, fp[NEG_FP_LEN + 1];
	size_t ice_len = 0;

	if (e < n->epoch)
		return NEG_RX_STALE;
	if (e > n->epoch) {
		/* The peer answered an offer newer than ours (from before
		 * our restart): it ignores our older epoch, so jump. */
		if (n->phase == NEG_IDLE)
			return NEG_RX_STALE;
		a_open(n, now, "the peer answered a newer epoch");
		return NEG_RX_ACCEPTED;
	}
	if (n->phase == NEG_CONNECTING || n->phase == NEG_UP) {
		/* Rule: one run of the peer sends one answer per epoch (its
		 * resends are byte-identical). A different answer to the same
		 * epoch is a later run of the peer (it restarted and found
		 * our offer still queued): the link we hold is with a process
		 * that is gone, so start over above it. */
		if (len != n->answer_len || hash64(payload, len) != n->answer_hash) {
			a_open(n, now, "a different answer: the peer restarted");
			return NEG_RX_ACCEPTED;
		}
		return NEG_RX_DUPLICATE;
	}
	if (n->phase != NEG_OFFERED)
		return NEG_RX_STALE;
	if (neg_desc_decode(payload, len, &ice, &ice_len, fp))
		return NEG_RX_MALFORMED;
	struct neg_remote r = { .epoch = e, .ice = ice, .ice_len = ice_len, .fp = fp };
	n->answer_len = len;
	n->answer_hash = hash64(payload, len);
	n->phase = NEG_CONNECTING;
	note(n, "epoch %" PRIu64 ": answer from %s, connecting", e, n->peer);
	n->a.link_connect(&r, n->arg);
	mem_deref(ice);
	arm(n, jit(n, n->t.connect_ms));
	return NEG_RX_ACCEPTED;
}

static enum neg_rx a_reneg(struct negotiation *n, uint64_t now, uint64_t e,
			   const char *payload, size_t len)
{
	uint64_t seen = 0;

	if (!neg_reneg_decode(payload, len, &seen))
		return NEG_RX_MALFORMED;
	if (e <= n->in_last)
		return e == n->in_last ? NEG_RX_DUPLICATE : NEG_RX_STALE;
	n->in_last = e;
	n->max_known = max64(n->max_known, seen);

	if (n->phase == NEG_IDLE || n->phase == NEG_BACKOFF) {
		a_open(n, now, "the peer asks for an epoch");
		return NEG_RX_ACCEPTED;
	}
	/* Rule: the peer's own epoch stream has passed ours (its answer to
	 * our epoch would be refused as stale), or it saw our epoch and
	 * still asks: a new epoch above both. */
	if (e >= n->epoch || seen >= n->epoch) {
		a_open(n, now, "the peer asks for a new epoch");
		return NEG_RX_ACCEPTED;
	}
	switch (n->phase) {
	case NEG_CONNECTING:
	case NEG_UP:
		/* Older than the answer we hold: the coordinator refuses a
		 * lower epoch after a higher one in the peer's direction,
		 * so this request was published before that answer. */
		return NEG_RX_STALE;
	case NEG_PREPARING:
		/* Our offer, published after this request arrived, is what
		 * it asks for. */
		return NEG_RX_ACCEPTED;
	case NEG_OFFERED:
		/* It had not seen our offer when it asked; it may never
		 * (an earlier run of it took it). Resend the same offer
		 * while it is fresh, else start over. */
		if (now - n->mine_at <= n->t.offer_reuse_ms && n->mine) {
			note(n, "epoch %" PRIu64 ": %s asks again, resending the offer",
			     n->epoch, n->peer);
			n->st.offers_resent++;
			publish_mine(n, NEG_KIND_OFFER, now);
		} else {
			a_open(n, now, "the peer asks and our offer is old");
		}
		return NEG_RX_ACCEPTED;
	default:
		return NEG_RX_IGNORED;
	}
}

static enum neg_rx a_bye(struct negotiation *n, uint64_t e)
{
	if (e <= n->in_last)
		return e == n->in_last ? NEG_RX_DUPLICATE : NEG_RX_STALE;
	n->in_last = e;
	/* Rule: a peer's bye exceeds every epoch it saw. One below our
	 * epoch comes from a run of the peer that never saw our current
	 * offer (an earlier run, or one that stopped before it arrived):
	 * the offer stands for whichever run comes next. */
	if (e < n->epoch)
		return NEG_RX_STALE;
	teardown(n, "the peer said bye");
	note(n, "%s said bye: waiting for it to come back", n->peer);
	n->phase = NEG_IDLE;
	n->fails = 0;
	arm(n, 0);
	return NEG_RX_ACCEPTED;
}

/* --- Controlled side ----------------------------------------------------- */

/* Asks for a new epoch. Rule: its epoch (in our own direction of the
 * pair) exceeds all we sent and the offer we hold. The first one after a
 * start, when we remember nothing, takes the clock minus RENEG_LAG_MS:
 * above anything an earlier run of ours sent more than that ago (the
 * coordinator's 409 with "current" lifts it above the rest), yet below
 * the epoch the controlling side takes from its own clock if it starts at
 * the same moment, so a simultaneous restart needs one epoch, not two. */
#define RENEG_LAG_MS UINT64_C(300000) /* tolerated clock skew between peers */

static void b_reneg(struct negotiation *n, uint64_t now, bool use_clock,
		    const char *why)
{
	char payload[48];
	uint64_t r = max64(n->out_max, n->epoch) + 1;
	int len;

	if (use_clock && now > RENEG_LAG_MS)
		r = max64(r, now - RENEG_LAG_MS);
	if (r > EPOCH_MAX) {
		note(n, "epoch space exhausted: waiting");
		n->phase = NEG_BACKOFF;
		arm(n, jit(n, n->t.fail_backoff_max));
		return;
	}
	len = snprintf(payload, sizeof(payload), "{\"seen\":%" PRIu64 "}", n->epoch);
	n->out_max = r;
	n->reneg_last = r;
	n->phase = NEG_WAITING;
	n->st.renegs_sent++;
	note(n, "asking %s for an epoch above %" PRIu64 ": %s", n->peer, n->epoch, why);
	n->a.publish(NEG_KIND_RENEG, r, payload, (size_t)len, n->arg);
	arm(n, jit(n, backoff(n->t.wait_retry_ms, n->t.wait_retry_max, n->retries)));
	n->retries++;
}

static void b_failed(struct negotiation *n, uint64_t now, const char *why)
{
	teardown(n, why);
	n->fails++;
	n->retries = 0;
	if (n->fails >= 2) {
		uint32_t ms = jit(n, backoff(n->t.fail_backoff_ms, n->t.fail_backoff_max,
					     n->fails - 2));
		note(n, "%s; %u failed epochs in a row, asking again in %u ms",
		     why, n->fails, ms);
		n->phase = NEG_BACKOFF;
		arm(n, ms);
		return;
	}
	b_reneg(n, now, false, why);
}

static enum neg_rx b_offer(struct negotiation *n, uint64_t now, uint64_t e,
			   const char *payload, size_t len)
{
	char *ice = NULL, fp[NEG_FP_LEN + 1];
	size_t ice_len = 0;

	if (e < n->epoch)
		return NEG_RX_STALE;
	/* An offer equal to the bye we hold is from a later run of the
	 * peer whose clock gave the same ms (one run never sends both in
	 * one epoch): a new offer. */
	if (e == n->epoch && !n->epoch_is_bye) {
		/* The same offer again: the controlling side did not get
		 * our answer yet, or resent its offer for a later run of
		 * us. Resend the answer (rate-limited). */
		if ((n->phase == NEG_CONNECTING || n->phase == NEG_UP) && n->mine &&
		    now - n->resent_at >= n->t.answer_resend_ms) {
			n->st.answers_resent++;
			publish_mine(n, NEG_KIND_ANSWER, now);
		}
		return NEG_RX_DUPLICATE;
	}
	/* Rule: our pending renegotiate asks for more than this; an answer
	 * in this epoch would be refused as stale in our direction. The
	 * controlling side opens one above our request instead. */
	if (e < n->out_max)
		return NEG_RX_STALE;
	if (neg_desc_decode(payload, len, &ice, &ice_len, fp))
		return NEG_RX_MALFORMED;
	teardown(n, "a newer offer");
	n->epoch = e;
	n->epoch_is_bye = false;
	n->rice = ice;
	n->rice_len = ice_len;
	memcpy(n->rfp, fp, sizeof(n->rfp));
	n->phase = NEG_PREPARING;
	n->link = true;
	n->retries = 0;
	note(n, "epoch %" PRIu64 ": offer from %s, preparing the answer", e, n->peer);
	n->a.link_prepare(e, n->arg);
	arm(n, jit(n, n->t.prepare_ms));
	return NEG_RX_ACCEPTED;
}

static enum neg_rx b_bye(struct negotiation *n, uint64_t e)
{
	if (e < n->epoch)
		return NEG_RX_STALE;
	if (e == n->epoch) {
		/* One run never sends an offer and a bye in one epoch (its
		 * bye is above its offers): a bye equal to the offer we hold
		 * is from an earlier run, whose clock gave the same ms. */
		return n->link ? NEG_RX_STALE : NEG_RX_DUPLICATE;
	}
	teardown(n, "the peer said bye");
	/* Offers older than the bye are dead now. */
	n->epoch = e;
	n->epoch_is_bye = true;
	n->phase = NEG_WAITING;
	n->fails = 0;
	n->retries = 0;
	note(n, "%s said bye: waiting for its offer", n->peer);
	/* It offers as soon as it is back; ask now and then in case that
	 * offer is lost. */
	arm(n, jit(n, n->t.wait_retry_max));
	return NEG_RX_ACCEPTED;
}

/* --- Events -------------------------------------------------------------- */

static void neg_destructor(void *arg)
{
	struct negotiation *n = arg;

	mem_deref(n->mine);
	mem_deref(n->rice);
}

int neg_alloc(struct negotiation **np, const struct neg_config *cfg,
	      const struct neg_actions *a, void *arg)
{
	struct negotiation *n;
	int err = 0;

	if (!np || !cfg || !a || !cfg->self || !cfg->peer || !cfg->fp ||
	    !a->publish || !a->link_prepare || !a->link_connect ||
	    !a->link_down || !a->timer)
		return EINVAL;
	if (!id_valid(cfg->self, strlen(cfg->self)) ||
	    !id_valid(cfg->peer, strlen(cfg->peer)) ||
	    !strcmp(cfg->self, cfg->peer) || !fp_ok(cfg->fp, strlen(cfg->fp)))
		return EINVAL;
	n = mem_zalloc(sizeof(*n), neg_destructor);
	if (!n) {
		err = ENOMEM;
		goto out;
	}
	snprintf(n->self, sizeof(n->self), "%s", cfg->self);
	snprintf(n->peer, sizeof(n->peer), "%s", cfg->peer);
	snprintf(n->fp, sizeof(n->fp), "%s", cfg->fp);
	n->role = strcmp(cfg->self, cfg->peer) < 0 ? NEG_CONTROLLING : NEG_CONTROLLED;
	n->phase = NEG_INIT;
	n->a = *a;
	n->arg = arg;
	n->t = cfg->t;
#define DEF(f) if (!n->t.f) n->t.f = def_timing.f
	DEF(prepare_ms); DEF(offer_retry_ms); DEF(offer_retry_max);
	DEF(offer_reuse_ms); DEF(connect_ms); DEF(wait_retry_ms);
	DEF(wait_retry_max); DEF(fail_backoff_ms); DEF(fail_backoff_max);
	DEF(answer_resend_ms);
#undef DEF
	n->rng = cfg->seed ? cfg->seed : 0x9e3779b9u;
	*np = n;
 out:
	return err;
}

void neg_start(struct negotiation *n, uint64_t now)
{
	if (!n || n->phase != NEG_INIT)
		return;
	if (n->role == NEG_CONTROLLING)
		a_open(n, now, "start");
	else
		b_reneg(n, now, true, "start");
}

void neg_stop(struct negotiation *n, uint64_t now)
{
	static const char bye[] = "{\"reason\":\"shutdown\"}";
	uint64_t e;

	if (!n || n->phase == NEG_STOPPED)
		return;
	if (n->phase == NEG_INIT) {
		n->phase = NEG_STOPPED;
		return;
	}
	teardown(n, "stopping");
	arm(n, 0);
	if (n->role == NEG_CONTROLLING)
		e = max64(max64(now, n->max_known + 1), max64(n->out_max, n->epoch) + 1);
	else
		e = max64(n->out_max, n->epoch) + 1;
	n->phase = NEG_STOPPED;
	if (e > EPOCH_MAX)
		return;
	n->out_max = e;
	n->st.byes_sent++;
	n->a.publish(NEG_KIND_BYE, e, bye, sizeof(bye) - 1, n->arg);
}

enum neg_rx neg_recv(struct negotiation *n, uint64_t now, const char *kind,
		     uint64_t epoch, const char *payload, size_t len)
{
	enum neg_rx rx;

	if (!n || !kind || !payload)
		return NEG_RX_IGNORED;
	if (n->phase == NEG_INIT || n->phase == NEG_STOPPED)
		return NEG_RX_IGNORED;
	if (epoch < 1 || epoch > EPOCH_MAX || len > PAYLOAD_MAX) {
		rx = NEG_RX_MALFORMED;
		goto out;
	}
	n->max_known = max64(n->max_known, epoch);
	if (n->role == NEG_CONTROLLING) {
		if (!strcmp(kind, NEG_KIND_ANSWER))
			rx = a_answer(n, now, epoch, payload, len);
		else if (!strcmp(kind, NEG_KIND_RENEG))
			rx = a_reneg(n, now, epoch, payload, len);
		else if (!strcmp(kind, NEG_KIND_BYE))
			rx = a_bye(n, epoch);
		else
			rx = NEG_RX_WRONG_ROLE;
	} else {
		if (!strcmp(kind, NEG_KIND_OFFER))
			rx = b_offer(n, now, epoch, payload, len);
		else if (!strcmp(kind, NEG_KIND_BYE))
			rx = b_bye(n, epoch);
		else
			rx = NEG_RX_WRONG_ROLE;
	}
 out:
	switch (rx) {
	case NEG_RX_ACCEPTED:   n->st.rx_accepted++; break;
	case NEG_RX_DUPLICATE:  n->st.rx_duplicate++; break;
	case NEG_RX_STALE:      n->st.rx_stale++; break;
	case NEG_RX_MALFORMED:  n->st.rx_malformed++;
		note(n, "malformed %s from %s (epoch %" PRIu64 "): ignored", kind, n->peer, epoch);
		break;
	case NEG_RX_WRONG_ROLE: n->st.rx_wrong_role++; break;
	case NEG_RX_IGNORED:    break;
	}
	return rx;
}

void neg_local_ready(struct negotiation *n, uint64_t now, uint64_t epoch,
		     const char *ice, size_t len)
{
	int err;

	if (!n || n->phase != NEG_PREPARING || epoch != n->epoch)
		return;
	n->mine = mem_deref(n->mine);
	err = neg_desc_encode(&n->mine, &n->mine_len, ice, len, n->fp);
	if (err) {
		note(n, "epoch %" PRIu64 ": our description cannot be sent (%s)",
		     epoch, strerror(err));
		if (n->role == NEG_CONTROLLING) {
			n->fails++;
			a_open_paced(n, now, "bad local description");
		} else {
			b_failed(n, now, "bad local description");
		}
		return;
	}
	if (n->role == NEG_CONTROLLING) {
		n->phase = NEG_OFFERED;
		n->mine_at = now;
		n->st.offers_sent++;
		publish_mine(n, NEG_KIND_OFFER, now);
		arm(n, jit(n, backoff(n->t.offer_retry_ms, n->t.offer_retry_max,
				      n->retries)));
		return;
	}
	struct neg_remote r = { .epoch = epoch, .ice = n->rice,
				.ice_len = n->rice_len, .fp = n->rfp };
	n->phase = NEG_CONNECTING;
	n->st.answers_sent++;
	publish_mine(n, NEG_KIND_ANSWER, now);
	n->a.link_connect(&r, n->arg);
	drop_remote(n);
	arm(n, jit(n, n->t.connect_ms));
}

void neg_link_up(struct negotiation *n, uint64_t now, uint64_t epoch)
{
	(void)now;
	if (!n || n->phase != NEG_CONNECTING || epoch != n->epoch)
		return;
	n->phase = NEG_UP;
	n->fails = 0;
	n->retries = 0;
	note(n, "epoch %" PRIu64 ": link with %s up", epoch, n->peer);
	arm(n, 0);
}

void neg_link_failed(struct negotiation *n, uint64_t now, uint64_t epoch,
		     const char *why)
{
	if (!n || epoch != n->epoch || !n->link)
		return;
	if (n->phase != NEG_PREPARING && n->phase != NEG_OFFERED &&
	    n->phase != NEG_CONNECTING && n->phase != NEG_UP)
		return;
	n->st.link_failures++;
	if (n->phase == NEG_UP)
		n->fails = 0; /* a link that worked: retry at once */
	note(n, "epoch %" PRIu64 ": link with %s failed: %s", epoch, n->peer,
	     why ? why : "?");
	if (n->role == NEG_CONTROLLING) {
		n->fails++;
		a_open_paced(n, now, "the link failed");
	} else {
		b_failed(n, now, "the link failed");
	}
}

/* A publish no coordinator took (after sigclient's own retries, up to its
 * deadline): if the message still matters, send it again, same epoch and
 * bytes. Refusals for good (a bug: bad request, forbidden, too large) are
 * left to the timers, so nothing spins. */
static void republish(struct negotiation *n, uint64_t now, const char *kind,
		      uint64_t epoch, int err)
{
	char payload[48];
	int len;

	if (err == EINVAL || err == EPERM || err == EMSGSIZE || err == EPROTO)
		return;
	if (n->role == NEG_CONTROLLING) {
		if (!strcmp(kind, NEG_KIND_OFFER) && epoch == n->epoch &&
		    n->phase == NEG_OFFERED && n->mine) {
			n->st.offers_resent++;
			publish_mine(n, NEG_KIND_OFFER, now);
		}
		return;
	}
	if (!strcmp(kind, NEG_KIND_ANSWER) && epoch == n->epoch &&
	    n->phase == NEG_CONNECTING && n->mine) {
		n->st.answers_resent++;
		publish_mine(n, NEG_KIND_ANSWER, now);
	} else if (!strcmp(kind, NEG_KIND_RENEG) && epoch == n->reneg_last &&
		   n->phase == NEG_WAITING) {
		len = snprintf(payload, sizeof(payload), "{\"seen\":%" PRIu64 "}", n->epoch);
		n->st.renegs_sent++;
		n->a.publish(NEG_KIND_RENEG, epoch, payload, (size_t)len, n->arg);
	}
}

void neg_publish_result(struct negotiation *n, uint64_t now, const char *kind,
			uint64_t epoch, int err, uint64_t current)
{
	if (!n || !kind || !err || n->phase == NEG_STOPPED)
		return;
	if (err != ESTALE) {
		republish(n, now, kind, epoch, err);
		return;
	}
	n->st.stale_publishes++;
	n->max_known = max64(n->max_known, current);
	n->out_max = max64(n->out_max, current);
	if (n->role == NEG_CONTROLLING) {
		/* Rule: the coordinator holds a higher epoch of ours (an
		 * earlier run's): jump above it. */
		if (!strcmp(kind, NEG_KIND_OFFER) && epoch == n->epoch &&
		    (n->phase == NEG_OFFERED || n->phase == NEG_CONNECTING))
			a_open(n, now, "our epoch is stale at the coordinator");
		return;
	}
	if (!strcmp(kind, NEG_KIND_ANSWER) && epoch == n->epoch &&
	    n->phase == NEG_CONNECTING) {
		/* Our direction already carries a higher epoch: ask for an
		 * epoch above it. */
		teardown(n, "our answer is stale at the coordinator");
		n->retries = 0;
		b_reneg(n, now, false, "our answer was refused as stale");
	} else if (!strcmp(kind, NEG_KIND_RENEG) && epoch == n->reneg_last &&
		   n->phase != NEG_UP) {
		/* Our latest request never reached the peer, and it is how
		 * the peer learns we restarted or lost the link: ask again
		 * above current. Unless we are answering an offer our
		 * direction accepts: that answer tells the peer instead. */
		if ((n->phase == NEG_PREPARING || n->phase == NEG_CONNECTING) &&
		    n->epoch >= current)
			return;
		teardown(n, "our request was refused as stale");
		b_reneg(n, now, false, "our request was refused as stale");
	}
}

void neg_timeout(struct negotiation *n, uint64_t now)
{
	unsigned r;

	if (!n)
		return;
	if (n->role == NEG_CONTROLLING) {
		switch (n->phase) {
		case NEG_PREPARING:
			n->fails++;
			a_open_paced(n, now, "gathering timed out");
			break;
		case NEG_OFFERED:
			/* No answer: a fresh epoch (fresh candidates); each
			 * one purges the last from the peer's mailbox. */
			r = n->retries + 1;
			a_open(n, now, "no answer");
			n->retries = r;
			break;
		case NEG_CONNECTING:
			n->fails++;
			a_open_paced(n, now, "the link did not come up");
			break;
		case NEG_BACKOFF:
			a_open(n, now, "retrying after backoff");
			break;
		default:
			break;
		}
		return;
	}
	switch (n->phase) {
	case NEG_WAITING:
		b_reneg(n, now, false, "no offer yet");
		break;
	case NEG_PREPARING:
		b_failed(n, now, "gathering timed out");
		break;
	case NEG_CONNECTING:
		b_failed(n, now, "the link did not come up");
		break;
	case NEG_BACKOFF:
		b_reneg(n, now, false, "retrying after backoff");
		break;
	default:
		break;
	}
}

enum neg_role neg_role(const struct negotiation *n)
{
	return n->role;
}

enum neg_phase neg_phase(const struct negotiation *n)
{
	return n->phase;
}

uint64_t neg_epoch(const struct negotiation *n)
{
	return n->epoch;
}

bool neg_is_up(const struct negotiation *n)
{
	return n->phase == NEG_UP;
}

void neg_stats(const struct negotiation *n, struct neg_stats *st)
{
	*st = n->st;
}
