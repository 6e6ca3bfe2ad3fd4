/* Throughput benchmark for the QUIC carrier (not a test): two processes,
 * each with its own libre main loop and quic_conn, joined by UDP sockets
 * on 127.0.0.1; the client sends N bytes on one stream, the server
 * consumes and counts them and answers at FIN. Prints Gbit/s. Only
 * loopback; no pass/fail. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/wait.h>

#include <re.h>

#include "client/quic.h"
#include "tests/client/quic/testpath.h"

static uint64_t now_ns(void)
{
	struct timespec tp;

	clock_gettime(CLOCK_MONOTONIC, &tp);
	return (uint64_t)tp.tv_sec * 1000000000ULL + (uint64_t)tp.tv_nsec;
}

struct bench {
	bool client;
	struct quic_conn *qc;
	struct carrier *c;
	struct cstream *s;
	uint64_t total;      /* bytes to send */
	uint64_t tx, rx;
	uint64_t t0, t1;
	bool fin_sent, done;
	int err;
	uint8_t buf[65536];
};

static void b_pump(struct bench *b)
{
	while (b->tx < b->total) {
		size_t n = b->total - b->tx < sizeof(b->buf) ?
			(size_t)(b->total - b->tx) : sizeof(b->buf);
		long w = b->c->ops->stream_write(b->s, b->buf, n);

		if (w < 0) {
			b->err = (int)-w;
			re_cancel();
			return;
		}
		b->tx += (uint64_t)w;
		if ((size_t)w < n)
			return; /* wait for writable */
	}
	if (!b->fin_sent) {
		b->fin_sent = true;
		(void)b->c->ops->stream_shutdown_write(b->s);
	}
}

static void s_data(struct cstream *s, const uint8_t *p, size_t n, void *arg)
{
	struct bench *b = arg;

	(void)p;
	b->rx += n;
	b->c->ops->stream_consumed(s, n);
}

static void s_fin(struct cstream *s, void *arg)
{
	struct bench *b = arg;

	if (b->client) {
		b->t1 = now_ns();
		b->done = true;
		re_cancel();
		return;
	}
	/* Server: report what arrived, then end our side too. */
	(void)b->c->ops->stream_write(s, (const uint8_t *)&b->rx, sizeof(b->rx));
	(void)b->c->ops->stream_shutdown_write(s);
}

static void s_reset(struct cstream *s, uint64_t code, void *arg)
{
	struct bench *b = arg;

	(void)s;
	if (!b->client || b->done)
		return; /* the client's close resets the server's stream */
	fprintf(stderr, "quic-bench: stream reset 0x%llx\n", (unsigned long long)code);
	b->err = ECONNRESET;
	re_cancel();
}

static void s_writable(struct cstream *s, void *arg)
{
	(void)s;
	b_pump(arg);
}

static const struct cstream_handlers sh = {
	.data = s_data, .fin = s_fin, .reset = s_reset, .writable = s_writable,
};

static void on_opened(struct cstream *s, void *arg)
{
	struct bench *b = arg;

	b->s = s;
	b->c->ops->stream_set_handlers(s, &sh, b);
}

static const struct carrier_handlers ch = { .stream_opened = on_opened };

static void on_state(struct quic_conn *qc, enum quic_event ev,
		     const struct quic_close_info *ci, void *arg)
{
	struct bench *b = arg;
	int err;

	(void)qc;
	if (ev != QUIC_EV_CONNECTED) {
		if (b->client && !b->done)
			fprintf(stderr, "quic-bench: closed: %s\n", ci->reason);
		if (!b->done && b->client)
			b->err = ECONNABORTED;
		re_cancel();
		return;
	}
	if (!b->client)
		return;
	err = b->c->ops->stream_open(b->c, &b->s);
	if (err) {
		b->err = err;
		re_cancel();
		return;
	}
	b->c->ops->stream_set_handlers(b->s, &sh, b);
	b->t0 = now_ns();
	b_pump(b);
}

static void on_deadline(void *arg)
{
	struct bench *b = arg;

	b->err = ETIMEDOUT;
	re_cancel();
}

static int xchg(int fd, const char *fp, uint16_t port, char *pfp, uint16_t *pport)
{
	char line[128];
	size_t got = 0;
	unsigned p;
	int n = snprintf(line, sizeof(line), "%s %u\n", fp, (unsigned)port);

	if (write(fd, line, (size_t)n) != n)
		return EIO;
	while (got < sizeof(line) - 1) {
		ssize_t r = read(fd, line + got, 1);

		if (r <= 0)
			return EIO;
		if (line[got++] == '\n')
			break;
	}
	line[got] = '\0';
	if (sscanf(line, "%64s %u", pfp, &p) != 2)
		return EPROTO;
	*pport = (uint16_t)p;
	return 0;
}

static int run(bool client, int ctl, uint64_t total, size_t mtu, enum quic_cc cc,
	       double *gbps, struct quic_stats *st)
{
	struct quic_identity *id = NULL;
	struct udppath *u = NULL;
	struct bench *b;
	struct quic_config cfg = { 0 };
	struct tmr deadline;
	char pfp[80];
	uint16_t pport;
	int err;

	b = mem_zalloc(sizeof(*b), NULL);
	if (!b)
		return ENOMEM;
	b->client = client;
	b->total = total;
	tmr_init(&deadline);

	err = quic_identity_new(&id);
	if (!err)
		err = udppath_open(&u, 0, mtu);
	if (!err)
		err = xchg(ctl, quic_identity_fingerprint(id), udppath_port(u),
			   pfp, &pport);
	if (!err)
		err = udppath_connect(u, pport);
	if (err)
		goto out;

	cfg.role = client ? QUIC_ROLE_CLIENT : QUIC_ROLE_SERVER;
	cfg.id = id;
	cfg.remote_fp = pfp;
	cfg.stateh = on_state;
	cfg.cc = cc;
	err = quic_conn_alloc(&b->qc, &cfg, udppath_path(u), &ch, b);
	if (err)
		goto out;
	b->c = quic_carrier(b->qc);

	tmr_start(&deadline, 120000, on_deadline, b);
	(void)re_main(NULL);
	tmr_cancel(&deadline);
	err = b->err;
	if (client && !err && b->done) {
		*gbps = (double)total * 8 / (double)(b->t1 - b->t0);
		quic_conn_stats(b->qc, st);
		quic_conn_close(b->qc, 0, "benchmark done");
	}
 out:
	if (b->s && b->c)
		b->c->ops->stream_release(b->s);
	mem_deref(b->qc);
	mem_deref(u);
	mem_deref(id);
	mem_deref(b);
	return err;
}

static enum quic_cc parse_cc(const char *s)
{
	if (!strcmp(s, "cubic")) return QUIC_CC_CUBIC;
	if (!strcmp(s, "reno")) return QUIC_CC_RENO;
	if (!strcmp(s, "bbr2")) return QUIC_CC_BBR2;
	if (!strcmp(s, "bbr")) return QUIC_CC_BBR;
	return QUIC_CC_DEFAULT;
}

int main(int argc, char **argv)
{
	uint64_t total = 1ULL << 30;
	size_t mtu = 1200;
	const char *ccname = "default (bbr2)";
	int sv[2], opt, err, status = 0;
	double gbps = 0;
	struct quic_stats st = { 0 };
	pid_t pid;

	while ((opt = getopt(argc, argv, "n:m:c:h")) != -1) {
		switch (opt) {
		case 'n': total = strtoull(optarg, NULL, 0); break;
		case 'm': mtu = strtoul(optarg, NULL, 0); break;
		case 'c': ccname = optarg; break;
		default:
			fprintf(stderr, "usage: quic-bench [-n bytes] [-m path mtu] "
				"[-c bbr|bbr2|cubic|reno]\n"
				"  defaults: -n 1073741824 -m 1200\n");
			return 2;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		return 2;
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		close(sv[0]);
		err = libre_init();
		if (!err)
			err = run(false, sv[1], total, mtu, parse_cc(ccname),
				  &gbps, &st);
		libre_close();
		_exit(err ? 1 : 0);
	}
	close(sv[1]);
	err = libre_init();
	if (!err)
		err = run(true, sv[0], total, mtu, parse_cc(ccname), &gbps, &st);
	libre_close();
	if (err)
		kill(pid, SIGTERM);
	(void)waitpid(pid, &status, 0);
	if (err) {
		fprintf(stderr, "quic-bench: %s\n", strerror(err));
		return 1;
	}
	printf("quic-bench: one stream, %llu bytes over UDP 127.0.0.1, path mtu %zu, "
	       "%s: %.2f Gbit/s (srtt %llu us, %llu packets sent)\n",
	       (unsigned long long)total, st.max_udp_payload, ccname, gbps,
	       (unsigned long long)st.srtt_us, (unsigned long long)st.tx_pkts);
	return 0;
}
