/* The link manager: one link per other peer. It carries out what each
 * peer's negotiation (client/negotiate.h) asks for (publish through the
 * signaling client, prepare an ICE session for an epoch, connect it to
 * the peer's description, tear it down), starts QUIC over the path ICE
 * selected, hands the QUIC carrier to the forwarder once QUIC reports
 * connected, and reports the link's fate back to the negotiation. It owns
 * the link state, its timers, the up/down log lines and the figures the
 * admin API shows. It must not decide epochs or roles (negotiate.c does),
 * touch sockets itself, or call into a negotiation from inside one of its
 * actions (results are deferred to a timer). */
#include "client/link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <re.h>

#include "client/forward.h"
#include "client/ice.h"
#include "client/negotiate.h"
#include "client/peers.h"
#include "client/quic.h"
#include "client/sigclient.h"
#include "common/log.h"

/* ice.h: "At most 24 servers." */
#define LINK_SERVERS_MAX 24
/* Pairs kept from the last ICE session for "why relayed". */
#define LINK_PAIRS_MAX 32
/* Controlling links open their first epoch when the coordinators' servers
 * are known, or after this long without them. The signaling client asks
 * every --coordinator for /v1/coordinators at start, beside its first
 * poll (client/sigclient.c), so the servers normally come one round trip
 * after start; this is the backstop for a coordinator that is slow or
 * down. An epoch prepared without servers is replaced as soon as they come
 * (linkmgr_sig_servers). */
#define LINK_SERVERS_WAIT_MS 300
/* SIGTERM: bye publishes get this long to be accepted by a coordinator. */
#define LINK_BYE_WAIT_MS 1500
/* ... and CONNECTION_CLOSE this long to leave a buffering path (TURN over
 * TCP/TLS) even when every bye was quick. */
#define LINK_CLOSE_FLUSH_MS 150
/* Application close codes we send in CONNECTION_CLOSE (docs/client.md). */
#define LINK_QUIC_BYE      UINT64_C(0x6d650001) /* shutting down */
#define LINK_QUIC_NEWEPOCH UINT64_C(0x6d650002) /* replaced by a new epoch */

struct linkmgr;

struct pubctx {
	struct le le;
	struct link *l;          /* NULL once the link is gone */
	char kind[17];
	uint64_t epoch;
	int err;                 /* for a result reported through tmr */
	uint64_t current;
	struct tmr tmr;          /* deferred local failure */
};

struct link {
	struct linkmgr *lm;
	char peer[PEERS_ID_MAX + 1];
	bool controlling;
	bool started;             /* neg_start() called */
	bool no_servers;          /* this epoch was prepared without STUN/TURN */
	struct negotiation *neg;
	struct tmr tmr_neg;       /* the negotiation's one timer */
	struct tmr tmr_fail;      /* deferred failure report */
	uint64_t fail_epoch;
	char fail_why[160];

	/* The current epoch's link. */
	enum link_state state;
	uint64_t epoch;
	struct ice_session *ice;
	struct quic_conn *qc;
	char remote_fp[NEG_FP_LEN + 1];
	bool attached;            /* forward_attach done */
	uint64_t t_prepare;       /* monotonic ms the epoch started */

	/* History and figures. */
	uint64_t epochs, ups, downs;
	uint64_t t_up;            /* monotonic ms it came up, while up */
	uint64_t t_down;          /* monotonic ms it went down (0: never up) */
	uint64_t last_outage_ms, connect_ms;
	char down_reason[LINK_REASON_MAX];
	uint64_t reason_epoch;    /* the epoch down_reason tells about */
	bool reason_failed;       /* ... and it is a failure found here */
	struct ice_pair_info pairs[LINK_PAIRS_MAX];
	size_t npairs;
	char gather_err[256];
	enum ice_path_type path;
	char lcand[64], rcand[64];
	uint32_t ice_rtt;
	uint64_t wire_tx, wire_rx; /* of the last QUIC connection */

	/* Kept after a SIGTERM close so the close can leave. */
	struct quic_conn *closing_qc;
	struct ice_session *closing_ice;
};

struct linkmgr {
	char self[PEERS_ID_MAX + 1];
	struct peer_table *peers;
	struct forward *fwd;
	struct sigclient *sig;
	struct quic_identity *qid;
	bool relay_only, no_relay;
	struct link *links;       /* array of n */
	size_t n;
	struct list pubs;         /* struct pubctx in flight */
	bool started;
	struct tmr tmr_start;
	/* Shutdown. */
	bool stopping;
	linkmgr_done_h *doneh;
	void *done_arg;
	struct tmr tmr_done;
	uint64_t t_stop;
	struct linkmgr_stats st;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *link_state_name(enum link_state st)
{
	switch (st) {
	case LINK_ST_IDLE:      return "idle";
	case LINK_ST_GATHERING: return "gathering";
	case LINK_ST_CHECKING:  return "checking";
	case LINK_ST_HANDSHAKE: return "handshake";
	case LINK_ST_UP:        return "up";
	case LINK_ST_DOWN:      return "down";
	case LINK_ST_CLOSED:    return "closed";
	}
	return "?";
}

static void fmt_dur(char *out, size_t cap, uint64_t ms)
{
	if (ms < 10000)
		snprintf(out, cap, "%.2f s", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(out, cap, "%llum%02llus", (unsigned long long)(ms / 60000),
			 (unsigned long long)(ms / 1000 % 60));
	else
		snprintf(out, cap, "%lluh%02llum", (unsigned long long)(ms / 3600000),
			 (unsigned long long)(ms / 60000 % 60));
}

/* --- Tearing an epoch's link down ---------------------------------------- */

/* Why an epoch's link ends: a failure found here (ICE, QUIC, a local
 * check: link_fail), or the negotiation (or SIGTERM) leaving it for
 * another epoch, whatever state it was in. */
enum link_end {
	LINK_END_FAILED,
	LINK_END_REPLACED,
};

static void snapshot_ice(struct link *l)
{
	if (!l->ice)
		return;
	size_t n = ice_session_pairs(l->ice, l->pairs, LINK_PAIRS_MAX);
	l->npairs = n < LINK_PAIRS_MAX ? n : LINK_PAIRS_MAX;
	snprintf(l->gather_err, sizeof(l->gather_err), "%s",
		 ice_session_gather_errors(l->ice));
}

static void snapshot_quic(struct link *l)
{
	struct quic_stats qs;

	if (!l->qc)
		return;
	quic_conn_stats(l->qc, &qs);
	l->wire_tx = qs.tx_bytes;
	l->wire_rx = qs.rx_bytes;
}

/* What the pairs of the snapshot (snapshot_ice) had come to, worded like
 * ICE's own failure reasons (client/ice_check.c): "2 pairs: 0 succeeded,
 * 1 failed, 1 running; best failed: no answer to 7 checks", or how many
 * checks are still unanswered when none failed yet. */
static void pairs_summary(const struct link *l, char *out, size_t cap)
{
	unsigned ok = 0, failed = 0, running = 0, unanswered = 0;
	const char *first = "";

	if (!l->npairs) {
		/* The gathering errors' start: why_not_up has them whole. */
		snprintf(out, cap, "no candidate pair%s%.160s",
			 l->gather_err[0] ? "; gathering: " : "", l->gather_err);
		return;
	}
	for (size_t k = 0; k < l->npairs; k++) {
		const struct ice_pair_info *p = &l->pairs[k];
		const char *st = p->state ? p->state : "";

		if (!strcmp(st, "succeeded")) {
			ok++;
		}
		else if (!strcmp(st, "failed")) {
			if (!first[0])
				first = p->error;
			failed++;
		}
		else if (strcmp(st, "cancelled")) {
			running++;
			unanswered += p->checks;
		}
	}
	if (first[0])
		snprintf(out, cap, "%zu pairs: %u succeeded, %u failed, %u running; "
			 "best failed: %s", l->npairs, ok, failed, running, first);
	else if (!ok && running)
		snprintf(out, cap, "%zu pairs: %u succeeded, %u failed, %u running; "
			 "no answer yet to %u check(s)", l->npairs, ok, failed,
			 running, unanswered);
	else
		snprintf(out, cap, "%zu pairs: %u succeeded, %u failed, %u running",
			 l->npairs, ok, failed, running);
}

/* down_reason := reason, unless a failure found in this same epoch is
 * there already: the replacement that follows a failure (the
 * negotiation's link_down, the next link_prepare) would say less. */
static void set_down_reason(struct link *l, const char *reason,
			    enum link_end end)
{
	if (end == LINK_END_REPLACED && l->reason_failed &&
	    l->reason_epoch == l->epoch)
		return;
	snprintf(l->down_reason, sizeof(l->down_reason), "%s", reason);
	l->reason_epoch = l->epoch;
	l->reason_failed = end == LINK_END_FAILED;
}

/* The link of the current epoch goes away: detach the forwarder first,
 * then QUIC (a CONNECTION_CLOSE with code when it was still open, so the
 * peer learns at once), then ICE. Logs "down" when it had been up, and
 * "ended in <state>" for an epoch that never came up; an epoch replaced
 * while checking keeps what ICE had found so far in its reason, so the
 * side whose checks did not run out first can still tell why no pair
 * worked. */
static void teardown(struct link *l, uint64_t code, const char *why,
		     enum link_end end)
{
	struct linkmgr *lm = l->lm;
	uint64_t now = mono_ms();

	tmr_cancel(&l->tmr_fail);
	if (l->attached) {
		forward_detach(lm->fwd, l->peer);
		l->attached = false;
	}
	snapshot_ice(l);
	snapshot_quic(l);
	if (l->state == LINK_ST_UP) {
		char up[32];
		fmt_dur(up, sizeof(up), now - l->t_up);
		l->downs++;
		l->t_down = now;
		l->t_up = 0;
		set_down_reason(l, why, end);
		log_info("link", "%s: link down: %s (was up %s on %s, epoch %llu)",
			 l->peer, why, up, ice_path_type_name(l->path),
			 (unsigned long long)l->epoch);
	}
	else if (l->state != LINK_ST_IDLE && l->state != LINK_ST_DOWN &&
		 l->state != LINK_ST_CLOSED) {
		char reason[LINK_REASON_MAX], sum[LINK_REASON_MAX - 32];

		if (end == LINK_END_REPLACED && l->state == LINK_ST_CHECKING) {
			pairs_summary(l, sum, sizeof(sum));
			snprintf(reason, sizeof(reason), "%s; ICE so far: %s",
				 why, sum);
		}
		else {
			snprintf(reason, sizeof(reason), "%s", why);
		}
		log_info("link", "%s: epoch %llu ended in %s: %s", l->peer,
			 (unsigned long long)l->epoch, link_state_name(l->state),
			 reason);
		if (!l->t_down || l->ups == 0)
			set_down_reason(l, reason, end);
	}
	if (l->qc) {
		/* Cleared first: the close may report QUIC_EV_CLOSED at once,
		 * and quic_state() ignores connections no longer current. */
		struct quic_conn *qc = l->qc;
		l->qc = NULL;
		if (code && quic_conn_is_connected(qc))
			quic_conn_close(qc, code, why);
		if (lm->stopping) {
			/* The close must still leave through the path. */
			mem_deref(l->closing_qc);
			mem_deref(l->closing_ice);
			l->closing_qc = qc;
			l->closing_ice = l->ice;
			l->ice = NULL;
		}
		else {
			mem_deref(qc);
		}
	}
	l->ice = mem_deref(l->ice);
	l->state = lm->stopping ? LINK_ST_CLOSED : LINK_ST_DOWN;
}

/* A failure found by ICE, QUIC or a local check: tear down now, tell the
 * negotiation from a timer (never from inside its own action). */
static void fail_report(void *arg)
{
	struct link *l = arg;

	if (l->lm->stopping)
		return;
	neg_link_failed(l->neg, wall_ms(), l->fail_epoch, l->fail_why);
}

static void link_fail(struct link *l, uint64_t code, const char *why)
{
	uint64_t epoch = l->epoch;

	teardown(l, code, why, LINK_END_FAILED);
	l->fail_epoch = epoch;
	snprintf(l->fail_why, sizeof(l->fail_why), "%s", why);
	tmr_start(&l->tmr_fail, 0, fail_report, l);
}

/* --- QUIC ---------------------------------------------------------------- */

static void carrier_no_stream(struct cstream *s, void *arg)
{
	/* Before the forwarder is attached: leaving the handlers unset
	 * refuses the stream (quic.h). */
	(void)s;
	(void)arg;
}

static void carrier_no_dgram(const uint8_t *p, size_t n, void *arg)
{
	(void)p;
	(void)n;
	(void)arg;
}

static const struct carrier_handlers carrier_idle = {
	.stream_opened = carrier_no_stream,
	.datagram = carrier_no_dgram,
};

static void quic_fail_tmr(void *arg);

static void quic_state(struct quic_conn *qc, enum quic_event ev,
		       const struct quic_close_info *ci, void *arg)
{
	struct link *l = arg;
	struct linkmgr *lm = l->lm;

	if (qc != l->qc)
		return;   /* a connection kept only to flush its close */

	if (ev == QUIC_EV_CONNECTED) {
		uint64_t now = mono_ms();
		char took[32], was[64] = "";
		int err;

		err = forward_attach(lm->fwd, l->peer, quic_carrier(qc));
		if (err) {
			snprintf(l->fail_why, sizeof(l->fail_why),
				 "forwarder refused the carrier: %s",
				 strerror(err));
			tmr_start(&l->tmr_fail, 0, quic_fail_tmr, l);
			return;
		}
		l->attached = true;
		l->state = LINK_ST_UP;
		l->ups++;
		l->t_up = now;
		l->connect_ms = now - l->t_prepare;
		l->path = ice_session_path_type(l->ice);
		snprintf(l->lcand, sizeof(l->lcand), "%s",
			 ice_session_local_cand(l->ice));
		snprintf(l->rcand, sizeof(l->rcand), "%s",
			 ice_session_remote_cand(l->ice));
		l->ice_rtt = ice_session_rtt_ms(l->ice);
		snapshot_ice(l);
		fmt_dur(took, sizeof(took), l->connect_ms);
		if (l->t_down) {
			char d[32];
			l->last_outage_ms = now - l->t_down;
			fmt_dur(d, sizeof(d), l->last_outage_ms);
			snprintf(was, sizeof(was), ", after %s down", d);
		}
		log_info("link", "%s: link up: %s path, rtt %u ms, %s -> %s, "
			 "epoch %llu, connected in %s%s", l->peer,
			 ice_path_type_name(l->path), l->ice_rtt, l->lcand,
			 l->rcand, (unsigned long long)l->epoch, took, was);
		l->t_down = 0;
		neg_link_up(l->neg, wall_ms(), l->epoch);
		return;
	}

	/* CLOSED or AUTH_FAILED: act from a timer, since this may run inside
	 * a carrier operation the forwarder made (forward.h: no detach
	 * there). */
	lm->st.quic_closed++;
	if (ev == QUIC_EV_AUTH_FAILED) {
		lm->st.auth_failed++;
		snprintf(l->fail_why, sizeof(l->fail_why),
			 "QUIC handshake refused: %s", ci ? ci->reason : "");
		log_warn("link", "%s: %s (epoch %llu); the link is not used",
			 l->peer, l->fail_why, (unsigned long long)l->epoch);
	}
	else {
		snprintf(l->fail_why, sizeof(l->fail_why), "QUIC closed %s: %s",
			 ci && ci->local ? "here" : "by the peer",
			 ci ? ci->reason : "");
	}
	tmr_start(&l->tmr_fail, 0, quic_fail_tmr, l);
}

static void quic_fail_tmr(void *arg)
{
	struct link *l = arg;
	char why[160];

	snprintf(why, sizeof(why), "%s", l->fail_why);
	link_fail(l, 0, why);
}

static void start_quic(struct link *l)
{
	struct linkmgr *lm = l->lm;
	struct quic_config qcfg = {
		.role = l->controlling ? QUIC_ROLE_CLIENT : QUIC_ROLE_SERVER,
		.id = lm->qid,
		.remote_fp = l->remote_fp,
		.stateh = quic_state,
		.initial_rtt_ms = ice_session_rtt_ms(l->ice),
	};
	char why[96];
	int err;

	err = quic_conn_alloc(&l->qc, &qcfg, ice_session_path(l->ice),
			      &carrier_idle, l);
	if (err) {
		snprintf(why, sizeof(why), "cannot start QUIC: %s", strerror(err));
		link_fail(l, 0, why);
		return;
	}
	l->state = LINK_ST_HANDSHAKE;
}

/* --- ICE ----------------------------------------------------------------- */

static void ice_gathered(struct ice_session *s, void *arg)
{
	struct link *l = arg;
	const char *desc = ice_session_local_desc(s);

	if (s != l->ice || !desc)
		return;
	neg_local_ready(l->neg, wall_ms(), l->epoch, desc, strlen(desc));
}

static void ice_connected(struct ice_session *s, void *arg)
{
	struct link *l = arg;

	if (s != l->ice)
		return;
	l->path = ice_session_path_type(s);
	log_debug("link", "%s: ICE selected %s (%s -> %s), rtt %u ms", l->peer,
		  ice_path_type_name(l->path), ice_session_local_cand(s),
		  ice_session_remote_cand(s), ice_session_rtt_ms(s));
	start_quic(l);
}

static void ice_failed(struct ice_session *s, int err, const char *reason,
		       void *arg)
{
	struct link *l = arg;
	char why[160];

	if (s != l->ice)
		return;
	l->lm->st.ice_failed++;
	snprintf(why, sizeof(why), "ICE: %s", reason);
	(void)err;
	/* Both sides see the path die: no CONNECTION_CLOSE through it. */
	link_fail(l, 0, why);
}

static const struct ice_handlers ice_h = {
	.gathered = ice_gathered,
	.connected = ice_connected,
	.failed = ice_failed,
};

/* --- Negotiation actions --------------------------------------------------- */

static void pub_destructor(void *arg)
{
	struct pubctx *p = arg;

	tmr_cancel(&p->tmr);
	list_unlink(&p->le);
}

static void shutdown_check(struct linkmgr *lm);

static void pub_result(int err, uint64_t current, void *arg)
{
	struct pubctx *p = arg;
	struct link *l = p->l;
	struct linkmgr *lm = l ? l->lm : NULL;

	if (l && !lm->stopping)
		neg_publish_result(l->neg, wall_ms(), p->kind, p->epoch, err,
				   current);
	if (l && err && strcmp(p->kind, NEG_KIND_BYE))
		log_debug("link", "%s: publish %s epoch %llu: %s", l->peer,
			  p->kind, (unsigned long long)p->epoch, strerror(err));
	mem_deref(p);
	if (lm && lm->stopping)
		shutdown_check(lm);
}

static void pub_local_fail(void *arg)
{
	struct pubctx *p = arg;

	pub_result(p->err, 0, p);
}

static void act_publish(const char *kind, uint64_t epoch, const char *payload,
			size_t len, void *arg)
{
	struct link *l = arg;
	struct linkmgr *lm = l->lm;
	struct pubctx *p = mem_zalloc(sizeof(*p), pub_destructor);
	int err;

	if (!p) {
		log_error("link", "%s: out of memory publishing %s", l->peer, kind);
		return;
	}
	p->l = l;
	snprintf(p->kind, sizeof(p->kind), "%s", kind);
	p->epoch = epoch;
	list_append(&lm->pubs, &p->le, p);
	err = lm->sig ? sigclient_publish(lm->sig, l->peer, kind, epoch, payload,
					  len, pub_result, p) : ENOTCONN;
	if (err) {
		/* Reported later: the negotiation is inside this call. */
		p->err = err;
		tmr_start(&p->tmr, 0, pub_local_fail, p);
	}
}

static void act_link_prepare(uint64_t epoch, void *arg)
{
	struct link *l = arg;
	struct linkmgr *lm = l->lm;
	struct ice_server srv[LINK_SERVERS_MAX];
	size_t n = lm->sig ? sigclient_ice_servers(lm->sig, srv, LINK_SERVERS_MAX) : 0;
	struct ice_config cfg = {
		.controlling = l->controlling,
		.name = l->peer,
		.servers = srv,
		.n_servers = n < LINK_SERVERS_MAX ? n : LINK_SERVERS_MAX,
		.relay_only = lm->relay_only,
		.no_relay = lm->no_relay,
	};
	int err;

	if (l->ice || l->qc)
		teardown(l, LINK_QUIC_NEWEPOCH, "replaced by a new epoch",
			 LINK_END_REPLACED);
	l->epoch = epoch;
	l->epochs++;
	l->t_prepare = mono_ms();
	l->remote_fp[0] = '\0';
	l->npairs = 0;
	l->gather_err[0] = '\0';
	l->no_servers = cfg.n_servers == 0;
	err = ice_session_alloc(&l->ice, &cfg, &ice_h, l);
	if (err) {
		char why[96];
		snprintf(why, sizeof(why), "cannot start ICE: %s", strerror(err));
		/* Reported from a timer: we are inside the negotiation. */
		l->state = LINK_ST_GATHERING;
		link_fail(l, 0, why);
		return;
	}
	l->state = LINK_ST_GATHERING;
	log_debug("link", "%s: epoch %llu: gathering (%zu servers)", l->peer,
		  (unsigned long long)epoch, cfg.n_servers);
}

static void act_link_connect(const struct neg_remote *r, void *arg)
{
	struct link *l = arg;
	int err;

	if (!l->ice || r->epoch != l->epoch) {
		log_debug("link", "%s: connect for epoch %llu, have %llu: ignored",
			  l->peer, (unsigned long long)r->epoch,
			  (unsigned long long)l->epoch);
		return;
	}
	snprintf(l->remote_fp, sizeof(l->remote_fp), "%s", r->fp);
	err = ice_session_set_remote(l->ice, r->ice, r->ice_len);
	if (err && err != EALREADY) {
		l->lm->st.offers_rejected++;
		link_fail(l, 0, err == EBADMSG ?
			  "the peer's ICE description is malformed" :
			  "the peer's ICE description was refused");
		return;
	}
	if (l->state == LINK_ST_GATHERING)
		l->state = LINK_ST_CHECKING;
}

static void act_link_down(uint64_t epoch, const char *why, void *arg)
{
	struct link *l = arg;

	(void)epoch;
	if (l->lm->stopping)
		teardown(l, LINK_QUIC_BYE, "shutting down", LINK_END_REPLACED);
	else
		teardown(l, LINK_QUIC_NEWEPOCH, why, LINK_END_REPLACED);
}

static void neg_tmr_h(void *arg)
{
	struct link *l = arg;

	neg_timeout(l->neg, wall_ms());
}

static void act_timer(uint32_t ms, void *arg)
{
	struct link *l = arg;

	if (ms)
		tmr_start(&l->tmr_neg, ms, neg_tmr_h, l);
	else
		tmr_cancel(&l->tmr_neg);
}

static void act_note(const char *line, void *arg)
{
	struct link *l = arg;

	log_debug("link", "%s: %s", l->peer, line);
}

static const struct neg_actions neg_act = {
	.publish = act_publish,
	.link_prepare = act_link_prepare,
	.link_connect = act_link_connect,
	.link_down = act_link_down,
	.timer = act_timer,
	.note = act_note,
};

/* --- Signaling client hooks ---------------------------------------------- */

static struct link *link_find(const struct linkmgr *lm, const char *peer)
{
	for (size_t i = 0; i < lm->n; i++)
		if (!strcmp(lm->links[i].peer, peer))
			return &lm->links[i];
	return NULL;
}

bool linkmgr_sig_peer_known(const char *id, void *arg)
{
	struct linkmgr *lm = arg;

	return lm && link_find(lm, id) != NULL;
}

void linkmgr_sig_message(const struct sig_msg *m, void *arg)
{
	struct linkmgr *lm = arg;
	struct link *l = lm ? link_find(lm, m->from) : NULL;
	enum neg_rx rx;

	if (!l || lm->stopping)
		return;
	rx = neg_recv(l->neg, wall_ms(), m->kind, m->epoch, m->payload,
		      m->payload_len);
	if (rx == NEG_RX_MALFORMED)
		lm->st.offers_rejected++;
	if (rx == NEG_RX_ACCEPTED)
		log_debug("link", "%s: %s epoch %llu (queued %llu ms)", l->peer,
			  m->kind, (unsigned long long)m->epoch,
			  (unsigned long long)m->age_ms);
	else
		log_debug("link", "%s: %s epoch %llu: %s", l->peer, m->kind,
			  (unsigned long long)m->epoch, neg_rx_name(rx));
}

/* Controlling links open their first epoch once the coordinators' STUN
 * and TURN servers are known (an offer without srflx and relay candidates
 * would cost a failed epoch behind a NAT): the signaling client fetches
 * the server list (/v1/coordinators) at start, beside its first poll.
 * Controlled links start at once: their first act is to ask the peer for
 * an epoch, and the offer that answers it comes from a controlling side
 * that waited for its servers. */
static void start_links(struct linkmgr *lm, bool controlling)
{
	uint64_t now = wall_ms();

	for (size_t i = 0; i < lm->n; i++) {
		struct link *l = &lm->links[i];
		if (l->controlling == controlling && !l->started) {
			l->started = true;
			neg_start(l->neg, now);
		}
	}
}

static void start_all(struct linkmgr *lm)
{
	if (lm->started || lm->stopping)
		return;
	lm->started = true;
	tmr_cancel(&lm->tmr_start);
	start_links(lm, false);
	start_links(lm, true);
}

static void start_tmr(void *arg)
{
	struct linkmgr *lm = arg;

	log_info("link", "no STUN/TURN servers known yet after %u ms: "
		 "offering with host candidates until they are",
		 LINK_SERVERS_WAIT_MS);
	start_all(lm);
}

void linkmgr_sig_servers(struct sigclient *sc, void *arg)
{
	struct linkmgr *lm = arg;
	struct ice_server srv[LINK_SERVERS_MAX];

	size_t n;

	if (!lm || !lm->sig || lm->stopping)
		return;
	n = sigclient_ice_servers(sc, srv, LINK_SERVERS_MAX);
	log_debug("link", "%zu STUN/TURN servers known", n);
	if (n == 0)
		return;
	if (!lm->started)
		start_all(lm);
	/* An epoch still connecting without srflx or relayed candidates
	 * would fail behind any NAT after the whole check timeout: replace
	 * it now that the servers are known. */
	for (size_t i = 0; i < lm->n; i++) {
		struct link *l = &lm->links[i];
		if (!l->no_servers || !l->ice ||
		    (l->state != LINK_ST_GATHERING && l->state != LINK_ST_CHECKING))
			continue;
		l->no_servers = false;
		link_fail(l, 0, "STUN/TURN servers now known: a new epoch with them");
	}
}

void linkmgr_start(struct linkmgr *lm, struct sigclient *sig)
{
	struct ice_server srv[LINK_SERVERS_MAX];

	if (!lm)
		return;
	lm->sig = sig;
	if (sig && sigclient_ice_servers(sig, srv, LINK_SERVERS_MAX)) {
		start_all(lm);
		return;
	}
	start_links(lm, false);
	tmr_start(&lm->tmr_start, LINK_SERVERS_WAIT_MS, start_tmr, lm);
}

/* --- Shutdown ------------------------------------------------------------ */

static void done_tmr(void *arg)
{
	struct linkmgr *lm = arg;
	linkmgr_done_h *h = lm->doneh;

	lm->doneh = NULL;
	if (h)
		h(lm->done_arg);
}

static void shutdown_check(struct linkmgr *lm)
{
	uint64_t waited = mono_ms() - lm->t_stop;

	if (!lm->doneh)
		return;
	if (list_isempty(&lm->pubs) || waited >= LINK_BYE_WAIT_MS) {
		uint64_t left = waited >= LINK_CLOSE_FLUSH_MS ? 0 :
			LINK_CLOSE_FLUSH_MS - waited;
		tmr_start(&lm->tmr_done, left, done_tmr, lm);
	}
}

static void bye_deadline(void *arg)
{
	struct linkmgr *lm = arg;

	if (!list_isempty(&lm->pubs))
		log_warn("link", "%u bye messages not confirmed after %u ms",
			 list_count(&lm->pubs), LINK_BYE_WAIT_MS);
	tmr_start(&lm->tmr_done, 0, done_tmr, lm);
}

void linkmgr_shutdown(struct linkmgr *lm, linkmgr_done_h *doneh, void *arg)
{
	uint64_t now = wall_ms();

	if (!lm || lm->stopping)
		return;
	lm->stopping = true;
	lm->doneh = doneh;
	lm->done_arg = arg;
	lm->t_stop = mono_ms();
	tmr_cancel(&lm->tmr_start);
	for (size_t i = 0; i < lm->n; i++) {
		struct link *l = &lm->links[i];
		tmr_cancel(&l->tmr_fail);
		if (l->started)
			neg_stop(l->neg, now);   /* bye, then link_down */
		teardown(l, LINK_QUIC_BYE, "shutting down", LINK_END_REPLACED);
		tmr_cancel(&l->tmr_neg);
	}
	tmr_start(&lm->tmr_done, LINK_BYE_WAIT_MS, bye_deadline, lm);
	shutdown_check(lm);
}

/* --- Life ---------------------------------------------------------------- */

static void link_release(struct link *l)
{
	tmr_cancel(&l->tmr_neg);
	tmr_cancel(&l->tmr_fail);
	if (l->attached)
		forward_detach(l->lm->fwd, l->peer);
	l->attached = false;
	l->qc = mem_deref(l->qc);
	l->ice = mem_deref(l->ice);
	l->closing_qc = mem_deref(l->closing_qc);
	l->closing_ice = mem_deref(l->closing_ice);
	l->neg = mem_deref(l->neg);
}

static void destructor(void *arg)
{
	struct linkmgr *lm = arg;
	struct le *le;

	tmr_cancel(&lm->tmr_start);
	tmr_cancel(&lm->tmr_done);
	lm->stopping = true;
	for (size_t i = 0; lm->links && i < lm->n; i++)
		link_release(&lm->links[i]);
	while ((le = list_head(&lm->pubs))) {
		struct pubctx *p = le->data;
		if (lm->sig)
			sigclient_cancel(lm->sig, p);
		mem_deref(p);
	}
	lm->links = mem_deref(lm->links);
	lm->qid = mem_deref(lm->qid);
	lm->peers = mem_deref(lm->peers);
}

int linkmgr_alloc(struct linkmgr **lmp, const struct linkmgr_config *cfg,
		  char *err, size_t errlen)
{
	struct linkmgr *lm;
	size_t np, k = 0;
	uint32_t seed;
	const char *fp;
	int e;

	if (!lmp || !cfg || !cfg->peers || !cfg->fwd || !cfg->self_id)
		return EINVAL;
	lm = mem_zalloc(sizeof(*lm), destructor);
	if (!lm)
		return ENOMEM;
	snprintf(lm->self, sizeof(lm->self), "%s", cfg->self_id);
	lm->peers = mem_ref(cfg->peers);
	lm->fwd = cfg->fwd;
	lm->relay_only = cfg->relay_only;
	lm->no_relay = cfg->no_relay;
	list_init(&lm->pubs);

	e = quic_identity_new(&lm->qid);
	if (e) {
		snprintf(err, errlen, "cannot make the QUIC identity: %s",
			 strerror(e));
		goto out;
	}
	log_info("link", "QUIC certificate fingerprint %s",
		 quic_identity_fingerprint(lm->qid));

	np = peers_count(cfg->peers);
	lm->links = mem_zalloc(np * sizeof(*lm->links), NULL);
	if (!lm->links) {
		e = ENOMEM;
		goto out;
	}
	/* Test hook (tests/client/e2e/t-60-refuse.sh): offer a fingerprint
	 * that is not our key's, so peers must refuse our handshakes. It can
	 * only break this client's own links. */
	fp = quic_identity_fingerprint(lm->qid);
	const char *fake = getenv("MESH_TEST_OFFER_FP");
	if (fake && strlen(fake) == NEG_FP_LEN) {
		log_warn("link", "MESH_TEST_OFFER_FP: offering fingerprint %s, "
			 "not our key's (tests only)", fake);
		fp = fake;
	}
	seed = (uint32_t)wall_ms() ^ (uint32_t)getpid();
	for (size_t i = 0; i < np; i++) {
		const char *id = peers_id(cfg->peers, i);
		struct link *l;

		if (!strcmp(id, lm->self))
			continue;
		l = &lm->links[k++];
		lm->n = k;
		l->lm = lm;
		snprintf(l->peer, sizeof(l->peer), "%s", id);
		l->controlling = strcmp(lm->self, id) < 0;
		tmr_init(&l->tmr_neg);
		tmr_init(&l->tmr_fail);
		struct neg_config nc = {
			.self = lm->self,
			.peer = l->peer,
			.fp = fp,
			.seed = seed + (uint32_t)i * 2654435761u,
		};
		e = neg_alloc(&l->neg, &nc, &neg_act, l);
		if (e) {
			snprintf(err, errlen, "cannot start the negotiation with %s: %s",
				 id, strerror(e));
			goto out;
		}
	}
out:
	if (e)
		mem_deref(lm);
	else
		*lmp = lm;
	return e;
}

size_t linkmgr_count(const struct linkmgr *lm)
{
	return lm ? lm->n : 0;
}

void linkmgr_info(const struct linkmgr *lm, size_t i, struct link_info *li)
{
	const struct link *l;
	uint64_t now = mono_ms();

	memset(li, 0, sizeof(*li));
	if (!lm || i >= lm->n)
		return;
	l = &lm->links[i];
	snprintf(li->peer, sizeof(li->peer), "%s", l->peer);
	li->state = l->state;
	li->controlling = l->controlling;
	li->epoch = l->epoch;
	li->epochs = l->epochs;
	li->ups = l->ups;
	li->downs = l->downs;
	li->last_outage_ms = l->last_outage_ms;
	li->connect_ms = l->connect_ms;
	snprintf(li->last_down_reason, sizeof(li->last_down_reason), "%s",
		 l->down_reason);
	if (l->state == LINK_ST_UP) {
		li->path = l->path;
		snprintf(li->local_cand, sizeof(li->local_cand), "%s", l->lcand);
		snprintf(li->remote_cand, sizeof(li->remote_cand), "%s", l->rcand);
		li->uptime_ms = now - l->t_up;
		li->ice_rtt_ms = l->ice ? ice_session_rtt_ms(l->ice) : l->ice_rtt;
	}
	else if (l->t_down) {
		li->down_ms = now - l->t_down;
	}
	if (l->qc) {
		struct quic_stats qs;
		quic_conn_stats(l->qc, &qs);
		li->quic_srtt_us = qs.srtt_us;
		li->wire_tx = qs.tx_bytes;
		li->wire_rx = qs.rx_bytes;
		li->streams = qs.streams;
	}
	else {
		li->wire_tx = l->wire_tx;
		li->wire_rx = l->wire_rx;
	}
	forward_counters(lm->fwd, l->peer, &li->fwd);
}

size_t linkmgr_pairs(const struct linkmgr *lm, size_t i,
		     struct ice_pair_info *v, size_t max)
{
	const struct link *l;
	size_t n;

	if (!lm || i >= lm->n)
		return 0;
	l = &lm->links[i];
	if (l->ice)
		return ice_session_pairs(l->ice, v, max);
	n = l->npairs < max ? l->npairs : max;
	memcpy(v, l->pairs, n * sizeof(*v));
	return l->npairs;
}

const char *linkmgr_gather_errors(const struct linkmgr *lm, size_t i)
{
	if (!lm || i >= lm->n)
		return "";
	if (lm->links[i].ice)
		return ice_session_gather_errors(lm->links[i].ice);
	return lm->links[i].gather_err;
}

const char *linkmgr_fingerprint(const struct linkmgr *lm)
{
	return lm && lm->qid ? quic_identity_fingerprint(lm->qid) : "";
}

void linkmgr_stats(const struct linkmgr *lm, struct linkmgr_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (lm)
		*st = lm->st;
}
