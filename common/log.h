/* Process-wide logger shared by both programs: levels, text or JSON lines
 * on stderr, safe to call from any thread (coturn's threads log here). */
#ifndef MESH_COMMON_LOG_H
#define MESH_COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Both return 0, or EINVAL for an unknown name. */
int log_set_level(const char *name);
int log_set_format(const char *name); /* "text" or "json" */
enum log_level log_get_level(void);

/* component: short fixed word ("broker", "relay", "ice"). The message is
 * one line; embedded newlines are escaped. */
void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level lvl, const char *component, const char *fmt,
	      va_list ap);

#define log_error(c, ...) log_msg(LOG_LVL_ERROR, c, __VA_ARGS__)
#define log_warn(c, ...)  log_msg(LOG_LVL_WARN, c, __VA_ARGS__)
#define log_info(c, ...)  log_msg(LOG_LVL_INFO, c, __VA_ARGS__)
#define log_debug(c, ...) \
	do { if (log_get_level() >= LOG_LVL_DEBUG) \
		log_msg(LOG_LVL_DEBUG, c, __VA_ARGS__); } while (0)

#endif
