/* ICE for one peer link (RFC 8445, full agent, regular nomination): gathers
 * host, server-reflexive and relayed candidates (TURN over UDP, TCP and
 * TLS, RFC 8656), runs the connectivity checks, prefers any direct pair to
 * a relayed one, and then carries datagrams over the selected pair as a
 * struct mesh_path while consent freshness (RFC 7675) watches it. One
 * session per epoch; everything runs on libre's main loop. See docs/ice.md
 * for the description format, the timers and the failure reasons. */
#ifndef MESH_CLIENT_ICE_H
#define MESH_CLIENT_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/path.h"

struct ice_session;

/* One entry of a coordinator's "stun", "turn_udp", "turn_tcp" or
 * "turn_tls" list (CONTRACT section 2, GET /v1/coordinators). */
enum ice_server_kind {
	ICE_SRV_STUN,
	ICE_SRV_TURN_UDP,
	ICE_SRV_TURN_TCP,
	ICE_SRV_TURN_TLS,
};

struct ice_server {
	enum ice_server_kind kind;
	const char *addr;     /* "IP:PORT" or "[IPv6]:PORT"; copied */
	const char *username; /* TURN: the GET /v1/turn credential; copied */
	const char *password;
};

/* The selected pair's kind, with the names of CONTRACT section 1. */
enum ice_path_type {
	ICE_PATH_NONE = 0,
	ICE_PATH_HOST,
	ICE_PATH_SRFLX,
	ICE_PATH_PRFLX,
	ICE_PATH_RELAY_UDP,
	ICE_PATH_RELAY_TCP,
	ICE_PATH_RELAY_TLS,
};
const char *ice_path_type_name(enum ice_path_type t); /* "none" for NONE */

enum ice_state {
	ICE_ST_GATHERING, /* candidates being gathered */
	ICE_ST_GATHERED,  /* local description ready, waiting for the remote one */
	ICE_ST_CHECKING,  /* connectivity checks running */
	ICE_ST_CONNECTED, /* a pair is selected: the path carries datagrams */
	ICE_ST_FAILED,    /* terminal: failed() was (or is about to be) called */
};
const char *ice_state_name(enum ice_state st);

struct ice_config {
	bool controlling;  /* the lexically smaller peer id (CONTRACT section 4) */
	const char *name;  /* for log lines: usually the remote peer id */
	const struct ice_server *servers; /* every known coordinator's servers */
	size_t n_servers;
	bool relay_only;   /* --relay-only: only relayed local candidates */
	bool no_relay;     /* --no-relay: no TURN, and no pair with a remote relay */
	/* Host candidates from these addresses ("IP") instead of every
	 * non-loopback interface address. */
	const char *const *host_addrs;
	size_t n_host_addrs;
	bool allow_loopback; /* tests only: loopback candidates are accepted */
	/* Zero picks the documented default of each (docs/ice.md). */
	uint32_t relay_wait_ms;      /* direct pairs' head start: 2500 */
	uint32_t consent_timeout_ms; /* dead after this without consent: 15000 */
	uint32_t connect_timeout_ms; /* checks give up after: 15000 */
	/* Optional: keep using this path object (from an earlier session's
	 * ice_session_path()) so a connection on it survives the new epoch. */
	struct mesh_path *path;
};

struct ice_handlers {
	/* The local description is ready (ice_session_local_desc). */
	void (*gathered)(struct ice_session *s, void *arg);
	/* A pair is selected; the path sends and receives from now on. */
	void (*connected)(struct ice_session *s, void *arg);
	/* Terminal: no pair, or the selected one died (consent expired, relay
	 * lost). reason is one line. The caller starts a new epoch. */
	void (*failed)(struct ice_session *s, int err, const char *reason,
		       void *arg);
};
/* Handlers always run from a libre timer, never inside a call into this
 * API, so each of them may mem_deref the session. */

int ice_session_alloc(struct ice_session **sp, const struct ice_config *cfg,
		      const struct ice_handlers *h, void *arg);

/* NULL until gathered. The description format is in docs/ice.md; it is at
 * most ICE_DESC_MAX bytes. */
#define ICE_DESC_MAX 8192
const char *ice_session_local_desc(const struct ice_session *s);

/* The peer's description (one per session). Checks start once both sides'
 * descriptions are known. EBADMSG: malformed; EALREADY: already set. */
int ice_session_set_remote(struct ice_session *s, const char *desc,
			   size_t len);

/* Stable for the session's life (and beyond, for anyone holding a mem_ref
 * on it): send() answers ENOTCONN until a pair is selected and after the
 * session failed. */
struct mesh_path *ice_session_path(struct ice_session *s);

enum ice_state ice_session_state(const struct ice_session *s);
enum ice_path_type ice_session_path_type(const struct ice_session *s);
bool ice_session_controlling(const struct ice_session *s);

/* "srflx 198.18.0.101:40000" style strings of the selected pair's local
 * and remote candidate; "" before selection. */
const char *ice_session_local_cand(const struct ice_session *s);
const char *ice_session_remote_cand(const struct ice_session *s);

/* Round-trip time of the selected pair from the checks and the consent
 * checks (ms, smoothed); 0 when unknown. */
uint32_t ice_session_rtt_ms(const struct ice_session *s);

struct ice_times {
	uint64_t gathered_ms;   /* alloc -> local description ready */
	uint64_t checks_ms;     /* alloc -> checks started (both descriptions) */
	uint64_t connected_ms;  /* alloc -> pair selected; 0 if not yet */
};
void ice_session_times(const struct ice_session *s, struct ice_times *t);

struct ice_path_stats {
	uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes;
	uint64_t tx_errors;   /* send() refused by the socket or relay */
	uint64_t rx_dropped;  /* datagrams from no checked pair */
};
void ice_session_path_stats(const struct ice_session *s,
			    struct ice_path_stats *st);

/* Every candidate pair tried, for the admin API's "why relayed". */
struct ice_pair_info {
	char local[64];      /* "host 198.18.1.10:40000", "relay-tcp 198.18.0.10:49200" */
	char remote[64];
	enum ice_path_type type; /* what the pair would have been */
	const char *state;   /* "waiting", "in-progress", "succeeded", "failed", "cancelled" */
	char error[80];      /* why it failed or was not needed; "" otherwise */
	unsigned checks;     /* binding requests sent on it */
	uint32_t rtt_ms;     /* 0 if it never answered */
	bool nominated;
	bool selected;
};
/* Fills up to max entries, best pair first; returns how many pairs exist. */
size_t ice_session_pairs(const struct ice_session *s, struct ice_pair_info *v,
			 size_t max);

/* Why each relay could not be had (gathering problems), one line, or "". */
const char *ice_session_gather_errors(const struct ice_session *s);

#endif
