/* The per-peer negotiation: which epoch a pair's link belongs to, who
 * offers, who answers, and when a new epoch starts. A pure state machine:
 * events go in (calls below, each with the current wall-clock time), and
 * actions come out through struct neg_actions; no sockets, no timers, no
 * clocks of its own, no logging. It converges by construction, not by
 * timing: only the controlling side (the lexically smaller id) opens an
 * epoch, with an offer; the controlled side answers within that epoch or
 * asks for a new one ("renegotiate"); epochs only grow; anything older
 * than what is current is ignored. Timers only pace retries after loss.
 * The rules and the message flow are in docs/signaling-flow.md. */
#ifndef MESH_CLIENT_NEGOTIATE_H
#define MESH_CLIENT_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message kinds (CONTRACT section 2: ^[a-z]{1,16}$). */
#define NEG_KIND_OFFER  "offer"       /* controlling -> controlled */
#define NEG_KIND_ANSWER "answer"      /* controlled -> controlling */
#define NEG_KIND_RENEG  "renegotiate" /* controlled -> controlling */
#define NEG_KIND_BYE    "bye"         /* either way */

/* Offer and answer payload: {"ice":"<description>","fp":"<sha256 hex>"}.
 * The ICE description is opaque here (docs/ice.md); its bound matches
 * ICE_DESC_MAX in client/ice.h. */
#define NEG_ICE_MAX 8192
#define NEG_FP_LEN 64

enum neg_role {
	NEG_CONTROLLING, /* lexically smaller id: offers, ICE controlling, QUIC client */
	NEG_CONTROLLED,
};

enum neg_phase {
	NEG_INIT,        /* not started */
	NEG_IDLE,        /* controlling: the peer said bye; waits for it to ask */
	NEG_WAITING,     /* controlled: asked for an epoch, waits for an offer */
	NEG_PREPARING,   /* local description being gathered for the epoch */
	NEG_OFFERED,     /* controlling: offer out, waits for the answer */
	NEG_CONNECTING,  /* both descriptions known: ICE and QUIC at work */
	NEG_UP,          /* the link of this epoch is up */
	NEG_BACKOFF,     /* pacing after repeated failures */
	NEG_STOPPED,     /* said bye; does nothing more */
};
const char *neg_phase_name(enum neg_phase ph);

/* The peer's description for an epoch. Strings live during the call. */
struct neg_remote {
	uint64_t epoch;
	const char *ice;
	size_t ice_len;
	const char *fp;  /* 64 lower-case hex */
};

/* Actions. None of them may call back into this negotiation from inside
 * the call: results come back later as events. arg is neg_alloc's. */
struct neg_actions {
	/* Publish a message to the peer (then call neg_publish_result). */
	void (*publish)(const char *kind, uint64_t epoch, const char *payload,
			size_t len, void *arg);
	/* Make the local side of the epoch's link (ICE session, QUIC
	 * identity) and call neg_local_ready when its description is
	 * gathered. Any older epoch's link was torn down before this. */
	void (*link_prepare)(uint64_t epoch, void *arg);
	/* The peer's description for the prepared epoch: start the checks,
	 * then QUIC; call neg_link_up or neg_link_failed. */
	void (*link_connect)(const struct neg_remote *r, void *arg);
	/* Abandon the epoch's link (whatever state it is in). */
	void (*link_down)(uint64_t epoch, const char *why, void *arg);
	/* (Re)arm the one timer: call neg_timeout after ms; 0 cancels. */
	void (*timer)(uint32_t ms, void *arg);
	/* Optional: one line about a decision, for the log. */
	void (*note)(const char *line, void *arg);
};

/* Timers, all in ms; zero picks the default (docs/signaling-flow.md). */
struct neg_timing {
	uint32_t prepare_ms;      /* gathering must end within: 20000 */
	uint32_t offer_retry_ms;  /* first re-offer without an answer: 15000 */
	uint32_t offer_retry_max; /* re-offer backoff cap: 60000 */
	uint32_t offer_reuse_ms;  /* an offer younger than this is resent as is: 15000 */
	uint32_t connect_ms;      /* backstop for ICE+QUIC to come up: 40000 */
	uint32_t wait_retry_ms;   /* first re-ask without an offer: 3000 */
	uint32_t wait_retry_max;  /* re-ask backoff cap: 30000 */
	uint32_t fail_backoff_ms; /* after 2+ failed epochs in a row: 1000 */
	uint32_t fail_backoff_max;/* its cap: 30000 */
	uint32_t answer_resend_ms;/* a duplicate offer resends our answer at most this often: 2000 */
};

struct neg_config {
	const char *self;      /* our id */
	const char *peer;      /* theirs (must differ) */
	const char *fp;        /* our QUIC certificate fingerprint, 64 lower-case hex */
	uint32_t seed;         /* for timer jitter (tests pass a fixed one) */
	struct neg_timing t;
};

struct negotiation;

/* Free with mem_deref (no action is called). */
int neg_alloc(struct negotiation **np, const struct neg_config *cfg,
	      const struct neg_actions *a, void *arg);

/* now_ms is wall-clock milliseconds since 1970 everywhere below: new
 * epochs start at max(now, everything seen + 1), so a restarted side
 * jumps ahead of anything stale without remembering it. */

void neg_start(struct negotiation *n, uint64_t now_ms);
/* Says bye (publishes it) and tears the link down; nothing after. */
void neg_stop(struct negotiation *n, uint64_t now_ms);

/* What became of a received message (for counters and tests). */
enum neg_rx {
	NEG_RX_ACCEPTED,   /* acted on */
	NEG_RX_DUPLICATE,  /* the same epoch and kind again: nothing new */
	NEG_RX_STALE,      /* older than what is current: ignored */
	NEG_RX_MALFORMED,  /* payload out of bounds: ignored */
	NEG_RX_WRONG_ROLE, /* a kind this side never receives: ignored */
	NEG_RX_IGNORED,    /* not started or stopped */
};
const char *neg_rx_name(enum neg_rx rx);

/* A message from the peer that passed the psig check (sigclient.c). */
enum neg_rx neg_recv(struct negotiation *n, uint64_t now_ms, const char *kind,
		     uint64_t epoch, const char *payload, size_t len);

/* The local description of a prepared epoch (stale epochs are ignored). */
void neg_local_ready(struct negotiation *n, uint64_t now_ms, uint64_t epoch,
		     const char *ice, size_t len);
void neg_link_up(struct negotiation *n, uint64_t now_ms, uint64_t epoch);
void neg_link_failed(struct negotiation *n, uint64_t now_ms, uint64_t epoch,
		     const char *why);
/* sigclient's publish result (0, ESTALE with current, or a failure). */
void neg_publish_result(struct negotiation *n, uint64_t now_ms,
			const char *kind, uint64_t epoch, int err,
			uint64_t current);
void neg_timeout(struct negotiation *n, uint64_t now_ms);

enum neg_role neg_role(const struct negotiation *n);
enum neg_phase neg_phase(const struct negotiation *n);
/* The epoch the link belongs to (0 before any): the current offer's on
 * the controlling side, the last accepted offer's on the controlled one. */
uint64_t neg_epoch(const struct negotiation *n);
bool neg_is_up(const struct negotiation *n);

struct neg_stats {
	uint64_t epochs_opened;  /* controlling: epochs started */
	uint64_t offers_sent, offers_resent, answers_sent, answers_resent;
	uint64_t renegs_sent, byes_sent;
	uint64_t rx_accepted, rx_duplicate, rx_stale, rx_malformed, rx_wrong_role;
	uint64_t stale_publishes;  /* 409s from the broker */
	uint64_t link_failures;
};
void neg_stats(const struct negotiation *n, struct neg_stats *st);

/* Payload helpers (pure), exposed for tests and the fuzz harness. */
int neg_desc_encode(char **outp, size_t *lenp, const char *ice, size_t ice_len,
		    const char *fp);  /* *outp: mem_alloc'd; EMSGSIZE, EINVAL */
int neg_desc_decode(const char *payload, size_t len, char **icep,
		    size_t *ice_len, char fp[NEG_FP_LEN + 1]); /* *icep: mem_alloc'd */
/* {"seen":N}; returns false for anything else. */
bool neg_reneg_decode(const char *payload, size_t len, uint64_t *seen);

#endif
