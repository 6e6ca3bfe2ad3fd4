/* The signaling client: the coordinators' HTTP API (CONTRACT section 2)
 * seen from a peer, on libre's main loop. Owns the coordinator table, the
 * long polls and their cursors, publishing with retries, the
 * /v1/coordinators refresh, TURN credentials, and every check a polled
 * message must pass before the application sees it. It must not
 * interpret messages (negotiate.c does), keep per-peer link state, or
 * block the loop (host names are resolved once, at alloc, before the loop
 * runs). Transport is sig_http.c, the pure parsers and checks are
 * sig_parse.c. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client/sig_http.h"
#include "client/sig_priv.h"
#include "client/sigclient.h"
#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/wire.h"

#define COMP "signal"

/* Defaults (docs/signaling-flow.md, "Timers and bounds"). */
enum {
	DEF_POLL_WAIT_S      = POLL_WAIT_DEFAULT_S,
	DEF_CONNECT_MS       = 2000,
	DEF_PUBLISH_DEADLINE = 20000,
	DEF_REFRESH_MS       = 30000,
	/* The first /v1/coordinators refresh after start or after a
	 * coordinator stopped answering; the interval then doubles up to
	 * refresh_ms. A registry rewrites its entries every 2 s and drops a
	 * dead node 6-8 s after its death (docs/ha.md, "Registry"), so a list
	 * fetched just then can miss a node or still hold a dead one. */
	REFRESH_FIRST_MS     = 2000,
	DEF_PROBE_MS         = 5000,
	POLL_MARGIN_MS       = 5000,  /* a long poll's deadline: wait + this */
	REQ_TIMEOUT_MS       = 3000,  /* publish, turn, coordinators: one attempt */
	PROBE_TIMEOUT_MS     = 2000,
	BACKOFF_BASE_MS      = 100,
	SHARED_CYCLE_CAP_MS  = 2000,  /* between rounds over every coordinator */
	FANOUT_RETRY_CAP_MS  = 5000,  /* one coordinator of several */
	PUB_RETRY_CAP_MS     = 2000,
	RETRY_AFTER_CAP_S    = 10,
	TURN_RETRY_MS        = 5000,
	TURN_MIN_REFRESH_MS  = 30000,
	LOCAL_TURN_TTL_S     = 14 * 86400, /* the relay credential (local_turn) */
	DROP_LOG_INTERVAL_MS = 10000, /* one log line per peer per interval */
	DEDUPE_WINDOW_MS     = 10000, /* same psig through two coordinators */
	PUB_OUTSTANDING_MAX  = 256,
	POOL_CONNS           = 4,
	POOL_IDLE_MS         = 20000, /* the coordinator keeps idle ones 60 s */
	DROP_LOG_PEERS       = 32,
};

struct sigclient;

struct sig_coord {
	struct sigclient *sc;
	bool used;                /* slot taken */
	bool active;              /* polled / published to (CLI entries always) */
	bool from_cli;
	char url[SIG_URL_MAX];    /* as given or learnt */
	struct shttp_url u;
	struct sa addr;
	char id[PEER_ID_MAX + 1]; /* from its /v1/coordinators answer, or "" */
	struct shttp_pool *pool;
	/* the long poll */
	struct shttp_req *poll_req;
	struct tmr poll_tmr;      /* delay before the next poll */
	char cursor[MSG_ID_MAX + 1];
	unsigned fails;           /* consecutive failed exchanges */
	bool up;                  /* the last exchange worked */
	bool ever_up;
	/* The last request got no HTTP answer at all (connect refused or
	 * timed out, reset, no answer in time): the host is taken as gone,
	 * and its STUN/TURN servers are left out of new ICE sessions. */
	bool unreach;
	uint64_t poll_started;
	/* the health probe during a long poll */
	struct shttp_req *probe_req;
	/* /v1/coordinators */
	struct shttp_req *list_req;
	unsigned listed;          /* entries in its last answer */
	/* TURN */
	struct shttp_req *turn_req;
	struct tmr turn_tmr;
	bool turn_fetched;
	int64_t local_turn_expiry; /* unix s of the local fallback credential */
	/* servers for ICE */
	char srv[SIG_SRV_KINDS][SIG_SRV_MAX][SIG_ADDR_MAX];
	unsigned nsrv[SIG_SRV_KINDS];
};

struct sig_try {
	struct sig_pub *pub;
	int ci;                   /* coordinator index */
	struct shttp_req *req;
	struct tmr tmr;           /* retry delay */
	unsigned attempts;
	bool done;
};

struct sig_pub {
	struct le le;             /* in sc->pubs */
	struct sigclient *sc;
	char *body;               /* malloc'd publish body */
	size_t body_len;
	char to[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	sig_publish_h *h;
	void *arg;
	uint64_t deadline;        /* jiffies */
	struct tmr deadline_tmr;
	struct tmr report_tmr;    /* the early stale report */
	struct sig_try tries[SIG_COORD_MAX];
	unsigned ntries;
	unsigned n_ok, n_stale;
	int fail_err;
	uint64_t current;
	bool reported;
};

struct drop_log {
	char peer[PEER_ID_MAX + 1];
	uint64_t last;            /* jiffies of the last line */
	uint64_t suppressed;
};

struct sigclient {
	char self[PEER_ID_MAX + 1];
	struct mesh_keys keys;
	struct sigclient_handlers h;
	void *arg;
	uint32_t wait_s, connect_ms, deadline_ms, refresh_ms, probe_ms;
	struct sig_coord coords[SIG_COORD_MAX];
	bool shared;              /* the coordinators share one mailbox */
	int cur;                  /* shared mode: the coordinator polled */
	unsigned cycle_fails;     /* shared mode: failovers without success */
	char last_cursor[MSG_ID_MAX + 1];
	struct list pubs;
	unsigned npubs;
	struct tmr refresh_tmr;
	uint32_t refresh_next;    /* the next refresh interval (doubling) */
	struct tmr probe_tmr;
	struct tmr servers_tmr;   /* servers() from a timer */
	struct sig_seen seen;
	struct sig_recent recent;
	struct drop_log drops[DROP_LOG_PEERS];
	struct sigclient_stats st;
	char turn_cache[SIG_COORD_MAX][2][SIG_TURN_STR_MAX];
	bool closing;
};

/* --- Helpers ------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	return tmr_jiffies();
}

/* ms +- pct percent, never 0 unless ms is. */
static uint32_t jitter(uint32_t ms, unsigned pct)
{
	uint32_t span = ms * pct / 100;

	if (!span)
		return ms;
	return ms - span + rand_u32() % (2 * span + 1);
}

static uint32_t backoff(unsigned fails, uint32_t cap)
{
	uint64_t ms = BACKOFF_BASE_MS;

	while (fails-- > 1 && ms < cap)
		ms *= 2;
	if (ms > cap)
		ms = cap;
	return jitter((uint32_t)ms, 25);
}

static int ci_of(const struct sig_coord *c)
{
	return (int)(c - c->sc->coords);
}

/* "Authorization: ...\r\n" plus extra lines into buf. */
static int auth_lines(struct sigclient *sc, char *buf, size_t cap,
		      const char *method, const char *path, const void *body,
		      size_t len, bool json)
{
	char v[AUTH_HEADER_MAX];
	int n = auth_build_header(v, sizeof(v), sc->keys.signal, sc->self,
				  (int64_t)time(NULL), method, path, body, len);
	if (n < 0)
		return EINVAL;
	n = snprintf(buf, cap, "Authorization: %s\r\n%s", v,
		     json ? "Content-Type: application/json\r\n" : "");
	return n < 0 || (size_t)n >= cap ? EINVAL : 0;
}

static int req_path(const struct sig_coord *c, char *buf, size_t cap,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int req_path(const struct sig_coord *c, char *buf, size_t cap,
		    const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, cap, "%s", c->u.prefix);

	if (n < 0 || (size_t)n >= cap)
		return EINVAL;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= cap - (size_t)n ? EINVAL : 0;
}

static uint32_t retry_after_ms(const struct shttp_resp *r)
{
	const struct shttp_hdr *h = shttp_header(r->p, "Retry-After");
	unsigned long v = 0;

	if (!h || !h->vlen || h->vlen > 4)
		return 1000;
	for (size_t i = 0; i < h->vlen; i++) {
		if (h->val[i] < '0' || h->val[i] > '9')
			return 1000;
		v = v * 10 + (unsigned long)(h->val[i] - '0');
	}
	if (v < 1)
		v = 1;
	if (v > RETRY_AFTER_CAP_S)
		v = RETRY_AFTER_CAP_S;
	return jitter((uint32_t)v * 1000, 10);
}

/* Called last by its callers: the handler may free the client. */
static void servers_changed(struct sigclient *sc)
{
	if (sc->h.servers && !sc->closing)
		sc->h.servers(sc, sc->arg);
}

static void servers_tmr_h(void *arg)
{
	servers_changed(arg);
}

/* Whether c answered the request that just ended with any HTTP status
 * (answers) or not at all. When that flips for a coordinator that has
 * STUN/TURN servers, the set sigclient_ice_servers() offers changes:
 * tell the application, from a timer (callers are in the middle of
 * their work, and the handler may free the client). */
static void coord_reach(struct sig_coord *c, bool answers)
{
	bool has_srv = false;

	if (c->unreach == !answers)
		return;
	c->unreach = !answers;
	for (int k = 0; k < SIG_SRV_KINDS; k++)
		has_srv |= c->nsrv[k] > 0;
	if (!has_srv)
		return;
	if (answers)
		log_info(COMP, "coordinator %s answers: its STUN/TURN servers are offered to ICE again",
			 c->url);
	else
		log_info(COMP, "coordinator %s gives no answer: its STUN/TURN servers are left out "
			 "of new ICE sessions until it answers", c->url);
	tmr_start(&c->sc->servers_tmr, 0, servers_tmr_h, c->sc);
}

/* --- Coordinator table --------------------------------------------------- */

static void poll_start(struct sig_coord *c);
static void coord_failed(struct sig_coord *c, const char *why);
static void refresh_soon(struct sigclient *sc);
static void turn_fetch(struct sig_coord *c);
static void list_fetch(struct sig_coord *c);
static void pub_try_start(struct sig_try *t);

static void poll_tmr_h(void *arg)
{
	poll_start(arg);
}

static bool polled(const struct sig_coord *c)
{
	const struct sigclient *sc = c->sc;

	if (!c->used || !c->active)
		return false;
	return sc->shared ? ci_of(c) == sc->cur : true;
}

static void coord_stop(struct sig_coord *c)
{
	c->poll_req = mem_deref(c->poll_req);
	c->probe_req = mem_deref(c->probe_req);
	tmr_cancel(&c->poll_tmr);
}

static void coord_release(struct sig_coord *c)
{
	coord_stop(c);
	c->list_req = mem_deref(c->list_req);
	c->turn_req = mem_deref(c->turn_req);
	tmr_cancel(&c->turn_tmr);
	c->pool = mem_deref(c->pool);
}

/* Numeric addresses only unless resolve is set (alloc time). */
static int coord_add(struct sigclient *sc, const char *url, bool from_cli,
		     bool resolve, struct sig_coord **cp, char *err,
		     size_t errlen)
{
	struct shttp_url u;
	struct sa sa;
	int rc, slot = -1;

	rc = shttp_url_parse(url, &u);
	if (rc) {
		snprintf(err, errlen, "--coordinator: %s: %s", url,
			 rc == ENOTSUP ? "https is not supported (plain http only)" :
			 "not an http://host[:port][/path] URL");
		return EINVAL;
	}
	if (strlen(url) >= SIG_URL_MAX) {
		snprintf(err, errlen, "--coordinator: URL longer than %d bytes", SIG_URL_MAX - 1);
		return EINVAL;
	}
	if (sa_set_str(&sa, u.host, u.port)) {
		struct addrinfo hints, *res = NULL;

		if (!resolve) {
			snprintf(err, errlen, "%s: learnt coordinators must have numeric addresses", url);
			return EINVAL;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		rc = getaddrinfo(u.host, NULL, &hints, &res);
		if (rc || !res) {
			snprintf(err, errlen, "--coordinator: cannot resolve %s: %s",
				 u.host, gai_strerror(rc));
			return EINVAL;
		}
		rc = sa_set_sa(&sa, res->ai_addr);
		freeaddrinfo(res);
		if (rc) {
			snprintf(err, errlen, "--coordinator: %s: unusable address", u.host);
			return EINVAL;
		}
		sa_set_port(&sa, u.port);
	}
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		struct sig_coord *c = &sc->coords[i];
		if (c->used && sa_cmp(&c->addr, &sa, SA_ALL) &&
		    !strcmp(c->u.prefix, u.prefix)) {
			if (from_cli)
				c->from_cli = true;
			c->active = true;
			*cp = c;
			return EEXIST;
		}
		if (!c->used && slot < 0)
			slot = i;
	}
	if (slot < 0) {
		/* Reuse a learnt coordinator that left the list. */
		for (int i = 0; i < SIG_COORD_MAX && slot < 0; i++) {
			struct sig_coord *c = &sc->coords[i];
			bool busy = false;
			if (c->active || c->from_cli)
				continue;
			for (struct le *le = list_head(&sc->pubs); le; le = le->next) {
				struct sig_pub *p = le->data;
				for (unsigned k = 0; k < p->ntries; k++)
					busy |= p->tries[k].ci == i && !p->tries[k].done;
			}
			if (!busy) {
				coord_release(c);
				c->used = false;
				slot = i;
			}
		}
	}
	if (slot < 0) {
		snprintf(err, errlen, "--coordinator: more than %d coordinators", SIG_COORD_MAX);
		return ENOSPC;
	}
	struct sig_coord *c = &sc->coords[slot];
	memset(c, 0, sizeof(*c));
	c->sc = sc;
	tmr_init(&c->poll_tmr);
	tmr_init(&c->turn_tmr);
	rc = shttp_pool_alloc(&c->pool, &sa, u.hostport, POOL_CONNS, POOL_IDLE_MS);
	if (rc) {
		snprintf(err, errlen, "%s: out of memory", url);
		return rc;
	}
	c->used = true;
	c->active = true;
	c->from_cli = from_cli;
	c->u = u;
	c->addr = sa;
	snprintf(c->url, sizeof(c->url), "%s", url);
	*cp = c;
	return 0;
}

/* prefer: a coordinator that just answered (its list), taken when none
 * is known to answer polls yet; -1 for none. */
static void shared_switch(struct sigclient *sc, bool shared, int prefer)
{
	if (sc->shared == shared)
		return;
	sc->shared = shared;
	log_info(COMP, "coordinators %s", shared ?
		 "share one mailbox (registry lists several): polling one at a time" :
		 "keep their own mailboxes: polling and publishing to every one");
	if (shared) {
		int best = -1;
		for (int i = 0; i < SIG_COORD_MAX; i++) {
			struct sig_coord *c = &sc->coords[i];
			if (c->used && c->active && (best < 0 || (c->up && !sc->coords[best].up)))
				best = i;
		}
		if (prefer >= 0 && sc->coords[prefer].used && sc->coords[prefer].active &&
		    (best < 0 || !sc->coords[best].up))
			best = prefer;
		sc->cur = best < 0 ? 0 : best;
		for (int i = 0; i < SIG_COORD_MAX; i++) {
			if (i != sc->cur)
				coord_stop(&sc->coords[i]);
		}
		struct sig_coord *cur = &sc->coords[sc->cur];
		if (cur->used && cur->active && !cur->poll_req &&
		    !tmr_isrunning(&cur->poll_tmr))
			tmr_start(&cur->poll_tmr, 0, poll_tmr_h, cur);
	} else {
		for (int i = 0; i < SIG_COORD_MAX; i++) {
			struct sig_coord *c = &sc->coords[i];
			if (c->used && c->active && !c->poll_req)
				tmr_start(&c->poll_tmr, 0, poll_tmr_h, c);
		}
	}
}

static void coord_ok(struct sig_coord *c)
{
	struct sigclient *sc = c->sc;
	bool was_up = c->up;

	if (!c->up)
		log_info(COMP, "coordinator %s answers%s", c->url,
			 c->ever_up ? " again" : "");
	c->up = c->ever_up = true;
	c->fails = 0;
	if (sc->shared && ci_of(c) == sc->cur)
		sc->cycle_fails = 0;
	if (!c->turn_fetched && !c->turn_req && !tmr_isrunning(&c->turn_tmr))
		turn_fetch(c);
	/* Its list when we have none from it, and again when it answers
	 * after a failure (it may have restarted with other servers, and
	 * the registry may have changed meanwhile). */
	if ((!c->listed || !was_up) && !c->list_req)
		list_fetch(c);
}

/* Coordinators in use (at least 1, to divide by). */
static unsigned active_count(const struct sigclient *sc)
{
	unsigned n = 0;

	for (int i = 0; i < SIG_COORD_MAX; i++)
		n += sc->coords[i].used && sc->coords[i].active;
	return n ? n : 1;
}

/* Shared mode: the next active coordinator after cur. */
static int next_coord(struct sigclient *sc, int from)
{
	for (int k = 1; k <= SIG_COORD_MAX; k++) {
		int i = (from + k) % SIG_COORD_MAX;
		if (sc->coords[i].used && sc->coords[i].active)
			return i;
	}
	return from;
}

static void coord_failed(struct sig_coord *c, const char *why)
{
	struct sigclient *sc = c->sc;

	c->fails++;
	/* The registry is likely to change (this one may be gone). */
	if (c->up)
		refresh_soon(sc);
	if (c->up || !c->ever_up)
		log_warn(COMP, "coordinator %s does not answer: %s", c->url, why);
	else
		log_debug(COMP, "coordinator %s still fails: %s", c->url, why);
	c->up = false;
	c->probe_req = mem_deref(c->probe_req);
	shttp_pool_flush_idle(c->pool);
	if (!polled(c))
		return;
	c->poll_req = mem_deref(c->poll_req);
	if (sc->shared) {
		int n = next_coord(sc, sc->cur);
		uint32_t delay;
		sc->cycle_fails++;
		/* A full round without an answer backs off (bounded). */
		unsigned nact = active_count(sc);
		delay = sc->cycle_fails >= nact ?
			backoff(sc->cycle_fails - nact + 1, SHARED_CYCLE_CAP_MS) :
			jitter(50, 50);
		if (n != sc->cur) {
			sc->st.failovers++;
			log_info(COMP, "failing over from %s to %s", c->url,
				 sc->coords[n].url);
		}
		sc->cur = n;
		tmr_start(&sc->coords[n].poll_tmr, delay, poll_tmr_h,
			  &sc->coords[n]);
	} else {
		tmr_start(&c->poll_tmr, backoff(c->fails, FANOUT_RETRY_CAP_MS),
			  poll_tmr_h, c);
	}
}

/* --- Polling ------------------------------------------------------------- */

static bool cursor_split(const char *cur, size_t *glen, uint64_t *seq)
{
	const char *d = strrchr(cur, '-');
	uint64_t v = 0;

	if (!d || d == cur || !d[1] || strlen(d + 1) > 19)
		return false;
	for (const char *p = d + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*glen = (size_t)(d - cur);
	*seq = v;
	return true;
}

/* The cursor to send to c: its own, unless the last one we acknowledged
 * anywhere is of the same generation and further on (a shared mailbox
 * seen through another coordinator), or c has none yet. A cursor of
 * another generation acknowledges nothing, so sending one is harmless. */
static const char *pick_cursor(struct sig_coord *c)
{
	const char *mine = c->cursor, *last = c->sc->last_cursor;
	size_t g1, g2;
	uint64_t s1, s2;

	if (!mine[0])
		return last;
	if (!last[0] || !cursor_split(mine, &g1, &s1) || !cursor_split(last, &g2, &s2))
		return mine;
	if (g1 == g2 && !memcmp(mine, last, g1) && s2 > s1)
		return last;
	return mine;
}

static void drop_log(struct sigclient *sc, const struct sig_msg *m,
		     const char *what)
{
	struct drop_log *d = NULL, *oldest = &sc->drops[0];
	uint64_t now = now_ms();

	for (int i = 0; i < DROP_LOG_PEERS; i++) {
		if (!strcmp(sc->drops[i].peer, m->from)) {
			d = &sc->drops[i];
			break;
		}
		if (sc->drops[i].last < oldest->last)
			oldest = &sc->drops[i];
	}
	if (!d) {
		d = oldest;
		snprintf(d->peer, sizeof(d->peer), "%s", m->from);
		d->last = 0;
		d->suppressed = 0;
	}
	if (d->last && now - d->last < DROP_LOG_INTERVAL_MS) {
		d->suppressed++;
		return;
	}
	log_warn(COMP, "dropped %s from %s (epoch %" PRIu64 ", via %s): %s"
		 " (%" PRIu64 " more since the last such line)",
		 m->kind, m->from, m->epoch, m->coord, what, d->suppressed);
	d->last = now;
	d->suppressed = 0;
}

static void deliver(struct sig_coord *c, struct sig_msg *m)
{
	struct sigclient *sc = c->sc;

	m->coord = c->url;
	if (sig_seen_add(&sc->seen, m->id)) {
		sc->st.dup_dropped++;
		return;
	}
	switch (sig_msg_check(&sc->keys, sc->self, m, sc->h.peer_known, sc->arg)) {
	case SIG_OK:
		break;
	case SIG_DROP_TO:
		sc->st.to_dropped++;
		drop_log(sc, m, "addressed to another peer");
		return;
	case SIG_DROP_FROM:
		sc->st.from_dropped++;
		drop_log(sc, m, "sender not in the peer table");
		return;
	case SIG_DROP_PSIG:
		sc->st.psig_dropped++;
		drop_log(sc, m, "psig does not verify (altered or forged)");
		return;
	}
	/* The same signed content through another coordinator. */
	if (sig_recent_add(&sc->recent, m->psig, now_ms(), DEDUPE_WINDOW_MS)) {
		sc->st.dup_dropped++;
		return;
	}
	sc->st.delivered++;
	sc->h.message(m, sc->arg);
}

static void poll_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_coord *c = arg;
	struct sigclient *sc = c->sc;
	struct sig_poll *p;
	char why[96];

	c->probe_req = mem_deref(c->probe_req);
	coord_reach(c, !err);
	if (err) {
		sc->st.polls_failed++;
		snprintf(why, sizeof(why), "poll: %s", strerror(err));
		coord_failed(c, why);
		return;
	}
	if (r->status != 200) {
		char code[64];
		uint64_t cur;
		sc->st.polls_failed++;
		if (r->status == 400 && !sig_parse_error(r->body, r->body_len, code,
							 sizeof(code), &cur)) {
			/* A cursor it cannot parse (never ours, but do not
			 * wedge on it): start over without one. */
			log_warn(COMP, "coordinator %s refused our poll (%s): resetting the cursor",
				 c->url, code);
			c->cursor[0] = '\0';
			sc->last_cursor[0] = '\0';
		}
		snprintf(why, sizeof(why), "poll: HTTP %d", r->status);
		/* 503: this coordinator cannot reach the mailbox now; with a
		 * shared mailbox another one may (fail over below). */
		if (r->status == 429 || (r->status == 503 && !sc->shared)) {
			c->fails++;
			tmr_start(&c->poll_tmr, retry_after_ms(r), poll_tmr_h, c);
			return;
		}
		coord_failed(c, why);
		return;
	}
	p = mem_zalloc(sizeof(*p), NULL);
	if (!p) {
		tmr_start(&c->poll_tmr, 1000, poll_tmr_h, c);
		return;
	}
	if (sig_parse_poll(r->body, r->body_len, p)) {
		sc->st.polls_failed++;
		mem_deref(p);
		coord_failed(c, "poll: malformed answer");
		return;
	}
	sc->st.polls_ok++;
	coord_ok(c);
	sc->st.malformed_dropped += p->malformed;
	if (p->malformed)
		log_warn(COMP, "coordinator %s sent %zu malformed messages: skipped",
			 c->url, p->malformed);
	/* The handler may free the client: hold it until the batch is out. */
	mem_ref(sc);
	for (size_t i = 0; i < p->n; i++) {
		deliver(c, &p->msgs[i]);
		if (mem_nrefs(sc) == 1) /* the handler let the client go */
			break;
	}
	/* Acknowledge everything handed over, with the next poll. */
	if (p->cursor[0] && mem_nrefs(sc) > 1) {
		snprintf(c->cursor, sizeof(c->cursor), "%s", p->cursor);
		snprintf(sc->last_cursor, sizeof(sc->last_cursor), "%s", p->cursor);
	}
	sig_poll_free(p);
	mem_deref(p);
	if (mem_nrefs(sc) > 1 && polled(c) && !c->poll_req)
		poll_start(c);
	mem_deref(sc);
}

static void poll_start(struct sig_coord *c)
{
	struct sigclient *sc = c->sc;
	char path[SHTTP_PATH_MAX], hdr[AUTH_HEADER_MAX + 64];
	const char *cur;
	unsigned wait;
	int err;

	tmr_cancel(&c->poll_tmr);
	if (sc->closing || !polled(c) || c->poll_req)
		return;
	cur = pick_cursor(c);
	/* The first poll after (re)connecting does not wait: it tells at once
	 * whether the coordinator answers, and hands over what is queued. */
	wait = c->up ? sc->wait_s : 0;
	if (cur[0])
		err = req_path(c, path, sizeof(path), "/v1/poll?cursor=%s&wait=%u", cur, wait);
	else
		err = req_path(c, path, sizeof(path), "/v1/poll?wait=%u", wait);
	if (!err)
		err = auth_lines(sc, hdr, sizeof(hdr), "GET", path, NULL, 0, false);
	if (!err) {
		struct shttp_spec s = {
			.method = "GET", .path = path, .headers = hdr,
			.timeout_ms = wait * 1000 + POLL_MARGIN_MS,
			.connect_ms = sc->connect_ms, .body_max = SIG_POLL_BODY_MAX,
		};
		err = shttp_request(&c->poll_req, c->pool, &s, poll_done, c);
	}
	if (err) {
		log_warn(COMP, "cannot poll %s: %s", c->url, strerror(err));
		tmr_start(&c->poll_tmr, 1000, poll_tmr_h, c);
		return;
	}
	c->poll_started = now_ms();
}

/* A long poll says nothing for up to wait seconds; a coordinator that
 * hangs (host gone, process stopped) is found by a cheap probe beside it
 * instead of after the poll's whole deadline. */
static void probe_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_coord *c = arg;

	coord_reach(c, !err);
	if (!err && r->status == 200)
		return;
	coord_failed(c, err ? "health probe failed" : "health probe: not 200");
}

/* GET /v1/health (no auth) on c, answered to h. */
static void health_get(struct sig_coord *c, shttp_resp_h *h)
{
	char path[SHTTP_PATH_MAX];

	if (c->probe_req || req_path(c, path, sizeof(path), "/v1/health"))
		return;
	struct shttp_spec s = {
		.method = "GET", .path = path,
		.timeout_ms = PROBE_TIMEOUT_MS, .connect_ms = PROBE_TIMEOUT_MS,
		.body_max = SIG_SMALL_BODY_MAX,
	};
	(void)shttp_request(&c->probe_req, c->pool, &s, h, c);
}

static void probe_tick(void *arg)
{
	struct sigclient *sc = arg;
	uint64_t now = now_ms();

	tmr_start(&sc->probe_tmr, jitter(sc->probe_ms, 20), probe_tick, sc);
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		struct sig_coord *c = &sc->coords[i];
		if (!polled(c) || !c->poll_req || now - c->poll_started < sc->probe_ms)
			continue;
		health_get(c, probe_done);
	}
}

/* A coordinator we do not poll (shared mailbox, not the current one):
 * only whether it answers, for the servers offered to ICE. Nothing else
 * changes and nothing is logged but the change of reachability. */
static void check_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_coord *c = arg;

	(void)r;
	coord_reach(c, !err);
	if (err)
		c->up = false;
}

/* --- Coordinators and TURN ----------------------------------------------- */

static bool servers_equal(const struct sig_coord *c, const struct sig_coord_info *ci)
{
	for (int k = 0; k < SIG_SRV_KINDS; k++) {
		if (c->nsrv[k] != ci->nsrv[k])
			return false;
		for (unsigned j = 0; j < c->nsrv[k]; j++) {
			if (strcmp(c->srv[k][j], ci->srv[k][j]))
				return false;
		}
	}
	return true;
}

static bool coord_take_info(struct sig_coord *c, const struct sig_coord_info *ci)
{
	bool changed = !servers_equal(c, ci);

	snprintf(c->id, sizeof(c->id), "%s", ci->id);
	memcpy(c->srv, ci->srv, sizeof(c->srv));
	memcpy(c->nsrv, ci->nsrv, sizeof(c->nsrv));
	return changed;
}

static void list_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_coord *c = arg;
	struct sigclient *sc = c->sc;
	struct sig_coord_info *v;
	size_t n = 0;
	bool changed = false;

	coord_reach(c, !err);
	if (err) {
		/* No answer at all: for the one we poll that is a failure
		 * like a dead poll (fail over now, not at the next probe). */
		log_debug(COMP, "coordinators from %s: %s", c->url, strerror(err));
		if (polled(c))
			coord_failed(c, "coordinator list: no answer");
		else
			c->up = false;
		return;
	}
	if (r->status != 200) {
		log_debug(COMP, "coordinators from %s: HTTP %d", c->url, r->status);
		return;
	}
	v = mem_zalloc(sizeof(*v) * SIG_LIST_MAX, NULL);
	if (!v)
		return;
	if (sig_parse_coordinators(r->body, r->body_len, v, SIG_LIST_MAX, &n) || !n) {
		log_warn(COMP, "coordinator %s sent a malformed coordinator list", c->url);
		mem_deref(v);
		return;
	}
	c->listed = (unsigned)n;
	if (n == 1) {
		/* Standalone: the list is the coordinator itself, whatever
		 * URL it advertises. */
		changed |= coord_take_info(c, &v[0]);
	} else {
		bool listed[SIG_COORD_MAX] = { false };
		listed[ci_of(c)] = true;
		for (size_t i = 0; i < n; i++) {
			struct sig_coord *o = NULL;
			char e[160];
			int rc = coord_add(sc, v[i].url, false, false, &o, e, sizeof(e));
			if (rc == 0) {
				log_info(COMP, "learnt coordinator %s (%s) from %s",
					 v[i].url, v[i].id, c->url);
				changed = true;
			} else if (rc != EEXIST) {
				log_debug(COMP, "not using coordinator %s: %s", v[i].url, e);
				continue;
			}
			changed |= coord_take_info(o, &v[i]);
			listed[ci_of(o)] = true;
			if (rc == 0 && !sc->shared)
				tmr_start(&o->poll_tmr, 0, poll_tmr_h, o);
		}
		/* Learnt coordinators the registry no longer lists retire. */
		for (int i = 0; i < SIG_COORD_MAX; i++) {
			struct sig_coord *o = &sc->coords[i];
			if (o->used && o->active && !o->from_cli && !listed[i]) {
				log_info(COMP, "coordinator %s left the registry", o->url);
				o->active = false;
				coord_stop(o);
				changed = true;
			}
		}
	}
	mem_deref(v);
	bool shared = false;
	for (int i = 0; i < SIG_COORD_MAX; i++)
		shared |= sc->coords[i].used && sc->coords[i].active && sc->coords[i].listed >= 2;
	shared_switch(sc, shared, ci_of(c));
	if (sc->shared) {
		/* The one we polled left the registry: the next one. */
		struct sig_coord *cur = &sc->coords[sc->cur];
		if (!(cur->used && cur->active)) {
			sc->cur = next_coord(sc, sc->cur);
			cur = &sc->coords[sc->cur];
			if (cur->used && cur->active && !cur->poll_req)
				tmr_start(&cur->poll_tmr, 0, poll_tmr_h, cur);
		}
	}
	/* Fan-out polls every active coordinator (one back in a list again
	 * included). */
	for (int i = 0; i < SIG_COORD_MAX && !sc->shared; i++) {
		struct sig_coord *o = &sc->coords[i];
		if (o->used && o->active && !o->poll_req && !tmr_isrunning(&o->poll_tmr))
			tmr_start(&o->poll_tmr, 0, poll_tmr_h, o);
	}
	if (changed)
		servers_changed(sc);
}

static void list_fetch(struct sig_coord *c)
{
	struct sigclient *sc = c->sc;
	char path[SHTTP_PATH_MAX], hdr[AUTH_HEADER_MAX + 64];

	if (c->list_req || req_path(c, path, sizeof(path), "/v1/coordinators") ||
	    auth_lines(sc, hdr, sizeof(hdr), "GET", path, NULL, 0, false))
		return;
	struct shttp_spec s = {
		.method = "GET", .path = path, .headers = hdr,
		.timeout_ms = REQ_TIMEOUT_MS, .connect_ms = sc->connect_ms,
		.body_max = SIG_LIST_BODY_MAX,
	};
	(void)shttp_request(&c->list_req, c->pool, &s, list_done, c);
}

/* The list from every coordinator in use that answers; a health check of
 * the others we do not poll (is it there? its STUN/TURN servers are
 * offered to ICE only while it answers). After start and after a
 * coordinator stopped answering the interval starts at REFRESH_FIRST_MS
 * and doubles up to refresh_ms. */
static void refresh_tick(void *arg)
{
	struct sigclient *sc = arg;

	tmr_start(&sc->refresh_tmr, jitter(sc->refresh_next, 10), refresh_tick, sc);
	sc->refresh_next = sc->refresh_next >= sc->refresh_ms / 2 ? sc->refresh_ms :
		sc->refresh_next * 2;
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		struct sig_coord *c = &sc->coords[i];
		if (!c->used || !c->active)
			continue;
		if (c->up)
			list_fetch(c);
		else if (!polled(c))
			health_get(c, check_done);
	}
}

static uint32_t refresh_first(const struct sigclient *sc)
{
	return sc->refresh_ms < REFRESH_FIRST_MS ? sc->refresh_ms : REFRESH_FIRST_MS;
}

/* The coordinator list may be about to change: refresh it within
 * REFRESH_FIRST_MS, then at doubling intervals again. */
static void refresh_soon(struct sigclient *sc)
{
	uint32_t first = refresh_first(sc);

	sc->refresh_next = first;
	if (!tmr_isrunning(&sc->refresh_tmr) || tmr_get_expire(&sc->refresh_tmr) > first)
		tmr_start(&sc->refresh_tmr, jitter(first, 10), refresh_tick, sc);
}

static void turn_tick(void *arg)
{
	turn_fetch(arg);
}

static void turn_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_coord *c = arg;
	struct sig_turn t;

	coord_reach(c, !err);
	if (err || r->status != 200 || sig_parse_turn(r->body, r->body_len, &t)) {
		log_debug(COMP, "TURN credential from %s: %s", c->url,
			  err ? strerror(err) : "bad answer");
		tmr_start(&c->turn_tmr, jitter(TURN_RETRY_MS, 20), turn_tick, c);
		if (err && polled(c))
			coord_failed(c, "TURN credential: no answer");
		return;
	}
	/* Relays use the client's own credential (local_turn); a valid
	 * answer shows the coordinator serves credentials. */
	c->turn_fetched = true;
	/* Refresh at half the lifetime: a credential is checked at each
	 * allocation and refresh, so it must never be near its end. */
	uint64_t half = (uint64_t)t.ttl * 500;
	tmr_start(&c->turn_tmr, jitter((uint32_t)(half < TURN_MIN_REFRESH_MS ?
					       TURN_MIN_REFRESH_MS : half), 5),
		  turn_tick, c);
}

static void turn_fetch(struct sig_coord *c)
{
	struct sigclient *sc = c->sc;
	char path[SHTTP_PATH_MAX], hdr[AUTH_HEADER_MAX + 64];

	tmr_cancel(&c->turn_tmr);
	if (c->turn_req || !c->active)
		return;
	if (req_path(c, path, sizeof(path), "/v1/turn") ||
	    auth_lines(sc, hdr, sizeof(hdr), "GET", path, NULL, 0, false))
		return;
	struct shttp_spec s = {
		.method = "GET", .path = path, .headers = hdr,
		.timeout_ms = REQ_TIMEOUT_MS, .connect_ms = sc->connect_ms,
		.body_max = SIG_SMALL_BODY_MAX,
	};
	if (shttp_request(&c->turn_req, c->pool, &s, turn_done, c))
		tmr_start(&c->turn_tmr, TURN_RETRY_MS, turn_tick, c);
}

/* --- Publishing ---------------------------------------------------------- */

static void pub_destructor(void *arg)
{
	struct sig_pub *p = arg;

	list_unlink(&p->le);
	tmr_cancel(&p->deadline_tmr);
	tmr_cancel(&p->report_tmr);
	for (unsigned i = 0; i < p->ntries; i++) {
		p->tries[i].req = mem_deref(p->tries[i].req);
		tmr_cancel(&p->tries[i].tmr);
	}
	free(p->body);
}

/* The early stale report: the handler may free the client. */
static void pub_report_tmr(void *arg)
{
	struct sig_pub *p = arg;
	sig_publish_h *h = p->h;

	if (p->reported)
		return;
	p->reported = true;
	p->h = NULL;
	if (h)
		h(ESTALE, p->current, p->arg);
}

/* Ends the publish once no try is pending. */
static void pub_check(struct sig_pub *p)
{
	struct sigclient *sc = p->sc;

	for (unsigned i = 0; i < p->ntries; i++) {
		if (!p->tries[i].done)
			return;
	}
	if (p->n_stale)
		sc->st.publish_stale++;
	else if (p->n_ok)
		sc->st.publish_ok++;
	else
		sc->st.publish_failed++;
	if (!p->n_stale && !p->n_ok)
		log_warn(COMP, "publish %s epoch %" PRIu64 " to %s failed: %s",
			 p->kind, p->epoch, p->to, strerror(p->fail_err));
	sig_publish_h *h = p->reported ? NULL : p->h;
	void *harg = p->arg;
	uint64_t cur = p->current;
	int err = p->n_stale ? ESTALE : p->n_ok ? 0 : p->fail_err;
	sc->npubs--;
	mem_deref(p);
	/* Last: the handler may free the client. */
	if (h)
		h(err, cur, harg);
}

static void try_finish(struct sig_try *t, int err)
{
	struct sig_pub *p = t->pub;

	t->done = true;
	t->req = mem_deref(t->req);
	tmr_cancel(&t->tmr);
	if (err == 0)
		p->n_ok++;
	else if (err == ESTALE)
		p->n_stale++;
	else if (!p->fail_err || p->fail_err == ETIMEDOUT)
		p->fail_err = err;
}

static void try_tmr(void *arg)
{
	pub_try_start(arg);
}

/* A try failed for a reason worth retrying. */
static void try_retry(struct sig_try *t, int err, uint32_t delay)
{
	struct sig_pub *p = t->pub;
	struct sigclient *sc = p->sc;
	struct sig_coord *c = &sc->coords[t->ci];

	p->fail_err = err;
	if (now_ms() + delay >= p->deadline) {
		try_finish(t, err);
		pub_check(p);
		return;
	}
	sc->st.publish_retries++;
	if (sc->shared) {
		/* Any coordinator reaches the shared mailbox: the next one
		 * (after Retry-After for a 503, else at once, backing off
		 * once per round). */
		if (err != EAGAIN) {
			t->ci = next_coord(sc, t->ci);
			unsigned nact = active_count(sc);
			if (err != EBUSY)
				delay = t->attempts % nact ? jitter(50, 50) :
					backoff(t->attempts / nact, SHARED_CYCLE_CAP_MS);
		}
	} else if (err != EAGAIN && !c->up && t->attempts >= 2) {
		/* Fan-out: this coordinator is down; the others carry it. */
		try_finish(t, err);
		pub_check(p);
		return;
	}
	tmr_start(&t->tmr, delay, try_tmr, t);
}

static void pub_done(int err, const struct shttp_resp *r, void *arg)
{
	struct sig_try *t = arg;
	struct sig_pub *p = t->pub;
	struct sigclient *sc = p->sc;
	struct sig_coord *c = &sc->coords[t->ci];
	char code[64];
	uint64_t cur = 0;

	coord_reach(c, !err);
	if (err) {
		coord_failed(c, "publish: connection failed");
		try_retry(t, err, backoff(t->attempts, PUB_RETRY_CAP_MS));
		return;
	}
	if (r->status == 202) {
		coord_ok(c);
		try_finish(t, 0);
		pub_check(p);
		return;
	}
	(void)sig_parse_error(r->body, r->body_len, code, sizeof(code), &cur);
	switch (r->status) {
	case 409:
		if (strcmp(code, "stale_epoch") || !cur) {
			try_finish(t, EPROTO);
			break;
		}
		if (cur > p->current)
			p->current = cur;
		log_info(COMP, "publish %s epoch %" PRIu64 " to %s: stale, current is %" PRIu64,
			 p->kind, p->epoch, p->to, cur);
		try_finish(t, ESTALE);
		/* Tell the caller at once (it opens a newer epoch), from a
		 * timer so nothing here runs after its handler. */
		tmr_start(&p->report_tmr, 0, pub_report_tmr, p);
		break;
	case 429:
		/* rate_limited, mailbox_full: after it says, same coordinator. */
		try_retry(t, EAGAIN, retry_after_ms(r));
		return;
	case 503:
		/* unavailable: after it says; with a shared mailbox through
		 * the next coordinator, which may reach it. */
		try_retry(t, sc->shared ? EBUSY : EAGAIN, retry_after_ms(r));
		return;
	case 401:
		/* Clock skew or a nonce clash: retry, then give up. */
		log_warn(COMP, "publish to %s: bad_auth (is this clock right?)", c->url);
		if (t->attempts < 3) {
			try_retry(t, EPERM, 1000);
			return;
		}
		try_finish(t, EPERM);
		break;
	case 400:
		log_warn(COMP, "publish to %s refused: %s", c->url, code);
		try_finish(t, EINVAL);
		break;
	case 403:
		try_finish(t, EPERM);
		break;
	case 413:
		try_finish(t, EMSGSIZE);
		break;
	default:
		if (r->status >= 500) {
			coord_failed(c, "publish: server error");
			try_retry(t, EIO, backoff(t->attempts, PUB_RETRY_CAP_MS));
			return;
		}
		try_finish(t, EPROTO);
		break;
	}
	pub_check(p);
}

static void pub_try_start(struct sig_try *t)
{
	struct sig_pub *p = t->pub;
	struct sigclient *sc = p->sc;
	struct sig_coord *c = &sc->coords[t->ci];
	char path[SHTTP_PATH_MAX], hdr[AUTH_HEADER_MAX + 96];
	uint64_t now = now_ms();
	int err;

	if (t->done)
		return;
	t->attempts++;
	if (!c->used) {
		try_finish(t, ENOENT);
		pub_check(p);
		return;
	}
	err = req_path(c, path, sizeof(path), "/v1/publish");
	if (!err)
		err = auth_lines(sc, hdr, sizeof(hdr), "POST", path, p->body,
				 p->body_len, true);
	if (!err) {
		struct shttp_spec s = {
			.method = "POST", .path = path, .headers = hdr,
			.body = p->body, .body_len = p->body_len,
			.timeout_ms = (uint32_t)(p->deadline - now < REQ_TIMEOUT_MS ?
						 p->deadline - now : REQ_TIMEOUT_MS),
			.connect_ms = sc->connect_ms, .body_max = SIG_SMALL_BODY_MAX,
		};
		if (!s.timeout_ms)
			s.timeout_ms = 1;
		err = shttp_request(&t->req, c->pool, &s, pub_done, t);
	}
	if (err)
		try_retry(t, err, 500);
}

static void pub_deadline(void *arg)
{
	struct sig_pub *p = arg;

	for (unsigned i = 0; i < p->ntries; i++) {
		if (!p->tries[i].done)
			try_finish(&p->tries[i], ETIMEDOUT);
	}
	pub_check(p);
}

int sigclient_publish(struct sigclient *sc, const char *to, const char *kind,
		      uint64_t epoch, const char *payload, size_t payload_len,
		      sig_publish_h *h, void *arg)
{
	struct sig_pub *p;
	int err;

	if (!sc || sc->closing)
		return EINVAL;
	if (sc->npubs >= PUB_OUTSTANDING_MAX)
		return ENOBUFS;
	p = mem_zalloc(sizeof(*p), pub_destructor);
	if (!p)
		return ENOMEM;
	p->sc = sc;
	tmr_init(&p->deadline_tmr);
	tmr_init(&p->report_tmr);
	err = sig_build_publish(&p->body, &p->body_len, &sc->keys, sc->self, to,
				kind, epoch, payload, payload_len);
	if (err)
		goto out;
	snprintf(p->to, sizeof(p->to), "%s", to);
	snprintf(p->kind, sizeof(p->kind), "%s", kind);
	p->epoch = epoch;
	p->h = h;
	p->arg = arg;
	p->deadline = now_ms() + sc->deadline_ms;

	if (sc->shared) {
		p->tries[0].ci = sc->cur;
		p->ntries = 1;
	} else {
		unsigned nup = 0;
		for (int i = 0; i < SIG_COORD_MAX; i++)
			nup += sc->coords[i].used && sc->coords[i].active && sc->coords[i].up;
		for (int i = 0; i < SIG_COORD_MAX; i++) {
			struct sig_coord *c = &sc->coords[i];
			/* Every coordinator that answers; all of them when
			 * none is known to answer yet. */
			if (c->used && c->active && (c->up || !nup))
				p->tries[p->ntries++].ci = i;
		}
	}
	if (!p->ntries) {
		err = ENOENT;
		goto out;
	}
	list_append(&sc->pubs, &p->le, p);
	sc->npubs++;
	tmr_start(&p->deadline_tmr, sc->deadline_ms, pub_deadline, p);
	for (unsigned i = 0; i < p->ntries; i++) {
		p->tries[i].pub = p;
		tmr_init(&p->tries[i].tmr);
		/* Started from a timer: never call back inside this call. */
		tmr_start(&p->tries[i].tmr, 0, try_tmr, &p->tries[i]);
	}
 out:
	if (err)
		mem_deref(p);
	return err;
}

void sigclient_cancel(struct sigclient *sc, void *arg)
{
	if (!sc)
		return;
	for (struct le *le = list_head(&sc->pubs); le; le = le->next) {
		struct sig_pub *p = le->data;
		if (p->arg == arg)
			p->h = NULL;
	}
}

unsigned sigclient_pending(const struct sigclient *sc)
{
	return sc ? sc->npubs : 0;
}

/* --- ICE servers --------------------------------------------------------- */

static const enum ice_server_kind ice_kinds[SIG_SRV_KINDS] = {
	ICE_SRV_STUN, ICE_SRV_TURN_UDP, ICE_SRV_TURN_TCP, ICE_SRV_TURN_TLS,
};

static void local_turn(struct sigclient *sc, int ci)
{
	struct sig_coord *c = &sc->coords[ci];
	int64_t now = (int64_t)time(NULL);

	/* Every client holds the turn key (CONTRACT section 3) and computes
	 * its relay credential itself (coturn's use-auth-secret checks the
	 * same HMAC). A TURN allocation is refreshed with the credential it
	 * was made with (libre's turnc cannot change it), so the allocation
	 * dies when that credential expires and the relayed link with it,
	 * 15 s of consent later. The coordinator's /v1/turn credential lasts
	 * an hour; ours lasts 14 days and is renewed at half, so a relayed
	 * link lives at least 7 days before it re-negotiates. (/v1/turn is
	 * still fetched: its answer tells that the coordinator serves.) */
	if (c->local_turn_expiry - now < LOCAL_TURN_TTL_S / 2) {
		c->local_turn_expiry = now + LOCAL_TURN_TTL_S;
		turn_credential(&sc->keys, sc->self, c->local_turn_expiry,
				sc->turn_cache[ci][0], SIG_TURN_STR_MAX,
				sc->turn_cache[ci][1], SIG_TURN_STR_MAX);
	}
}

size_t sigclient_ice_servers(struct sigclient *sc, struct ice_server *v,
			     size_t max)
{
	size_t n = 0;
	bool any_answers = false;

	if (!sc)
		return 0;
	/* Servers of coordinators that give no answer are left out, unless
	 * none answers (then it may be our own network: offer them all). */
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		const struct sig_coord *c = &sc->coords[i];
		if (c->used && c->active && !c->unreach)
			for (int k = 0; k < SIG_SRV_KINDS; k++)
				any_answers |= c->nsrv[k] > 0;
	}
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		struct sig_coord *c = &sc->coords[i];
		if (!c->used || !c->active || (c->unreach && any_answers))
			continue;
		local_turn(sc, i);
		const char *user = sc->turn_cache[i][0], *pass = sc->turn_cache[i][1];
		for (int k = 0; k < SIG_SRV_KINDS; k++) {
			for (unsigned j = 0; j < c->nsrv[k]; j++) {
				bool dup = false;
				for (size_t q = 0; q < n && q < max; q++)
					dup |= v[q].kind == ice_kinds[k] &&
						!strcmp(v[q].addr, c->srv[k][j]);
				if (dup)
					continue;
				if (n < max) {
					v[n].kind = ice_kinds[k];
					v[n].addr = c->srv[k][j];
					v[n].username = k == SIG_SRV_STUN ? NULL : user;
					v[n].password = k == SIG_SRV_STUN ? NULL : pass;
				}
				n++;
			}
		}
	}
	return n;
}

/* --- Life ---------------------------------------------------------------- */

static void sigclient_destructor(void *arg)
{
	struct sigclient *sc = arg;
	struct le *le;

	sc->closing = true;
	tmr_cancel(&sc->refresh_tmr);
	tmr_cancel(&sc->probe_tmr);
	tmr_cancel(&sc->servers_tmr);
	while ((le = list_head(&sc->pubs))) {
		struct sig_pub *p = le->data;
		p->h = NULL;
		mem_deref(p);
	}
	for (int i = 0; i < SIG_COORD_MAX; i++)
		coord_release(&sc->coords[i]);
	memset(&sc->keys, 0, sizeof(sc->keys));
}

int sigclient_alloc(struct sigclient **scp, const struct sigclient_config *cfg,
		    const struct sigclient_handlers *h, void *arg,
		    char *errbuf, size_t errlen)
{
	struct sigclient *sc;
	char *list = NULL, *save = NULL, *tok;
	char dummy[8];
	int err = 0;

	if (!errbuf) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	if (!scp || !cfg || !cfg->keys || !h || !h->message || !h->peer_known ||
	    !cfg->self_id || !id_valid(cfg->self_id, strlen(cfg->self_id))) {
		snprintf(errbuf, errlen, "sigclient: bad configuration");
		return EINVAL;
	}
	if (!cfg->coordinators || !*cfg->coordinators) {
		snprintf(errbuf, errlen, "--coordinator: at least one URL is required");
		return EINVAL;
	}
	if (cfg->poll_wait_s > POLL_WAIT_MAX_S) {
		snprintf(errbuf, errlen, "poll wait above %d s", POLL_WAIT_MAX_S);
		return EINVAL;
	}
	sc = mem_zalloc(sizeof(*sc), sigclient_destructor);
	if (!sc)
		return ENOMEM;
	snprintf(sc->self, sizeof(sc->self), "%s", cfg->self_id);
	sc->keys = *cfg->keys;
	sc->h = *h;
	sc->arg = arg;
	sc->wait_s = cfg->poll_wait_s ? cfg->poll_wait_s : DEF_POLL_WAIT_S;
	sc->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEF_CONNECT_MS;
	sc->deadline_ms = cfg->publish_deadline_ms ? cfg->publish_deadline_ms : DEF_PUBLISH_DEADLINE;
	sc->refresh_ms = cfg->refresh_ms ? cfg->refresh_ms : DEF_REFRESH_MS;
	sc->probe_ms = cfg->probe_ms ? cfg->probe_ms : DEF_PROBE_MS;
	list_init(&sc->pubs);
	tmr_init(&sc->refresh_tmr);
	tmr_init(&sc->probe_tmr);
	tmr_init(&sc->servers_tmr);

	list = strdup(cfg->coordinators);
	if (!list) {
		err = ENOMEM;
		goto out;
	}
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct sig_coord *c;
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t n = strlen(tok);
		while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
			tok[--n] = '\0';
		if (!n) {
			snprintf(errbuf, errlen, "--coordinator: empty URL in the list");
			err = EINVAL;
			goto out;
		}
		err = coord_add(sc, tok, true, true, &c, errbuf, errlen);
		if (err == EEXIST)
			err = 0;
		if (err)
			goto out;
	}
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		if (sc->coords[i].used)
			tmr_start(&sc->coords[i].poll_tmr, 0, poll_tmr_h,
				  &sc->coords[i]);
	}
	/* The coordinator list at once, beside the first poll (a coordinator
	 * whose mailbox answers 503 still lists the others), and again soon:
	 * a node that started a moment ago may not list the rest yet. */
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		if (sc->coords[i].used)
			list_fetch(&sc->coords[i]);
	}
	sc->refresh_next = refresh_first(sc);
	tmr_start(&sc->refresh_tmr, jitter(sc->refresh_next, 10), refresh_tick, sc);
	tmr_start(&sc->probe_tmr, jitter(sc->probe_ms, 20), probe_tick, sc);
 out:
	free(list);
	if (err)
		mem_deref(sc);
	else
		*scp = sc;
	return err;
}

void sigclient_stats(const struct sigclient *sc, struct sigclient_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!sc)
		return;
	*st = sc->st;
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		st->coordinators += sc->coords[i].used && sc->coords[i].active;
		st->reachable += sc->coords[i].used && sc->coords[i].active && sc->coords[i].up;
	}
	st->shared = sc->shared;
}

const char *sigclient_current(const struct sigclient *sc)
{
	if (!sc)
		return "";
	if (sc->shared)
		return sc->coords[sc->cur].up ? sc->coords[sc->cur].url : "";
	for (int i = 0; i < SIG_COORD_MAX; i++) {
		if (sc->coords[i].used && sc->coords[i].active && sc->coords[i].up)
			return sc->coords[i].url;
	}
	return "";
}
