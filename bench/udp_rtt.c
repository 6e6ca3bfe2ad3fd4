/*
 * udp-rtt: UDP round-trip timing for bench/mesh-bench.sh.
 *
 *   udp-rtt echo --bind IP:PORT
 *       answers every datagram to its sender, unchanged, until SIGTERM/SIGINT.
 *   udp-rtt ping --to IP:PORT [--bind IP:PORT] [--count 1000] [--warmup 20]
 *                [--size 64] [--timeout-ms 1000] [--gap-us 0]
 *       sends one probe at a time (sequence number + CLOCK_MONOTONIC send
 *       time), waits for its echo, and records the round trip. Late answers
 *       to earlier probes are skipped; a probe without an answer within
 *       --timeout-ms counts as lost. The first --warmup probes are not
 *       counted. Prints one machine-readable line:
 *       RESULT sent=N recv=N lost=N min_ms= p50_ms= p90_ms= p99_ms= max_ms= mean_ms=
 *
 * The ping socket is connect()ed to --to, so only answers from that address
 * count (through the mesh they come from the peer's identity port; on the
 * raw path through a NAT's port forward, from the NAT's public address).
 * Exit: 0 when at least one answer came back, 1 otherwise, 2 for bad options.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65507

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static int usage(void)
{
	fprintf(stderr,
		"usage: udp-rtt echo --bind IP:PORT\n"
		"       udp-rtt ping --to IP:PORT [--bind IP:PORT] [--count N] [--warmup N]\n"
		"                    [--size BYTES] [--timeout-ms MS] [--gap-us US]\n");
	return 2;
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static long parse_num(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
	/* nearest rank */
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1e6;
}

static int do_echo(const struct sockaddr_in *bind_sa)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)bind_sa, sizeof(*bind_sa)) < 0) {
		perror("udp-rtt echo: bind");
		return 1;
	}
	static char buf[MAX_SIZE];
	while (!g_stop) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("udp-rtt echo: recvfrom");
			return 1;
		}
		if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl) < 0 && errno != EINTR)
			perror("udp-rtt echo: sendto");
	}
	close(fd);
	return 0;
}

struct probe {
	uint32_t magic;
	uint32_t seq;
	uint64_t t_ns;
};
#define PROBE_MAGIC 0x72747431u /* "rtt1" */

static int do_ping(const struct sockaddr_in *to, const struct sockaddr_in *bind_sa, long count,
		   long warmup, long size, long timeout_ms, long gap_us)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("udp-rtt ping: socket");
		return 1;
	}
	if (bind_sa) {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)bind_sa, sizeof(*bind_sa)) < 0) {
			perror("udp-rtt ping: bind");
			return 1;
		}
	}
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		perror("udp-rtt ping: connect");
		return 1;
	}
	static char buf[MAX_SIZE], rbuf[MAX_SIZE];
	memset(buf, 0x5a, sizeof(buf));
	uint64_t *rtt = calloc((size_t)count, sizeof(*rtt));
	if (!rtt) {
		perror("udp-rtt ping: calloc");
		return 1;
	}
	size_t got = 0;
	long sent = 0, lost = 0;
	for (long i = 0; i < warmup + count && !g_stop; i++) {
		struct probe p = {PROBE_MAGIC, (uint32_t)i, now_ns()};
		memcpy(buf, &p, sizeof(p));
		if (send(fd, buf, (size_t)size, 0) < 0) {
			/* ECONNREFUSED from an earlier ICMP: count as lost, go on */
			if (i >= warmup) {
				sent++;
				lost++;
			}
			usleep(1000);
			continue;
		}
		if (i >= warmup)
			sent++;
		uint64_t deadline = p.t_ns + (uint64_t)timeout_ms * 1000000u;
		int answered = 0;
		for (;;) {
			uint64_t now = now_ns();
			if (now >= deadline || g_stop)
				break;
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int wait_ms = (int)((deadline - now + 999999) / 1000000);
			int r = poll(&pfd, 1, wait_ms);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
			uint64_t t1 = now_ns();
			if (n < (ssize_t)sizeof(struct probe))
				continue;
			struct probe q;
			memcpy(&q, rbuf, sizeof(q));
			if (q.magic != PROBE_MAGIC || q.seq != (uint32_t)i)
				continue; /* a late answer to an earlier probe */
			if (i >= warmup)
				rtt[got++] = t1 - q.t_ns;
			answered = 1;
			break;
		}
		if (!answered && i >= warmup)
			lost++;
		if (gap_us > 0)
			usleep((useconds_t)gap_us);
	}
	close(fd);
	if (got == 0) {
		printf("RESULT sent=%ld recv=0 lost=%ld\n", sent, lost);
		free(rtt);
		return 1;
	}
	qsort(rtt, got, sizeof(*rtt), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < got; i++)
		sum += (double)rtt[i];
	printf("RESULT sent=%ld recv=%zu lost=%ld min_ms=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f\n",
	       sent, got, lost, (double)rtt[0] / 1e6, pct_ms(rtt, got, 50), pct_ms(rtt, got, 90),
	       pct_ms(rtt, got, 99), (double)rtt[got - 1] / 1e6, sum / (double)got / 1e6);
	free(rtt);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *mode = argv[1];
	struct sockaddr_in to, bind_sa;
	int have_to = 0, have_bind = 0;
	long count = 1000, warmup = 20, size = 64, timeout_ms = 1000, gap_us = 0;
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc)
			return usage();
		const char *v = argv[++i];
		if (!strcmp(o, "--to")) {
			if (parse_addr(v, &to) < 0)
				return usage();
			have_to = 1;
		} else if (!strcmp(o, "--bind")) {
			if (parse_addr(v, &bind_sa) < 0)
				return usage();
			have_bind = 1;
		} else if (!strcmp(o, "--count")) {
			if ((count = parse_num(v, 1, 10000000)) < 0)
				return usage();
		} else if (!strcmp(o, "--warmup")) {
			if ((warmup = parse_num(v, 0, 1000000)) < 0)
				return usage();
		} else if (!strcmp(o, "--size")) {
			if ((size = parse_num(v, (long)sizeof(struct probe), MAX_SIZE)) < 0)
				return usage();
		} else if (!strcmp(o, "--timeout-ms")) {
			if ((timeout_ms = parse_num(v, 1, 60000)) < 0)
				return usage();
		} else if (!strcmp(o, "--gap-us")) {
			if ((gap_us = parse_num(v, 0, 10000000)) < 0)
				return usage();
		} else {
			return usage();
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: recvfrom returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!strcmp(mode, "echo")) {
		if (!have_bind)
			return usage();
		return do_echo(&bind_sa);
	}
	if (!strcmp(mode, "ping")) {
		if (!have_to)
			return usage();
		return do_ping(&to, have_bind ? &bind_sa : NULL, count, warmup, size, timeout_ms,
			       gap_us);
	}
	return usage();
}
