/* The client's admin HTTP API on libre's HTTP server: GET /v1/status
 * (JSON, one entry per peer), GET /metrics (Prometheus text) and
 * GET /v1/health. Read-only; binds the --admin address (loopback by
 * default). See docs/client.md for the fields. */
#ifndef MESH_CLIENT_ADMIN_H
#define MESH_CLIENT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct admin;
struct linkmgr;
struct peer_table;
struct sigclient;

struct admin_config {
	const char *ip;          /* numeric */
	uint16_t port;
	const char *self_id;
	struct peer_table *peers; /* referenced */
	const struct linkmgr *lm; /* may be NULL at first: admin_set_linkmgr */
	const struct sigclient *sig; /* may be NULL */
	bool relay_only, no_relay; /* --relay-only / --no-relay, named in the "why" summaries */
};

/* Returns 0, or an errno with one line in err (e.g. address in use). */
int admin_alloc(struct admin **ap, const struct admin_config *cfg, char *err,
		size_t errlen);
void admin_set_sources(struct admin *a, const struct linkmgr *lm,
		       const struct sigclient *sig);

#endif
