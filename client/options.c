/* mesh-client's option table (CONTRACT section 1) on common/opts.h:
 * every option also from MESH_<NAME>, --help, --version, one-line errors
 * naming the option. Owns parsing and cross-checks only; must not open
 * files, sockets or start anything (main.c does). */
#include "client/options.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static const char USAGE[] = "[options]\n"
	"       mesh-client status [--admin ADDR:PORT]\n\n"
	"Joins the mesh: one QUIC link per peer over the path ICE selects "
	"(direct first, TURN relay\nover UDP, TCP or TLS as fallback), "
	"forwarding the peer table's TCP and UDP ports.\n"
	"`status` prints one row per peer from a running client's admin API.";

static const char STATUS_USAGE[] = "[--admin ADDR:PORT]\n\n"
	"Prints one row per peer (state, path type, RTT, bytes each way, "
	"link uptime, epoch)\nfrom the admin API of the mesh-client running "
	"on this machine.";

int client_split_hostport(const char *val, char *ip, size_t ipcap,
			  uint16_t *port)
{
	const char *colon, *host = val;
	size_t hlen;
	char *end;
	unsigned long p;
	unsigned char buf[16];

	if (val[0] == '[') {
		const char *rb = strchr(val, ']');
		if (!rb || rb[1] != ':')
			return -1;
		host = val + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
	}
	else {
		colon = strrchr(val, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - val);
	}
	if (!hlen || hlen >= ipcap)
		return -1;
	memcpy(ip, host, hlen);
	ip[hlen] = '\0';
	if (inet_pton(AF_INET, ip, buf) != 1 &&
	    inet_pton(AF_INET6, ip, buf) != 1)
		return -1;
	if (!colon[1] || colon[1] < '0' || colon[1] > '9')
		return -1;
	p = strtoul(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

static int parse_admin(const char *val, void *dst, char *err, size_t errlen)
{
	struct client_opts *o = dst;

	if (!strcmp(val, "off")) {
		o->admin = val;
		o->admin_ip[0] = '\0';
		o->admin_port = 0;
		return 0;
	}
	if (client_split_hostport(val, o->admin_ip, sizeof(o->admin_ip),
				  &o->admin_port)) {
		snprintf(err, errlen, "must be a numeric ADDR:PORT "
			 "(e.g. 127.0.0.1:7070) or off");
		return -1;
	}
	o->admin = val;
	return 0;
}

static int parse_id(const char *val, void *dst, char *err, size_t errlen)
{
	size_t n = strlen(val);

	if (n < 1 || n > 64 || strspn(val, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "abcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
		snprintf(err, errlen, "must be 1 to 64 of A-Z a-z 0-9 . _ -");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

/* "http://host[:port][/prefix]" each, comma-separated, no https. */
static int parse_coords(const char *val, void *dst, char *err, size_t errlen)
{
	struct client_opts *o = dst;
	const char *p = val;

	o->n_coords = 0;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (!len) {
			snprintf(err, errlen, "empty URL in the list");
			return -1;
		}
		if (o->n_coords >= CLIENT_COORD_MAX) {
			snprintf(err, errlen, "at most %d URLs", CLIENT_COORD_MAX);
			return -1;
		}
		if (len >= CLIENT_URL_MAX) {
			snprintf(err, errlen, "URL longer than %d bytes",
				 CLIENT_URL_MAX - 1);
			return -1;
		}
		if (len > 8 && !strncmp(p, "https://", 8)) {
			snprintf(err, errlen, "https is not supported "
				 "(the API is signed end to end; use http://)");
			return -1;
		}
		if (len <= 7 || strncmp(p, "http://", 7) ||
		    memchr(p, '?', len) || memchr(p, '#', len) ||
		    memchr(p, '@', len) || memchr(p, ' ', len)) {
			snprintf(err, errlen, "each URL must look like "
				 "http://HOST[:PORT][/PREFIX]");
			return -1;
		}
		memcpy(o->coords[o->n_coords], p, len);
		o->coords[o->n_coords][len] = '\0';
		/* No trailing slash: paths are appended as "/v1/...". */
		while (len > 7 && o->coords[o->n_coords][len - 1] == '/')
			o->coords[o->n_coords][--len] = '\0';
		o->n_coords++;
		if (!comma)
			break;
		p = comma + 1;
		if (!*p) {
			snprintf(err, errlen, "empty URL in the list");
			return -1;
		}
	}
	if (!o->n_coords) {
		snprintf(err, errlen, "needs at least one URL");
		return -1;
	}
	o->coordinator = val;
	return 0;
}

enum opts_result client_opts_parse(struct client_opts *o, int argc,
				   char **argv)
{
	memset(o, 0, sizeof(*o));
	const struct opt table[] = {
		{ "id", "ID", NULL, "this peer's id", parse_id, &o->id, true },
		{ "peers", "FILE-or-JSON", NULL, "the peer table (a file, or inline JSON starting with '{')",
		  opt_parse_string, &o->peers, true },
		{ "coordinator", "URL[,URL...]", NULL, "coordinator HTTP URLs; the rest are learnt from /v1/coordinators",
		  parse_coords, o, true },
		{ "secret-file", "FILE", NULL, "the cluster root secret (hex or base64, mode 0600)",
		  opt_parse_string, &o->secret_file, true },
		{ "admin", "ADDR:PORT", "127.0.0.1:7070", "local status/metrics HTTP (off disables)",
		  parse_admin, o },
		{ "relay-only", NULL, NULL, "use relayed paths only (diagnostics)", NULL, &o->relay_only },
		{ "no-relay", NULL, NULL, "never use relayed paths (diagnostics)", NULL, &o->no_relay },
		{ "log-level", "L", "info", "error, warn, info or debug", opt_parse_loglevel, &o->log_level },
		{ "log-format", "F", "text", "text or json (one object per line)", opt_parse_logformat, &o->log_format },
	};
	enum opts_result r = opts_parse(table, sizeof(table) / sizeof(table[0]),
					argc, argv, 1, "mesh-client", USAGE);
	if (r != OPTS_OK)
		return r;
	if (o->relay_only && o->no_relay) {
		fprintf(stderr, "mesh-client: --relay-only and --no-relay exclude each other\n");
		return OPTS_EXIT_USAGE;
	}
	return OPTS_OK;
}

enum opts_result client_status_opts_parse(struct client_opts *o, int argc,
					  char **argv)
{
	memset(o, 0, sizeof(*o));
	const struct opt table[] = {
		{ "admin", "ADDR:PORT", "127.0.0.1:7070", "the client's admin HTTP address",
		  parse_admin, o },
	};
	enum opts_result r = opts_parse(table, 1, argc, argv, 2,
					"mesh-client status", STATUS_USAGE);
	if (r != OPTS_OK)
		return r;
	if (!o->admin_port) {
		fprintf(stderr, "mesh-client status: --admin: needs an ADDR:PORT, not off\n");
		return OPTS_EXIT_USAGE;
	}
	return OPTS_OK;
}
