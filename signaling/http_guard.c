/* Connection accounting for the HTTP server. Each connection's
 * bufferevent is made here (evhttp_set_bevcb) and held with one extra
 * reference, so its pointer stays valid until the sweep sees that evhttp
 * has let it go (its callbacks cleared) and drops the reference, which
 * closes the socket (evhttp has already shut its write side, so the
 * client sees the end at once). A callback on the input buffer marks
 * when a request's first byte arrives. Owns the trackers and that one
 * reference; must not free or close anything evhttp still uses (a
 * stalled connection is shut down at the socket; evhttp cleans up). */
#include "signaling/http_guard.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/clock.h"
#include "common/strmap.h"

/* Also how late a let-go socket may close: keep it short. */
#define SWEEP_INTERVAL_MS 250
#define MAX_LISTENERS 4

enum conn_state { CONN_IDLE, CONN_RECEIVING, CONN_SERVING, CONN_CLOSING };

struct tracker {
	LIST_ENTRY(tracker) link;
	struct http_guard *guard;
	struct bufferevent *bev; /* evhttp's; we hold one reference */
	enum conn_state state;
	int64_t since_ms;        /* when the state began (monotonic) */
	size_t received;         /* bytes of the request now arriving */
};

struct http_guard {
	struct event_base *base;
	struct http_guard_config cfg;
	LIST_HEAD(, tracker) conns;
	size_t count;     /* this guard's connections */
	size_t own_total; /* the shared total when nobody else shares it */
	size_t own_inflight;
	struct strmap *by_bev;
	struct evconnlistener *listeners[MAX_LISTENERS];
	size_t nlisteners;
	bool paused;
	struct event *sweep;
	http_guard_refusal_fn refusal;
	void *refusal_arg;
};


static void bev_key(const struct bufferevent *bev, char out[32])
{
	snprintf(out, 32, "%p", (const void *)bev);
}

static void set_paused(struct http_guard *g, bool paused)
{
	if (g->paused == paused)
		return;
	g->paused = paused;
	for (size_t i = 0; i < g->nlisteners; i++) {
		if (paused)
			evconnlistener_disable(g->listeners[i]);
		else
			evconnlistener_enable(g->listeners[i]);
	}
	if (paused && g->refusal)
		g->refusal("connection_limit", g->refusal_arg);
}

static void drop_connection(struct tracker *t)
{
	evutil_socket_t sock = bufferevent_getfd(t->bev);
	if (sock >= 0)
		shutdown(sock, SHUT_RDWR);
	t->state = CONN_CLOSING;
}

static void forget_received(struct tracker *t)
{
	if (t->received) {
		__atomic_sub_fetch(t->guard->cfg.inflight, t->received, __ATOMIC_RELAXED);
		t->received = 0;
	}
}

static void input_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct tracker *t = arg;
	struct http_guard *g = t->guard;
	if (!info->n_added || t->state == CONN_CLOSING)
		return;
	if (t->state == CONN_IDLE) {
		t->state = CONN_RECEIVING;
		t->since_ms = clock_mono_ms();
	}
	if (t->state != CONN_RECEIVING)
		return;
	/* libevent holds a request's bytes until it is whole; all requests
	 * arriving at once share one bound. */
	t->received += info->n_added;
	if (__atomic_add_fetch(g->cfg.inflight, info->n_added, __ATOMIC_RELAXED) > g->cfg.max_inflight) {
		forget_received(t);
		drop_connection(t);
		if (g->refusal)
			g->refusal("overloaded", g->refusal_arg);
	}
}

static void tracker_release(struct http_guard *g, struct tracker *t)
{
	char key[32];
	bev_key(t->bev, key);
	strmap_del(g->by_bev, key);
	LIST_REMOVE(t, link);
	__atomic_sub_fetch(&g->count, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(g->cfg.total, 1, __ATOMIC_RELAXED);
	forget_received(t);
	evbuffer_remove_cb(bufferevent_get_input(t->bev), input_added, t);
	bufferevent_disable(t->bev, EV_READ | EV_WRITE);
	bufferevent_decref(t->bev); /* the last reference: closes the socket */
	free(t);
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	struct http_guard *g = arg;
	struct tracker *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		free(t);
		return NULL;
	}
	t->guard = g;
	t->bev = bev;
	t->state = CONN_IDLE;
	t->since_ms = clock_mono_ms();
	char key[32];
	bev_key(bev, key);
	if (strmap_put(g->by_bev, key, t) ||
	    !evbuffer_add_cb(bufferevent_get_input(bev), input_added, t)) {
		/* Serve it untracked rather than refuse it. */
		strmap_del(g->by_bev, key);
		free(t);
		return bev;
	}
	bufferevent_incref(bev);
	LIST_INSERT_HEAD(&g->conns, t, link);
	__atomic_add_fetch(&g->count, 1, __ATOMIC_RELAXED);
	if (__atomic_add_fetch(g->cfg.total, 1, __ATOMIC_RELAXED) >= g->cfg.max_connections)
		set_paused(g, true);
	return bev;
}

static struct tracker *lookup(struct http_guard *g, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (!evcon)
		return NULL;
	char key[32];
	bev_key(evhttp_connection_get_bufferevent(evcon), key);
	return strmap_get(g->by_bev, key);
}

void http_guard_request_begin(struct http_guard *g, struct evhttp_request *req)
{
	struct tracker *t = lookup(g, req);
	if (t) {
		forget_received(t);
		t->state = CONN_SERVING;
		t->since_ms = clock_mono_ms();
	}
}

void http_guard_request_end(struct http_guard *g, struct evhttp_request *req)
{
	struct tracker *t = lookup(g, req);
	if (t) {
		t->state = CONN_IDLE;
		t->since_ms = clock_mono_ms();
	}
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_guard *g = arg;
	int64_t now_ms = clock_mono_ms();
	struct tracker *t, *next;
	for (t = LIST_FIRST(&g->conns); t; t = next) {
		next = LIST_NEXT(t, link);
		bufferevent_event_cb eventcb = NULL;
		bufferevent_getcb(t->bev, NULL, NULL, &eventcb, NULL);
		if (!eventcb) {
			tracker_release(g, t);
			continue;
		}
		long age = (long)((now_ms - t->since_ms) / 1000);
		const char *why = NULL;
		if (t->state == CONN_RECEIVING && age >= (long)g->cfg.request_timeout_s)
			why = "slow_request";
		else if (t->state == CONN_IDLE && age >= (long)g->cfg.idle_timeout_s)
			why = "idle";
		if (!why)
			continue;
		forget_received(t);
		drop_connection(t);
		if (g->refusal && why[0] == 's')
			g->refusal(why, g->refusal_arg);
	}
	/* Other threads' guards share the bound: follow the total both ways. */
	set_paused(g, __atomic_load_n(g->cfg.total, __ATOMIC_RELAXED) >= g->cfg.max_connections);
}

int http_guard_new(struct http_guard **out, struct event_base *base, struct evhttp *http,
		   const struct http_guard_config *cfg, http_guard_refusal_fn refusal, void *arg)
{
	struct http_guard *g = calloc(1, sizeof(*g));
	if (!g)
		return ENOMEM;
	g->base = base;
	g->cfg = *cfg;
	if (g->cfg.max_connections == 0)
		g->cfg.max_connections = 1;
	if (!g->cfg.total)
		g->cfg.total = &g->own_total;
	if (!g->cfg.inflight)
		g->cfg.inflight = &g->own_inflight;
	if (!g->cfg.max_inflight)
		g->cfg.max_inflight = SIZE_MAX;
	g->refusal = refusal;
	g->refusal_arg = arg;
	LIST_INIT(&g->conns);
	g->by_bev = strmap_new();
	g->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, g);
	struct timeval tv = { 0, SWEEP_INTERVAL_MS * 1000 };
	if (!g->by_bev || !g->sweep || event_add(g->sweep, &tv)) {
		http_guard_free(g);
		return ENOMEM;
	}
	evhttp_set_bevcb(http, make_bev, g);
	*out = g;
	return 0;
}

void http_guard_add_listener(struct http_guard *g, struct evconnlistener *l)
{
	if (g->nlisteners < MAX_LISTENERS)
		g->listeners[g->nlisteners++] = l;
}

size_t http_guard_connections(const struct http_guard *g)
{
	/* Read from other threads for /metrics. */
	return __atomic_load_n(&g->count, __ATOMIC_RELAXED);
}

void http_guard_free(struct http_guard *g)
{
	if (!g)
		return;
	/* Called after evhttp_free, which let every connection go: drop our
	 * references. */
	struct tracker *t;
	while ((t = LIST_FIRST(&g->conns)))
		tracker_release(g, t);
	if (g->sweep)
		event_free(g->sweep);
	strmap_free(g->by_bev);
	free(g);
}
