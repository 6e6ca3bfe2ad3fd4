/* Process-wide logger: one line per message on stderr, text or JSON.
 * Owns the level/format settings; must not allocate on the logging path
 * (it is called from coturn's threads and from signal-free contexts). */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level g_level = LOG_LVL_INFO;
static int g_json;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_set_level(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			g_level = (enum log_level)i;
			return 0;
		}
	}
	return EINVAL;
}

int log_set_format(const char *name)
{
	if (strcmp(name, "text") == 0)
		g_json = 0;
	else if (strcmp(name, "json") == 0)
		g_json = 1;
	else
		return EINVAL;
	return 0;
}

enum log_level log_get_level(void)
{
	return g_level;
}

/* Appends src to dst (bounded), escaping for JSON or flattening newlines
 * for text so one message is always one line. */
static size_t append_escaped(char *dst, size_t pos, size_t cap, const char *src, int json)
{
	for (; *src && pos + 7 < cap; src++) {
		unsigned char c = (unsigned char)*src;
		if (json && (c == '"' || c == '\\')) {
			dst[pos++] = '\\';
			dst[pos++] = (char)c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			dst[pos++] = '\\';
			dst[pos++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			pos += (size_t)snprintf(dst + pos, cap - pos, "\\u%04x", c);
		} else {
			dst[pos++] = (char)c;
		}
	}
	dst[pos] = '\0';
	return pos;
}

void log_vmsg(enum log_level lvl, const char *component, const char *fmt, va_list ap)
{
	if (lvl > g_level)
		return;

	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t mlen = strlen(msg);
	while (mlen && (msg[mlen - 1] == '\n' || msg[mlen - 1] == '\r'))
		msg[--mlen] = '\0';

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char ts[96];
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

	char line[4096 + 128];
	size_t pos;
	if (g_json) {
		pos = (size_t)snprintf(line, sizeof(line),
				       "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
				       ts, level_names[lvl], component);
		pos = append_escaped(line, pos, sizeof(line) - 3, msg, 1);
		memcpy(line + pos, "\"}\n", 4);
		pos += 3;
	} else {
		pos = (size_t)snprintf(line, sizeof(line), "%s %-5s %-8s ", ts,
				       level_names[lvl], component);
		pos = append_escaped(line, pos, sizeof(line) - 2, msg, 0);
		line[pos++] = '\n';
		line[pos] = '\0';
	}

	pthread_mutex_lock(&g_lock);
	fwrite(line, 1, pos, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&g_lock);
}

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, component, fmt, ap);
	va_end(ap);
}
