/* Broker counters and their Prometheus rendering. Owns no memory; must
 * not log per request (refusal logs are rate-limited per reason). */
#include "signaling/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "common/clock.h"
#include "common/log.h"

#define REFUSAL_LOG_INTERVAL_S 10

static const int status_codes[METRICS_STATUS_SLOTS] = {
	200, 202, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503, 0
};

static const char *const endpoint_names[EP_COUNT] = {
	"publish", "poll", "turn", "coordinators", "health", "ready", "metrics", "other"
};

static const char *const refusal_names[REF_COUNT] = {
	"bad_auth", "replay", "bad_request", "forbidden", "too_large", "rate_limited",
	"mailbox_full", "stale_epoch", "overloaded", "unavailable", "connection_limit",
	"slow_request"
};

const char *endpoint_name(enum endpoint ep)
{
	return endpoint_names[ep < EP_COUNT ? ep : EP_OTHER];
}

static int status_slot(int status)
{
	for (int i = 0; status_codes[i]; i++)
		if (status_codes[i] == status)
			return i;
	return METRICS_STATUS_SLOTS - 1; /* "other" */
}

void metrics_request(struct metrics *m, enum endpoint ep, int status)
{
	__atomic_add_fetch(&m->requests[ep < EP_COUNT ? ep : EP_OTHER][status_slot(status)], 1,
			   __ATOMIC_RELAXED);
}

/* Shared by every worker: at most one log line per reason per interval
 * for the whole process. */
static int64_t last_logged[REF_COUNT];
static uint64_t unlogged[REF_COUNT];

void metrics_refusal(struct metrics *m, enum refusal r, const char *fmt, ...)
{
	__atomic_add_fetch(&m->refusals[r], 1, __ATOMIC_RELAXED);
	int64_t now = clock_mono_ms() / 1000;
	int64_t last = __atomic_load_n(&last_logged[r], __ATOMIC_RELAXED);
	if ((last && now - last < REFUSAL_LOG_INTERVAL_S) ||
	    !__atomic_compare_exchange_n(&last_logged[r], &last, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&unlogged[r], 1, __ATOMIC_RELAXED);
		return;
	}
	uint64_t missed = __atomic_exchange_n(&unlogged[r], 0, __ATOMIC_RELAXED);
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/* Stale epochs and full mailboxes are normal protocol events, not
	 * attacks: they are info, the rest warn. */
	enum log_level lvl = (r == REF_STALE_EPOCH || r == REF_MAILBOX_FULL) ? LOG_LVL_INFO : LOG_LVL_WARN;
	if (missed)
		log_msg(lvl, "broker", "refused (%s): %s; %" PRIu64 " more since the last such log",
			refusal_names[r], detail, missed);
	else
		log_msg(lvl, "broker", "refused (%s): %s", refusal_names[r], detail);
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void metrics_render(const struct metrics *const *ms, size_t n, struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP mesh_http_requests_total HTTP requests by endpoint and status.\n"
				 "# TYPE mesh_http_requests_total counter\n");
	for (int ep = 0; ep < EP_COUNT; ep++) {
		for (int s = 0; s < METRICS_STATUS_SLOTS; s++) {
			uint64_t v = 0;
			for (size_t i = 0; i < n; i++)
				v += load(&ms[i]->requests[ep][s]);
			if (!v)
				continue;
			char code[8];
			if (status_codes[s] && s != METRICS_STATUS_SLOTS - 1)
				snprintf(code, sizeof(code), "%d", status_codes[s]);
			else
				snprintf(code, sizeof(code), "other");
			evbuffer_add_printf(out, "mesh_http_requests_total{endpoint=\"%s\",status=\"%s\"} %" PRIu64 "\n",
					    endpoint_names[ep], code, v);
		}
	}
	evbuffer_add_printf(out, "# HELP mesh_refusals_total Requests or connections refused, by reason.\n"
				 "# TYPE mesh_refusals_total counter\n");
	for (int r = 0; r < REF_COUNT; r++) {
		uint64_t v = 0;
		for (size_t i = 0; i < n; i++)
			v += load(&ms[i]->refusals[r]);
		evbuffer_add_printf(out, "mesh_refusals_total{reason=\"%s\"} %" PRIu64 "\n", refusal_names[r], v);
	}
	uint64_t wakes = 0, wake_us = 0;
	for (size_t i = 0; i < n; i++) {
		wakes += load(&ms[i]->wakes);
		wake_us += load(&ms[i]->wake_latency_us_sum);
	}
	evbuffer_add_printf(out, "# HELP mesh_poll_wakes_total Long polls answered by a publish.\n"
				 "# TYPE mesh_poll_wakes_total counter\nmesh_poll_wakes_total %" PRIu64 "\n"
				 "# HELP mesh_poll_wake_seconds_sum Time from publish to woken poll answer.\n"
				 "# TYPE mesh_poll_wake_seconds_sum counter\nmesh_poll_wake_seconds_sum %.6f\n",
			    wakes, (double)wake_us / 1e6);
}
