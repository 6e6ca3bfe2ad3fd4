/* Forced first include of every coturn translation unit (module.mk passes
 * -include relay/coturn_prelude.h). It changes two process-wide behaviours
 * of upstream coturn without patching its sources:
 *
 * - exit(): coturn calls exit() from any of its threads on fatal errors
 *   (a listener that cannot bind, a thread that cannot start, a bad
 *   option). Those calls go to relay_coturn_exit(), which logs the reason
 *   through our logger and ends the process with _exit(1) so that no
 *   atexit handler (OpenSSL's cleanup, the coordinator's own) runs while
 *   other threads still use what it frees.
 *
 * - evsignal_new(): mainrelay.c registers SIGUSR2 (certificate reload) on
 *   its listener event_base. libevent delivers signals to only one base
 *   per process, the last one that added a signal or entered its loop;
 *   coturn re-enters its loop every 5 s and would steal SIGTERM/SIGINT
 *   from the coordinator's base. The macro below yields an event that is
 *   never triggered instead.
 *
 * Nothing else belongs here: this file must stay neutral for code that
 * does neither. */
#ifndef MESH_RELAY_COTURN_PRELUDE_H
#define MESH_RELAY_COTURN_PRELUDE_H

#include <stdlib.h>
#include <event2/event.h>

_Noreturn void relay_coturn_exit(int status);
struct event *relay_coturn_signal_event(struct event_base *base, int sig,
					event_callback_fn cb, void *arg);

#define exit(status) relay_coturn_exit(status)

#undef evsignal_new
#define evsignal_new(b, x, cb, arg) relay_coturn_signal_event((b), (x), (cb), (arg))

#endif
