/* The mailbox interface: where published signaling messages wait for
 * their recipient. One small table of operations with one implementation
 * per backend (mailbox_mem.c in memory, a Redis one for clusters). Every
 * operation completes through a callback, which the memory backend calls
 * before returning and a networked backend calls later from the event
 * loop. The epoch rules of CONTRACT section 2 live in each backend's
 * publish (atomic where the backend needs it), and the conformance test
 * holds every backend to the same rules. */
#ifndef MESH_SIGNALING_MAILBOX_H
#define MESH_SIGNALING_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signaling/wire.h"

struct event_base;
struct mailbox;
struct mb_watch;

enum mb_status {
	MB_OK = 0,
	MB_STALE,       /* epoch below the pair's current one: nothing queued */
	MB_FULL,        /* recipient holds MAILBOX_CAP messages: nothing queued */
	MB_OVERLOADED,  /* a global memory bound is reached: retry later */
	MB_UNAVAILABLE, /* backend cannot answer now (no Redis master): retry later */
	MB_BAD_CURSOR,  /* cursor not of this mailbox's format */
	MB_REPLAY,      /* publish_once: the nonce was used before: nothing queued */
};

struct mb_message {
	char id[MSG_ID_MAX];
	char from[PEER_ID_MAX + 1];
	char to[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	char psig[SIG_HEX_LEN + 1];
	const char *payload;
	size_t payload_len;
	int64_t age_ms;
};

struct mb_publish_result {
	enum mb_status status;
	char id[MSG_ID_MAX]; /* MB_OK */
	uint64_t epoch;      /* MB_OK: the queued epoch; MB_STALE: the current one */
};

/* msgs are valid only during the callback. cursor: the id of the last
 * message returned, or the acknowledged cursor when none, or "". */
struct mb_fetch_result {
	enum mb_status status;
	const struct mb_message *msgs;
	size_t count;
	const char *cursor;
};

typedef void (*mb_publish_cb)(const struct mb_publish_result *res, void *arg);
typedef void (*mb_fetch_cb)(const struct mb_fetch_result *res, void *arg);
typedef void (*mb_wake_cb)(void *arg);

struct mb_stats {
	uint64_t queued_messages;
	uint64_t queued_bytes;    /* memory charged for them (backend-defined) */
	uint64_t pairs;
	uint64_t expired_total;   /* dropped by TTL */
	uint64_t purged_total;    /* dropped by a newer epoch */
};

struct mailbox_ops {
	const char *name;
	/* Applies the epoch rules and queues msg for msg->to. */
	void (*publish)(struct mailbox *mb, const struct publish_msg *msg, mb_publish_cb cb, void *arg);
	/* Optional (NULL: absent). The replay check of the request's nonce
	 * (32 lower hex) and publish as one step: MB_REPLAY when the nonce
	 * was seen, else as publish. Only for a backend whose nonces are
	 * those of the replay store the broker is given (the Redis pair),
	 * so a publish costs one round trip instead of two. */
	void (*publish_once)(struct mailbox *mb, const struct publish_msg *msg, const char *nonce,
			     mb_publish_cb cb, void *arg);
	/* Deletes everything up to and including ack_cursor (NULL or "": none)
	 * from peer's mailbox, then returns up to max of what remains, oldest
	 * first. */
	void (*fetch)(struct mailbox *mb, const char *peer, const char *ack_cursor, size_t max,
		      mb_fetch_cb cb, void *arg);
	/* Calls wake (once per publish, from the event loop) whenever a
	 * message for peer is queued anywhere in the cluster, until unwatched. */
	struct mb_watch *(*watch)(struct mailbox *mb, const char *peer, mb_wake_cb wake, void *arg);
	void (*unwatch)(struct mailbox *mb, struct mb_watch *w);
	/* Whether the backend answers; why gets a reason when not. */
	bool (*ready)(struct mailbox *mb, char *why, size_t why_len);
	void (*stats)(struct mailbox *mb, struct mb_stats *out);
	void (*free)(struct mailbox *mb);
};

struct mailbox {
	const struct mailbox_ops *ops;
};

struct mailbox_mem_config {
	unsigned message_ttl_s;   /* --message-ttl */
	unsigned pair_idle_s;     /* epoch forgotten after this long without publishes */
	uint64_t max_bytes;       /* bound on all queued payload bytes */
};

/* base runs the sweep timer and the wakes of threads that never called
 * mailbox_mem_bind_thread(); every operation may come from any thread. */
int mailbox_mem_new(struct mailbox **out, struct event_base *base,
		    const struct mailbox_mem_config *cfg);
/* What one queued message of payload_len bytes counts against max_bytes
 * (and in mb_stats.queued_bytes): its payload and its bookkeeping. */
uint64_t mailbox_mem_charge(size_t payload_len);
/* Wakes of watches made on this thread fire on this loop. */
void mailbox_mem_bind_thread(struct event_base *base);

#endif
