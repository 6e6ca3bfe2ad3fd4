/* The coordinator's options (CONTRACT section 1 plus the operational
 * limits this project adds), parsed and cross-checked. */
#ifndef MESH_COORDINATOR_CONFIG_H
#define MESH_COORDINATOR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/opts.h"

/* CONTRACT section 2: a pair's epoch is forgotten after one hour. */
#define PAIR_IDLE_S 3600
/* CONTRACT section 2: the TURN credential's ttl. */
#define TURN_CREDENTIAL_TTL_S 3600
#define RELAY_ALLOW_MAX 32

struct coord_config {
	const char *listen;
	const char *public_ip;
	uint16_t http_port, stun_port, tls_port;
	const char *tls_cert, *tls_key;
	uint16_t relay_min, relay_max;
	const char *realm;
	const char *secret_file;
	const char *redis_url;
	bool ha;
	const char *sentinels;
	const char *sentinel_master;
	const char *node_id;
	const char *advertise_url;
	unsigned message_ttl_s;
	const char *log_level, *log_format;
	/* Operational limits. */
	char *relay_allow[RELAY_ALLOW_MAX + 1]; /* NULL-terminated CIDR/range list */
	unsigned turn_user_quota, turn_total_quota;
	unsigned publish_rate, publish_burst;
	unsigned max_connections;
	unsigned request_timeout_s, idle_timeout_s;
	unsigned max_queued_mb;
	unsigned max_nonces;
	unsigned http_threads;
	char hostname[256];
};

/* Returns OPTS_OK, OPTS_EXIT_OK (--help/--version printed) or
 * OPTS_EXIT_USAGE (one line on stderr). */
enum opts_result coord_config_parse(struct coord_config *cfg, int argc, char **argv, const char *usage);
void coord_config_release(struct coord_config *cfg);

#endif
