/* The coordinator's option table and the checks that span options.
 * Owns the parsed configuration; must not start anything. */
#include "coordinator/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "signaling/auth.h"

static int parse_relay_ports(const char *val, void *dst, char *err, size_t errlen)
{
	struct coord_config *cfg = dst;
	unsigned a, b;
	char tail;
	if (sscanf(val, "%u-%u%c", &a, &b, &tail) != 2 || a < 1024 || b > 65535 || a > b) {
		snprintf(err, errlen, "must be A-B with 1024 <= A <= B <= 65535");
		return -1;
	}
	cfg->relay_min = (uint16_t)a;
	cfg->relay_max = (uint16_t)b;
	return 0;
}

static int parse_count(const char *val, unsigned long max, unsigned *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (!*val || *val == '-' || errno || *end || v > max) {
		snprintf(err, errlen, "must be a whole number 0..%lu", max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_quota(const char *val, void *dst, char *err, size_t errlen)
{
	return parse_count(val, 1000000, dst, err, errlen);
}

static int parse_positive(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned v;
	if (parse_count(val, 100000000, &v, err, errlen))
		return -1;
	if (v == 0) {
		snprintf(err, errlen, "must be at least 1");
		return -1;
	}
	*(unsigned *)dst = v;
	return 0;
}

/* "auto" (0): chosen by mailbox at start (coordinator/main.c). */
static int parse_threads(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned v;
	if (strcmp(val, "auto") == 0) {
		*(unsigned *)dst = 0;
		return 0;
	}
	if (parse_count(val, 16, &v, err, errlen) || v == 0) {
		snprintf(err, errlen, "must be 1..16 or auto");
		return -1;
	}
	*(unsigned *)dst = v;
	return 0;
}

static int parse_rate(const char *val, void *dst, char *err, size_t errlen)
{
	return parse_count(val, 10000000, dst, err, errlen);
}

static int parse_ttl(const char *val, void *dst, char *err, size_t errlen)
{
	if (opt_parse_seconds(val, dst, err, errlen))
		return -1;
	if (*(unsigned *)dst > 3600) {
		snprintf(err, errlen, "must be 1..3600 seconds");
		return -1;
	}
	return 0;
}

static int parse_node_id(const char *val, void *dst, char *err, size_t errlen)
{
	if (!id_valid(val, strlen(val))) {
		snprintf(err, errlen, "must match ^[A-Za-z0-9._-]{1,64}$");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

static int parse_url(const char *val, void *dst, char *err, size_t errlen)
{
	if ((strncmp(val, "http://", 7) && strncmp(val, "https://", 8)) || strlen(val) > 120 ||
	    strpbrk(val, " \"\\\t\r\n")) {
		snprintf(err, errlen, "must be an http:// or https:// URL of at most 120 characters");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

static int parse_redis_url(const char *val, void *dst, char *err, size_t errlen)
{
	if (strncmp(val, "redis://", 8) || strlen(val) > 200) {
		snprintf(err, errlen, "must be redis://[:password@]host:port[/db]");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

static int parse_file(const char *val, void *dst, char *err, size_t errlen)
{
	if (access(val, R_OK) != 0) {
		snprintf(err, errlen, "cannot read it: %s", strerror(errno));
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

/* "CIDR[,CIDR...]" or "A-B" ranges: stored split, checked for shape
 * here; relay/ converts them for coturn. */
static int parse_allow(const char *val, void *dst, char *err, size_t errlen)
{
	struct coord_config *cfg = dst;
	for (size_t i = 0; cfg->relay_allow[i]; i++) {
		free(cfg->relay_allow[i]);
		cfg->relay_allow[i] = NULL;
	}
	size_t n = 0;
	const char *p = val;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[100];
		if (len == 0 || len >= sizeof(item) || n == RELAY_ALLOW_MAX) {
			snprintf(err, errlen, "must be a list of at most %d CIDR ranges", RELAY_ALLOW_MAX);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		char addr[100];
		unsigned char buf[16];
		unsigned bits = 0;
		char *slash = strchr(item, '/');
		snprintf(addr, sizeof(addr), "%.*s", slash ? (int)(slash - item) : (int)len, item);
		int fam = inet_pton(AF_INET, addr, buf) == 1 ? AF_INET : inet_pton(AF_INET6, addr, buf) == 1 ? AF_INET6 : 0;
		char extra;
		if (!fam || (slash && (sscanf(slash + 1, "%u%c", &bits, &extra) != 1 ||
				       bits > (fam == AF_INET ? 32u : 128u)))) {
			snprintf(err, errlen, "\"%s\" is not an IP address or CIDR range", item);
			return -1;
		}
		cfg->relay_allow[n] = strdup(item);
		if (!cfg->relay_allow[n]) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		n++;
		p = comma ? comma + 1 : p + len;
	}
	return 0;
}

enum opts_result coord_config_parse(struct coord_config *cfg, int argc, char **argv, const char *usage)
{
	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(cfg->hostname, sizeof(cfg->hostname) - 1) != 0 ||
	    !id_valid(cfg->hostname, strlen(cfg->hostname)))
		snprintf(cfg->hostname, sizeof(cfg->hostname), "coordinator");

	const struct opt table[] = {
		{ "listen", "ADDR", "0.0.0.0", "address all listeners bind", opt_parse_ipaddr, &cfg->listen },
		{ "public-ip", "ADDR", NULL, "address put in relayed candidates (coturn's external IP) [default: the listen address]", opt_parse_ipaddr, &cfg->public_ip },
		{ "http-port", "N", "7000", "signaling and admin HTTP API", opt_parse_port, &cfg->http_port },
		{ "stun-port", "N", "3478", "STUN/TURN over UDP and TCP", opt_parse_port, &cfg->stun_port },
		{ "tls-port", "N", "5349", "TURN over TLS (0 turns it off)", opt_parse_port0, &cfg->tls_port },
		{ "tls-cert", "FILE", NULL, "certificate (PEM) for TURN over TLS [default: self-signed at start]", parse_file, &cfg->tls_cert },
		{ "tls-key", "FILE", NULL, "private key (PEM) for --tls-cert", parse_file, &cfg->tls_key },
		{ "relay-ports", "A-B", "49152-65535", "UDP ports for TURN relays", parse_relay_ports, cfg },
		{ "realm", "NAME", "mesh", "TURN realm", opt_parse_string, &cfg->realm },
		{ "secret-file", "FILE", NULL, "the cluster root secret (hex or base64, mode 0600)", opt_parse_string, &cfg->secret_file, true },
		{ "redis", "URL", NULL, "redis://[:password@]host:port[/db] for a shared mailbox [default: in-memory mailbox]", parse_redis_url, &cfg->redis_url },
		{ "ha", NULL, NULL, "HA mode: Redis through Sentinel, coordinator registry", NULL, &cfg->ha },
		{ "sentinel", "H:P[,H:P...]", NULL, "Sentinels to ask for the Redis master (with --ha)", opt_parse_string, &cfg->sentinels },
		{ "sentinel-master", "NAME", "mesh", "Sentinel master name", opt_parse_string, &cfg->sentinel_master },
		{ "node-id", "ID", NULL, "this coordinator's id in the registry [default: hostname]", parse_node_id, &cfg->node_id },
		{ "advertise-url", "URL", NULL, "how clients reach this HTTP API [default: http://<public-ip>:<http-port>]", parse_url, &cfg->advertise_url },
		{ "message-ttl", "S", "120", "seconds a queued signaling message lives (1..3600)", parse_ttl, &cfg->message_ttl_s },
		{ "log-level", "L", "info", "error, warn, info or debug", opt_parse_loglevel, &cfg->log_level },
		{ "log-format", "F", "text", "text or json (one object per line)", opt_parse_logformat, &cfg->log_format },
		{ "relay-allow", "CIDR[,CIDR...]", NULL, "peer ranges TURN may relay to despite the private/loopback deny list", parse_allow, cfg },
		{ "turn-user-quota", "N", "64", "concurrent TURN allocations per credential (0: unlimited)", parse_quota, &cfg->turn_user_quota },
		{ "turn-total-quota", "N", "4096", "concurrent TURN allocations in total (0: unlimited)", parse_quota, &cfg->turn_total_quota },
		{ "publish-rate", "N", "200", "publishes per second per peer (0: unlimited)", parse_rate, &cfg->publish_rate },
		{ "publish-burst", "N", "1000", "publishes a peer may send at once", parse_positive, &cfg->publish_burst },
		{ "max-connections", "N", "4096", "open HTTP connections; accepting pauses above", parse_positive, &cfg->max_connections },
		{ "request-timeout", "S", "10", "seconds for a request to arrive once its first byte did", opt_parse_seconds, &cfg->request_timeout_s },
		{ "idle-timeout", "S", "60", "seconds a kept-alive connection may idle between requests", opt_parse_seconds, &cfg->idle_timeout_s },
		{ "max-queued-mb", "N", "512", "bound on queued payload memory, MiB", parse_positive, &cfg->max_queued_mb },
		{ "http-threads", "N", "auto", "HTTP event loops (1..16; auto: 2 with the in-memory mailbox, 1 with Redis)", parse_threads, &cfg->http_threads },
		{ "max-nonces", "N", "20000000", "bound on nonces remembered against replay", parse_positive, &cfg->max_nonces },
	};
	enum opts_result r = opts_parse(table, sizeof(table) / sizeof(table[0]), argc, argv, 1,
					"coordinator", usage);
	if (r != OPTS_OK)
		return r;

	if (!cfg->node_id)
		cfg->node_id = cfg->hostname;
	if (!cfg->tls_cert != !cfg->tls_key) {
		fprintf(stderr, "coordinator: --tls-cert and --tls-key go together\n");
		return OPTS_EXIT_USAGE;
	}
	if (cfg->ha && !cfg->sentinels) {
		fprintf(stderr, "coordinator: --ha needs --sentinel H:P[,H:P...]\n");
		return OPTS_EXIT_USAGE;
	}
	if (!cfg->ha && cfg->sentinels) {
		fprintf(stderr, "coordinator: --sentinel is only used with --ha\n");
		return OPTS_EXIT_USAGE;
	}
	uint16_t ports[] = { cfg->http_port, cfg->stun_port, cfg->tls_port };
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (ports[i] && ports[i] == ports[j]) {
				fprintf(stderr, "coordinator: --http-port, --stun-port and --tls-port must differ (%u twice)\n",
					(unsigned)ports[i]);
				return OPTS_EXIT_USAGE;
			}
	return OPTS_OK;
}

void coord_config_release(struct coord_config *cfg)
{
	for (size_t i = 0; cfg->relay_allow[i]; i++) {
		free(cfg->relay_allow[i]);
		cfg->relay_allow[i] = NULL;
	}
}
