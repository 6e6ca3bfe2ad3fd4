/* Cluster mode for the coordinator: a Redis mailbox and replay store
 * (one Redis with --redis, or the Sentinel-chosen master with --ha) and
 * the coordinator registry behind /v1/coordinators. */
#ifndef MESH_HA_HA_H
#define MESH_HA_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct mailbox;
struct replay;
struct mesh_keys;
struct ha;

struct ha_node_info {
	const char *node_id;
	const char *advertise_url;
	const char *stun;     /* "ip:port" */
	const char *turn_udp;
	const char *turn_tcp;
	const char *turn_tls; /* NULL when TLS is off */
};

struct ha_config {
	const char *redis_url;        /* --redis, or NULL */
	bool ha;                      /* --ha */
	const char *sentinels;        /* --sentinel "h:p,h:p" */
	const char *sentinel_master;  /* --sentinel-master (NULL: "mesh") */
	const struct mesh_keys *keys; /* unused: the passwords need the root secret itself */
	/* --secret-file: the Redis and Sentinel passwords are HKDF-SHA256 of
	 * the root secret, info "mesh/v1/redis" / "mesh/v1/sentinel" (see
	 * docs/ha.md). A password in the --redis URL wins over the derived
	 * one. NULL: no AUTH unless the URL has a password. */
	const char *secret_file;
	unsigned message_ttl_s;
	unsigned pair_idle_s;         /* 0: 3600 (CONTRACT section 2) */
	struct ha_node_info self;
};

/* Needs --redis, or --ha with --sentinel (then --redis may still give the
 * password and db). Connects (asynchronously: not ready until a master
 * answers) and hands back the Redis-backed mailbox and replay store,
 * owned by the ha: their ops->free do nothing, ha_free releases them
 * (after the broker that uses them is gone). Pending operations are
 * dropped by ha_free without their callbacks. Returns 0 or an errno
 * value with a one-line reason naming the option. */
int ha_new(struct ha **out, struct event_base *base, const struct ha_config *cfg,
	   struct mailbox **mailbox, struct replay **replay, char *err, size_t errlen);
/* Before broker_free: answers every request still waiting on Redis on
 * the main loop (UNAVAILABLE, so the broker answers 503 and releases its
 * calls) and closes the main loop's connections. A bound worker
 * thread's instance does the same by itself when its thread exits. */
void ha_shutdown(struct ha *ha);

/* After the broker is freed: releases the memory (watches the broker may
 * unwatch while closing connections stay valid until here). Requests
 * still pending without ha_shutdown are dropped without callbacks. */
void ha_free(struct ha *ha);

/* For the broker's thread_init hook: call it on each HTTP worker thread
 * with that thread's loop (the main loop included) before the thread
 * serves requests. A thread other than ha_new's gets its own Redis
 * connections on its loop, so the Redis backend can use several HTTP
 * threads; calls from an unbound thread go to the main loop's instance
 * (single-threaded use: do not bind, or bind only the main loop).
 * Returns 0 or an errno value (the thread then must not serve). */
int ha_bind_thread(struct ha *ha, struct event_base *base);

/* Appends the live coordinators as a JSON array body fragment
 * ("[{...},{...}]") to out, from a cache refreshed in the background. */
void ha_coordinators_json(struct ha *ha, struct evbuffer *out);

/* Appends Prometheus text for the Redis backend. */
void ha_metrics(struct ha *ha, struct evbuffer *out);

#endif
