/* A simulated two-peer world for the negotiation state machine: a fake
 * broker with CONTRACT section 2's per-pair epoch rules, mailboxes with
 * cursor acknowledgement, message delays, duplicated and reordered
 * deliveries, lost publish answers, simulated ICE links that only come up
 * when both sides hold each other's description of the same epoch,
 * kill -9, graceful stop, clock skew, timers. Discrete events in
 * simulated time: deterministic for a seed. Messages go through the real
 * psig check of sigclient.c (sig_msg_check). Peer 0 is "alpha" (the
 * controlling side), peer 1 "bravo". */
#ifndef MESH_TESTS_NEG_SIM_H
#define MESH_TESTS_NEG_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/negotiate.h"

struct sim_cfg {
	uint32_t seed;
	uint32_t msg_min, msg_max;         /* publish -> queued at the broker */
	uint32_t poll_min, poll_max;       /* queued -> delivered */
	uint32_t result_min, result_max;   /* queued -> publish answer back */
	uint32_t gather_min, gather_max;   /* link_prepare -> local description */
	uint32_t connect_min, connect_max; /* both described -> link up */
	uint32_t dead_min, dead_max;       /* the other side gone -> link failed */
	uint32_t ice_timeout;              /* described, no match -> failed */
	unsigned p_dup;          /* % of deliveries not acknowledged (delivered again) */
	unsigned p_reorder;      /* % of batches shuffled */
	unsigned p_lost_result;  /* % of publish answers lost (the client resends) */
	unsigned p_lost_publish; /* % of publishes lost for good (EIO to the sender) */
	unsigned p_vanish;       /* % of accepted publishes never delivered (a
				  * coordinator died with its mailbox) */
	int64_t skew[2];         /* clock offset of each peer, ms */
	uint32_t ttl_ms;         /* queued messages expire (120000) */
};

/* Defaults: tens of ms for messages, 20-200 ms gathering, no loss. */
void sim_cfg_default(struct sim_cfg *c, uint32_t seed);

struct sim;

struct sim *sim_new(const struct sim_cfg *cfg);
void sim_free(struct sim *s);

/* (Re)start peer p after delay ms with a fresh state machine. */
void sim_start(struct sim *s, int p, uint64_t delay_ms);
/* kill -9: state gone, in-flight publishes may or may not land. */
void sim_kill(struct sim *s, int p);
/* SIGTERM: neg_stop (bye), then gone. */
void sim_stop(struct sim *s, int p);
/* The path dies under an up link: both sides notice after dead_min..max. */
void sim_path_fail(struct sim *s);
/* Queues a message for peer `to` as if published by from_id. */
void sim_inject(struct sim *s, int to, const char *from_id, const char *to_id,
		const char *kind, uint64_t epoch, const char *payload,
		bool bad_psig);

uint64_t sim_now(const struct sim *s);
void sim_run_for(struct sim *s, uint64_t ms);
/* Runs until both peers are up in the same epoch on a real (simulated)
 * link; returns the simulated ms it took, or UINT64_MAX after limit. */
uint64_t sim_run_until_converged(struct sim *s, uint64_t limit_ms);
bool sim_converged(const struct sim *s, uint64_t *epoch);

/* First broken invariant seen (both up in different epochs, up without
 * a link...), or NULL. */
const char *sim_violation(const struct sim *s);

struct negotiation *sim_neg(struct sim *s, int p);
bool sim_alive(const struct sim *s, int p);

struct sim_counts {
	uint64_t delivered, psig_dropped, to_dropped, from_dropped;
	uint64_t publishes, stale_409, purged;
	uint64_t links_up;
	uint64_t epochs_opened;  /* by every incarnation of alpha */
};
void sim_counts(const struct sim *s, struct sim_counts *c);

/* The last lines of the world's log (events and the machines' notes). */
void sim_dump(const struct sim *s, FILE *f, unsigned lines);

#endif
