/* Counters of the signaling broker, and refusals that are counted always
 * and logged at most once per interval per reason. Rendered in the
 * Prometheus text format. One struct per HTTP worker thread. */
#ifndef MESH_SIGNALING_METRICS_H
#define MESH_SIGNALING_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;

enum endpoint {
	EP_PUBLISH, EP_POLL, EP_TURN, EP_COORDINATORS, EP_HEALTH, EP_READY, EP_METRICS,
	EP_OTHER, EP_COUNT
};

enum refusal {
	REF_BAD_AUTH, REF_REPLAY, REF_BAD_REQUEST, REF_FORBIDDEN, REF_TOO_LARGE,
	REF_RATE_LIMITED, REF_MAILBOX_FULL, REF_STALE_EPOCH, REF_OVERLOADED,
	REF_UNAVAILABLE, REF_CONNECTION_LIMIT, REF_SLOW_REQUEST, REF_COUNT
};

#define METRICS_STATUS_SLOTS 16

struct metrics {
	uint64_t requests[EP_COUNT][METRICS_STATUS_SLOTS];
	uint64_t refusals[REF_COUNT];
	uint64_t wake_latency_us_sum;
	uint64_t wakes;
};

void metrics_request(struct metrics *m, enum endpoint ep, int status);
/* Counts a refusal; logs "reason: detail" unless this reason was logged
 * in the last REFUSAL_LOG_INTERVAL_S seconds, then says how many went
 * unlogged in between. */
void metrics_refusal(struct metrics *m, enum refusal r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Renders the sum of several workers' metrics; each worker updates its
 * own with relaxed atomics, so reading them from another thread is safe. */
void metrics_render(const struct metrics *const *ms, size_t n, struct evbuffer *out);
const char *endpoint_name(enum endpoint ep);

#endif
