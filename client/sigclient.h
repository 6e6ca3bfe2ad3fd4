/* The signaling client: talks to the coordinators (CONTRACT section 2) on
 * libre's main loop. Long-polls the mailbox with cursor acknowledgement,
 * publishes signed messages with psig, learns coordinators from
 * /v1/coordinators, fails over when one stops answering, and keeps TURN
 * credentials fresh. Hands the application only messages that passed
 * every check (psig, recipient, known sender, bounds). The message flow
 * and the coordinator rules are in docs/signaling-flow.md. */
#ifndef MESH_CLIENT_SIGCLIENT_H
#define MESH_CLIENT_SIGCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ice.h"
#include "signaling/keys.h"

struct sigclient;

/* A message that passed every check. Strings live until the handler
 * returns. */
struct sig_msg {
	const char *id;       /* the coordinator's message id */
	const char *from;
	const char *to;       /* always our own id */
	const char *kind;
	uint64_t epoch;
	const char *payload;  /* NUL-terminated; payload_len excludes the NUL */
	size_t payload_len;
	const char *psig;
	uint64_t age_ms;      /* how long it was queued */
	const char *coord;    /* URL of the coordinator it came through */
};

struct sigclient_handlers {
	/* Is this peer in the table? Messages from unknown peers are dropped
	 * (and counted) before any psig work. Required. */
	bool (*peer_known)(const char *id, void *arg);
	/* One verified message, oldest first per coordinator. Required. The
	 * cursor acknowledging it is sent only after this returns. */
	void (*message)(const struct sig_msg *m, void *arg);
	/* The coordinator list or a TURN credential changed, or a
	 * coordinator stopped or started answering: fetch
	 * sigclient_ice_servers() again. Never called from inside a
	 * sigclient_* call.
	 * Optional. */
	void (*servers)(struct sigclient *sc, void *arg);
};

struct sigclient_config {
	const char *self_id;           /* --id */
	const struct mesh_keys *keys;  /* signal key (requests), e2e key (psig) */
	const char *coordinators;      /* --coordinator "URL[,URL...]" */
	/* Zero picks the default (docs/signaling-flow.md). */
	uint32_t poll_wait_s;          /* 25 (1..30) */
	uint32_t connect_timeout_ms;   /* 2000 */
	uint32_t publish_deadline_ms;  /* 20000: give up a publish after this */
	uint32_t refresh_ms;           /* 30000: /v1/coordinators (2, 4, 8, 16 s
	                                * after start or a failure first) */
	uint32_t probe_ms;             /* 5000: /v1/health during a long poll */
};

/* Parses the coordinator list (exit-2 errors go to err) and starts
 * polling at once. Host names in --coordinator are resolved here, once,
 * before the main loop runs (getaddrinfo); coordinators learnt later
 * must be numeric. Free with mem_deref. */
int sigclient_alloc(struct sigclient **scp, const struct sigclient_config *cfg,
		    const struct sigclient_handlers *h, void *arg,
		    char *err, size_t errlen);

/* err 0: queued by the coordinators that answered. ESTALE: at least one
 * refused it as stale_epoch; current is the highest "current" it gave.
 * Anything else: no coordinator queued it before the deadline (ETIMEDOUT,
 * ECONNREFUSED...), or it was refused for good (EINVAL bad_request,
 * EPERM forbidden/bad_auth, EMSGSIZE too_large). */
typedef void (sig_publish_h)(int err, uint64_t current, void *arg);

/* Signs (psig with the e2e key, Authorization with the signal key) and
 * publishes. Bounds are checked here: EINVAL for a bad id, kind or epoch,
 * EMSGSIZE for a payload above 16384 bytes, ENOBUFS when too many
 * publishes are outstanding. h may be NULL. */
int sigclient_publish(struct sigclient *sc, const char *to, const char *kind,
		      uint64_t epoch, const char *payload, size_t payload_len,
		      sig_publish_h *h, void *arg);

/* Forgets the result handlers of outstanding publishes made with this
 * arg (the publishes themselves go on). Call before freeing arg. */
void sigclient_cancel(struct sigclient *sc, void *arg);

/* Publishes not finished yet (a shutdown waits for its byes: until this
 * is 0, or its own deadline). */
unsigned sigclient_pending(const struct sigclient *sc);

/* STUN and TURN servers of every coordinator we know that answers (of
 * all of them when none answers), TURN ones with that coordinator's
 * credential. Strings stay valid until the next servers() callback or
 * mem_deref of the client. Returns how many exist. */
size_t sigclient_ice_servers(struct sigclient *sc, struct ice_server *v,
			     size_t max);

struct sigclient_stats {
	uint64_t polls_ok, polls_failed;
	uint64_t delivered;        /* handed to message() */
	uint64_t dup_dropped;      /* the same message again */
	uint64_t psig_dropped;     /* psig wrong */
	uint64_t to_dropped;       /* not addressed to us */
	uint64_t from_dropped;     /* sender not in the peer table, or us */
	uint64_t malformed_dropped; /* a message entry out of bounds */
	uint64_t publish_ok, publish_stale, publish_failed, publish_retries;
	uint64_t failovers;        /* moved to another coordinator (shared mailbox) */
	unsigned coordinators;     /* known */
	unsigned reachable;        /* answering now */
	bool shared;               /* coordinators share one mailbox (--ha) */
};
void sigclient_stats(const struct sigclient *sc, struct sigclient_stats *st);

/* URL of the coordinator the shared-mailbox mode polls now, or the first
 * reachable one in fan-out mode; "" when none answers. */
const char *sigclient_current(const struct sigclient *sc);

#endif
