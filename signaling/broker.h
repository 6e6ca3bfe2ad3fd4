/* The signaling broker: CONTRACT section 2 on libevent's HTTP server.
 * It knows the mailbox and replay store only through their interfaces
 * and the rest of the coordinator (TURN readiness, cluster registry)
 * only through the callbacks below. */
#ifndef MESH_SIGNALING_BROKER_H
#define MESH_SIGNALING_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signaling/keys.h"

struct event_base;
struct evbuffer;
struct mailbox;
struct replay;
struct broker;

struct broker_config {
	const struct mesh_keys *keys;
	struct mailbox *mailbox;   /* borrowed */
	struct replay *replay;     /* borrowed */
	const char *realm;
	unsigned turn_ttl_s;
	unsigned publish_rate;     /* per peer per second, 0: unlimited */
	unsigned publish_burst;
	unsigned max_connections;
	unsigned request_timeout_s;
	unsigned idle_timeout_s;
	unsigned threads;              /* HTTP worker threads (1 for a backend bound to one loop) */
	/* Run on each worker thread (and the main one) before it serves:
	 * binds the mailbox backend to that thread's loop. */
	int (*thread_init)(void *arg, struct event_base *base);
	void *thread_init_arg;
	/* This node, for /v1/coordinators when there is no registry. */
	const char *node_id;
	const char *advertise_url;
	const char *stun_endpoint;     /* "ip:port" */
	const char *turn_tls_endpoint; /* NULL when TLS is off */
	/* Optional hooks. */
	bool (*turn_ready)(void);
	uint64_t (*turn_allocations)(void);
	void (*coordinators_json)(void *arg, struct evbuffer *out); /* appends "[...]" */
	void (*extra_metrics)(void *arg, struct evbuffer *out);
	void *hook_arg;
};

int broker_new(struct broker **out, struct event_base *base, const struct broker_config *cfg);
/* Binds the HTTP API on every worker. Returns 0 or an errno value with a
 * reason in err. */
int broker_listen(struct broker *b, const char *addr, uint16_t port, char *err, size_t errlen);
/* Starts the worker threads (worker 0 runs on the caller's loop). */
int broker_start(struct broker *b, char *err, size_t errlen);
void broker_free(struct broker *b);
/* An event loop set up the way the broker's workers want theirs. */
struct event_base *broker_event_base_new(void);

#endif
