/* Tests of the port forwarder (client/forward.c) with two "hosts" in one
 * process: side A is peer w1 on 127.0.0.1, side B is peer w2 on
 * 127.0.0.2, joined by the in-memory carrier pair. Identity ports are
 * disjoint, so both forwarders and both sets of local apps fit in one
 * process; in the VIP plan the VIPs are 127.77.0.1 (w1) and 127.77.0.2. */
#include "tests/client/forward/ftest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <re.h>

#include "client/carrier.h"
#include "client/forward.h"
#include "client/fwd_frame.h"
#include "client/peers.h"
#include "tests/client/forward/carrier_pair.h"

#define HOST_A "127.0.0.1"
#define HOST_B "127.0.0.2"
#define VIP_A  "127.77.0.1"
#define VIP_B  "127.77.0.2"
#define WAIT   3000 /* ms */

struct fx {
	struct peer_table *ta, *tb;
	struct forward *fa, *fb;
	struct carrier_pair *cp;
	uint16_t base; /* identity: w1 base, base+1; w2 base+2, base+3.
			* VIP: allow base (TCP), base+1 (TCP and UDP) */
};

static int fx_open(struct fx *fx, bool vip, const struct carrier_pair_opts *o,
		   bool attach_b)
{
	struct forward_opts oa = { .host = HOST_A }, ob = { .host = HOST_B };
	char json[512], err[256];
	uint16_t b;
	int r;

	memset(fx, 0, sizeof(*fx));
	b = fx->base = ftest_ports(4);
	if (vip)
		snprintf(json, sizeof(json), "{\"vip_net\":\"127.77.0.0/24\","
			 "\"allow\":[{\"port\":%u},{\"port\":%u,\"udp\":true}],"
			 "\"peers\":[{\"id\":\"w1\",\"vip\":1},{\"id\":\"w2\","
			 "\"vip\":2}]}", b, b + 1);
	else
		snprintf(json, sizeof(json), "{\"peers\":[{\"id\":\"w1\","
			 "\"ports\":[%u,%u]},{\"id\":\"w2\",\"ports\":[%u,%u]}]}",
			 b, b + 1, b + 2, b + 3);
	r = peers_parse(&fx->ta, json, strlen(json), "w1", err, sizeof(err));
	if (!r)
		r = peers_parse(&fx->tb, json, strlen(json), "w2", err,
				sizeof(err));
	if (!r)
		r = forward_alloc(&fx->fa, fx->ta, &oa, err, sizeof(err));
	if (!r && attach_b)
		r = forward_alloc(&fx->fb, fx->tb, &ob, err, sizeof(err));
	if (!r)
		r = carrier_pair_alloc(&fx->cp, o);
	if (!r)
		r = forward_attach(fx->fa, "w2", carrier_pair_end(fx->cp, 0));
	if (!r && attach_b)
		r = forward_attach(fx->fb, "w1", carrier_pair_end(fx->cp, 1));
	if (r)
		fprintf(stderr, "  fixture: %s (%s)\n", err, strerror(r));
	return r;
}

static void fx_close(struct fx *fx)
{
	fx->fa = mem_deref(fx->fa);
	fx->fb = mem_deref(fx->fb);
	fx->cp = mem_deref(fx->cp);
	fx->ta = mem_deref(fx->ta);
	fx->tb = mem_deref(fx->tb);
}

static struct forward_counters cnt(struct forward *f, const char *peer)
{
	struct forward_counters c;

	memset(&c, 0, sizeof(c));
	(void)forward_counters(f, peer, &c);
	return c;
}

/* Waits until both forwarders hold no streams (everything closed). */
static bool settled(struct fx *fx)
{
	int i;

	for (i = 0; i < WAIT; i++) {
		struct forward_counters a = cnt(fx->fa, "w2");
		struct forward_counters b = fx->fb ? cnt(fx->fb, "w1") : a;

		if (!a.streams_open && !b.streams_open)
			return true;
		ftest_spin(1);
	}
	fprintf(stderr, "  streams still open: %u %u\n",
		cnt(fx->fa, "w2").streams_open,
		fx->fb ? cnt(fx->fb, "w1").streams_open : 0);
	return false;
}

static ssize_t udp_to(int fd, const void *p, size_t n, const char *ip,
		      uint16_t port)
{
	struct sockaddr_in a;

	ftest_addr(&a, ip, port);
	return sendto(fd, p, n, 0, (struct sockaddr *)&a, sizeof(a));
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i + seed) % 251);
}

/* --- UDP ----------------------------------------------------------------- */

static int t_udp_identity(void)
{
	struct fx fx;
	struct sockaddr_in from;
	char buf[64];
	int a[2] = { -1, -1 }, b[2] = { -1, -1 }, e = -1, rc = 0, k;
	ssize_t r;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	for (k = 0; k < 2; k++) {
		uint16_t pa = (uint16_t)(fx.base + k), pb = (uint16_t)(fx.base + 2 + k);

		a[k] = ftest_udp(HOST_A, pa);
		b[k] = ftest_udp(HOST_B, pb);
		CHECK(a[k] >= 0 && b[k] >= 0);
		/* w1's app sends to w2's identity port on its own host ... */
		CHECK(udp_to(a[k], "ping", 4, HOST_A, pb) == 4);
		r = ftest_recvfrom(b[k], buf, sizeof(buf), &from, WAIT);
		CHECK(r == 4 && !memcmp(buf, "ping", 4));
		/* ... and w2's app sees it from w1's identity port. */
		CHECK(ftest_addr_is(&from, HOST_B, pa));
		/* The reply to that address goes back the same way. */
		CHECK(sendto(b[k], "pong!", 5, 0, (struct sockaddr *)&from,
			     sizeof(from)) == 5);
		r = ftest_recvfrom(a[k], buf, sizeof(buf), &from, WAIT);
		CHECK(r == 5 && !memcmp(buf, "pong!", 5));
		CHECK(ftest_addr_is(&from, HOST_A, pb));
	}
	/* An app sending from any port still appears as w1's identity. */
	e = ftest_udp(HOST_A, 0);
	CHECK(e >= 0);
	CHECK(udp_to(e, "x", 1, HOST_A, fx.base + 2) == 1);
	r = ftest_recvfrom(b[0], buf, sizeof(buf), &from, WAIT);
	CHECK(r == 1 && ftest_addr_is(&from, HOST_B, fx.base));

	CHECK(cnt(fx.fa, "w2").udp_dgrams_tx == 3);
	CHECK(cnt(fx.fa, "w2").udp_dgrams_rx == 2);
	CHECK(cnt(fx.fa, "w2").udp_bytes_tx == 9);
	CHECK(cnt(fx.fb, "w1").udp_dgrams_rx == 3);
	CHECK(cnt(fx.fb, "w1").udp_bytes_tx == 10);
 out:
	for (k = 0; k < 2; k++) {
		if (a[k] >= 0)
			close(a[k]);
		if (b[k] >= 0)
			close(b[k]);
	}
	if (e >= 0)
		close(e);
	fx_close(&fx);
	return rc;
}

static int udp_large(const struct carrier_pair_opts *o)
{
	static const size_t sizes[] = { 0, 1, 1196, 1197, 9000, 65507 };
	struct fx fx;
	struct sockaddr_in from;
	uint8_t *tx = malloc(70000), *rx = malloc(70000);
	int a = -1, b = -1, rc = 0;
	size_t i;
	ssize_t r;

	CHECK(tx && rx);
	CHECK(fx_open(&fx, false, o, true) == 0);
	a = ftest_udp(HOST_A, fx.base);
	b = ftest_udp(HOST_B, fx.base + 2);
	CHECK(a >= 0 && b >= 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		fill(tx, n, (unsigned)i);
		CHECK(udp_to(a, tx, n, HOST_A, fx.base + 2) == (ssize_t)n);
		r = ftest_recvfrom(b, rx, 70000, &from, WAIT);
		if (r != (ssize_t)n)
			fprintf(stderr, "  A->B size %zu: got %zd\n", n, r);
		CHECK(r == (ssize_t)n && !memcmp(tx, rx, n));
		CHECK(ftest_addr_is(&from, HOST_B, fx.base));

		fill(tx, n, (unsigned)i + 100);
		CHECK(udp_to(b, tx, n, HOST_B, fx.base) == (ssize_t)n);
		r = ftest_recvfrom(a, rx, 70000, &from, WAIT);
		if (r != (ssize_t)n)
			fprintf(stderr, "  B->A size %zu: got %zd\n", n, r);
		CHECK(r == (ssize_t)n && !memcmp(tx, rx, n));
		CHECK(ftest_addr_is(&from, HOST_A, fx.base + 2));
	}
	/* 1196 + 4 header bytes fill a 1200-byte datagram; above goes on a
	 * stream of its own. */
	CHECK(cnt(fx.fa, "w2").udp_large_tx == 3);
	CHECK(cnt(fx.fa, "w2").udp_large_rx == 3);
	CHECK(cnt(fx.fa, "w2").udp_dgrams_tx == 6);
	CHECK(settled(&fx));
 out:
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	free(tx);
	free(rx);
	fx_close(&fx);
	return rc;
}

static int t_udp_large(void)
{
	return udp_large(NULL);
}

/* Stream windows and send buffers far below one datagram: the large ones
 * go out in many short writes and still arrive whole. */
static int t_udp_large_small_window(void)
{
	struct carrier_pair_opts o = { .stream_window = 4096,
				       .stream_sndbuf = 1000, .chunk = 700 };

	return udp_large(&o);
}

/* A burst of large datagrams: all arrive (the carrier is not lossy), in
 * any order, none cut. */
static int t_udp_large_burst(void)
{
	enum { N = 40, SZ = 30000, BURST = 4 };
	struct fx fx;
	struct sockaddr_in from;
	uint8_t *tx = malloc(SZ), *rx = malloc(SZ + 10);
	bool seen[N] = { false };
	int a = -1, b = -1, rc = 0, i, j;
	ssize_t r;

	CHECK(tx && rx);
	CHECK(fx_open(&fx, false, NULL, true) == 0);
	a = ftest_udp(HOST_A, fx.base);
	b = ftest_udp(HOST_B, fx.base + 2);
	CHECK(a >= 0 && b >= 0);
	/* In bursts that fit the sockets' default buffers (UDP is dropped,
	 * as anywhere, when the receiving app's buffer is full). */
	for (i = 0; i < N; i++) {
		fill(tx, SZ, (unsigned)i);
		tx[0] = (uint8_t)i;
		CHECK(udp_to(a, tx, SZ, HOST_A, fx.base + 2) == SZ);
		if (i % BURST != BURST - 1)
			continue;
		for (j = 0; j < BURST; j++) {
			r = ftest_recvfrom(b, rx, SZ + 10, &from, WAIT);
			CHECK(r == SZ && rx[0] < N && !seen[rx[0]]);
			seen[rx[0]] = true;
			fill(tx, SZ, rx[0]);
			tx[0] = rx[0];
			CHECK(!memcmp(tx, rx, SZ));
		}
	}
	CHECK(cnt(fx.fa, "w2").drop_backlog == 0);
	CHECK(settled(&fx));
 out:
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	free(tx);
	free(rx);
	fx_close(&fx);
	return rc;
}

static int t_udp_vip(void)
{
	struct fx fx;
	struct sockaddr_in from;
	char buf[64];
	int a = -1, b = -1, b0 = -1, probe = -1, rc = 0;
	uint16_t p;
	ssize_t r;

	CHECK(fx_open(&fx, true, NULL, true) == 0);
	p = (uint16_t)(fx.base + 1);
	a = ftest_udp(HOST_A, p);
	b = ftest_udp(HOST_B, p);
	CHECK(a >= 0 && b >= 0);
	CHECK(udp_to(a, "hi", 2, VIP_B, p) == 2);
	r = ftest_recvfrom(b, buf, sizeof(buf), &from, WAIT);
	CHECK(r == 2 && ftest_addr_is(&from, VIP_A, p));
	CHECK(sendto(b, "yo", 2, 0, (struct sockaddr *)&from,
		     sizeof(from)) == 2);
	r = ftest_recvfrom(a, buf, sizeof(buf), &from, WAIT);
	CHECK(r == 2 && ftest_addr_is(&from, VIP_B, p));

	/* A port allowed for TCP only has no UDP socket on the VIP. */
	probe = ftest_udp(VIP_B, fx.base);
	CHECK(probe >= 0);
	close(probe);
	probe = -1;
	b0 = ftest_udp(HOST_B, fx.base);
	CHECK(b0 >= 0);
	CHECK(udp_to(a, "no", 2, VIP_B, fx.base) == 2);
	CHECK(ftest_recvfrom(b0, buf, sizeof(buf), &from, 200) == -ETIMEDOUT);
 out:
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	if (b0 >= 0)
		close(b0);
	fx_close(&fx);
	return rc;
}

/* --- TCP ------------------------------------------------------------------ */

/* Connects through A to `ip:port` and accepts at listener l. */
static int tcp_pair(int l, const char *ip, uint16_t port, int *c, int *s,
		    struct sockaddr_in *peer)
{
	struct sockaddr_in tmp;

	*c = ftest_connect(ip, port, WAIT);
	if (*c < 0) {
		fprintf(stderr, "  connect %s:%u: %s\n", ip, port,
			strerror(-*c));
		return -1;
	}
	*s = ftest_accept(l, peer ? peer : &tmp, WAIT);
	if (*s < 0) {
		fprintf(stderr, "  accept: %s\n", strerror(-*s));
		return -1;
	}
	return 0;
}

static int echo(int from, int to, const char *msg)
{
	char buf[256];
	size_t n = strlen(msg);

	if (ftest_write(from, msg, n, WAIT))
		return -1;
	if (ftest_read(to, buf, n, WAIT) != (ssize_t)n || memcmp(buf, msg, n))
		return -1;
	if (ftest_write(to, buf, n, WAIT))
		return -1;
	if (ftest_read(from, buf, n, WAIT) != (ssize_t)n || memcmp(buf, msg, n))
		return -1;
	return 0;
}

static int t_tcp_identity(void)
{
	struct fx fx;
	struct sockaddr_in peer;
	int lb = -1, la = -1, c = -1, s = -1, c2 = -1, s2 = -1, c3 = -1,
	    s3 = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	la = ftest_listen(HOST_A, fx.base + 1);
	CHECK(lb >= 0 && la >= 0);

	/* w1 -> w2 slot 0: w2's app sees w1's identity address and port. */
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, &peer) == 0);
	CHECK(ftest_addr_is(&peer, HOST_B, fx.base));
	CHECK(echo(c, s, "hello through the mesh") == 0);

	/* A second connection at the same time cannot use that 4-tuple:
	 * same address, ephemeral port. */
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c2, &s2, &peer) == 0);
	CHECK(ftest_addr_is(&peer, HOST_B, 0));
	CHECK(ntohs(peer.sin_port) != fx.base);
	CHECK(echo(c2, s2, "second") == 0);
	CHECK(cnt(fx.fb, "w1").tcp_src_fallback == 1);

	/* w2 -> w1 slot 1. */
	CHECK(tcp_pair(la, HOST_B, fx.base + 1, &c3, &s3, &peer) == 0);
	CHECK(ftest_addr_is(&peer, HOST_A, fx.base + 3));
	CHECK(echo(c3, s3, "and back") == 0);

	CHECK(cnt(fx.fa, "w2").tcp_open == 3 && cnt(fx.fb, "w1").tcp_open == 3);
	CHECK(cnt(fx.fa, "w2").tcp_conns_tx == 2);
	CHECK(cnt(fx.fa, "w2").tcp_conns_rx == 1);
	CHECK(cnt(fx.fa, "w2").tcp_bytes_tx == 22 + 6 + 8);
	close(c);
	close(s);
	close(c2);
	close(s2);
	close(c3);
	close(s3);
	c = s = c2 = s2 = c3 = s3 = -1;
	CHECK(settled(&fx));
	CHECK(cnt(fx.fa, "w2").tcp_resets_tx == 0);
	CHECK(cnt(fx.fa, "w2").tcp_resets_rx == 0);
 out:
	if (lb >= 0)
		close(lb);
	if (la >= 0)
		close(la);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	if (c2 >= 0)
		close(c2);
	if (s2 >= 0)
		close(s2);
	if (c3 >= 0)
		close(c3);
	if (s3 >= 0)
		close(s3);
	fx_close(&fx);
	return rc;
}

static int t_tcp_vip(void)
{
	struct fx fx;
	struct sockaddr_in peer;
	int lb = -1, la = -1, c = -1, s = -1, c2 = -1, s2 = -1, rc = 0;

	CHECK(fx_open(&fx, true, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base);
	la = ftest_listen(HOST_A, fx.base + 1);
	CHECK(lb >= 0 && la >= 0);
	CHECK(tcp_pair(lb, VIP_B, fx.base, &c, &s, &peer) == 0);
	CHECK(ftest_addr_is(&peer, VIP_A, 0));
	CHECK(echo(c, s, "vip hello") == 0);
	CHECK(tcp_pair(la, VIP_A, fx.base + 1, &c2, &s2, &peer) == 0);
	CHECK(ftest_addr_is(&peer, VIP_B, 0));
	CHECK(echo(c2, s2, "vip back") == 0);
	close(c);
	close(s);
	close(c2);
	close(s2);
	c = s = c2 = s2 = -1;
	CHECK(settled(&fx));
 out:
	if (lb >= 0)
		close(lb);
	if (la >= 0)
		close(la);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	if (c2 >= 0)
		close(c2);
	if (s2 >= 0)
		close(s2);
	fx_close(&fx);
	return rc;
}

/* The client shuts its write side and still receives the reply. */
static int t_tcp_half_close(void)
{
	struct fx fx;
	char buf[64];
	int lb = -1, c = -1, s = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(ftest_write(c, "request", 7, WAIT) == 0);
	CHECK(shutdown(c, SHUT_WR) == 0);
	CHECK(ftest_read(s, buf, 7, WAIT) == 7 && !memcmp(buf, "request", 7));
	CHECK(ftest_wait_eof(s, WAIT) == 0);         /* the FIN came through */
	CHECK(ftest_write(s, "response", 8, WAIT) == 0);
	CHECK(ftest_read(c, buf, 8, WAIT) == 8 && !memcmp(buf, "response", 8));
	CHECK(shutdown(s, SHUT_WR) == 0);
	CHECK(ftest_wait_eof(c, WAIT) == 0);
	CHECK(settled(&fx));
	CHECK(cnt(fx.fa, "w2").tcp_resets_tx + cnt(fx.fa, "w2").tcp_resets_rx +
	      cnt(fx.fb, "w1").tcp_resets_tx + cnt(fx.fb, "w1").tcp_resets_rx
	      == 0);
 out:
	if (lb >= 0)
		close(lb);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	fx_close(&fx);
	return rc;
}

/* The server half-closes first; the client keeps sending after it. */
static int t_tcp_half_close_server(void)
{
	struct fx fx;
	char buf[64];
	int lb = -1, c = -1, s = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(ftest_write(s, "banner", 6, WAIT) == 0);
	CHECK(shutdown(s, SHUT_WR) == 0);
	CHECK(ftest_read(c, buf, 6, WAIT) == 6 && !memcmp(buf, "banner", 6));
	CHECK(ftest_wait_eof(c, WAIT) == 0);
	CHECK(ftest_write(c, "late data", 9, WAIT) == 0);
	CHECK(ftest_read(s, buf, 9, WAIT) == 9 && !memcmp(buf, "late data", 9));
	close(c);
	c = -1;
	CHECK(ftest_wait_eof(s, WAIT) == 0);
	CHECK(settled(&fx));
 out:
	if (lb >= 0)
		close(lb);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	fx_close(&fx);
	return rc;
}

static int t_tcp_reset(void)
{
	struct fx fx;
	int lb = -1, c = -1, s = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);

	/* The client aborts: the server sees a reset. */
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(echo(c, s, "x") == 0);
	ftest_abort_close(c);
	c = -1;
	CHECK(ftest_wait_eof(s, WAIT) == -ECONNRESET);
	close(s);
	s = -1;
	CHECK(cnt(fx.fa, "w2").tcp_resets_tx == 1);
	CHECK(cnt(fx.fb, "w1").tcp_resets_rx == 1);

	/* The server aborts: the client sees a reset. */
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(echo(c, s, "y") == 0);
	ftest_abort_close(s);
	s = -1;
	CHECK(ftest_wait_eof(c, WAIT) == -ECONNRESET);
	CHECK(cnt(fx.fb, "w1").tcp_resets_tx == 1);
	CHECK(settled(&fx));
 out:
	if (lb >= 0)
		close(lb);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	fx_close(&fx);
	return rc;
}

/* Nobody listens on the far side: the client's connection is reset. */
static int t_tcp_refused(void)
{
	struct fx fx;
	int c = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	c = ftest_connect(HOST_A, fx.base + 2, WAIT);
	CHECK(c >= 0);
	CHECK(ftest_wait_eof(c, WAIT) == -ECONNRESET);
	CHECK(cnt(fx.fb, "w1").tcp_refused == 1);
	CHECK(settled(&fx));
 out:
	if (c >= 0)
		close(c);
	fx_close(&fx);
	return rc;
}

/* Without a carrier: TCP is refused, UDP is dropped and counted; after
 * attaching again both work. */
static int t_no_link(void)
{
	struct fx fx;
	struct sockaddr_in from;
	char buf[16];
	int lb = -1, a = -1, b = -1, c = -1, s = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	a = ftest_udp(HOST_A, fx.base);
	b = ftest_udp(HOST_B, fx.base + 2);
	CHECK(lb >= 0 && a >= 0 && b >= 0);

	forward_detach(fx.fa, "w2");
	forward_detach(fx.fb, "w1");
	CHECK(!cnt(fx.fa, "w2").attached);
	CHECK(ftest_connect(HOST_A, fx.base + 2, WAIT) == -ECONNREFUSED);
	CHECK(udp_to(a, "lost", 4, HOST_A, fx.base + 2) == 4);
	CHECK(ftest_recvfrom(b, buf, sizeof(buf), &from, 100) == -ETIMEDOUT);
	CHECK(cnt(fx.fa, "w2").drop_no_link == 1);

	CHECK(forward_attach(fx.fa, "w2", carrier_pair_end(fx.cp, 0)) == 0);
	CHECK(forward_attach(fx.fb, "w1", carrier_pair_end(fx.cp, 1)) == 0);
	CHECK(cnt(fx.fa, "w2").attached);
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(echo(c, s, "back up") == 0);
	CHECK(udp_to(a, "found", 5, HOST_A, fx.base + 2) == 5);
	CHECK(ftest_recvfrom(b, buf, sizeof(buf), &from, WAIT) == 5);
 out:
	if (lb >= 0)
		close(lb);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	fx_close(&fx);
	return rc;
}

/* Detaching a link resets its open connections on both hosts. */
static int t_detach_resets(void)
{
	struct fx fx;
	int lb = -1, c = -1, s = -1, rc = 0;

	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	CHECK(echo(c, s, "before") == 0);
	forward_detach(fx.fa, "w2");
	CHECK(ftest_wait_eof(c, WAIT) == -ECONNRESET);
	forward_detach(fx.fb, "w1");
	CHECK(ftest_wait_eof(s, WAIT) == -ECONNRESET);
	CHECK(cnt(fx.fa, "w2").streams_open == 0);
	CHECK(cnt(fx.fb, "w1").streams_open == 0);
 out:
	if (lb >= 0)
		close(lb);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	fx_close(&fx);
	return rc;
}

/* A local app that does not read: the sender's socket blocks, and the
 * forwarders hold no more than the carrier window. Then it reads all. */
static int t_tcp_backpressure(void)
{
	struct carrier_pair_opts o = { .stream_window = 128 * 1024,
				       .stream_sndbuf = 32 * 1024 };
	struct carrier_pair_stats ps;
	struct forward_counters ca, cb;
	enum { CH = 65536 };
	uint8_t *buf = malloc(CH), *rx = malloc(CH);
	size_t sent = 0, got = 0;
	int lb = -1, c = -1, s = -1, rc = 0, idle = 0, small = 65536;
	struct fx fx;

	CHECK(buf && rx);
	CHECK(fx_open(&fx, false, &o, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	(void)setsockopt(lb, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c, &s, NULL) == 0);
	(void)setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));

	/* Write until nothing more goes for half a second. */
	while (idle < 500 && sent < (256u << 20)) {
		ssize_t w;

		fill(buf, CH, (unsigned)(sent % 251));
		w = send(c, buf, CH, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			idle = 0;
			continue;
		}
		CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
		idle++;
		ftest_spin(1);
	}
	ca = cnt(fx.fa, "w2");
	cb = cnt(fx.fb, "w1");
	carrier_pair_stats(fx.cp, &ps);
	if (getenv("FWD_TEST_SHOW"))
		fprintf(stderr, "  blocked after %zu bytes; buffered A %llu B "
			"%llu; pair queued %zu unconsumed %zu\n", sent,
			(unsigned long long)ca.buffered,
			(unsigned long long)cb.buffered, ps.queued,
			ps.unconsumed);
	CHECK(idle >= 500);                /* the sender is blocked */
	CHECK(sent < (64u << 20));         /* bounded: socket buffers + window */
	CHECK(ca.buffered <= 64 * 1024 + FWD_HDR_LEN);
	CHECK(cb.buffered <= o.stream_window);
	CHECK(ps.unconsumed <= o.stream_window);
	CHECK(ps.queued <= o.stream_sndbuf);

	/* Now the app reads: every byte arrives, in order. */
	CHECK(shutdown(c, SHUT_WR) == 0);
	for (;;) {
		ssize_t r = ftest_read(s, rx, CH, WAIT);
		size_t i;

		CHECK(r >= 0);
		for (i = 0; i < (size_t)r; i++) {
			if (rx[i] != (uint8_t)((got + i) % 251))
				break;
		}
		CHECK(i == (size_t)r);
		got += (size_t)r;
		if (r < CH)
			break;
	}
	CHECK(got == sent);
	CHECK(ftest_wait_eof(s, WAIT) == 0);
 out:
	if (lb >= 0)
		close(lb);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	free(buf);
	free(rx);
	fx_close(&fx);
	return rc;
}

/* Several MiB both ways at once arrive byte-identical. */
static int tcp_bulk(const struct carrier_pair_opts *o, size_t total)
{
	enum { CH = 32768 };
	uint8_t *buf = malloc(CH);
	size_t tx[2] = { 0, 0 }, rx[2] = { 0, 0 };
	int fds[2] = { -1, -1 }, lb = -1, rc = 0, idle = 0, d;
	struct fx fx;

	CHECK(buf);
	CHECK(fx_open(&fx, false, o, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &fds[0], &fds[1], NULL) == 0);

	while ((tx[0] < total || tx[1] < total || rx[0] < total ||
		rx[1] < total) && idle < WAIT) {
		bool progress = false;

		for (d = 0; d < 2; d++) {
			size_t n = total - tx[d] < CH ? total - tx[d] : CH, i;
			ssize_t r;

			if (n) {
				for (i = 0; i < n; i++)
					buf[i] = (uint8_t)((tx[d] + i) * (d + 3) % 253);
				r = send(fds[d], buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (r > 0) {
					tx[d] += (size_t)r;
					progress = true;
				}
			}
			r = recv(fds[1 - d], buf, CH, MSG_DONTWAIT);
			if (r > 0) {
				for (i = 0; i < (size_t)r; i++) {
					if (buf[i] != (uint8_t)((rx[d] + i) *
								(d + 3) % 253))
						break;
				}
				CHECK(i == (size_t)r);
				rx[d] += (size_t)r;
				progress = true;
			}
		}
		if (progress) {
			idle = 0;
			ftest_spin(0);
		}
		else {
			idle++;
			ftest_spin(1);
		}
	}
	CHECK(rx[0] == total && rx[1] == total);
	CHECK(cnt(fx.fa, "w2").tcp_bytes_tx == total);
	CHECK(cnt(fx.fa, "w2").tcp_bytes_rx == total);
	close(fds[0]);
	close(fds[1]);
	fds[0] = fds[1] = -1;
	CHECK(settled(&fx));
 out:
	if (lb >= 0)
		close(lb);
	for (d = 0; d < 2; d++) {
		if (fds[d] >= 0)
			close(fds[d]);
	}
	free(buf);
	fx_close(&fx);
	return rc;
}

static int t_tcp_bulk(void)
{
	return tcp_bulk(NULL, 8 << 20);
}

/* Tiny windows and send buffers: every write is short, every byte waits
 * for writable and consumed. */
static int t_tcp_bulk_small_window(void)
{
	struct carrier_pair_opts o = { .stream_window = 1500,
				       .stream_sndbuf = 700, .chunk = 333 };

	return tcp_bulk(&o, 1 << 20);
}

static int t_tcp_many(void)
{
	enum { N = 40 };
	int c[N], s[N], lb = -1, rc = 0, i;
	struct fx fx;

	for (i = 0; i < N; i++)
		c[i] = s[i] = -1;
	CHECK(fx_open(&fx, false, NULL, true) == 0);
	lb = ftest_listen(HOST_B, fx.base + 2);
	CHECK(lb >= 0);
	for (i = 0; i < N; i++)
		CHECK(tcp_pair(lb, HOST_A, fx.base + 2, &c[i], &s[i], NULL) == 0);
	for (i = 0; i < N; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "conn %d", i);
		CHECK(echo(c[i], s[i], msg) == 0);
	}
	CHECK(cnt(fx.fa, "w2").tcp_open == N);
	CHECK(cnt(fx.fb, "w1").tcp_src_fallback == N - 1);
	for (i = 0; i < N; i++) {
		close(c[i]);
		close(s[i]);
		c[i] = s[i] = -1;
	}
	CHECK(settled(&fx));
 out:
	if (lb >= 0)
		close(lb);
	for (i = 0; i < N; i++) {
		if (c[i] >= 0)
			close(c[i]);
		if (s[i] >= 0)
			close(s[i]);
	}
	fx_close(&fx);
	return rc;
}

/* --- What a peer may send: malformed frames are dropped or refused ------ */

struct raw {
	const struct carrier_ops *ops;
	struct cstream *cs;
	bool fin, reset;
	uint64_t code;
	size_t got;
};

static void raw_data(struct cstream *cs, const uint8_t *p, size_t n, void *arg)
{
	struct raw *r = arg;

	(void)p;
	r->got += n;
	r->ops->stream_consumed(cs, n);
}

static void raw_fin(struct cstream *cs, void *arg)
{
	(void)cs;
	((struct raw *)arg)->fin = true;
}

static void raw_reset(struct cstream *cs, uint64_t code, void *arg)
{
	struct raw *r = arg;

	(void)cs;
	r->reset = true;
	r->code = code;
}

static const struct cstream_handlers raw_h = {
	.data = raw_data, .fin = raw_fin, .reset = raw_reset,
};

/* Opens a stream from the raw side, writes p (and a FIN if fin), and
 * waits for a reset or FIN from the forwarder. */
static int raw_stream(struct carrier *rc, struct raw *r, const uint8_t *p,
		      size_t n, bool fin)
{
	int i;

	memset(r, 0, sizeof(*r));
	r->ops = rc->ops;
	if (rc->ops->stream_open(rc, &r->cs))
		return -1;
	rc->ops->stream_set_handlers(r->cs, &raw_h, r);
	if (n && rc->ops->stream_write(r->cs, p, n) != (long)n)
		return -1;
	if (fin)
		rc->ops->stream_shutdown_write(r->cs);
	for (i = 0; i < WAIT && !r->reset && !r->fin; i++)
		ftest_spin(1);
	return 0;
}

static void raw_done(struct raw *r)
{
	if (r->cs)
		r->ops->stream_release(r->cs);
	r->cs = NULL;
}

static int t_bad_frames(void)
{
	struct fx fx;
	struct carrier *rc_end;
	struct sockaddr_in from;
	struct raw r;
	uint8_t f[16];
	char buf[16];
	int a = -1, rc = 0;

	memset(&r, 0, sizeof(r));
	/* Only host A; the test drives the other carrier end itself. */
	CHECK(fx_open(&fx, false, NULL, false) == 0);
	rc_end = carrier_pair_end(fx.cp, 1);
	a = ftest_udp(HOST_A, fx.base);
	CHECK(a >= 0);

	/* Datagrams: too short, bad version, wrong kind, unknown slot. */
	CHECK(rc_end->ops->datagram_send(rc_end, (const uint8_t *)"\1", 1) == 0);
	CHECK(rc_end->ops->datagram_send(rc_end, (const uint8_t *)"\2\3\0\0x",
					 5) == 0);
	CHECK(rc_end->ops->datagram_send(rc_end, (const uint8_t *)"\1\1\0\0x",
					 5) == 0);
	CHECK(rc_end->ops->datagram_send(rc_end, (const uint8_t *)"\1\3\0\11x",
					 5) == 0);
	/* And a good one, which arrives from w2's identity port. */
	CHECK(rc_end->ops->datagram_send(rc_end, (const uint8_t *)"\1\3\0\0ok",
					 6) == 0);
	CHECK(ftest_recvfrom(a, buf, sizeof(buf), &from, WAIT) == 2);
	CHECK(ftest_addr_is(&from, HOST_A, fx.base + 2));
	CHECK(cnt(fx.fa, "w2").drop_bad_frame == 3);
	CHECK(cnt(fx.fa, "w2").drop_not_fwd == 1);

	/* Streams: bad header, TCP to an unknown slot, oversized UDP,
	 * truncated UDP, FIN inside the header. */
	CHECK(raw_stream(rc_end, &r, (const uint8_t *)"\11\11\11\11", 4,
			 false) == 0);
	CHECK(r.reset && r.code == FWD_RST_PROTO);
	raw_done(&r);
	fwd_hdr_encode(f, FWD_KIND_TCP, 7);
	CHECK(raw_stream(rc_end, &r, f, 4, false) == 0);
	CHECK(r.reset && r.code == FWD_RST_NOT_FWD);
	raw_done(&r);
	fwd_hdr_encode(f, FWD_KIND_UDP_STREAM, 0);
	fwd_put_u32(f + 4, 70000);
	CHECK(raw_stream(rc_end, &r, f, 8, false) == 0);
	CHECK(r.reset && r.code == FWD_RST_PROTO);
	raw_done(&r);
	fwd_put_u32(f + 4, 10);
	memcpy(f + 8, "abcde", 5);
	CHECK(raw_stream(rc_end, &r, f, 13, true) == 0);
	CHECK(r.reset && r.code == FWD_RST_PROTO);
	raw_done(&r);
	CHECK(raw_stream(rc_end, &r, f, 2, true) == 0);
	CHECK(r.reset && r.code == FWD_RST_PROTO);
	raw_done(&r);
	CHECK(cnt(fx.fa, "w2").streams_rejected == 4);

	/* A well-formed large datagram on a stream: delivered, answered
	 * with a FIN. */
	fwd_put_u32(f + 4, 5);
	CHECK(raw_stream(rc_end, &r, f, 13, true) == 0);
	CHECK(r.fin && !r.reset);
	raw_done(&r);
	CHECK(ftest_recvfrom(a, buf, sizeof(buf), &from, WAIT) == 5);
	CHECK(!memcmp(buf, "abcde", 5));
	CHECK(settled(&fx));
 out:
	raw_done(&r);
	if (a >= 0)
		close(a);
	fx_close(&fx);
	return rc;
}

static int t_bind_errors(void)
{
	struct peer_table *t = NULL;
	struct forward *f = NULL;
	struct forward_opts bad = { .host = "198.18.0.1" };
	char json[256], err[256], want[64];
	uint16_t b = ftest_ports(4);
	int busy = -1, rc = 0;

	snprintf(json, sizeof(json), "{\"peers\":[{\"id\":\"w1\",\"ports\":[%u]},"
		 "{\"id\":\"w2\",\"ports\":[%u]}]}", b, b + 1);
	CHECK(peers_parse(&t, json, strlen(json), "w1", err, sizeof(err)) == 0);
	CHECK(forward_alloc(&f, t, &bad, err, sizeof(err)) == EINVAL);
	CHECK(strstr(err, "not an address in 127.0.0.0/8"));
	busy = ftest_udp(HOST_A, b + 1);
	CHECK(busy >= 0);
	CHECK(forward_alloc(&f, t, NULL, err, sizeof(err)) == EADDRINUSE);
	snprintf(want, sizeof(want), "cannot bind UDP 127.0.0.1:%u for peer w2",
		 b + 1);
	CHECK(strstr(err, want));
	CHECK(forward_fd_estimate(t) == 2);
 out:
	if (rc)
		fprintf(stderr, "  error: %s\n", err);
	if (busy >= 0)
		close(busy);
	mem_deref(f);
	mem_deref(t);
	return rc;
}

const struct ftest ftest_fwd[] = {
	{ "fwd_bind_errors", t_bind_errors },
	{ "udp_identity", t_udp_identity },
	{ "udp_large", t_udp_large },
	{ "udp_large_small_window", t_udp_large_small_window },
	{ "udp_large_burst", t_udp_large_burst },
	{ "udp_vip", t_udp_vip },
	{ "tcp_identity", t_tcp_identity },
	{ "tcp_vip", t_tcp_vip },
	{ "tcp_half_close", t_tcp_half_close },
	{ "tcp_half_close_server", t_tcp_half_close_server },
	{ "tcp_reset", t_tcp_reset },
	{ "tcp_refused", t_tcp_refused },
	{ "no_link", t_no_link },
	{ "detach_resets", t_detach_resets },
	{ "tcp_backpressure", t_tcp_backpressure },
	{ "tcp_bulk", t_tcp_bulk },
	{ "tcp_bulk_small_window", t_tcp_bulk_small_window },
	{ "tcp_many", t_tcp_many },
	{ "bad_frames", t_bad_frames },
	{ NULL, NULL },
};
