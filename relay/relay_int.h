/* Internals shared by the relay module's files; nothing outside relay/
 * (and its tests) includes this. */
#ifndef MESH_RELAY_RELAY_INT_H
#define MESH_RELAY_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* relay.c */

/* Logs the reason as an error, removes the private temp dir and ends the
 * process with status 1 (_exit: no atexit handler runs while coturn's
 * threads are still alive). Safe from any thread. */
_Noreturn void relay_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Removes the private temp dir (generated key and certificate, coturn's
 * pid file). Idempotent, thread-safe; called once coturn has read them
 * and again at exit. */
void relay_tmpdir_remove(void);

/* Starts fn on a detached thread that blocks every asynchronous signal
 * (and so do the threads it creates): signals stay with the caller's
 * threads. Returns 0 or an errno value with a reason in err. */
int relay_thread_start(void *(*fn)(void *), char *err, size_t errlen);

/* relay_probe.c */

/* Starts the readiness thread probing addr (the UDP and TCP STUN port).
 * Returns 0 or an errno value with a reason in err. */
int relay_probe_start(const struct sockaddr_storage *addr, socklen_t len,
		      char *err, size_t errlen);
bool relay_probe_ready(void);
/* True once the listeners have answered at least once: coturn's startup
 * (its realm and counters included) is complete. */
bool relay_probe_started(void);

/* relay_cert.c */

/* Writes a fresh self-signed ECDSA P-256 certificate and key (mode 0600)
 * as dir/cert.pem and dir/key.pem. Returns 0 or an errno value. */
int relay_cert_generate(const char *dir, char *err, size_t errlen);

/* Loads cert (a PEM chain) and key and checks that they match, the way
 * coturn will. Returns 0 or EINVAL with a reason. */
int relay_cert_check(const char *cert, const char *key, char *err, size_t errlen);

/* coturn_glue.c */

/* The default realm's current allocation count (coturn's quota counter),
 * read under coturn's own lock. Call only once relay_probe_started(). */
uint64_t relay_glue_allocations(void);

/* coturn's main(), renamed by module.mk (-Dmain=coturn_main). */
int coturn_main(int argc, char **argv);

#endif
