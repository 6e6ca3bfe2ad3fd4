/* One managed hiredis (0.14 async API) connection on the coordinator's
 * libevent loop: connect with a timeout, AUTH/SELECT/ROLE/SCRIPT LOAD or
 * SUBSCRIBE handshake, reconnect with backoff, a watchdog that drops a
 * connection whose oldest command went unanswered (hiredis 0.14 has no
 * timeouts), EVALSHA with an EVAL fallback on NOSCRIPT, and counters.
 * It must not interpret replies beyond the handshake: callers validate
 * what they asked for. Every caller callback runs from the event loop,
 * never from inside rconn_cmd. */
#include "ha/ha_priv.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "common/log.h"

/* How often the watchdog looks at the oldest pending command. */
#define WATCHDOG_MS 100

enum rc_state { RC_IDLE, RC_WAIT_RETRY, RC_CONNECTING, RC_HANDSHAKE, RC_READY };

struct rreq {
	TAILQ_ENTRY(rreq) link;
	struct rconn *rc;     /* NULL once the rconn is gone (orphan) */
	rconn_cb cb;          /* caller's callback; NULL for handshake steps */
	void *arg;
	int64_t sent_us;      /* monotonic, when it went out */
	int hs_step;          /* handshake step, or -1 */
	int script;           /* -1, or the script for a NOSCRIPT fallback */
	int argc;
	char **argv;          /* a copy, kept only for scripts */
	size_t *lens;
	bool queued;          /* on inflight or deferred */
};
TAILQ_HEAD(rreq_list, rreq);

enum { HS_AUTH, HS_SELECT, HS_ROLE, HS_SCRIPT, HS_SUBSCRIBE };

struct rconn {
	struct event_base *base;
	struct rconn_config cfg;
	char name[96];
	char channel[64];
	/* target */
	bool has_target;
	char host[HA_HOST_MAX];
	uint16_t port;
	char password[HA_PASSWORD_MAX];
	unsigned db;

	redisAsyncContext *ac;
	enum rc_state state;
	int64_t connect_started_ms;
	int hs_pending;
	bool subscribed;
	unsigned backoff_ms;
	bool down_logged;     /* this outage was logged once already */
	char last_error[160];

	struct rreq_list inflight; /* in send order: the head is the oldest */
	struct rreq_list deferred;
	struct rreq *sub_req;      /* the SUBSCRIBE's persistent privdata */
	struct event *retry_ev;
	struct event *watchdog_ev;
	struct event *defer_ev;
};

int64_t ha_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool ha_reply_is_error(const redisReply *r, const char *prefix)
{
	if (!r || r->type != REDIS_REPLY_ERROR || !r->str)
		return false;
	size_t n = strlen(prefix);
	return (size_t)r->len >= n && strncmp(r->str, prefix, n) == 0;
}

const char *rconn_name(const struct rconn *rc)
{
	return rc->name;
}

bool rconn_ready(const struct rconn *rc)
{
	return rc && rc->state == RC_READY;
}

const char *rconn_state_text(const struct rconn *rc, char *buf, size_t len)
{
	static const char *const names[] = { "not configured", "waiting to reconnect",
					     "connecting", "authenticating", "ready" };
	if (rc->last_error[0] && rc->state != RC_READY)
		snprintf(buf, len, "%s %s:%u %s (%s)", rc->name, rc->host, rc->port,
			 names[rc->state], rc->last_error);
	else
		snprintf(buf, len, "%s %s:%u %s", rc->name, rc->host, rc->port, names[rc->state]);
	return buf;
}

static void rreq_free(struct rreq *q)
{
	if (!q)
		return;
	free(q->argv); /* lens and the strings live in the same block */
	free(q);
}

static void rc_schedule_retry(struct rconn *rc)
{
	if (!rc->has_target) {
		rc->state = RC_IDLE;
		return;
	}
	rc->state = RC_WAIT_RETRY;
	struct timeval tv = { rc->backoff_ms / 1000, (rc->backoff_ms % 1000) * 1000 };
	if (event_add(rc->retry_ev, &tv) != 0)
		log_error("ha", "%s: cannot arm the reconnect timer", rc->name);
	rc->backoff_ms *= 2;
	if (rc->backoff_ms > HA_BACKOFF_MAX_MS)
		rc->backoff_ms = HA_BACKOFF_MAX_MS;
}

/* The connection is gone (hiredis has freed or is freeing it). */
static void rc_went_down(struct rconn *rc, const char *why)
{
	bool was_up = rc->state == RC_READY || rc->state == RC_HANDSHAKE;
	bool was_ready = rc->state == RC_READY;
	rc->subscribed = false;
	snprintf(rc->last_error, sizeof(rc->last_error), "%s", why);
	if (was_ready)
		log_warn("ha", "%s %s:%u: connection lost: %s", rc->name, rc->host, rc->port, why);
	else if (!rc->down_logged)
		log_warn("ha", "%s %s:%u: cannot connect: %s (retrying)", rc->name, rc->host,
			 rc->port, why);
	else
		log_debug("ha", "%s %s:%u: cannot connect: %s", rc->name, rc->host, rc->port, why);
	rc->down_logged = true;
	rc_schedule_retry(rc);
	if (was_up && rc->cfg.on_down)
		rc->cfg.on_down(rc->cfg.arg, why);
}

/* Drops the connection ourselves. Pending commands get NULL replies (now,
 * or when the hiredis callback we may be inside returns). */
static void rc_drop(struct rconn *rc, const char *why)
{
	redisAsyncContext *ac = rc->ac;
	if (!ac)
		return;
	rc->ac = NULL;
	ac->data = NULL; /* our connect/disconnect callbacks ignore it now */
	redisAsyncFree(ac);
	rc_went_down(rc, why);
}

static void rc_ready(struct rconn *rc)
{
	rc->state = RC_READY;
	rc->backoff_ms = HA_BACKOFF_MIN_MS;
	rc->last_error[0] = '\0';
	if (rc->down_logged || log_get_level() >= LOG_LVL_DEBUG)
		log_info("ha", "%s %s:%u: connected", rc->name, rc->host, rc->port);
	rc->down_logged = false;
	if (rc->cfg.on_up)
		rc->cfg.on_up(rc->cfg.arg);
}

static void rc_hs_done_one(struct rconn *rc)
{
	if (--rc->hs_pending == 0 && (rc->cfg.kind != RCONN_SUB || rc->subscribed))
		rc_ready(rc);
}

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata);

static void rc_hs_reply(struct rconn *rc, struct rreq *q, redisReply *r)
{
	char why[160];
	switch (q->hs_step) {
	case HS_AUTH:
		if (r->type == REDIS_REPLY_STATUS)
			break;
		/* We send the derived password even to a Redis without one:
		 * "ERR AUTH <password> called without any password configured". */
		if (r->type == REDIS_REPLY_ERROR && r->str && strstr(r->str, "without any password"))
			break;
		snprintf(why, sizeof(why), "AUTH refused: %.100s",
			 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
		rc->cfg.ctr->err_reply++;
		rc_drop(rc, why);
		return;
	case HS_SELECT:
		if (r->type == REDIS_REPLY_STATUS)
			break;
		rc->cfg.ctr->err_reply++;
		rc_drop(rc, "SELECT refused");
		return;
	case HS_ROLE:
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    r->element[0]->type != REDIS_REPLY_STRING) {
			rc->cfg.ctr->err_protocol++;
			rc_drop(rc, "ROLE: unexpected reply");
			return;
		}
		if (strcmp(r->element[0]->str, "master") != 0) {
			snprintf(why, sizeof(why), "not a master (role %.20s)", r->element[0]->str);
			rc_drop(rc, why);
			return;
		}
		break;
	case HS_SCRIPT:
		if (r->type != REDIS_REPLY_STRING || r->len != 40 ||
		    memcmp(r->str, ha_script(q->script)->sha1, 40) != 0) {
			rc->cfg.ctr->err_protocol++;
			rc_drop(rc, "SCRIPT LOAD: unexpected reply");
			return;
		}
		break;
	default:
		break;
	}
	rc_hs_done_one(rc);
}

static void sub_reply(struct rconn *rc, redisReply *r)
{
	/* ["subscribe", channel, n] once, then ["message", channel, data]. */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
		rc->cfg.ctr->err_protocol++;
		rc_drop(rc, "SUBSCRIBE: unexpected reply");
		return;
	}
	const char *kind = r->element[0]->str;
	if (strcmp(r->element[1]->str, rc->channel) != 0) {
		rc->cfg.ctr->err_protocol++;
		return;
	}
	if (strcmp(kind, "subscribe") == 0) {
		if (!rc->subscribed) {
			rc->subscribed = true;
			if (rc->state == RC_HANDSHAKE && rc->hs_pending == 0)
				rc_ready(rc);
		}
		return;
	}
	if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
		if (rc->state == RC_READY && rc->cfg.on_message)
			rc->cfg.on_message(rc->cfg.arg, r->element[2]->str, (size_t)r->element[2]->len);
		return;
	}
	rc->cfg.ctr->err_protocol++;
}

/* Every reply of every command comes here (privdata is its rreq). */
static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rreq *q = privdata;
	redisReply *r = reply;
	struct rconn *rc = q->rc;

	if (q->hs_step == HS_SUBSCRIBE) {
		/* Persistent: freed by whoever orphaned it or when the
		 * connection ends (NULL reply). */
		if (!r) {
			if (rc && rc->sub_req == q)
				rc->sub_req = NULL;
			rreq_free(q);
			return;
		}
		if (rc && rc->ac == ac)
			sub_reply(rc, r);
		return;
	}

	if (rc && q->queued) {
		TAILQ_REMOVE(&rc->inflight, q, link);
		q->queued = false;
	}
	if (!rc) { /* the rconn is gone: nobody to tell */
		rreq_free(q);
		return;
	}
	if (r) {
		rc->cfg.ctr->round_trips++;
		int64_t rtt = now_us() - q->sent_us;
		rc->cfg.ctr->rtt_us_sum += rtt > 0 ? (uint64_t)rtt : 0;
	}
	if (q->hs_step >= 0) {
		if (r && rc->ac == ac && rc->state == RC_HANDSHAKE)
			rc_hs_reply(rc, q, r);
		rreq_free(q);
		return;
	}
	if (r && q->script >= 0 && ha_reply_is_error(r, "NOSCRIPT") && rc->ac == ac) {
		/* The server lost its script cache (restart, SCRIPT FLUSH):
		 * send the body itself, which also caches it again. */
		rc->cfg.ctr->noscript++;
		const struct ha_script *s = ha_script(q->script);
		const char *cmd0 = q->argv[0], *cmd1 = q->argv[1];
		size_t l0 = q->lens[0], l1 = q->lens[1];
		q->argv[0] = (char *)"EVAL";
		q->lens[0] = 4;
		q->argv[1] = (char *)s->body;
		q->lens[1] = strlen(s->body);
		q->script = -1;
		int rc2 = redisAsyncCommandArgv(ac, reply_cb, q, q->argc, (const char **)q->argv,
						q->lens);
		q->argv[0] = (char *)cmd0;
		q->lens[0] = l0;
		q->argv[1] = (char *)cmd1;
		q->lens[1] = l1;
		if (rc2 == REDIS_OK) {
			q->sent_us = now_us();
			TAILQ_INSERT_TAIL(&rc->inflight, q, link);
			q->queued = true;
			return;
		}
		r = NULL;
	}
	if (r && r->type == REDIS_REPLY_ERROR)
		rc->cfg.ctr->err_reply++;
	if (q->cb)
		q->cb(r, q->arg);
	rreq_free(q);
}

static void rc_send_internal(struct rconn *rc, int step, int script, int argc, const char **argv,
			     const size_t *lens)
{
	struct rreq *q = calloc(1, sizeof(*q));
	if (!q) {
		rc_drop(rc, "out of memory");
		return;
	}
	q->rc = rc;
	q->hs_step = step;
	q->script = script;
	q->sent_us = now_us();
	if (redisAsyncCommandArgv(rc->ac, reply_cb, q, argc, argv, lens) != REDIS_OK) {
		free(q);
		rc_drop(rc, "cannot send the handshake");
		return;
	}
	if (step == HS_SUBSCRIBE) {
		rc->sub_req = q;
		return;
	}
	TAILQ_INSERT_TAIL(&rc->inflight, q, link);
	q->queued = true;
	rc->hs_pending++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	redisAsyncContext *ac = (redisAsyncContext *)cac;
	struct rconn *rc = ac->data;
	if (!rc)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		rc->ac = NULL;
		rc->cfg.ctr->err_connect++;
		rc_went_down(rc, ac->errstr[0] ? ac->errstr : "connect failed");
		return;
	}
	rc->state = RC_HANDSHAKE;
	rc->hs_pending = 1; /* held until every step below is sent */
	if (rc->password[0]) {
		const char *argv[] = { "AUTH", rc->password };
		size_t lens[] = { 4, strlen(rc->password) };
		rc_send_internal(rc, HS_AUTH, -1, 2, argv, lens);
	}
	if (rc->ac && rc->db && rc->cfg.kind != RCONN_SENTINEL) {
		char db[16];
		int n = snprintf(db, sizeof(db), "%u", rc->db);
		const char *argv[] = { "SELECT", db };
		size_t lens[] = { 6, (size_t)n };
		rc_send_internal(rc, HS_SELECT, -1, 2, argv, lens);
	}
	if (rc->ac && rc->cfg.kind == RCONN_DATA) {
		const char *argv[] = { "ROLE" };
		size_t lens[] = { 4 };
		rc_send_internal(rc, HS_ROLE, -1, 1, argv, lens);
		for (int i = 0; rc->ac && i < HA_SCRIPT_COUNT; i++) {
			const struct ha_script *s = ha_script(i);
			const char *a[] = { "SCRIPT", "LOAD", s->body };
			size_t l[] = { 6, 4, strlen(s->body) };
			rc_send_internal(rc, HS_SCRIPT, i, 3, a, l);
		}
	}
	if (rc->ac && rc->cfg.kind == RCONN_SUB) {
		const char *argv[] = { "SUBSCRIBE", rc->channel };
		size_t lens[] = { 9, strlen(rc->channel) };
		rc_send_internal(rc, HS_SUBSCRIBE, -1, 2, argv, lens);
	}
	if (rc->ac)
		rc_hs_done_one(rc);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
	redisAsyncContext *ac = (redisAsyncContext *)cac;
	struct rconn *rc = ac->data;
	if (!rc)
		return;
	rc->ac = NULL;
	rc->cfg.ctr->err_disconnect++;
	rc_went_down(rc, status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "I/O error"));
}

static void set_keepalive(int fd)
{
	int on = 1, idle = HA_KEEPIDLE_S, intvl = HA_KEEPINTVL_S, cnt = HA_KEEPCNT;
	unsigned user_timeout = (HA_KEEPIDLE_S + HA_KEEPINTVL_S * HA_KEEPCNT) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout)) != 0)
		log_warn("ha", "cannot set TCP keepalive on a Redis connection: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static void rc_connect(struct rconn *rc)
{
	if (!rc->has_target || rc->ac)
		return;
	redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
	if (!ac) {
		rc->cfg.ctr->err_connect++;
		rc_went_down(rc, "out of memory");
		return;
	}
	if (ac->err) {
		char why[160];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		rc->cfg.ctr->err_connect++;
		rc->state = RC_CONNECTING;
		rc_went_down(rc, why);
		return;
	}
	ac->data = rc;
	if (redisLibeventAttach(ac, rc->base) != REDIS_OK ||
	    redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
		ac->data = NULL;
		redisAsyncFree(ac);
		rc->state = RC_CONNECTING;
		rc_went_down(rc, "cannot attach to the event loop");
		return;
	}
	set_keepalive(ac->c.fd);
	rc->ac = ac;
	rc->state = RC_CONNECTING;
	rc->connect_started_ms = ha_now_ms();
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;
	if (rc->state == RC_WAIT_RETRY)
		rc_connect(rc);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;
	int64_t now = ha_now_ms();
	if (rc->state == RC_CONNECTING && now - rc->connect_started_ms > HA_CONNECT_TIMEOUT_MS) {
		rc->cfg.ctr->err_connect++;
		rc_drop(rc, "connect timed out");
		return;
	}
	struct rreq *head = TAILQ_FIRST(&rc->inflight);
	if (head && now - head->sent_us / 1000 > HA_CMD_TIMEOUT_MS) {
		rc->cfg.ctr->err_timeout++;
		rc_drop(rc, "no answer within the command timeout");
	}
}

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;
	struct rreq_list list = TAILQ_HEAD_INITIALIZER(list);
	TAILQ_CONCAT(&list, &rc->deferred, link);
	struct rreq *q;
	while ((q = TAILQ_FIRST(&list))) {
		TAILQ_REMOVE(&list, q, link);
		q->queued = false;
		if (q->cb)
			q->cb(NULL, q->arg);
		rreq_free(q);
	}
}

void rconn_defer(struct rconn *rc, rconn_cb cb, void *arg)
{
	struct rreq *q = calloc(1, sizeof(*q));
	if (!q) {
		/* Nothing sensible is left: answer now rather than never. */
		log_error("ha", "out of memory deferring a Redis answer");
		cb(NULL, arg);
		return;
	}
	q->rc = rc;
	q->cb = cb;
	q->arg = arg;
	q->hs_step = -1;
	q->script = -1;
	TAILQ_INSERT_TAIL(&rc->deferred, q, link);
	q->queued = true;
	event_active(rc->defer_ev, EV_READ, 0);
}

static int send_req(struct rconn *rc, struct rreq *q, const char **argv, const size_t *lens)
{
	if (rc->state != RC_READY || !rc->ac ||
	    redisAsyncCommandArgv(rc->ac, reply_cb, q, q->argc, argv, lens) != REDIS_OK) {
		TAILQ_INSERT_TAIL(&rc->deferred, q, link);
		q->queued = true;
		event_active(rc->defer_ev, EV_READ, 0);
		return -1;
	}
	q->sent_us = now_us();
	TAILQ_INSERT_TAIL(&rc->inflight, q, link);
	q->queued = true;
	return 0;
}

int rconn_cmd(struct rconn *rc, rconn_cb cb, void *arg, int argc, const char **argv,
	      const size_t *lens)
{
	struct rreq *q = calloc(1, sizeof(*q));
	if (!q) {
		rconn_defer(rc, cb, arg);
		return -1;
	}
	q->rc = rc;
	q->cb = cb;
	q->arg = arg;
	q->hs_step = -1;
	q->script = -1;
	q->argc = argc;
	return send_req(rc, q, argv, lens);
}

int rconn_script(struct rconn *rc, int which, rconn_cb cb, void *arg, int nkeys, int argc,
		 const char **argv, const size_t *lens)
{
	/* One block: argv pointers, lengths, then the strings (kept for a
	 * possible NOSCRIPT resend). */
	int total = argc + 3;
	size_t bytes = (size_t)total * (sizeof(char *) + sizeof(size_t));
	for (int i = 0; i < argc; i++)
		bytes += lens[i] + 1;
	bytes += 64;
	struct rreq *q = calloc(1, sizeof(*q));
	char *blk = malloc(bytes);
	if (!q || !blk) {
		free(q);
		free(blk);
		rconn_defer(rc, cb, arg);
		return -1;
	}
	const struct ha_script *s = ha_script(which);
	char **av = (char **)blk;
	size_t *al = (size_t *)(blk + (size_t)total * sizeof(char *));
	char *p = (char *)(al + total);
	av[0] = (char *)"EVALSHA";
	al[0] = 7;
	memcpy(p, s->sha1, 41);
	av[1] = p;
	al[1] = 40;
	p += 41;
	int n = snprintf(p, 16, "%d", nkeys);
	av[2] = p;
	al[2] = (size_t)n;
	p += n + 1;
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], lens[i]);
		p[lens[i]] = '\0';
		av[3 + i] = p;
		al[3 + i] = lens[i];
		p += lens[i] + 1;
	}
	q->rc = rc;
	q->cb = cb;
	q->arg = arg;
	q->hs_step = -1;
	q->script = which;
	q->argc = total;
	q->argv = av;
	q->lens = al;
	return send_req(rc, q, (const char **)av, al);
}

struct rconn *rconn_new(struct event_base *base, const struct rconn_config *cfg)
{
	struct rconn *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	rc->base = base;
	rc->cfg = *cfg;
	snprintf(rc->name, sizeof(rc->name), "%s", cfg->name);
	if (cfg->channel)
		snprintf(rc->channel, sizeof(rc->channel), "%s", cfg->channel);
	rc->cfg.name = rc->name;
	rc->cfg.channel = rc->channel;
	rc->backoff_ms = HA_BACKOFF_MIN_MS;
	TAILQ_INIT(&rc->inflight);
	TAILQ_INIT(&rc->deferred);
	rc->retry_ev = evtimer_new(base, retry_cb, rc);
	rc->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, rc);
	rc->defer_ev = event_new(base, -1, 0, defer_cb, rc);
	struct timeval tv = { 0, WATCHDOG_MS * 1000 };
	if (!rc->retry_ev || !rc->watchdog_ev || !rc->defer_ev || event_add(rc->watchdog_ev, &tv)) {
		rconn_free(rc);
		return NULL;
	}
	return rc;
}

void rconn_set_target(struct rconn *rc, const char *host, uint16_t port, const char *password,
		      unsigned db)
{
	if (!host) {
		rc->has_target = false;
		event_del(rc->retry_ev);
		rc_drop(rc, "no target");
		rc->state = RC_IDLE;
		return;
	}
	bool same = rc->has_target && strcmp(rc->host, host) == 0 && rc->port == port &&
		    strcmp(rc->password, password ? password : "") == 0 && rc->db == db;
	if (same)
		return;
	bool had = rc->has_target;
	rc->has_target = true;
	snprintf(rc->host, sizeof(rc->host), "%s", host);
	rc->port = port;
	snprintf(rc->password, sizeof(rc->password), "%s", password ? password : "");
	rc->db = db;
	rc->backoff_ms = HA_BACKOFF_MIN_MS;
	rc->down_logged = false;
	event_del(rc->retry_ev);
	if (had && rc->ac) {
		/* rc_drop schedules a retry; connect at once instead. */
		rc_drop(rc, "target changed");
		event_del(rc->retry_ev);
	}
	rc->state = RC_WAIT_RETRY;
	rc_connect(rc);
}

void rconn_push(struct rconn *rc)
{
	/* Only outside hiredis callbacks: a write error here frees the
	 * context at once in hiredis 0.14. */
	if (rc->state == RC_READY && rc->ac && !(rc->ac->c.flags & REDIS_IN_CALLBACK))
		redisAsyncHandleWrite(rc->ac);
}

void rconn_kick(struct rconn *rc, const char *why)
{
	if (rc->ac)
		rc_drop(rc, why);
}

void rconn_close(struct rconn *rc)
{
	if (!rc)
		return;
	rc->has_target = false;
	event_del(rc->retry_ev);
	/* Not inside a hiredis callback (shutdown paths): the pending
	 * callbacks run now, with NULL. */
	if (rc->ac) {
		redisAsyncContext *ac = rc->ac;
		rc->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	rc->state = RC_IDLE;
	/* Those callbacks may have queued more (answered NULL here too). */
	while (!TAILQ_EMPTY(&rc->deferred))
		defer_cb(-1, 0, rc);
}

void rconn_free(struct rconn *rc)
{
	if (!rc)
		return;
	struct rreq *q;
	/* Orphan everything hiredis still holds, so its NULL-reply callbacks
	 * (now, or later if we are inside one) touch nothing of ours. */
	TAILQ_FOREACH(q, &rc->inflight, link) {
		q->rc = NULL;
		q->queued = false;
	}
	TAILQ_INIT(&rc->inflight);
	if (rc->sub_req) {
		rc->sub_req->rc = NULL;
		rc->sub_req = NULL;
	}
	while ((q = TAILQ_FIRST(&rc->deferred))) {
		TAILQ_REMOVE(&rc->deferred, q, link);
		rreq_free(q);
	}
	if (rc->ac) {
		redisAsyncContext *ac = rc->ac;
		rc->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	if (rc->retry_ev)
		event_free(rc->retry_ev);
	if (rc->watchdog_ev)
		event_free(rc->watchdog_ev);
	if (rc->defer_ev)
		event_free(rc->defer_ev);
	free(rc);
}
