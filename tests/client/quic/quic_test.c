/* Integration tests for the QUIC carrier (client/quic.c): two connections
 * in one process on libre's main loop, joined by an in-memory path (with
 * drop and delay) or by UDP sockets on 127.0.0.1. A table of named tests;
 * `quic-test NAME...` runs only those. Prints "ok - name"/"not ok - name"
 * and "N passed, M failed". Must not reach beyond loopback. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <re.h>

#include "client/quic.h"
#include "tests/client/quic/testpath.h"

/* --- Harness ------------------------------------------------------------- */

static int g_fail_checks;
static const char *g_test;

#define CHECK(cond) do { if (!(cond)) { \
	g_fail_checks++; \
	printf("#   %s: check failed at %s:%d: %s\n", g_test, __FILE__, __LINE__, #cond); \
} } while (0)

static uint64_t now_ms(void)
{
	struct timespec tp;

	clock_gettime(CLOCK_MONOTONIC, &tp);
	return (uint64_t)tp.tv_sec * 1000 + (uint64_t)tp.tv_nsec / 1000000;
}

static bool (*g_cond)(void *);
static void *g_cond_arg;
static bool g_met;
static struct tmr g_poll, g_timeout;

static void on_poll(void *arg)
{
	(void)arg;
	if (g_cond && g_cond(g_cond_arg)) {
		g_met = true;
		re_cancel();
		return;
	}
	tmr_start(&g_poll, 2, on_poll, NULL);
}

static void on_timeout(void *arg)
{
	(void)arg;
	re_cancel();
}

/* Runs the loop until cond holds (checked every 2 ms) or timeout. */
static bool run_until(bool (*cond)(void *), void *arg, uint64_t timeout_ms)
{
	g_cond = cond;
	g_cond_arg = arg;
	g_met = cond && cond(arg);
	if (g_met)
		return true;
	tmr_start(&g_timeout, timeout_ms, on_timeout, NULL);
	tmr_start(&g_poll, 2, on_poll, NULL);
	(void)re_main(NULL);
	tmr_cancel(&g_poll);
	tmr_cancel(&g_timeout);
	g_cond = NULL;
	return g_met;
}

static void run_for(uint64_t ms)
{
	(void)run_until(NULL, NULL, ms);
}

/* --- Test data ------------------------------------------------------------- */

static uint8_t gen_byte(uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ULL;

	return (uint8_t)((x >> 29) ^ (off >> 13));
}

static void gen_fill(uint8_t *p, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = gen_byte(off + i);
}

/* --- Fixture: two endpoints ----------------------------------------------- */

struct ep;

struct tstream {
	struct le le;            /* in fixture.streams */
	struct ep *ep;
	const struct carrier_ops *ops; /* outlives the connection */
	struct cstream *s;
	uint64_t rx;             /* bytes received */
	uint64_t pending;        /* received, not yet consumed */
	bool consume;            /* consume at once */
	bool verify;             /* check gen_byte() pattern */
	bool mismatch;
	bool fin, reset;
	uint64_t reset_code;
	int writable;            /* writable callbacks */
	/* writer */
	uint64_t tx, target;     /* bytes accepted / to send */
	bool fin_after;          /* FIN when target reached */
	bool fin_sent, stalled;
	long werr;
	/* small payloads */
	char text[256];
	size_t textlen;
	bool echo_fin;           /* on fin: answer "pong" + FIN */
	bool fin_back;           /* on fin: FIN */
};

struct fixture;

struct ep {
	const char *name;
	struct fixture *f;
	struct quic_conn *qc;
	struct carrier *c;
	int connected, closed, auth_failed;
	bool close_local, close_app;
	uint64_t close_code;
	char reason[256];
	uint64_t closed_at;
	int n_opened;
	struct tstream *last_opened;
	bool accept_consume, accept_verify, accept_echo_fin, accept_fin_back;
	int n_dgrams;
	size_t dgram_bytes;
	bool dgram_ok;
	uint8_t expect_dgram_fill;
};

struct fixture {
	struct ep cl, sv;
	struct mempath *ma, *mb;
	struct udppath *ua, *ub;
	struct list streams;
};

static struct quic_identity *g_id_a, *g_id_b, *g_id_x;
static enum quic_cc g_cc; /* QUIC_TEST_CC=reno|cubic|bbr|bbr2 */

static const struct carrier_ops *OPS(struct ep *e)
{
	return e->c->ops;
}

static void ts_pump(struct tstream *t);

static void ts_data(struct cstream *s, const uint8_t *p, size_t n, void *arg)
{
	struct tstream *t = arg;

	(void)s;
	if (t->verify) {
		for (size_t i = 0; i < n && !t->mismatch; i++) {
			if (p[i] != gen_byte(t->rx + i))
				t->mismatch = true;
		}
	}
	else {
		size_t room = sizeof(t->text) - 1 - t->textlen;
		size_t m = n < room ? n : room;

		memcpy(t->text + t->textlen, p, m);
		t->textlen += m;
		t->text[t->textlen] = '\0';
	}
	t->rx += n;
	if (t->consume)
		OPS(t->ep)->stream_consumed(t->s, n);
	else
		t->pending += n;
}

static void ts_fin(struct cstream *s, void *arg)
{
	struct tstream *t = arg;

	(void)s;
	t->fin = true;
	if (t->fin_back && !t->fin_sent) {
		(void)OPS(t->ep)->stream_shutdown_write(t->s);
		t->fin_sent = true;
	}
	if (t->echo_fin) {
		static const char reply[] = "pong";

		t->werr = OPS(t->ep)->stream_write(t->s, (const uint8_t *)reply,
						   sizeof(reply) - 1);
		(void)OPS(t->ep)->stream_shutdown_write(t->s);
		t->fin_sent = true;
	}
}

static void ts_reset(struct cstream *s, uint64_t code, void *arg)
{
	struct tstream *t = arg;

	(void)s;
	t->reset = true;
	t->reset_code = code;
}

static void ts_writable(struct cstream *s, void *arg)
{
	struct tstream *t = arg;

	(void)s;
	t->writable++;
	t->stalled = false;
	ts_pump(t);
}

static const struct cstream_handlers ts_handlers = {
	.data = ts_data, .fin = ts_fin, .reset = ts_reset, .writable = ts_writable,
};

static void ts_destructor(void *arg)
{
	struct tstream *t = arg;

	list_unlink(&t->le);
	if (t->s)
		t->ops->stream_release(t->s);
}

static struct tstream *ts_new(struct ep *e, struct cstream *s)
{
	struct tstream *t = mem_zalloc(sizeof(*t), ts_destructor);

	if (!t)
		abort();
	t->ep = e;
	t->ops = e->c->ops;
	t->s = s;
	t->consume = true;
	list_append(&e->f->streams, &t->le, t);
	e->c->ops->stream_set_handlers(s, &ts_handlers, t);
	return t;
}

static struct tstream *ts_open(struct ep *e)
{
	struct cstream *s = NULL;
	int err = e->c->ops->stream_open(e->c, &s);

	if (err) {
		printf("#   stream_open on %s: %s\n", e->name, strerror(err));
		return NULL;
	}
	return ts_new(e, s);
}

static void ts_pump(struct tstream *t)
{
	uint8_t buf[16384];

	while (t->tx < t->target && !t->stalled) {
		size_t n = t->target - t->tx < sizeof(buf) ?
			(size_t)(t->target - t->tx) : sizeof(buf);
		long w;

		gen_fill(buf, t->tx, n);
		w = OPS(t->ep)->stream_write(t->s, buf, n);
		if (w < 0) {
			t->werr = w;
			return;
		}
		t->tx += (uint64_t)w;
		if ((size_t)w < n)
			t->stalled = true;
	}
	if (t->tx == t->target && t->fin_after && !t->fin_sent) {
		(void)OPS(t->ep)->stream_shutdown_write(t->s);
		t->fin_sent = true;
	}
}

static void ep_state(struct quic_conn *qc, enum quic_event ev,
		     const struct quic_close_info *ci, void *arg)
{
	struct ep *e = arg;

	(void)qc;
	if (ev == QUIC_EV_CONNECTED) {
		e->connected++;
		return;
	}
	if (ev == QUIC_EV_AUTH_FAILED)
		e->auth_failed++;
	else
		e->closed++;
	e->close_local = ci->local;
	e->close_app = ci->app;
	e->close_code = ci->code;
	snprintf(e->reason, sizeof(e->reason), "%s", ci->reason);
	e->closed_at = now_ms();
	/* As the forwarder would: drop the connection from its handler. */
	e->qc = mem_deref(e->qc);
}

static void ep_stream_opened(struct cstream *s, void *arg)
{
	struct ep *e = arg;
	struct tstream *t = ts_new(e, s);

	t->consume = e->accept_consume;
	t->verify = e->accept_verify;
	t->echo_fin = e->accept_echo_fin;
	t->fin_back = e->accept_fin_back;
	e->n_opened++;
	e->last_opened = t;
}

static void ep_datagram(const uint8_t *p, size_t n, void *arg)
{
	struct ep *e = arg;

	e->n_dgrams++;
	e->dgram_bytes += n;
	e->dgram_ok = true;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != (uint8_t)(e->expect_dgram_fill + i)) {
			e->dgram_ok = false;
			break;
		}
	}
}

static const struct carrier_handlers ep_handlers = {
	.stream_opened = ep_stream_opened,
	.datagram = ep_datagram,
};

struct fx_opts {
	bool udp;
	double drop;
	uint32_t delay_ms;
	size_t mtu;
	const char *cl_expects;   /* default: fingerprint of B (server) */
	const char *sv_expects;   /* default: fingerprint of A (client) */
	uint64_t idle_ms, keepalive_ms;
	enum quic_cc cc;
};

static int fx_start(struct fixture *f, const struct fx_opts *o)
{
	struct quic_config cc = { 0 }, sc = { 0 };
	struct mesh_path *pa, *pb;
	int err;

	memset(f, 0, sizeof(*f));
	list_init(&f->streams);
	f->cl.name = "client";
	f->sv.name = "server";
	f->cl.f = f->sv.f = f;
	f->sv.accept_consume = f->cl.accept_consume = true;

	if (o->udp) {
		err = udppath_open(&f->ua, 0, o->mtu);
		if (!err)
			err = udppath_open(&f->ub, 0, o->mtu);
		if (!err)
			err = udppath_connect(f->ua, udppath_port(f->ub));
		if (!err)
			err = udppath_connect(f->ub, udppath_port(f->ua));
		if (err)
			return err;
		pa = udppath_path(f->ua);
		pb = udppath_path(f->ub);
	}
	else {
		err = mempath_pair(&f->ma, &f->mb, o->drop, o->delay_ms, o->mtu,
				   (uint64_t)now_ms() | 1);
		if (err)
			return err;
		pa = mempath_path(f->ma);
		pb = mempath_path(f->mb);
	}

	cc.role = QUIC_ROLE_CLIENT;
	cc.id = g_id_a;
	cc.remote_fp = o->cl_expects ? o->cl_expects : quic_identity_fingerprint(g_id_b);
	cc.stateh = ep_state;
	cc.idle_timeout_ms = o->idle_ms;
	cc.keepalive_ms = o->keepalive_ms;
	cc.cc = o->cc ? o->cc : g_cc;
	/* What ICE's connectivity checks would have measured. */
	cc.initial_rtt_ms = o->delay_ms ? 2 * o->delay_ms : 0;
	sc = cc;
	sc.role = QUIC_ROLE_SERVER;
	sc.id = g_id_b;
	sc.remote_fp = o->sv_expects ? o->sv_expects : quic_identity_fingerprint(g_id_a);

	err = quic_conn_alloc(&f->sv.qc, &sc, pb, &ep_handlers, &f->sv);
	if (err)
		return err;
	f->sv.c = quic_carrier(f->sv.qc);
	err = quic_conn_alloc(&f->cl.qc, &cc, pa, &ep_handlers, &f->cl);
	if (err)
		return err;
	f->cl.c = quic_carrier(f->cl.qc);
	return 0;
}

static void fx_stop(struct fixture *f)
{
	/* Release every stream handle (also after its connection is gone). */
	while (f->streams.head)
		mem_deref(f->streams.head->data);
	f->cl.qc = mem_deref(f->cl.qc);
	f->sv.qc = mem_deref(f->sv.qc);
	f->ma = mem_deref(f->ma);
	f->mb = mem_deref(f->mb);
	f->ua = mem_deref(f->ua);
	f->ub = mem_deref(f->ub);
}

static bool both_connected(void *arg)
{
	struct fixture *f = arg;

	return f->cl.connected && f->sv.connected;
}

static bool both_ended(void *arg)
{
	struct fixture *f = arg;

	return (f->cl.closed || f->cl.auth_failed) &&
	       (f->sv.closed || f->sv.auth_failed);
}

static bool connect_pair(struct fixture *f, const struct fx_opts *o)
{
	int err = fx_start(f, o);

	if (err) {
		printf("#   fx_start: %s\n", strerror(err));
		return false;
	}
	/* Under 10% loss a lost handshake packet costs a PTO, doubling each
	 * time (RFC 9002 section 6.2.1): allow for several. */
	if (!run_until(both_connected, f, o->drop > 0 ? 30000 : 5000)) {
		printf("#   no handshake: client \"%s\", server \"%s\"\n",
		       f->cl.reason, f->sv.reason);
		return false;
	}
	return true;
}

/* --- Tests ----------------------------------------------------------------- */

static void t_handshake(bool udp)
{
	struct fixture f;
	struct fx_opts o = { .udp = udp };
	struct quic_stats st;

	if (connect_pair(&f, &o)) {
		CHECK(f.cl.connected == 1 && f.sv.connected == 1);
		CHECK(quic_conn_is_connected(f.cl.qc));
		CHECK(quic_conn_is_connected(f.sv.qc));
		/* 1200-byte packets: about 1150 bytes per datagram. */
		CHECK(OPS(&f.cl)->datagram_max(f.cl.c) > 1100);
		CHECK(OPS(&f.cl)->datagram_max(f.cl.c) < 1200);
		quic_conn_stats(f.cl.qc, &st);
		CHECK(st.max_udp_payload == 1200);
		printf("#   handshake %s: rtt %llu us, datagram_max %zu\n",
		       udp ? "udp" : "memory", (unsigned long long)st.srtt_us,
		       OPS(&f.cl)->datagram_max(f.cl.c));
	}
	else {
		CHECK(!"handshake");
	}
	fx_stop(&f);
}

static void t_handshake_mem(void) { t_handshake(false); }
static void t_handshake_udp(void) { t_handshake(true); }

static void t_wrong_fp(bool server_cert_wrong)
{
	struct fixture f;
	struct fx_opts o = { 0 };
	struct cstream *s = NULL;
	int err;

	if (server_cert_wrong)
		o.cl_expects = quic_identity_fingerprint(g_id_x);
	else
		o.sv_expects = quic_identity_fingerprint(g_id_x);
	err = fx_start(&f, &o);
	CHECK(err == 0);
	if (!err) {
		/* Before the handshake nothing can be sent. */
		CHECK(OPS(&f.cl)->stream_open(f.cl.c, &s) == ENOTCONN);
		CHECK(OPS(&f.cl)->datagram_send(f.cl.c, (const uint8_t *)"x", 1)
		      == ENOTCONN);
		CHECK(run_until(both_ended, &f, 5000));
	}
	CHECK(f.cl.connected == 0);
	CHECK(f.sv.connected == 0);
	CHECK(f.sv.n_opened == 0 && f.cl.n_opened == 0);
	CHECK(f.sv.n_dgrams == 0 && f.cl.n_dgrams == 0);
	if (server_cert_wrong) {
		CHECK(f.cl.auth_failed == 1 && f.cl.close_local);
		CHECK(f.sv.auth_failed == 1 && !f.sv.close_local);
	}
	else {
		CHECK(f.sv.auth_failed == 1 && f.sv.close_local);
		CHECK(f.cl.auth_failed == 1 && !f.cl.close_local);
	}
	printf("#   client: \"%s\"\n#   server: \"%s\"\n", f.cl.reason, f.sv.reason);
	fx_stop(&f);
}

static void t_wrong_server_cert(void) { t_wrong_fp(true); }
static void t_wrong_client_cert(void) { t_wrong_fp(false); }

struct bulk {
	struct fixture *f;
	struct tstream *w;
	uint64_t total;
};

static bool bulk_done(void *arg)
{
	struct bulk *b = arg;
	struct tstream *r = b->f->sv.last_opened;

	if (b->w->werr || (r && (r->mismatch || r->reset)))
		return true;
	return r && r->fin && r->rx == b->total;
}

static void bulk_run(double drop, uint32_t delay_ms, bool udp, uint64_t total,
		     enum quic_cc cc)
{
	struct fixture f;
	struct fx_opts o = { .udp = udp, .drop = drop, .delay_ms = delay_ms, .cc = cc };
	struct bulk b = { .f = &f, .total = total };
	struct quic_stats cs, ss;
	uint64_t t0, dt;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	f.sv.accept_verify = true;
	b.w = ts_open(&f.cl);
	CHECK(b.w != NULL);
	if (!b.w) {
		fx_stop(&f);
		return;
	}
	b.w->target = total;
	b.w->fin_after = true;
	t0 = now_ms();
	ts_pump(b.w);
	CHECK(run_until(bulk_done, &b, 120000));
	dt = now_ms() - t0;
	CHECK(b.w->werr == 0);
	CHECK(f.sv.last_opened && !f.sv.last_opened->mismatch);
	CHECK(f.sv.last_opened && f.sv.last_opened->rx == total);
	CHECK(f.sv.last_opened && f.sv.last_opened->fin);
	quic_conn_stats(f.cl.qc, &cs);
	quic_conn_stats(f.sv.qc, &ss);
	printf("#   %llu MB, drop %.0f%% each way, delay %u ms each way, %s: "
	       "%.2f s (%.1f Mbit/s), client sent %llu packets, srtt %llu us\n",
	       (unsigned long long)(total / 1000000), drop * 100, delay_ms,
	       udp ? "udp" : "memory", (double)dt / 1000,
	       dt ? (double)total * 8 / 1000 / (double)dt : 0,
	       (unsigned long long)cs.tx_pkts, (unsigned long long)cs.srtt_us);
	fx_stop(&f);
}

static void t_bulk_20mb_loss10(void)
{
	bulk_run(0.10, 0, false, 20000000, QUIC_CC_DEFAULT);
}

static void t_bulk_20mb_loss10_delay25(void)
{
	bulk_run(0.10, 25, false, 20000000, QUIC_CC_DEFAULT);
}

static void t_bulk_20mb_loss10_delay1(void)
{
	bulk_run(0.10, 1, false, 20000000, QUIC_CC_DEFAULT);
}

static void t_bulk_50mb_delay25(void)
{
	/* No loss, 50 ms RTT: throughput needs the windows to grow past
	 * their initial size (ngtcp2 auto-tuning). */
	bulk_run(0, 25, false, 50000000, QUIC_CC_DEFAULT);
}

static void t_bulk_20mb_udp(void)
{
	bulk_run(0, 0, true, 20000000, QUIC_CC_DEFAULT);
}

struct halfclose {
	struct fixture *f;
	struct tstream *a;  /* opener's side */
	struct ep *peer;
};

static bool hc_peer_fin(void *arg)
{
	struct halfclose *h = arg;

	return h->peer->last_opened && h->peer->last_opened->fin &&
	       h->a->fin;
}

static bool hc_gone(void *arg)
{
	struct fixture *f = arg;
	struct quic_stats a, b;

	quic_conn_stats(f->cl.qc, &a);
	quic_conn_stats(f->sv.qc, &b);
	return a.streams == 0 && b.streams == 0;
}

static void t_half_close_one(struct fixture *f, struct ep *opener, struct ep *peer)
{
	struct halfclose h = { .f = f, .peer = peer };
	static const char msg[] = "ping";

	peer->last_opened = NULL;
	peer->accept_echo_fin = true;
	h.a = ts_open(opener);
	CHECK(h.a != NULL);
	if (!h.a)
		return;
	CHECK(OPS(opener)->stream_write(h.a->s, (const uint8_t *)msg, 4) == 4);
	CHECK(OPS(opener)->stream_shutdown_write(h.a->s) == 0);
	/* Half-closed: writing after FIN is refused. */
	CHECK(OPS(opener)->stream_write(h.a->s, (const uint8_t *)msg, 4) == -EPIPE);
	CHECK(run_until(hc_peer_fin, &h, 5000));
	CHECK(peer->last_opened && strcmp(peer->last_opened->text, "ping") == 0);
	/* The peer could still write after our FIN; it answered "pong". */
	CHECK(strcmp(h.a->text, "pong") == 0);
	CHECK(peer->last_opened && peer->last_opened->werr == 4);
	CHECK(!h.a->reset && peer->last_opened && !peer->last_opened->reset);
	mem_deref(h.a);
	if (peer->last_opened)
		mem_deref(peer->last_opened);
	peer->last_opened = NULL;
	/* Both handles released and both directions finished: the streams
	 * are freed once the last ACKs are in. */
	CHECK(run_until(hc_gone, f, 3000));
}

static void t_fin_half_close(void)
{
	struct fixture f;
	struct fx_opts o = { .drop = 0.0, .delay_ms = 5 };

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	t_half_close_one(&f, &f.cl, &f.sv); /* client opens */
	t_half_close_one(&f, &f.sv, &f.cl); /* server opens */
	fx_stop(&f);
}

struct rst {
	struct tstream *a;
	struct ep *peer;
};

static bool rst_peer_has_data(void *arg)
{
	struct rst *r = arg;

	return r->peer->last_opened && r->peer->last_opened->rx > 0;
}

static bool rst_a_reset(void *arg)
{
	struct rst *r = arg;

	return r->a->reset;
}

static bool rst_peer_reset(void *arg)
{
	struct rst *r = arg;

	return r->peer->last_opened && r->peer->last_opened->reset;
}

static void t_reset_one(struct fixture *f, struct ep *opener, struct ep *peer,
			bool opener_resets)
{
	struct rst r = { .peer = peer };
	uint64_t code = opener_resets ? 43 : 42;

	peer->last_opened = NULL;
	peer->accept_echo_fin = false;
	r.a = ts_open(opener);
	CHECK(r.a != NULL);
	if (!r.a)
		return;
	r.a->target = 100000;
	ts_pump(r.a);
	CHECK(run_until(rst_peer_has_data, &r, 5000));
	if (!peer->last_opened)
		return;
	if (opener_resets) {
		OPS(opener)->stream_reset(r.a->s, code);
		CHECK(run_until(rst_peer_reset, &r, 5000));
		CHECK(peer->last_opened->reset_code == code);
		/* The peer's writes fail after the reset reached it. */
		CHECK(OPS(peer)->stream_write(peer->last_opened->s,
					      (const uint8_t *)"x", 1) < 0);
	}
	else {
		OPS(peer)->stream_reset(peer->last_opened->s, code);
		CHECK(run_until(rst_a_reset, &r, 5000));
		CHECK(r.a->reset_code == code);
		CHECK(OPS(opener)->stream_write(r.a->s, (const uint8_t *)"x", 1) < 0);
	}
	mem_deref(r.a);
	mem_deref(peer->last_opened);
	peer->last_opened = NULL;
	CHECK(run_until(hc_gone, f, 3000));
}

static void t_reset_both_ways(void)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 5 };

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	t_reset_one(&f, &f.cl, &f.sv, false); /* server resets client's stream */
	t_reset_one(&f, &f.cl, &f.sv, true);  /* client resets its own */
	t_reset_one(&f, &f.sv, &f.cl, false); /* client resets server's stream */
	t_reset_one(&f, &f.sv, &f.cl, true);  /* server resets its own */
	fx_stop(&f);
}

static bool dg_got(void *arg)
{
	struct ep *e = arg;

	return e->n_dgrams > 0;
}

static bool dg_got10(void *arg)
{
	struct ep *e = arg;

	return e->n_dgrams >= 10;
}

static void t_datagrams(void)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 2 };
	uint8_t buf[2048];
	size_t max;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	max = OPS(&f.cl)->datagram_max(f.cl.c);
	CHECK(max > 0 && max < sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(7 + i);
	f.sv.expect_dgram_fill = 7;
	CHECK(OPS(&f.cl)->datagram_send(f.cl.c, buf, max + 1) == EMSGSIZE);
	CHECK(OPS(&f.cl)->datagram_send(f.cl.c, buf, sizeof(buf)) == EMSGSIZE);
	CHECK(OPS(&f.cl)->datagram_send(f.cl.c, buf, max) == 0);
	CHECK(run_until(dg_got, &f.sv, 3000));
	CHECK(f.sv.n_dgrams == 1 && f.sv.dgram_bytes == max && f.sv.dgram_ok);

	/* The other way, several small ones. */
	f.cl.expect_dgram_fill = 7;
	for (int i = 0; i < 10; i++)
		CHECK(OPS(&f.sv)->datagram_send(f.sv.c, buf, 100) == 0);
	CHECK(run_until(dg_got10, &f.cl, 3000));
	CHECK(f.cl.n_dgrams == 10 && f.cl.dgram_bytes == 1000 && f.cl.dgram_ok);
	printf("#   datagram_max %zu; max+1 gives EMSGSIZE\n", max);
	fx_stop(&f);
}

struct bp {
	struct fixture *f;
	struct tstream *w;
	uint64_t last_tx;
	uint64_t since;
};

static bool bp_stalled(void *arg)
{
	struct bp *b = arg;
	uint64_t t = now_ms();

	if (b->w->tx != b->last_tx) {
		b->last_tx = b->w->tx;
		b->since = t;
		return false;
	}
	/* No progress for 500 ms with the writer told to wait. */
	return b->w->stalled && t - b->since >= 500;
}

static bool bp_done(void *arg)
{
	struct bp *b = arg;
	struct tstream *r = b->f->sv.last_opened;

	return b->w->werr || (r && r->fin && r->rx == b->w->target);
}

static void t_backpressure(void)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 1 };
	struct bp b = { .f = &f };
	struct tstream *r;
	const uint64_t total = 64ULL * 1024 * 1024;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	f.sv.accept_consume = false; /* the reader stalls */
	f.sv.accept_verify = true;
	b.w = ts_open(&f.cl);
	if (!b.w) {
		CHECK(!"open");
		fx_stop(&f);
		return;
	}
	b.w->target = total;
	b.w->fin_after = true;
	b.since = now_ms();
	ts_pump(b.w);
	CHECK(run_until(bp_stalled, &b, 10000));
	r = f.sv.last_opened;
	CHECK(r != NULL);
	if (!r) {
		fx_stop(&f);
		return;
	}
	printf("#   stalled: writer accepted %llu bytes, reader holds %llu "
	       "unconsumed\n", (unsigned long long)b.w->tx,
	       (unsigned long long)r->pending);
	CHECK(b.w->stalled);
	/* Push until the carrier refuses: it must, and soon. */
	for (;;) {
		uint8_t buf[4096];
		long w;

		gen_fill(buf, b.w->tx, sizeof(buf));
		w = OPS(&f.cl)->stream_write(b.w->s, buf, sizeof(buf));
		if (w <= 0) {
			CHECK(w == 0);
			break;
		}
		b.w->tx += (uint64_t)w;
		if (b.w->tx > 64ULL * 1024 * 1024)
			break;
	}
	printf("#   refused after %llu bytes\n", (unsigned long long)b.w->tx);
	/* Bounded (docs/quic.md): 1 MiB unsent in the send buffer + the
	 * peer's stream window (1 MiB while nothing is consumed) in flight. */
	CHECK(b.w->tx <= 2ULL * 1024 * 1024);
	CHECK(r->pending <= 1ULL * 1024 * 1024);
	CHECK(r->rx == r->pending);
	run_for(300);
	CHECK(r->rx == r->pending && r->pending <= 1ULL * 1024 * 1024);
	/* Start consuming: the writer resumes and everything arrives. */
	r->consume = true;
	OPS(&f.sv)->stream_consumed(r->s, (size_t)r->pending);
	r->pending = 0;
	CHECK(run_until(bp_done, &b, 30000));
	CHECK(!r->mismatch && r->rx == total && r->fin);
	CHECK(b.w->writable > 0);
	printf("#   resumed: %llu bytes delivered, %d writable events\n",
	       (unsigned long long)r->rx, b.w->writable);
	fx_stop(&f);
}

static bool ep_ended(void *arg)
{
	struct ep *e = arg;

	return e->closed || e->auth_failed;
}

static void t_clean_close_one(bool client_closes)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 25 };
	struct ep *me, *peer;
	struct tstream *t;
	uint64_t t0;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	me = client_closes ? &f.cl : &f.sv;
	peer = client_closes ? &f.sv : &f.cl;
	/* An open stream on the closing side gets reset by the close. */
	t = ts_open(me);
	CHECK(t != NULL);
	t0 = now_ms();
	quic_conn_close(me->qc, 0, "sigterm");
	CHECK(me->closed == 1 && me->close_local && me->close_app);
	CHECK(t && t->reset && t->reset_code == QUIC_ERR_CONN_CLOSED);
	CHECK(run_until(ep_ended, peer, 1000));
	CHECK(peer->closed == 1 && !peer->close_local && peer->close_app &&
	      peer->close_code == 0);
	CHECK(strstr(peer->reason, "sigterm") != NULL);
	printf("#   %s closed; %s saw it after %llu ms: \"%s\"\n",
	       me->name, peer->name, (unsigned long long)(peer->closed_at - t0),
	       peer->reason);
	fx_stop(&f);
}

static void t_clean_close(void)
{
	t_clean_close_one(true);
	t_clean_close_one(false);
}

static void t_keepalive_idle(void)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 2, .idle_ms = 1500, .keepalive_ms = 400 };
	uint64_t t0;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	/* Idle for twice the idle timeout: keep-alives hold it open. */
	run_for(3000);
	CHECK(f.cl.closed == 0 && f.sv.closed == 0);
	/* The path dies: both sides give up after the idle timeout. */
	mempath_set_down(f.ma, true);
	t0 = now_ms();
	CHECK(run_until(both_ended, &f, 5000));
	CHECK(f.cl.close_local && f.sv.close_local);
	CHECK(strstr(f.cl.reason, "idle") != NULL);
	printf("#   dead path detected after %llu ms: \"%s\"\n",
	       (unsigned long long)(f.cl.closed_at - t0), f.cl.reason);
	fx_stop(&f);
}

struct many {
	struct fixture *f;
	int n;
	uint64_t each;
};

static bool many_done(void *arg)
{
	struct many *m = arg;
	int complete = 0, wfin = 0;
	struct le *le;

	for (le = list_head(&m->f->streams); le; le = le->next) {
		struct tstream *t = le->data;

		if (t->ep == &m->f->sv && t->fin && t->rx == m->each && !t->mismatch)
			complete++;
		if (t->ep == &m->f->cl && t->fin)
			wfin++;
	}
	return complete == m->n && wfin == m->n;
}

static void t_many_streams(void)
{
	struct fixture f;
	struct fx_opts o = { .delay_ms = 1 };
	struct many m = { .f = &f, .n = 300, .each = 50000 };
	uint64_t t0 = now_ms();
	int batch, opened = 0;

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	f.sv.accept_verify = true;
	f.sv.accept_fin_back = true;
	/* 5 x 300 streams, 300 at a time: more than the 1024 the peer allows
	 * at first, so MAX_STREAMS credit must come back as streams close. */
	for (batch = 0; batch < 5; batch++) {
		for (int i = 0; i < m.n; i++) {
			struct tstream *t = ts_open(&f.cl);

			CHECK(t != NULL);
			if (!t)
				break;
			opened++;
			t->target = m.each;
			t->fin_after = true;
			ts_pump(t);
		}
		CHECK(run_until(many_done, &m, 20000));
		while (f.streams.head)
			mem_deref(f.streams.head->data);
		CHECK(run_until(hc_gone, &f, 5000));
		if (g_fail_checks)
			break;
	}
	printf("#   %d streams of %llu bytes in %llu ms\n", opened,
	       (unsigned long long)m.each, (unsigned long long)(now_ms() - t0));
	fx_stop(&f);
}

static bool echo_done(void *arg)
{
	struct tstream *t = arg;

	return t->fin;
}

static void t_udp_stream_datagram(void)
{
	struct fixture f;
	struct fx_opts o = { .udp = true };
	struct tstream *t;
	uint8_t buf[512];

	if (!connect_pair(&f, &o)) {
		CHECK(!"handshake");
		fx_stop(&f);
		return;
	}
	f.sv.accept_echo_fin = true;
	t = ts_open(&f.cl);
	CHECK(t != NULL);
	if (t) {
		CHECK(OPS(&f.cl)->stream_write(t->s, (const uint8_t *)"ping", 4) == 4);
		CHECK(OPS(&f.cl)->stream_shutdown_write(t->s) == 0);
		CHECK(run_until(echo_done, t, 3000));
		CHECK(strcmp(t->text, "pong") == 0);
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(3 + i);
	f.sv.expect_dgram_fill = 3;
	CHECK(OPS(&f.cl)->datagram_send(f.cl.c, buf, sizeof(buf)) == 0);
	CHECK(run_until(dg_got, &f.sv, 3000));
	CHECK(f.sv.dgram_ok && f.sv.dgram_bytes == sizeof(buf));
	fx_stop(&f);
}

/* --- Main -------------------------------------------------------------------- */

struct test {
	const char *name;
	void (*fn)(void);
};

static const struct test tests[] = {
	{ "handshake_mem", t_handshake_mem },
	{ "handshake_udp", t_handshake_udp },
	{ "wrong_server_cert", t_wrong_server_cert },
	{ "wrong_client_cert", t_wrong_client_cert },
	{ "fin_half_close", t_fin_half_close },
	{ "reset_both_ways", t_reset_both_ways },
	{ "datagrams", t_datagrams },
	{ "backpressure", t_backpressure },
	{ "clean_close", t_clean_close },
	{ "keepalive_idle", t_keepalive_idle },
	{ "udp_stream_datagram", t_udp_stream_datagram },
	{ "many_streams", t_many_streams },
	{ "bulk_20mb_udp", t_bulk_20mb_udp },
	{ "bulk_50mb_delay25", t_bulk_50mb_delay25 },
	{ "bulk_20mb_loss10", t_bulk_20mb_loss10 },
	{ "bulk_20mb_loss10_delay25", t_bulk_20mb_loss10_delay25 },
	{ "bulk_20mb_loss10_delay1", t_bulk_20mb_loss10_delay1 },
};

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	err = libre_init();
	if (err) {
		fprintf(stderr, "libre_init: %s\n", strerror(err));
		return 2;
	}
	if (getenv("QUIC_TEST_CC")) {
		const char *c = getenv("QUIC_TEST_CC");

		g_cc = !strcmp(c, "reno") ? QUIC_CC_RENO :
			!strcmp(c, "cubic") ? QUIC_CC_CUBIC :
			!strcmp(c, "bbr2") ? QUIC_CC_BBR2 : QUIC_CC_BBR;
		printf("# congestion control: %s\n", c);
	}
	tmr_init(&g_poll);
	tmr_init(&g_timeout);
	if (quic_identity_new(&g_id_a) || quic_identity_new(&g_id_b) ||
	    quic_identity_new(&g_id_x)) {
		fprintf(stderr, "quic_identity_new failed\n");
		return 2;
	}

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool selected = argc < 2;

		for (int a = 1; a < argc; a++)
			if (strcmp(argv[a], tests[i].name) == 0)
				selected = true;
		if (!selected)
			continue;
		g_test = tests[i].name;
		g_fail_checks = 0;
		tests[i].fn();
		if (g_fail_checks) {
			printf("not ok - %s\n", tests[i].name);
			failed++;
		}
		else {
			printf("ok - %s\n", tests[i].name);
			passed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);

	mem_deref(g_id_a);
	mem_deref(g_id_b);
	mem_deref(g_id_x);
	tmr_cancel(&g_poll);
	tmr_cancel(&g_timeout);
	libre_close();
	return failed ? 1 : 0;
}
