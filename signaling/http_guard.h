/* Limits libevent's HTTP server does not have on its own: a bound on
 * open connections (accepting pauses at the bound), a deadline for a
 * whole request to arrive once its first byte did (so a client sending
 * a byte a second is dropped), and an idle bound between requests. */
#ifndef MESH_SIGNALING_HTTP_GUARD_H
#define MESH_SIGNALING_HTTP_GUARD_H

#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_request;
struct evconnlistener;
struct http_guard;

struct http_guard_config {
	unsigned max_connections;   /* across every guard sharing total */
	size_t *total;              /* open connections of all guards sharing the bound (atomic) */
	unsigned request_timeout_s; /* first byte to complete request */
	unsigned idle_timeout_s;    /* between requests on a kept-alive connection */
	size_t *inflight;           /* bytes of requests still arriving, all guards (atomic) */
	size_t max_inflight;        /* above it the connection adding more is dropped */
};

/* reason: "connection_limit", "slow_request" or "overloaded" (the
 * in-flight bytes bound); called once per event, the caller rate-limits
 * its logs. */
typedef void (*http_guard_refusal_fn)(const char *reason, void *arg);

int http_guard_new(struct http_guard **out, struct event_base *base, struct evhttp *http,
		   const struct http_guard_config *cfg, http_guard_refusal_fn refusal, void *arg);
/* Registers a listener whose accepting pauses while at the bound. */
void http_guard_add_listener(struct http_guard *g, struct evconnlistener *l);
/* A complete request reached the application / its answer is going out. */
void http_guard_request_begin(struct http_guard *g, struct evhttp_request *req);
void http_guard_request_end(struct http_guard *g, struct evhttp_request *req);
size_t http_guard_connections(const struct http_guard *g);
void http_guard_free(struct http_guard *g);

#endif
