/* The signaling HTTP API (CONTRACT section 2): routing, authentication,
 * the publish/poll/turn/coordinators/health/ready/metrics endpoints and
 * long-poll waiting. Owns one `struct call` per request in flight; must
 * not touch a request after its connection closed (the call is marked
 * gone and freed when its last callback returns). Mailbox semantics
 * belong to the mailbox backends, not here. */
#include "signaling/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "common/clock.h"
#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/http_guard.h"
#include "signaling/mailbox.h"
#include "signaling/metrics.h"
#include "signaling/ratelimit.h"
#include "signaling/replay.h"
#include "signaling/wire.h"

/* Requests above the API's limits (8 KiB of headers, a 64 KiB body) are
 * still read, up to these bounds, so that the answer is the API's JSON
 * error; beyond them libevent refuses the request itself, before reading
 * it, with its own HTML body. Memory stays bounded by MAX_INFLIGHT_BYTES
 * across all connections (http_guard), not by these per-request sizes. */
#define API_HEADERS_MAX 8192
#define MAX_HEADERS_SIZE (64 * 1024)
#define MAX_READ_BODY (2 * 1024 * 1024)
#define MAX_INFLIGHT_BYTES (64u * 1024 * 1024)
#define HTTP_BACKSTOP_MARGIN_S 30
/* After accept() fails for lack of descriptors, accepting pauses this long. */
#define ACCEPT_PAUSE_MS 500
#define RETRY_AFTER_UNAVAILABLE_S 2
#define RATELIMIT_SWEEP_S 10

/* One HTTP server per thread, all on the same port (SO_REUSEPORT): the
 * kernel spreads connections over them. A call stays on its worker. */
struct worker {
	struct broker *b;
	struct event_base *base;
	struct evhttp *http;
	struct http_guard *guard;
	struct metrics metrics;
	uint64_t waiting_polls; /* read by /metrics on any worker: atomic */
	pthread_t thread;
	bool threaded;
};

struct broker {
	struct event_base *base; /* the main loop: worker 0 and housekeeping */
	struct broker_config cfg;
	struct ratelimit *rate;
	struct event *housekeeping;
	struct worker *workers;
	size_t nworkers;
	size_t connections;    /* open on all workers, for the shared bound (atomic) */
	size_t inflight_bytes; /* of requests still arriving on all workers (atomic) */
};

enum call_state { CALL_RUNNING, CALL_WAITING, CALL_FETCHING, CALL_DONE };

struct call {
	struct broker *b;
	struct worker *w;
	struct evhttp_request *req;
	enum endpoint ep;
	bool gone;          /* the connection closed: never touch req again */
	int pending;        /* backend callbacks still to come */
	char peer[PEER_ID_MAX + 1];
	/* publish */
	struct wire_doc *doc;
	struct publish_msg msg;
	char nonce[NONCE_HEX_LEN + 1]; /* checked by publish_once, "" otherwise */
	/* poll */
	enum call_state state;
	unsigned wait_s;
	char cursor[MSG_ID_MAX];
	struct mb_watch *watch;
	struct event *timer;
	bool timed_out;
	bool rewake;        /* a wake came while a fetch was in flight */
};

static void waiting_add(struct worker *w, int delta)
{
	__atomic_add_fetch(&w->waiting_polls, (uint64_t)(int64_t)delta, __ATOMIC_RELAXED);
}


/* ---- output helpers ---------------------------------------------------- */

static void json_string(struct evbuffer *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char buf[512];
	size_t n = 0;
	buf[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (n > sizeof(buf) - 8) {
			evbuffer_add(out, buf, n);
			n = 0;
		}
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20) {
			buf[n++] = '\\';
			switch (c) {
			case '\n': buf[n++] = 'n'; break;
			case '\r': buf[n++] = 'r'; break;
			case '\t': buf[n++] = 't'; break;
			default:
				buf[n++] = 'u';
				buf[n++] = '0';
				buf[n++] = '0';
				buf[n++] = hex[c >> 4];
				buf[n++] = hex[c & 15];
			}
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	evbuffer_add(out, buf, n);
}

static void call_free(struct call *c)
{
	if (c->watch)
		c->b->cfg.mailbox->ops->unwatch(c->b->cfg.mailbox, c->watch);
	if (c->timer)
		event_free(c->timer);
	if (c->state == CALL_WAITING || c->state == CALL_FETCHING)
		waiting_add(c->w, -1);
	wire_doc_free(c->doc);
	free(c);
}

/* Sends the answer and ends the call (or just ends it when the client
 * is gone). body may be NULL for an empty body. */
static void call_reply(struct call *c, int status, const char *reason, struct evbuffer *body,
		       const char *content_type)
{
	struct broker *b = c->b;
	if (!c->gone) {
		struct evhttp_request *req = c->req;
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		if (evcon)
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		if (content_type)
			evhttp_add_header(h, "Content-Type", content_type);
		evhttp_add_header(h, "Cache-Control", "no-store");
		http_guard_request_end(c->w->guard, req);
		metrics_request(&c->w->metrics, c->ep, status);
		evhttp_send_reply(req, status, reason, body);
	}
	if (c->state == CALL_WAITING || c->state == CALL_FETCHING)
		waiting_add(c->w, -1);
	c->state = CALL_DONE;
	if (c->watch) {
		b->cfg.mailbox->ops->unwatch(b->cfg.mailbox, c->watch);
		c->watch = NULL;
	}
	if (c->timer) {
		event_free(c->timer);
		c->timer = NULL;
	}
	if (c->pending == 0)
		call_free(c);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void reply_json(struct call *c, int status, struct evbuffer *body)
{
	call_reply(c, status, reason_phrase(status), body, "application/json");
}

static void reply_error(struct call *c, int status, const char *code, const char *message)
{
	struct evbuffer *body = evbuffer_new();
	if (body) {
		evbuffer_add_printf(body, "{\"error\":\"%s\",\"message\":", code);
		json_string(body, message, strlen(message));
		evbuffer_add(body, "}", 1);
	}
	reply_json(c, status, body);
	if (body)
		evbuffer_free(body);
}

static void reply_retry(struct call *c, int status, const char *code, const char *message,
			unsigned retry_after_s)
{
	if (!c->gone) {
		char v[16];
		snprintf(v, sizeof(v), "%u", retry_after_s ? retry_after_s : 1);
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", v);
	}
	reply_error(c, status, code, message);
}

static void peer_addr(struct call *c, char *out, size_t cap)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *evcon = c->gone ? NULL : evhttp_request_get_connection(c->req);
	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(out, cap, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* ---- publish ----------------------------------------------------------- */

static void publish_done(const struct mb_publish_result *res, void *arg)
{
	struct call *c = arg;
	c->pending--;
	if (c->gone) {
		if (c->pending == 0)
			call_free(c);
		return;
	}
	struct evbuffer *body;
	switch (res->status) {
	case MB_OK:
		body = evbuffer_new();
		if (body) {
			evbuffer_add_printf(body, "{\"id\":\"%s\",\"epoch\":%" PRIu64 "}", res->id, res->epoch);
			reply_json(c, 202, body);
			evbuffer_free(body);
		} else {
			reply_json(c, 202, NULL);
		}
		return;
	case MB_STALE:
		metrics_refusal(&c->w->metrics, REF_STALE_EPOCH, "%s->%s epoch %" PRIu64 " below %" PRIu64,
				c->msg.from, c->msg.to, c->msg.epoch, res->epoch);
		body = evbuffer_new();
		if (body) {
			evbuffer_add_printf(body,
					    "{\"error\":\"stale_epoch\",\"message\":\"epoch %" PRIu64
					    " is below the current epoch %" PRIu64 "\",\"current\":%" PRIu64 "}",
					    c->msg.epoch, res->epoch, res->epoch);
		}
		reply_json(c, 409, body);
		if (body)
			evbuffer_free(body);
		return;
	case MB_FULL:
		metrics_refusal(&c->w->metrics, REF_MAILBOX_FULL, "mailbox of %s holds %d messages",
				c->msg.to, MAILBOX_CAP);
		reply_error(c, 429, "mailbox_full", "the recipient's mailbox is full");
		return;
	case MB_REPLAY:
		metrics_refusal(&c->w->metrics, REF_REPLAY, "peer %s reused a nonce", c->peer);
		reply_error(c, 401, "bad_auth", "nonce already used");
		return;
	case MB_OVERLOADED:
		metrics_refusal(&c->w->metrics, REF_OVERLOADED, "queued bytes at the coordinator's bound");
		reply_retry(c, 503, "unavailable", "the coordinator's mailbox memory bound is reached",
			    RETRY_AFTER_UNAVAILABLE_S);
		return;
	default:
		metrics_refusal(&c->w->metrics, REF_UNAVAILABLE, "mailbox backend unavailable");
		reply_retry(c, 503, "unavailable", "the mailbox backend is unavailable",
			    RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
}

static void handle_publish(struct call *c, const char *body, size_t len)
{
	struct broker *b = c->b;
	const char *why = "bad body";
	int64_t retry_ms = 0;

	if (!ratelimit_take(b->rate, c->peer, clock_mono_ms(), &retry_ms)) {
		metrics_refusal(&c->w->metrics, REF_RATE_LIMITED, "peer %s over %u publishes/s", c->peer,
				b->cfg.publish_rate);
		reply_retry(c, 429, "rate_limited", "publish rate limit exceeded",
			    (unsigned)((retry_ms + 999) / 1000));
		return;
	}
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Content-Type");
	if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 ||
	    (ctype[16] && ctype[16] != ';' && ctype[16] != ' ')) {
		metrics_refusal(&c->w->metrics, REF_BAD_REQUEST, "publish from %s without application/json", c->peer);
		reply_error(c, 400, "bad_request", "Content-Type must be application/json");
		return;
	}
	if (wire_parse_publish(body, len, &c->msg, &c->doc, &why)) {
		metrics_refusal(&c->w->metrics, REF_BAD_REQUEST, "publish from %s: %s", c->peer, why);
		reply_error(c, 400, "bad_request", why);
		return;
	}
	if (strcmp(c->msg.from, c->peer) != 0) {
		metrics_refusal(&c->w->metrics, REF_FORBIDDEN, "peer %s published as %s", c->peer, c->msg.from);
		reply_error(c, 403, "forbidden", "from must be the authenticated peer");
		return;
	}
	c->pending++;
	if (c->nonce[0])
		b->cfg.mailbox->ops->publish_once(b->cfg.mailbox, &c->msg, c->nonce, publish_done, c);
	else
		b->cfg.mailbox->ops->publish(b->cfg.mailbox, &c->msg, publish_done, c);
}

/* ---- poll -------------------------------------------------------------- */

static void poll_answer(struct call *c, const struct mb_fetch_result *res)
{
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	evbuffer_add(body, "{\"messages\":[", 13);
	for (size_t i = 0; i < res->count; i++) {
		const struct mb_message *m = &res->msgs[i];
		evbuffer_add_printf(body,
				    "%s{\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"epoch\":%" PRIu64
				    ",\"kind\":\"%s\",\"payload\":",
				    i ? "," : "", m->id, m->from, m->to, m->epoch, m->kind);
		json_string(body, m->payload, m->payload_len);
		evbuffer_add_printf(body, ",\"psig\":\"%s\",\"age_ms\":%" PRId64 "}", m->psig,
				    m->age_ms < 0 ? 0 : m->age_ms);
	}
	evbuffer_add(body, "],\"cursor\":", 11);
	json_string(body, res->cursor, strlen(res->cursor));
	evbuffer_add(body, "}", 1);
	reply_json(c, 200, body);
	evbuffer_free(body);
}

static void poll_timer_cb(evutil_socket_t fd, short what, void *arg);

static void poll_fetched(const struct mb_fetch_result *res, void *arg)
{
	struct call *c = arg;
	struct broker *b = c->b;
	c->pending--;
	if (c->gone || c->state == CALL_DONE) {
		if (c->pending == 0)
			call_free(c);
		return;
	}
	if (res->status == MB_BAD_CURSOR) {
		metrics_refusal(&c->w->metrics, REF_BAD_REQUEST, "poll from %s with a malformed cursor", c->peer);
		reply_error(c, 400, "bad_request", "cursor is malformed");
		return;
	}
	if (res->status != MB_OK) {
		metrics_refusal(&c->w->metrics, REF_UNAVAILABLE, "mailbox backend unavailable");
		reply_retry(c, 503, "unavailable", "the mailbox backend is unavailable",
			    RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	/* Every fetch of a poll carries its cursor: acknowledging twice is
	 * harmless, and an empty answer then hands the same cursor back. */
	if (res->count || c->wait_s == 0 || c->timed_out) {
		if (res->count && c->state != CALL_RUNNING) {
			__atomic_add_fetch(&c->w->metrics.wakes, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&c->w->metrics.wake_latency_us_sum,
					   (uint64_t)res->msgs[res->count - 1].age_ms * 1000, __ATOMIC_RELAXED);
		}
		poll_answer(c, res);
		return;
	}
	if (c->rewake) {
		/* The publish behind that wake may have landed after this fetch
		 * read the mailbox (a networked backend): read again. */
		c->rewake = false;
		c->pending++;
		b->cfg.mailbox->ops->fetch(b->cfg.mailbox, c->peer, c->cursor, POLL_BATCH_MAX, poll_fetched, c);
		return;
	}
	if (c->state == CALL_RUNNING) {
		c->timer = evtimer_new(c->w->base, poll_timer_cb, c);
		struct timeval tv = { (time_t)c->wait_s, 0 };
		if (!c->timer || evtimer_add(c->timer, &tv)) {
			reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
			return;
		}
		waiting_add(c->w, 1);
	}
	c->state = CALL_WAITING;
}

static void poll_fetch(struct call *c)
{
	struct broker *b = c->b;
	if (c->state == CALL_WAITING)
		c->state = CALL_FETCHING;
	c->pending++;
	b->cfg.mailbox->ops->fetch(b->cfg.mailbox, c->peer, c->cursor, POLL_BATCH_MAX, poll_fetched, c);
}

static void poll_wake(void *arg)
{
	struct call *c = arg;
	if (c->state == CALL_WAITING)
		poll_fetch(c);
	else if (c->state == CALL_RUNNING || c->state == CALL_FETCHING)
		c->rewake = true;
}

static void poll_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	c->timed_out = true;
	poll_fetch(c);
}

static int parse_query(struct call *c, const char *query)
{
	bool have_wait = false, have_cursor = false;
	c->wait_s = POLL_WAIT_DEFAULT_S;
	c->cursor[0] = '\0';
	while (query && *query) {
		const char *amp = strchr(query, '&');
		size_t len = amp ? (size_t)(amp - query) : strlen(query);
		const char *eq = memchr(query, '=', len);
		if (!eq)
			return -1;
		size_t klen = (size_t)(eq - query), vlen = len - klen - 1;
		const char *v = eq + 1;
		if (klen == 4 && !memcmp(query, "wait", 4) && !have_wait) {
			have_wait = true;
			if (vlen < 1 || vlen > 2)
				return -1;
			unsigned w = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				w = w * 10 + (unsigned)(v[i] - '0');
			}
			if (w > POLL_WAIT_MAX_S)
				return -1;
			c->wait_s = w;
		} else if (klen == 6 && !memcmp(query, "cursor", 6) && !have_cursor) {
			have_cursor = true;
			if (vlen >= sizeof(c->cursor))
				return -1;
			memcpy(c->cursor, v, vlen);
			c->cursor[vlen] = '\0';
		} else {
			return -1;
		}
		query = amp ? amp + 1 : NULL;
	}
	return 0;
}

static void handle_poll(struct call *c, const char *query)
{
	struct broker *b = c->b;
	if (parse_query(c, query)) {
		metrics_refusal(&c->w->metrics, REF_BAD_REQUEST, "poll from %s with a bad query", c->peer);
		reply_error(c, 400, "bad_request", "query must be cursor=C and wait=0..30");
		return;
	}
	/* Watch before the first fetch: a publish landing between the two is
	 * then a wake, never lost. */
	if (c->wait_s) {
		c->watch = b->cfg.mailbox->ops->watch(b->cfg.mailbox, c->peer, poll_wake, c);
		if (!c->watch) {
			reply_retry(c, 503, "unavailable", "cannot wait now", RETRY_AFTER_UNAVAILABLE_S);
			return;
		}
	}
	poll_fetch(c);
}

/* ---- turn, coordinators, health, ready, metrics ------------------------ */

static void handle_turn(struct call *c)
{
	struct broker *b = c->b;
	char user[96], pass[64];
	int64_t expiry = (int64_t)time(NULL) + b->cfg.turn_ttl_s;
	turn_credential(b->cfg.keys, c->peer, expiry, user, sizeof(user), pass, sizeof(pass));
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	evbuffer_add_printf(body, "{\"username\":\"%s\",\"password\":\"%s\",\"ttl\":%u,\"realm\":", user,
			    pass, b->cfg.turn_ttl_s);
	json_string(body, b->cfg.realm, strlen(b->cfg.realm));
	evbuffer_add(body, "}", 1);
	reply_json(c, 200, body);
	evbuffer_free(body);
}

static void self_entry(struct broker *b, struct evbuffer *out)
{
	evbuffer_add(out, "[{\"id\":", 7);
	json_string(out, b->cfg.node_id, strlen(b->cfg.node_id));
	evbuffer_add(out, ",\"url\":", 7);
	json_string(out, b->cfg.advertise_url, strlen(b->cfg.advertise_url));
	const char *s = b->cfg.stun_endpoint;
	evbuffer_add_printf(out, ",\"stun\":[\"%s\"],\"turn_udp\":[\"%s\"],\"turn_tcp\":[\"%s\"],\"turn_tls\":[", s, s, s);
	if (b->cfg.turn_tls_endpoint)
		evbuffer_add_printf(out, "\"%s\"", b->cfg.turn_tls_endpoint);
	evbuffer_add_printf(out, "],\"age_ms\":0}]");
}

static void handle_coordinators(struct call *c)
{
	struct broker *b = c->b;
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	evbuffer_add(body, "{\"coordinators\":", 16);
	if (b->cfg.coordinators_json)
		b->cfg.coordinators_json(b->cfg.hook_arg, body);
	else
		self_entry(b, body);
	evbuffer_add(body, "}", 1);
	reply_json(c, 200, body);
	evbuffer_free(body);
}

static void handle_ready(struct call *c)
{
	struct broker *b = c->b;
	char why[160] = "";
	if (b->cfg.turn_ready && !b->cfg.turn_ready()) {
		reply_error(c, 503, "not_ready", "TURN is not listening yet");
		return;
	}
	if (!b->cfg.mailbox->ops->ready(b->cfg.mailbox, why, sizeof(why))) {
		char msg[200];
		snprintf(msg, sizeof(msg), "mailbox backend: %s", why[0] ? why : "not answering");
		reply_error(c, 503, "not_ready", msg);
		return;
	}
	struct evbuffer *body = evbuffer_new();
	if (body)
		evbuffer_add_printf(body, "{\"status\":\"ready\"}");
	reply_json(c, 200, body);
	if (body)
		evbuffer_free(body);
}

static void handle_metrics(struct call *c)
{
	struct broker *b = c->b;
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	const struct metrics *all[64];
	size_t nm = b->nworkers < 64 ? b->nworkers : 64;
	uint64_t waiting = 0;
	size_t conns = 0;
	for (size_t i = 0; i < nm; i++) {
		all[i] = &b->workers[i].metrics;
		waiting += __atomic_load_n(&b->workers[i].waiting_polls, __ATOMIC_RELAXED);
		conns += http_guard_connections(b->workers[i].guard);
	}
	metrics_render(all, nm, body);
	struct mb_stats st;
	b->cfg.mailbox->ops->stats(b->cfg.mailbox, &st);
	evbuffer_add_printf(body,
			    "# HELP mesh_mailbox_queued_messages Messages waiting for their recipient.\n"
			    "# TYPE mesh_mailbox_queued_messages gauge\nmesh_mailbox_queued_messages %" PRIu64 "\n"
			    "# HELP mesh_mailbox_queued_bytes Payload bytes waiting.\n"
			    "# TYPE mesh_mailbox_queued_bytes gauge\nmesh_mailbox_queued_bytes %" PRIu64 "\n"
			    "# HELP mesh_mailbox_pairs Sender-recipient pairs with a known epoch.\n"
			    "# TYPE mesh_mailbox_pairs gauge\nmesh_mailbox_pairs %" PRIu64 "\n"
			    "# HELP mesh_mailbox_expired_total Messages dropped by their TTL.\n"
			    "# TYPE mesh_mailbox_expired_total counter\nmesh_mailbox_expired_total %" PRIu64 "\n"
			    "# HELP mesh_mailbox_purged_total Messages deleted by a newer epoch.\n"
			    "# TYPE mesh_mailbox_purged_total counter\nmesh_mailbox_purged_total %" PRIu64 "\n"
			    "# HELP mesh_polls_waiting Long polls currently held.\n"
			    "# TYPE mesh_polls_waiting gauge\nmesh_polls_waiting %" PRIu64 "\n"
			    "# HELP mesh_http_connections Open HTTP connections.\n"
			    "# TYPE mesh_http_connections gauge\nmesh_http_connections %zu\n"
			    "# HELP mesh_replay_nonces Nonces remembered against replay.\n"
			    "# TYPE mesh_replay_nonces gauge\nmesh_replay_nonces %zu\n",
			    st.queued_messages, st.queued_bytes, st.pairs, st.expired_total, st.purged_total,
			    waiting, conns,
			    b->cfg.replay->ops->size(b->cfg.replay));
	if (b->cfg.turn_allocations)
		evbuffer_add_printf(body,
				    "# HELP mesh_turn_allocations Current TURN allocations.\n"
				    "# TYPE mesh_turn_allocations gauge\nmesh_turn_allocations %" PRIu64 "\n",
				    b->cfg.turn_allocations());
	if (b->cfg.turn_ready)
		evbuffer_add_printf(body,
				    "# HELP mesh_turn_ready Whether TURN answers on its port.\n"
				    "# TYPE mesh_turn_ready gauge\nmesh_turn_ready %d\n",
				    b->cfg.turn_ready() ? 1 : 0);
	if (b->cfg.extra_metrics)
		b->cfg.extra_metrics(b->cfg.hook_arg, body);
	call_reply(c, 200, "OK", body, "text/plain; version=0.0.4");
	evbuffer_free(body);
}

/* ---- routing and authentication --------------------------------------- */

struct route {
	const char *path;
	enum endpoint ep;
	enum evhttp_cmd_type method;
	bool auth;
};

static const struct route routes[] = {
	{ "/v1/publish", EP_PUBLISH, EVHTTP_REQ_POST, true },
	{ "/v1/poll", EP_POLL, EVHTTP_REQ_GET, true },
	{ "/v1/turn", EP_TURN, EVHTTP_REQ_GET, true },
	{ "/v1/coordinators", EP_COORDINATORS, EVHTTP_REQ_GET, true },
	{ "/v1/health", EP_HEALTH, EVHTTP_REQ_GET, false },
	{ "/v1/ready", EP_READY, EVHTTP_REQ_GET, false },
	{ "/metrics", EP_METRICS, EVHTTP_REQ_GET, false },
};

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

static void dispatch(struct call *c, const struct route *r, const char *query, const char *body,
		     size_t body_len)
{
	switch (r->ep) {
	case EP_PUBLISH: handle_publish(c, body, body_len); break;
	case EP_POLL: handle_poll(c, query); break;
	case EP_TURN: handle_turn(c); break;
	case EP_COORDINATORS: handle_coordinators(c); break;
	default: reply_error(c, 404, "not_found", "no such endpoint"); break;
	}
}

struct auth_wait {
	struct call *call;
	const struct route *route;
};

static void connection_closed(struct evhttp_connection *evcon, void *arg)
{
	struct call *c = arg;
	c->gone = true;
	c->req = NULL;
	if (c->state == CALL_WAITING || c->state == CALL_FETCHING)
		waiting_add(c->w, -1);
	c->state = CALL_DONE;
	if (c->watch) {
		c->b->cfg.mailbox->ops->unwatch(c->b->cfg.mailbox, c->watch);
		c->watch = NULL;
	}
	if (c->timer) {
		event_free(c->timer);
		c->timer = NULL;
	}
	if (c->pending == 0)
		call_free(c);
}

struct replay_ctx {
	struct call *call;
	const struct route *route;
	const char *query;
	const char *body;
	size_t body_len;
	bool sync;            /* answered before check() returned */
	enum replay_result result;
};

static void replay_done(enum replay_result res, void *arg)
{
	struct replay_ctx *rc = arg;
	struct call *c = rc->call;
	c->pending--;
	if (c->gone) {
		if (c->pending == 0)
			call_free(c);
		free(rc);
		return;
	}
	switch (res) {
	case REPLAY_FRESH: {
		/* The body and query live in the request, which is still ours. */
		dispatch(c, rc->route, rc->query, rc->body, rc->body_len);
		break;
	}
	case REPLAY_SEEN:
		metrics_refusal(&c->w->metrics, REF_REPLAY, "peer %s reused a nonce", c->peer);
		reply_error(c, 401, "bad_auth", "nonce already used");
		break;
	case REPLAY_FULL:
		metrics_refusal(&c->w->metrics, REF_OVERLOADED, "replay store at its bound");
		reply_retry(c, 503, "unavailable", "too many requests in the replay window",
			    RETRY_AFTER_UNAVAILABLE_S);
		break;
	default:
		metrics_refusal(&c->w->metrics, REF_UNAVAILABLE, "replay store unavailable");
		reply_retry(c, 503, "unavailable", "the replay store is unavailable",
			    RETRY_AFTER_UNAVAILABLE_S);
		break;
	}
	free(rc);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct broker *b = w->b;
	struct call *c = calloc(1, sizeof(*c));
	if (!c) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	c->b = b;
	c->w = w;
	c->req = req;
	c->ep = EP_OTHER;
	c->state = CALL_RUNNING;
	http_guard_request_begin(c->w->guard, req);

	const char *uri = evhttp_request_get_uri(req);
	size_t head = strlen(uri);
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
		head += strlen(kv->key) + strlen(kv->value) + 4;
	if (head > API_HEADERS_MAX) {
		metrics_refusal(&c->w->metrics, REF_BAD_REQUEST, "request head of %zu bytes", head);
		reply_error(c, 400, "bad_request", "request line and headers exceed 8192 bytes");
		return;
	}
	const char *qmark = strchr(uri, '?');
	size_t path_len = qmark ? (size_t)(qmark - uri) : strlen(uri);
	const char *query = qmark ? qmark + 1 : NULL;

	const struct route *r = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strlen(routes[i].path) == path_len && !memcmp(routes[i].path, uri, path_len)) {
			r = &routes[i];
			break;
		}
	}
	if (!r) {
		reply_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	c->ep = r->ep;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	if (method != r->method) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", method_name(r->method));
		reply_error(c, 405, "method_not_allowed", "method not allowed on this endpoint");
		return;
	}
	if (!r->auth) {
		if (r->ep == EP_HEALTH) {
			struct evbuffer *body = evbuffer_new();
			if (body)
				evbuffer_add_printf(body, "{\"status\":\"ok\"}");
			reply_json(c, 200, body);
			if (body)
				evbuffer_free(body);
		} else if (r->ep == EP_READY) {
			handle_ready(c);
		} else {
			handle_metrics(c);
		}
		return;
	}

	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t body_len = evbuffer_get_length(in);
	if (body_len > PUBLISH_BODY_MAX) {
		char who[80];
		peer_addr(c, who, sizeof(who));
		metrics_refusal(&c->w->metrics, REF_TOO_LARGE, "%zu-byte body from %s", body_len, who);
		reply_error(c, 413, "too_large", "body exceeds 65536 bytes");
		return;
	}
	const char *body = body_len ? (const char *)evbuffer_pullup(in, -1) : "";
	if (!body) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}

	struct auth_header h;
	const char *hdr = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	const char *fail = NULL;
	if (!hdr)
		fail = "missing Authorization header";
	else if (auth_parse(hdr, strlen(hdr), &h))
		fail = "malformed Authorization header";
	else if (llabs((long long)(h.ts - (int64_t)time(NULL))) > AUTH_MAX_SKEW_S)
		fail = "timestamp outside the allowed clock skew";
	else if (!auth_sig_ok(b->cfg.keys->signal, &h, method_name(method), uri, body, body_len))
		fail = "signature does not verify";
	if (fail) {
		char who[80];
		peer_addr(c, who, sizeof(who));
		metrics_refusal(&c->w->metrics, REF_BAD_AUTH, "%s from %s", fail, who);
		reply_error(c, 401, "bad_auth", fail);
		return;
	}
	memcpy(c->peer, h.peer, sizeof(c->peer));

	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	evhttp_connection_set_closecb(evcon, connection_closed, c);

	if (r->ep == EP_PUBLISH && b->cfg.mailbox->ops->publish_once) {
		/* The mailbox checks the nonce as it publishes. A request refused
		 * before that (rate, body) leaves its nonce unrecorded: its
		 * replay is refused for the same reason again. */
		memcpy(c->nonce, h.nonce, sizeof(c->nonce));
		dispatch(c, r, query, body, body_len);
		return;
	}
	struct replay_ctx *rc = calloc(1, sizeof(*rc));
	if (!rc) {
		reply_retry(c, 503, "unavailable", "out of memory", RETRY_AFTER_UNAVAILABLE_S);
		return;
	}
	rc->call = c;
	rc->route = r;
	rc->query = query;
	rc->body = body;
	rc->body_len = body_len;
	c->pending++;
	b->cfg.replay->ops->check(b->cfg.replay, h.nonce, replay_done, rc);
}

static void guard_refusal(const char *reason, void *arg)
{
	struct worker *w = arg;
	struct broker *b = w->b;
	if (reason[0] == 'c')
		metrics_refusal(&w->metrics, REF_CONNECTION_LIMIT, "%u connections open; accepting paused",
				b->cfg.max_connections);
	else if (reason[0] == 'o')
		metrics_refusal(&w->metrics, REF_OVERLOADED, "over %u MiB of requests arriving at once; connection dropped",
				MAX_INFLIGHT_BYTES >> 20);
	else
		metrics_refusal(&w->metrics, REF_SLOW_REQUEST, "request not complete within %u s; dropped",
				b->cfg.request_timeout_s);
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	ratelimit_sweep(b->rate, clock_mono_ms());
}

struct event_base *broker_event_base_new(void)
{
	/* The changelist folds a request's several epoll_ctl calls into fewer
	 * (measured: about 10% more publishes/s). */
	struct event_config *ec = event_config_new();
	if (!ec)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static int worker_init(struct broker *b, struct worker *w, struct event_base *base)
{
	w->b = b;
	w->base = base;
	w->http = evhttp_new(base);
	if (!w->http)
		return ENOMEM;
	struct http_guard_config gc = {
		.max_connections = b->cfg.max_connections,
		.total = &b->connections,
		.inflight = &b->inflight_bytes,
		.max_inflight = MAX_INFLIGHT_BYTES,
		.request_timeout_s = b->cfg.request_timeout_s,
		.idle_timeout_s = b->cfg.idle_timeout_s,
	};
	int rc = http_guard_new(&w->guard, base, w->http, &gc, guard_refusal, w);
	if (rc)
		return rc;
	evhttp_set_max_headers_size(w->http, MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(w->http, MAX_READ_BODY);
	/* libevent's per-read timer is only a backstop: the guard enforces
	 * the request and idle timeouts, so keep it above both. */
	unsigned backstop = b->cfg.idle_timeout_s > b->cfg.request_timeout_s ? b->cfg.idle_timeout_s
									  : b->cfg.request_timeout_s;
	evhttp_set_timeout(w->http, (int)(backstop + HTTP_BACKSTOP_MARGIN_S));
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
						    EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, "application/json");
	evhttp_set_gencb(w->http, request_cb, w);
	return 0;
}

int broker_new(struct broker **out, struct event_base *base, const struct broker_config *cfg)
{
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return ENOMEM;
	int rc = ENOMEM;
	b->base = base;
	b->cfg = *cfg;
	b->nworkers = cfg->threads ? cfg->threads : 1;
	b->workers = calloc(b->nworkers, sizeof(*b->workers));
	b->rate = ratelimit_new(cfg->publish_rate, cfg->publish_burst);
	b->housekeeping = event_new(base, -1, EV_PERSIST, housekeeping_cb, b);
	struct timeval tv = { RATELIMIT_SWEEP_S, 0 };
	if (!b->workers || !b->rate || !b->housekeeping || event_add(b->housekeeping, &tv))
		goto fail;
	for (size_t i = 0; i < b->nworkers; i++) {
		/* Worker 0 serves on the main loop; the others get loops of
		 * their own, run by their threads from broker_start(). */
		struct event_base *wb = i == 0 ? base : broker_event_base_new();
		if (!wb)
			goto fail;
		if ((rc = worker_init(b, &b->workers[i], wb))) {
			if (i)
				event_base_free(wb);
			b->workers[i].base = NULL;
			goto fail;
		}
	}
	*out = b;
	return 0;
fail:
	broker_free(b);
	return rc ? rc : ENOMEM;
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct evconnlistener *l = arg;
	evconnlistener_enable(l);
}

/* accept() failing (no descriptors left) leaves the socket readable, and
 * libevent would retry at once forever: pause accepting for a moment
 * instead and say so once per pause. */
static void accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	evconnlistener_disable(l);
	log_warn("broker", "accept failed (%s): pausing new connections for %d ms",
		 evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS);
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, accept_resume, l, &tv);
}

/* SO_REUSEPORT would let a second coordinator share the port silently:
 * first make sure nobody holds it. */
static int port_free(const struct sockaddr *sa, int salen)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc = bind(fd, sa, (socklen_t)salen) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

int broker_listen(struct broker *b, const char *addr, uint16_t port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[80];
	if (strchr(addr, ':'))
		snprintf(spec, sizeof(spec), "[%s]:%u", addr, (unsigned)port);
	else
		snprintf(spec, sizeof(spec), "%s:%u", addr, (unsigned)port);
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen)) {
		snprintf(err, errlen, "bad listen address %s", spec);
		return EINVAL;
	}
	int rc = port_free((struct sockaddr *)&ss, sslen);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < b->nworkers; i++) {
		struct worker *w = &b->workers[i];
		unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
		if (b->nworkers > 1)
			flags |= LEV_OPT_REUSEABLE_PORT;
		struct evconnlistener *l = evconnlistener_new_bind(w->base, NULL, NULL, flags, 1024,
								   (struct sockaddr *)&ss, sslen);
		if (!l) {
			int e = errno ? errno : EADDRINUSE;
			snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(e));
			return e;
		}
		if (!evhttp_bind_listener(w->http, l)) {
			evconnlistener_free(l);
			snprintf(err, errlen, "cannot serve HTTP on %s", spec);
			return EINVAL;
		}
		evconnlistener_set_error_cb(l, accept_error);
		http_guard_add_listener(w->guard, l);
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Thread-local bindings must be made on the thread itself: this runs as
 * the first event of each worker's loop, before any connection. */
static void worker_bind(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int rc = w->b->cfg.thread_init(w->b->cfg.thread_init_arg, w->base);
	if (rc) {
		/* Serving unbound would touch another thread's backend state:
		 * better no coordinator than a corrupt one. */
		log_error("broker", "HTTP thread cannot bind to the mailbox backend (%s): exiting",
			  strerror(rc));
		exit(EXIT_FAILURE);
	}
}

int broker_start(struct broker *b, char *err, size_t errlen)
{
	if (b->cfg.thread_init) {
		int rc = b->cfg.thread_init(b->cfg.thread_init_arg, b->base);
		if (rc) {
			snprintf(err, errlen, "cannot bind the mailbox backend: %s", strerror(rc));
			return rc;
		}
	}
	for (size_t i = 1; i < b->nworkers; i++) {
		struct worker *w = &b->workers[i];
		if (b->cfg.thread_init &&
		    event_base_once(w->base, -1, EV_TIMEOUT, worker_bind, w, &(struct timeval){ 0, 0 })) {
			snprintf(err, errlen, "cannot prepare HTTP thread %zu", i);
			return ENOMEM;
		}
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			snprintf(err, errlen, "cannot start HTTP thread %zu: %s", i, strerror(rc));
			return rc;
		}
		w->threaded = true;
	}
	return 0;
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	for (size_t i = 0; b->workers && i < b->nworkers; i++) {
		struct worker *w = &b->workers[i];
		if (w->threaded) {
			event_base_loopexit(w->base, NULL);
			pthread_join(w->thread, NULL);
		}
	}
	for (size_t i = 0; b->workers && i < b->nworkers; i++) {
		struct worker *w = &b->workers[i];
		/* evhttp first: freeing it lets every connection go, which the
		 * guard then releases. */
		if (w->http)
			evhttp_free(w->http);
		http_guard_free(w->guard);
		if (i && w->base)
			event_base_free(w->base);
	}
	free(b->workers);
	if (b->housekeeping)
		event_free(b->housekeeping);
	ratelimit_free(b->rate);
	free(b);
}
