/* The link manager: one link per other peer, gluing the negotiation
 * (client/negotiate.h), ICE (client/ice.h), QUIC (client/quic.h) and the
 * forwarder (client/forward.h) together. It owns each link's state, its
 * timers and its reconnects, and keeps the figures the admin API shows.
 * Runs on libre's main loop. See docs/client.md. */
#ifndef MESH_CLIENT_LINK_H
#define MESH_CLIENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/forward.h"
#include "client/ice.h"
#include "signaling/keys.h"

struct linkmgr;
struct peer_table;
struct forward;
struct sigclient;

enum link_state {
	LINK_ST_IDLE = 0,  /* no epoch yet: waiting for an offer, or for our turn to make one */
	LINK_ST_GATHERING, /* an epoch started, ICE gathering candidates */
	LINK_ST_CHECKING,  /* descriptions swapped, connectivity checks */
	LINK_ST_HANDSHAKE, /* a path is selected, QUIC handshake */
	LINK_ST_UP,        /* QUIC connected, forwarder attached */
	LINK_ST_DOWN,      /* lost or failed; a new epoch follows */
	LINK_ST_CLOSED,    /* shut down (SIGTERM) */
};
const char *link_state_name(enum link_state st);

struct sig_msg;

struct linkmgr_config {
	const char *self_id;
	struct peer_table *peers;       /* referenced */
	struct forward *fwd;            /* not referenced: must outlive the manager */
	bool relay_only, no_relay;
};

/* Makes the links (one negotiation each, one QUIC identity for all) but
 * starts nothing: the signaling client is made next, with the handlers
 * below and the manager as their arg, then handed over by linkmgr_start. */
int linkmgr_alloc(struct linkmgr **lmp, const struct linkmgr_config *cfg,
		  char *err, size_t errlen);
/* sig must outlive the manager (free the manager first). Negotiations
 * start once the coordinators' STUN/TURN servers are known (the first
 * servers() callback), or after a short wait without them. */
void linkmgr_start(struct linkmgr *lm, struct sigclient *sig);

/* struct sigclient_handlers members; arg is the manager. */
bool linkmgr_sig_peer_known(const char *id, void *arg);
void linkmgr_sig_message(const struct sig_msg *m, void *arg);
void linkmgr_sig_servers(struct sigclient *sc, void *arg);

/* SIGTERM: tells every peer (negotiation's bye), closes every QUIC
 * connection with CONNECTION_CLOSE, detaches the forwarder, then calls
 * doneh once what was sent has had its chance to leave (bounded: at most
 * about a second). */
typedef void (linkmgr_done_h)(void *arg);
void linkmgr_shutdown(struct linkmgr *lm, linkmgr_done_h *doneh, void *arg);

/* How long a link's last_down_reason may be: an ICE failure or a
 * replacement, with the pair summary ICE had so far (link.c). */
#define LINK_REASON_MAX 256

/* A snapshot of one link for the admin API (i: 0 .. count-1, in peer
 * table order without ourselves). Times are milliseconds. */
struct link_info {
	char peer[65];
	enum link_state state;
	bool controlling;            /* we are the ICE controlling side / QUIC client */
	uint64_t epoch;              /* current epoch, 0 before the first */
	uint64_t epochs;             /* epochs started so far */
	enum ice_path_type path;     /* ICE_PATH_NONE unless checking succeeded */
	char local_cand[64], remote_cand[64];
	uint32_t ice_rtt_ms;         /* from ICE's checks/consent */
	uint64_t quic_srtt_us;       /* QUIC's smoothed RTT, 0 when not up */
	uint64_t wire_tx, wire_rx;   /* QUIC UDP payload bytes of this link */
	size_t streams;              /* QUIC streams held now */
	uint64_t uptime_ms;          /* since the link came up; 0 when not up */
	uint64_t down_ms;            /* since it went down, 0 while up or never up */
	uint64_t ups, downs;         /* times up / lost */
	uint64_t last_outage_ms;     /* how long the last outage lasted */
	uint64_t connect_ms;         /* epoch start -> up, of the current link */
	char last_down_reason[LINK_REASON_MAX];
	struct forward_counters fwd; /* app bytes each way (cumulative) */
};
size_t linkmgr_count(const struct linkmgr *lm);
void linkmgr_info(const struct linkmgr *lm, size_t i, struct link_info *li);

/* Our QUIC certificate fingerprint (the one our offers carry). */
const char *linkmgr_fingerprint(const struct linkmgr *lm);

/* The current (or last) ICE session's candidate pairs and gathering
 * errors, for "why relayed"; 0 / "" when there is none. */
size_t linkmgr_pairs(const struct linkmgr *lm, size_t i,
		     struct ice_pair_info *v, size_t max);
const char *linkmgr_gather_errors(const struct linkmgr *lm, size_t i);

/* Counters of the whole manager for /metrics. */
struct linkmgr_stats {
	uint64_t auth_failed;     /* QUIC handshakes refused for a fingerprint */
	uint64_t offers_rejected; /* offers/answers refused (bad payload, fingerprint) */
	uint64_t ice_failed;      /* ICE sessions that failed or died */
	uint64_t quic_closed;     /* QUIC connections closed (any reason) */
};
void linkmgr_stats(const struct linkmgr *lm, struct linkmgr_stats *st);

#endif
