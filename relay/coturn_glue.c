/* The only file of ours that includes coturn's headers: coturn's log sink
 * (TURN_LOG_FUNC_IMPL, see module.mk), the allocation counter, and the
 * inert stand-in for coturn's signal event. It must not change coturn's
 * state; it only reads it under coturn's own locks. */
#include "relay/relay_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common/log.h"
#include "ns_turn_utils.h"
#include "userdb.h"

/* Declared by ns_turn_utils.c through TURN_LOG_FUNC_IMPL. */
void relay_coturn_log(TURN_LOG_LEVEL level, const char *format, va_list args)
	__attribute__((format(printf, 2, 0)));
struct event *relay_coturn_signal_event(struct event_base *base, int sig,
					event_callback_fn cb, void *arg);

/* coturn's INFO level is per-session chatter (and most startup lines):
 * our debug. CONTROL is its "notice": our info. */
static enum log_level map_level(TURN_LOG_LEVEL level)
{
	switch (level) {
	case TURN_LOG_LEVEL_ERROR:
		return LOG_LVL_ERROR;
	case TURN_LOG_LEVEL_WARNING:
		return LOG_LVL_WARN;
	case TURN_LOG_LEVEL_CONTROL:
		return LOG_LVL_INFO;
	case TURN_LOG_LEVEL_INFO:
	default:
		return LOG_LVL_DEBUG;
	}
}

/* Like the coordinator's own refusals (docs/coordinator.md, Logs), a
 * flood must not flood the log: a client retrying a wrong password makes
 * coturn log an error per request. Each coturn call site (its format
 * string's address) may log LOG_SITE_BURST lines per LOG_SITE_WINDOW_S
 * seconds at info and above; the next line admitted says how many were
 * dropped. Debug lines (coturn's INFO) are not limited. */
#define LOG_SITE_WINDOW_S 10
#define LOG_SITE_BURST 5
#define LOG_SITES 256   /* call sites tracked; more are not limited */
#define LOG_SITE_PROBE 8

struct log_site {
	const char *fmt;
	int64_t window;     /* start of the current window, monotonic seconds */
	unsigned shown;     /* lines logged in this window */
	unsigned dropped;   /* lines dropped since the last logged one */
};

static struct log_site log_sites[LOG_SITES];
static pthread_mutex_t log_sites_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns -1 to drop this line, else how many lines were dropped before it. */
static long log_site_admit(const char *fmt)
{
	size_t h = (size_t)(((uintptr_t)fmt >> 2) % LOG_SITES);
	struct log_site *site = NULL;
	struct timespec ts;
	long before = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&log_sites_lock);
	for (size_t i = 0; i < LOG_SITE_PROBE; i++) {
		struct log_site *s = &log_sites[(h + i) % LOG_SITES];

		if (s->fmt == fmt || !s->fmt) {
			site = s;
			break;
		}
	}
	if (site) {
		if (!site->fmt || ts.tv_sec - site->window >= LOG_SITE_WINDOW_S) {
			site->fmt = fmt;
			site->window = ts.tv_sec;
			site->shown = 0;
		}
		if (site->shown >= LOG_SITE_BURST) {
			site->dropped++;
			before = -1;
		} else {
			site->shown++;
			before = site->dropped;
			site->dropped = 0;
		}
	}
	pthread_mutex_unlock(&log_sites_lock);
	return before;
}

void relay_coturn_log(TURN_LOG_LEVEL level, const char *format, va_list args)
{
	enum log_level lvl = map_level(level);
	char buf[2048];
	char *line, *next;
	long dropped = 0;
	va_list ap;
	int n;

	if (lvl > log_get_level())
		return;
	if (lvl != LOG_LVL_DEBUG && (dropped = log_site_admit(format)) < 0)
		return;
	va_copy(ap, args);
	n = vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* coturn pads messages with newlines and sometimes writes several
	 * lines at once: one log line per non-blank line. */
	for (line = buf; line && *line; line = next) {
		char *end;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line && isspace((unsigned char)*line))
			line++;
		end = line + strlen(line);
		while (end > line && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*line)
			continue;
		if (dropped > 0) {
			log_msg(lvl, "relay", "%s (and %ld more like it not logged)", line, dropped);
			dropped = 0;
		} else {
			log_msg(lvl, "relay", "%s", line);
		}
	}
}

uint64_t relay_glue_allocations(void)
{
	realm_params_t *rp = get_realm(NULL);
	vint n;

	if (!rp || !rp->status.alloc_counters)
		return 0;
	/* check_new_allocation_quota()/release_allocation_quota() (userdb.c)
	 * change total_current_allocs under this map's lock. */
	ur_string_map_lock(rp->status.alloc_counters);
	n = rp->status.total_current_allocs;
	ur_string_map_unlock(rp->status.alloc_counters);
	return n > 0 ? (uint64_t)n : 0;
}

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer's hook for built-in suppressions. coturn never frees its
 * event bases, listeners and per-thread state: they live until the
 * process exits. Frames from coturn's sources (built under coturn-src/)
 * are exempt; our own allocations are still checked. A program that
 * needs suppressions of its own must merge them here. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:/coturn-src/\n";
}
#endif

struct event *relay_coturn_signal_event(struct event_base *base, int sig,
					event_callback_fn cb, void *arg)
{
	log_debug("relay", "coturn's handler for signal %d is not installed "
		  "(the coordinator owns signals)", sig);
	/* No fd, no events: event_add() accepts it and it never fires. It
	 * lives as long as coturn; kept here so it stays reachable. */
	static struct event *volatile inert; /* volatile: the store must stay */

	inert = event_new(base, -1, 0, cb, arg);
	return inert;
}
