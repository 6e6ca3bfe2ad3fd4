/* The embedded coturn STUN/TURN server: started once, runs on its own
 * threads inside the coordinator, configured only from these fields. */
#ifndef MESH_RELAY_RELAY_H
#define MESH_RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_config {
	const char *listen_ip;      /* numeric; "0.0.0.0" binds all */
	const char *public_ip;      /* coturn's external-ip */
	uint16_t stun_port;         /* STUN/TURN over UDP and TCP */
	uint16_t tls_port;          /* TURN over TLS; 0 turns TLS off */
	const char *tls_cert;       /* NULL: generate a self-signed pair at start */
	const char *tls_key;
	uint16_t relay_min, relay_max;
	const char *realm;
	const char *auth_secret;    /* the turn key as lower-case hex */
	const char *const *allow_peers; /* ranges exempt from the peer deny list (docs/relay.md):
					 * "ADDR", "ADDR/LEN", or IPv4 "A.B.C.D-E.F.G.H";
					 * NULL-terminated, may be NULL */
	unsigned user_quota;        /* concurrent allocations per user, 0 = unlimited */
	unsigned total_quota;       /* concurrent allocations in total, 0 = unlimited */
};

/* Starts coturn on its own threads, once per process (EALREADY after).
 * Checks the config, the certificate pair and that the ports are free
 * first. Returns 0 or an errno value with a one-line reason in err. If
 * coturn later stops, the process exits 1 after logging why. */
int relay_start(const struct relay_config *cfg, char *err, size_t errlen);

/* True once the STUN/TURN listeners answer (a real STUN Binding round
 * trip over UDP and a TCP connect, probed every 200 ms until then, every
 * 5 s after; false again after 3 failed probes in a row). Thread-safe. */
bool relay_ready(void);

/* Current TURN allocations (for /metrics). Thread-safe. */
uint64_t relay_allocations(void);

#endif
