/* mesh-client's options (CONTRACT section 1), parsed and cross-checked.
 * The table lives in options.c; main.c and status.c only read the result. */
#ifndef MESH_CLIENT_OPTIONS_H
#define MESH_CLIENT_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/opts.h"

#define CLIENT_COORD_MAX 16   /* URLs in --coordinator */
#define CLIENT_URL_MAX   256

struct client_opts {
	const char *id;
	const char *peers;        /* file or inline JSON (peers_load) */
	const char *coordinator;  /* as given */
	const char *secret_file;
	const char *admin;        /* "ADDR:PORT", "off" disables */
	bool relay_only, no_relay;
	const char *log_level, *log_format;
	/* --coordinator split and checked. */
	char coords[CLIENT_COORD_MAX][CLIENT_URL_MAX];
	unsigned n_coords;
	/* --admin split (admin_ip empty when disabled). */
	char admin_ip[64];
	uint16_t admin_port;
};

/* Returns OPTS_OK, OPTS_EXIT_OK (--help/--version printed) or
 * OPTS_EXIT_USAGE (one line on stderr naming the option). */
enum opts_result client_opts_parse(struct client_opts *o, int argc,
				   char **argv);

/* `mesh-client status [--admin ADDR:PORT]`: only --admin. argv[1] is
 * "status". */
enum opts_result client_status_opts_parse(struct client_opts *o, int argc,
					  char **argv);

/* "ADDR:PORT" / "[v6]:PORT" → numeric IP text and port; 0 or -1. */
int client_split_hostport(const char *val, char *ip, size_t ipcap,
			  uint16_t *port);

#endif
