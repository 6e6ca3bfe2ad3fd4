/* Replay protection for request nonces: a nonce may be used once within
 * the authentication window. One interface, one implementation per
 * backend (memory here; Redis shares nonces across coordinators). */
#ifndef MESH_SIGNALING_REPLAY_H
#define MESH_SIGNALING_REPLAY_H

#include <stddef.h>
#include <stdint.h>

enum replay_result {
	REPLAY_FRESH = 0,   /* first use: recorded */
	REPLAY_SEEN,        /* used before within the window: refuse */
	REPLAY_FULL,        /* memory bound reached: refuse, retry later */
	REPLAY_UNAVAILABLE, /* backend unreachable: refuse, retry later */
};

struct replay;
typedef void (*replay_cb)(enum replay_result res, void *arg);

struct replay_ops {
	/* nonce: 32 lower-case hex characters (already validated). Remembers
	 * it for at least 2 * AUTH_MAX_SKEW_S seconds. */
	void (*check)(struct replay *rp, const char *nonce, replay_cb cb, void *arg);
	size_t (*size)(struct replay *rp);
	void (*free)(struct replay *rp);
};

struct replay {
	const struct replay_ops *ops;
};

/* max_entries bounds memory (about 24 bytes an entry). */
int replay_mem_new(struct replay **out, size_t max_entries);

#endif
