/* `mesh-client status`: asks the running client's admin API for
 * /v1/status and prints one row per peer (state, path type, RTT, bytes
 * each way, link uptime, epoch). A short blocking program of its own; it
 * must not touch the mesh (read-only, loopback admin address). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/options.h"
#include "client/status.h"

/* The whole request gets this long: the admin API answers from memory. */
#define STATUS_TIMEOUT_MS 3000
#define STATUS_BODY_MAX (4u << 20)

static int connect_to(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		len = sizeof(*s6);
	}
	else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { STATUS_TIMEOUT_MS / 1000,
			      (STATUS_TIMEOUT_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* GET path; returns the body (malloc'd, NUL-terminated) of a 200 answer,
 * or NULL with a reason in err. */
static char *http_get(const char *ip, uint16_t port, const char *path,
		      char *err, size_t errlen)
{
	char req[256];
	char *buf = NULL, *body;
	size_t len = 0, cap = 0;
	int fd, n, status = 0;

	fd = connect_to(ip, port);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s:%u: %s (is mesh-client running with this --admin?)",
			 ip, port, strerror(errno));
		return NULL;
	}
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n"
		     "Connection: close\r\n\r\n", path, ip, port);
	if (write(fd, req, (size_t)n) != n) {
		snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			if (cap > STATUS_BODY_MAX) {
				snprintf(err, errlen, "answer larger than %u bytes", STATUS_BODY_MAX);
				goto fail;
			}
			char *nb = realloc(buf, cap);
			if (!nb) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			snprintf(err, errlen, "reading the answer: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		/* The admin API sends Content-Length; stop once it is all here. */
		char *hend = strstr(buf, "\r\n\r\n");
		const char *cl = hend ? strcasestr(buf, "\r\ncontent-length:") : NULL;
		if (cl && cl < hend &&
		    len >= (size_t)(hend + 4 - buf) + strtoul(cl + 17, NULL, 10))
			break;
	}
	close(fd);
	fd = -1;
	if (!buf || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, "not an HTTP answer");
		goto fail;
	}
	body = strstr(buf, "\r\n\r\n");
	if (status != 200 || !body) {
		snprintf(err, errlen, "%s answered HTTP %d", path, status);
		goto fail;
	}
	body += 4;
	memmove(buf, body, strlen(body) + 1);
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void fmt_bytes(char *out, size_t cap, json_int_t v)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int k = 0;

	while (d >= 1024 && k < 4) {
		d /= 1024;
		k++;
	}
	/* No space inside: one column for scripts (awk). */
	if (k == 0)
		snprintf(out, cap, "%lldB", (long long)v);
	else
		snprintf(out, cap, "%.1f%s", d, u[k]);
}

static void fmt_dur(char *out, size_t cap, double s)
{
	unsigned long t = (unsigned long)s;

	if (s <= 0)
		snprintf(out, cap, "-");
	else if (t < 60)
		snprintf(out, cap, "%.1fs", s);
	else if (t < 3600)
		snprintf(out, cap, "%lum%02lus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(out, cap, "%luh%02lum", t / 3600, (t % 3600) / 60);
	else
		snprintf(out, cap, "%lud%02luh", t / 86400, (t % 86400) / 3600);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int status_main(int argc, char **argv)
{
	struct client_opts o;
	char err[256];
	enum opts_result r = client_status_opts_parse(&o, argc, argv);

	if (r == OPTS_EXIT_OK)
		return 0;
	if (r != OPTS_OK)
		return 2;

	char *body = http_get(o.admin_ip, o.admin_port, "/v1/status", err,
			      sizeof(err));
	if (!body) {
		fprintf(stderr, "mesh-client status: %s\n", err);
		return 1;
	}
	json_error_t je;
	json_t *root = json_loads(body, 0, &je);
	free(body);
	json_t *peers = json_object_get(root, "peers");
	if (!root || !json_is_array(peers)) {
		fprintf(stderr, "mesh-client status: the admin API's answer is not the expected JSON\n");
		json_decref(root);
		return 1;
	}

	printf("%s: %lld of %lld links up, peer table %s, version %s\n",
	       jstr(root, "id"),
	       (long long)json_integer_value(json_object_get(root, "links_up")),
	       (long long)json_integer_value(json_object_get(root, "links")),
	       jstr(root, "peers_digest"), jstr(root, "version"));
	printf("%-16s %-10s %-10s %9s %11s %11s %9s %15s\n", "PEER", "STATE",
	       "PATH", "RTT", "TX", "RX", "UPTIME", "EPOCH");
	size_t i;
	json_t *p;
	json_array_foreach(peers, i, p) {
		char tx[32], rx[32], up[32], rtt[32];
		const char *state = jstr(p, "state");
		bool is_up = !strcmp(state, "up");

		fmt_bytes(tx, sizeof(tx), json_integer_value(json_object_get(p, "bytes_tx")));
		fmt_bytes(rx, sizeof(rx), json_integer_value(json_object_get(p, "bytes_rx")));
		fmt_dur(up, sizeof(up), json_number_value(json_object_get(p, "uptime_s")));
		double ms = json_number_value(json_object_get(p, "rtt_ms"));
		if (ms > 0)
			snprintf(rtt, sizeof(rtt), "%.2fms", ms);
		else
			snprintf(rtt, sizeof(rtt), "-");
		printf("%-16s %-10s %-10s %9s %11s %11s %9s %15llu\n",
		       jstr(p, "peer"), state,
		       is_up || strcmp(jstr(p, "path"), "none") ? jstr(p, "path") : "-",
		       rtt, tx, rx, up,
		       (unsigned long long)json_integer_value(json_object_get(p, "epoch")));
	}
	/* What an operator needs next to the table: why links are down or
	 * relayed. */
	json_array_foreach(peers, i, p) {
		const char *state = jstr(p, "state");
		json_t *why = json_object_get(p, "why_relayed");
		json_t *why_not = json_object_get(p, "why_not_up");
		double down_s = json_number_value(json_object_get(p, "down_s"));
		char dur[48] = "";

		/* down_s counts from the last time the link was lost: a link
		 * never up has none to show. */
		if (down_s > 0)
			snprintf(dur, sizeof(dur), " for %.1fs", down_s);
		if (strcmp(state, "up") && jstr(p, "last_down_reason")[0])
			printf("  %s: %s%s: %s\n", jstr(p, "peer"), state, dur,
			       jstr(p, "last_down_reason"));
		if (why_not)
			printf("  %s: not up: %s\n", jstr(p, "peer"),
			       jstr(why_not, "summary"));
		if (why)
			printf("  %s: relayed: %s\n", jstr(p, "peer"),
			       jstr(why, "summary"));
	}
	json_decref(root);
	return 0;
}
