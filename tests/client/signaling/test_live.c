/* The signaling client against real coordinators (bin/coordinator on
 * 127.0.0.1 only): publish/poll round trips with psig, cursor
 * acknowledgement, forged and stale messages, servers and TURN
 * credentials, fan-out failover when a standalone coordinator is killed
 * -9, two negotiations wired to two clients over a fake link layer, and
 * two --ha coordinators over a loopback Redis + Sentinel (shared mailbox,
 * kill -9 and SIGSTOP of the polled one). Every process started here is
 * killed, and its files removed, before the test returns (and at exit). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/negotiate.h"
#include "client/sig_http.h"
#include "client/sig_priv.h"
#include "client/sigclient.h"
#include "signaling/auth.h"
#include "signaling/keys.h"
#include "tests/client/signaling/sigtest.h"

#include <re_main.h>

/* --- the loop ------------------------------------------------------------ */

static struct tmr g_timeout, g_poll;
static bool (*g_cond)(void *);
static void *g_cond_arg;
static bool g_met;

static void on_timeout(void *arg)
{
	(void)arg;
	re_cancel();
}

static void on_poll(void *arg)
{
	(void)arg;
	if (g_cond && g_cond(g_cond_arg)) {
		g_met = true;
		re_cancel();
		return;
	}
	tmr_start(&g_poll, 5, on_poll, NULL);
}

static bool run_until(bool (*cond)(void *), void *arg, uint64_t ms)
{
	g_cond = cond;
	g_cond_arg = arg;
	g_met = cond && cond(arg);
	if (g_met)
		return true;
	tmr_start(&g_timeout, ms, on_timeout, NULL);
	tmr_start(&g_poll, 5, on_poll, NULL);
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

/* --- coordinators -------------------------------------------------------- */

struct coord {
	pid_t pid;
	uint16_t http, stun;
	char url[64];
};

static char g_dir[64];
static char g_secret[96];
static struct mesh_keys g_keys;
static pid_t g_pids[8];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) ? 0 : 0;
}

static void kill_all(void)
{
	for (int i = 0; i < 8; i++) {
		if (g_pids[i] > 0) {
			kill(g_pids[i], SIGKILL);
			waitpid(g_pids[i], NULL, 0);
			g_pids[i] = 0;
		}
	}
	if (g_secret[0]) {
		/* Everything the test made: secret, Redis and Sentinel files. */
		nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		g_secret[0] = '\0';
	}
}

static bool setup_secret(void)
{
	char err[160];
	FILE *f;
	uint8_t b[32];

	if (g_secret[0])
		return true;
	snprintf(g_dir, sizeof(g_dir), "/tmp/sigtest.XXXXXX");
	if (!mkdtemp(g_dir))
		return false;
	snprintf(g_secret, sizeof(g_secret), "%s/secret", g_dir);
	f = fopen(g_secret, "w");
	if (!f)
		return false;
	rand_bytes(b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		fprintf(f, "%02x", b[i]);
	fprintf(f, "\n");
	fclose(f);
	chmod(g_secret, 0600);
	atexit(kill_all);
	return keys_load(g_secret, &g_keys, err, sizeof(err)) == 0;
}

/* A free TCP port on 127.0.0.1 (and, for stun, UDP too). */
static uint16_t free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t l = sizeof(a);
		int t = socket(AF_INET, SOCK_STREAM, 0), u;
		uint16_t port;
		if (t < 0 || bind(t, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(t, (struct sockaddr *)&a, &l)) {
			if (t >= 0)
				close(t);
			continue;
		}
		port = ntohs(a.sin_port);
		u = socket(AF_INET, SOCK_DGRAM, 0);
		bool ok = u >= 0 && !bind(u, (struct sockaddr *)&a, sizeof(a));
		if (u >= 0)
			close(u);
		close(t);
		if (ok && port < 60000)
			return port;
	}
	return 0;
}

static bool tcp_answers(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = s >= 0 && !connect(s, (struct sockaddr *)&a, sizeof(a));

	if (s >= 0)
		close(s);
	return ok;
}

static bool coord_start_args(struct coord *c, uint16_t http, const char *sentinel,
			     const char *node_id);

static bool coord_start(struct coord *c, uint16_t http)
{
	return coord_start_args(c, http, NULL, NULL);
}

/* A helper process (redis-server, redis-sentinel) with its output gone. */
static pid_t spawn(const char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 8; i++) {
		if (!g_pids[i]) {
			g_pids[i] = pid;
			break;
		}
	}
	return pid;
}

static bool coord_start_args(struct coord *c, uint16_t http, const char *sentinel,
			     const char *node_id)
{
	char hp[8], sp[8], rp[24];
	static unsigned relay_base;

	if (!setup_secret())
		return false;
	if (!relay_base)
		relay_base = 42000 + (unsigned)(getpid() % 500) * 20;
	c->http = http ? http : free_port();
	c->stun = free_port();
	if (!c->http || !c->stun)
		return false;
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u", c->http);
	snprintf(hp, sizeof(hp), "%u", c->http);
	snprintf(sp, sizeof(sp), "%u", c->stun);
	snprintf(rp, sizeof(rp), "%u-%u", relay_base, relay_base + 9);
	relay_base += 10;
	c->pid = fork();
	if (c->pid < 0)
		return false;
	if (c->pid == 0) {
		int fd = open(g_verbose ? "/dev/stderr" : "/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (sentinel)
			execl(g_coord_bin, g_coord_bin, "--secret-file", g_secret,
			      "--listen", "127.0.0.1", "--http-port", hp, "--stun-port", sp,
			      "--tls-port", "0", "--relay-ports", rp, "--log-level",
			      g_verbose ? "info" : "error", "--node-id", node_id,
			      "--ha", "--sentinel", sentinel, (char *)NULL);
		else
			execl(g_coord_bin, g_coord_bin, "--secret-file", g_secret,
			      "--listen", "127.0.0.1", "--http-port", hp, "--stun-port", sp,
			      "--tls-port", "0", "--relay-ports", rp, "--log-level",
			      g_verbose ? "info" : "error", "--node-id", hp, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 8; i++) {
		if (!g_pids[i]) {
			g_pids[i] = c->pid;
			break;
		}
	}
	for (int i = 0; i < 500; i++) {
		if (tcp_answers(c->http))
			return true;
		int st;
		if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
			printf("#   coordinator exited at start (%s)\n", g_coord_bin);
			c->pid = 0;
			return false;
		}
		usleep(10000);
	}
	return false;
}

static void coord_kill(struct coord *c)
{
	if (c->pid <= 0)
		return;
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	for (int i = 0; i < 8; i++) {
		if (g_pids[i] == c->pid)
			g_pids[i] = 0;
	}
	c->pid = 0;
}

/* --- a client ------------------------------------------------------------ */

#define RX_MAX 64

struct rxmsg {
	char from[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	char payload[256];
	char coord[SIG_URL_MAX];
};

struct cli {
	char id[PEER_ID_MAX + 1];
	struct sigclient *sc;
	struct rxmsg rx[RX_MAX];
	unsigned nrx;
	unsigned servers_calls;
	/* the last publish result */
	int pub_err;
	uint64_t pub_cur;
	unsigned pub_done;
	/* a negotiation on top (live_negotiate) */
	struct negotiation *neg;
	struct fake_link *fl;
	/* its publishes still in flight: a freed sigclient never answers
	 * them, so they are released with it */
	struct list pubs;
};

static bool known(const char *id, void *arg)
{
	(void)arg;
	return !strcmp(id, "w1") || !strcmp(id, "w2");
}

static void neg_deliver(struct cli *c, const struct sig_msg *m);

static void on_msg(const struct sig_msg *m, void *arg)
{
	struct cli *c = arg;

	if (c->neg) {
		neg_deliver(c, m);
		return;
	}
	if (c->nrx >= RX_MAX)
		return;
	struct rxmsg *r = &c->rx[c->nrx++];
	snprintf(r->from, sizeof(r->from), "%s", m->from);
	snprintf(r->kind, sizeof(r->kind), "%s", m->kind);
	r->epoch = m->epoch;
	snprintf(r->payload, sizeof(r->payload), "%.*s", (int)m->payload_len, m->payload);
	snprintf(r->coord, sizeof(r->coord), "%s", m->coord);
}

static void on_servers(struct sigclient *sc, void *arg)
{
	struct cli *c = arg;

	(void)sc;
	c->servers_calls++;
}

static uint32_t g_refresh_ms; /* 0: the default */

static bool cli_start(struct cli *c, const char *id, const char *coords)
{
	struct sigclient_config cfg = {
		.self_id = id, .keys = &g_keys, .coordinators = coords,
		.poll_wait_s = 5, .probe_ms = 1000, .refresh_ms = g_refresh_ms,
	};
	struct sigclient_handlers h = { .peer_known = known, .message = on_msg,
					.servers = on_servers };
	char err[200];

	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id);
	if (sigclient_alloc(&c->sc, &cfg, &h, c, err, sizeof(err))) {
		printf("#   sigclient_alloc: %s\n", err);
		return false;
	}
	return true;
}

static void on_pub(int err, uint64_t cur, void *arg)
{
	struct cli *c = arg;

	c->pub_err = err;
	c->pub_cur = cur;
	c->pub_done++;
}

static bool pub_done(void *arg)
{
	struct cli *c = arg;

	return c->pub_done > 0;
}

/* Publishes and waits for the result; returns its error. */
static int publish(struct cli *c, const char *to, const char *kind,
		   uint64_t epoch, const char *payload)
{
	c->pub_done = 0;
	int err = sigclient_publish(c->sc, to, kind, epoch, payload,
				    strlen(payload), on_pub, c);
	if (err)
		return err;
	if (!run_until(pub_done, c, 25000))
		return ETIMEDOUT;
	return c->pub_err;
}

struct want {
	struct cli *c;
	unsigned n;
};

static bool has_n(void *arg)
{
	struct want *w = arg;

	return w->c->nrx >= w->n;
}

static bool wait_rx(struct cli *c, unsigned n, uint64_t ms)
{
	struct want w = { c, n };

	return run_until(has_n, &w, ms);
}

static bool reachable(void *arg)
{
	struct sigclient_stats st;

	sigclient_stats(arg, &st);
	return st.reachable > 0;
}

/* --- raw requests (what a misbehaving peer or a probe would send) --------- */

struct raw {
	struct shttp_pool *pool;
	struct shttp_req *req;
	bool done;
	int err, status;
	char body[8192];
};

static void raw_done(int err, const struct shttp_resp *r, void *arg)
{
	struct raw *x = arg;

	x->done = true;
	x->err = err;
	if (!err) {
		x->status = r->status;
		snprintf(x->body, sizeof(x->body), "%.*s", (int)r->body_len, r->body);
	}
}

static bool raw_is_done(void *arg)
{
	return ((struct raw *)arg)->done;
}

/* A signed request as `peer`. */
static int raw(const struct coord *co, const char *peer, const char *method,
	       const char *path, const char *body, struct raw *x)
{
	char auth[AUTH_HEADER_MAX], hdr[AUTH_HEADER_MAX + 80], host[32];
	struct sa sa;
	int err;

	memset(x, 0, sizeof(*x));
	sa_set_str(&sa, "127.0.0.1", co->http);
	snprintf(host, sizeof(host), "127.0.0.1:%u", co->http);
	if (auth_build_header(auth, sizeof(auth), g_keys.signal, peer,
			      (int64_t)time(NULL), method, path, body,
			      body ? strlen(body) : 0) < 0)
		return EINVAL;
	snprintf(hdr, sizeof(hdr), "Authorization: %s\r\n%s", auth,
		 body ? "Content-Type: application/json\r\n" : "");
	err = shttp_pool_alloc(&x->pool, &sa, host, 1, 0);
	if (err)
		return err;
	struct shttp_spec s = { .method = method, .path = path, .headers = hdr,
				.body = body, .body_len = body ? strlen(body) : 0,
				.timeout_ms = 5000, .connect_ms = 1000,
				.body_max = 1 << 20 };
	err = shttp_request(&x->req, x->pool, &s, raw_done, x);
	if (!err && !run_until(raw_is_done, x, 6000))
		err = ETIMEDOUT;
	x->req = mem_deref(x->req);
	x->pool = mem_deref(x->pool);
	return err ? err : x->err;
}

/* --- tests --------------------------------------------------------------- */

void t_live_roundtrip(void)
{
	struct coord c0 = { 0 };
	struct cli a, b;
	uint64_t e = (uint64_t)time(NULL) * 1000;

	if (!coord_start(&c0, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		return;
	}
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(cli_start(&b, "w2", c0.url));
	CHECK(run_until(reachable, a.sc, 3000));
	CHECK(run_until(reachable, b.sc, 3000));
	uint64_t t0 = tmr_jiffies();
	CHECK(publish(&a, "w2", "offer", e, "{\"ice\":\"x\"}") == 0);
	CHECK(wait_rx(&b, 1, 3000));
	uint64_t dt = tmr_jiffies() - t0;
	NOTE("publish to delivery: %" PRIu64 " ms", dt);
	CHECK(dt < 1000); /* a waiting long poll is answered at once */
	CHECK(b.nrx == 1 && !strcmp(b.rx[0].from, "w1") && !strcmp(b.rx[0].kind, "offer") &&
	      b.rx[0].epoch == e && !strcmp(b.rx[0].payload, "{\"ice\":\"x\"}"));
	CHECK(publish(&b, "w1", "answer", e, "{\"ice\":\"y\"}") == 0);
	CHECK(wait_rx(&a, 1, 3000));
	CHECK(a.nrx == 1 && !strcmp(a.rx[0].kind, "answer"));
	/* Payload bytes survive exactly (escapes, UTF-8). */
	static const char odd[] = "q\"\\/\n\t\xc3\xa9\xe2\x82\xac{}";
	CHECK(publish(&a, "w2", "offer", e + 1, odd) == 0);
	CHECK(wait_rx(&b, 2, 3000));
	CHECK(!strcmp(b.rx[1].payload, odd));
	/* Bounds are refused before anything is sent. */
	CHECK(sigclient_publish(a.sc, "w 2", "offer", e, "", 0, NULL, NULL) == EINVAL);
	CHECK(sigclient_publish(a.sc, "w2", "offer", 0, "", 0, NULL, NULL) == EINVAL);
	CHECK(sigclient_publish(a.sc, "w2", "Offer", e, "", 0, NULL, NULL) == EINVAL);
	struct sigclient_stats st;
	sigclient_stats(b.sc, &st);
	CHECK(st.delivered == 2 && st.psig_dropped == 0 && st.coordinators == 1);
	mem_deref(a.sc);
	mem_deref(b.sc);
	coord_kill(&c0);
}

void t_live_cursor_ack(void)
{
	struct coord c0 = { 0 };
	struct cli a, b;
	struct raw x;
	uint64_t e = (uint64_t)time(NULL) * 1000;

	if (!coord_start(&c0, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		return;
	}
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(run_until(reachable, a.sc, 3000));
	CHECK(publish(&a, "w2", "offer", e, "m1") == 0);
	/* A poll whose answer is "lost" (we read it and acknowledge
	 * nothing) deletes nothing. */
	CHECK(raw(&c0, "w2", "GET", "/v1/poll?wait=0", NULL, &x) == 0);
	CHECK(x.status == 200 && strstr(x.body, "\"m1\""));
	CHECK(cli_start(&b, "w2", c0.url));
	CHECK(wait_rx(&b, 1, 3000));
	CHECK(b.nrx == 1 && !strcmp(b.rx[0].payload, "m1"));
	/* The client acknowledged it with its next poll: a new client for
	 * the same peer does not see it again. */
	run_for(300);
	mem_deref(b.sc);
	CHECK(raw(&c0, "w2", "GET", "/v1/poll?wait=0", NULL, &x) == 0);
	CHECK(x.status == 200 && !strstr(x.body, "\"m1\""));
	CHECK(cli_start(&b, "w2", c0.url));
	CHECK(publish(&a, "w2", "offer", e + 1, "m2") == 0);
	CHECK(wait_rx(&b, 1, 3000));
	run_for(300);
	CHECK(b.nrx == 1 && !strcmp(b.rx[0].payload, "m2"));
	mem_deref(a.sc);
	mem_deref(b.sc);
	coord_kill(&c0);
}

void t_live_bad_psig(void)
{
	struct coord c0 = { 0 };
	struct cli a, b;
	struct raw x;
	char body[512], psig[SIG_HEX_LEN + 1];
	uint64_t e = (uint64_t)time(NULL) * 1000;
	struct sigclient_stats st;

	if (!coord_start(&c0, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		return;
	}
	CHECK(cli_start(&b, "w2", c0.url));
	CHECK(run_until(reachable, b.sc, 3000));
	/* w1 (authenticated: it holds the signal key) sends a body whose
	 * psig does not match: the coordinator queues it, w2 drops it. */
	psig_compute(g_keys.e2e, "w1", "w2", e, "offer", "real", 4, psig);
	snprintf(body, sizeof(body),
		 "{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":%" PRIu64 ",\"kind\":\"offer\","
		 "\"payload\":\"forged\",\"psig\":\"%s\"}", e, psig);
	CHECK(raw(&c0, "w1", "POST", "/v1/publish", body, &x) == 0 && x.status == 202);
	/* Someone outside the peer table, correctly signed. */
	psig_compute(g_keys.e2e, "w9", "w2", e, "offer", "x", 1, psig);
	snprintf(body, sizeof(body),
		 "{\"from\":\"w9\",\"to\":\"w2\",\"epoch\":%" PRIu64 ",\"kind\":\"offer\","
		 "\"payload\":\"x\",\"psig\":\"%s\"}", e, psig);
	CHECK(raw(&c0, "w9", "POST", "/v1/publish", body, &x) == 0 && x.status == 202);
	/* Then a good one, which still arrives. */
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(run_until(reachable, a.sc, 3000));
	CHECK(publish(&a, "w2", "offer", e + 1, "good") == 0);
	CHECK(wait_rx(&b, 1, 3000));
	run_for(200);
	CHECK(b.nrx == 1 && !strcmp(b.rx[0].payload, "good"));
	sigclient_stats(b.sc, &st);
	CHECK(st.psig_dropped == 1 && st.from_dropped == 1 && st.delivered == 1);
	mem_deref(a.sc);
	mem_deref(b.sc);
	coord_kill(&c0);
}

void t_live_stale_epoch(void)
{
	struct coord c0 = { 0 };
	struct cli a;
	uint64_t e = (uint64_t)time(NULL) * 1000;

	if (!coord_start(&c0, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		return;
	}
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(run_until(reachable, a.sc, 3000));
	CHECK(publish(&a, "w2", "offer", e, "x") == 0);
	CHECK(publish(&a, "w2", "offer", e, "same epoch again") == 0);
	CHECK(publish(&a, "w2", "offer", e - 1, "older") == ESTALE);
	CHECK(a.pub_cur == e);
	struct sigclient_stats st;
	sigclient_stats(a.sc, &st);
	CHECK(st.publish_stale == 1 && st.publish_ok == 2);
	mem_deref(a.sc);
	coord_kill(&c0);
}

static bool servers_known(void *arg)
{
	struct cli *c = arg;
	struct ice_server v[16];
	size_t n = sigclient_ice_servers(c->sc, v, 16);

	return c->servers_calls > 0 && n >= 3;
}

void t_live_servers(void)
{
	struct coord c0 = { 0 };
	struct cli a;
	struct ice_server v[16];
	char stun[32];

	if (!coord_start(&c0, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		return;
	}
	/* Before any answer: nothing known. */
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(sigclient_ice_servers(a.sc, v, 16) == 0);
	CHECK(run_until(servers_known, &a, 5000));
	/* Wait for the TURN credential from /v1/turn as well. */
	run_for(500);
	size_t n = sigclient_ice_servers(a.sc, v, 16);
	snprintf(stun, sizeof(stun), "127.0.0.1:%u", c0.stun);
	CHECK(n == 3); /* stun, turn_udp, turn_tcp (TLS is off) */
	bool saw_stun = false, saw_udp = false, saw_tcp = false;
	for (size_t i = 0; i < n && i < 16; i++) {
		CHECK(!strcmp(v[i].addr, stun));
		if (v[i].kind == ICE_SRV_STUN) {
			saw_stun = true;
			CHECK(!v[i].username);
		} else {
			saw_udp |= v[i].kind == ICE_SRV_TURN_UDP;
			saw_tcp |= v[i].kind == ICE_SRV_TURN_TCP;
			CHECK(v[i].username && strstr(v[i].username, ":w1") && v[i].password &&
			      strlen(v[i].password) > 10);
			/* It is the coordinator's credential scheme, valid for
			 * at least 7 days (an allocation lives as long as the
			 * credential it was made with). */
			char user[64], pass[64];
			long long exp = atoll(v[i].username);
			CHECK(exp >= (long long)time(NULL) + 7 * 86400 &&
			      exp <= (long long)time(NULL) + 14 * 86400 + 5);
			turn_credential(&g_keys, "w1", exp, user, sizeof(user), pass, sizeof(pass));
			CHECK(!strcmp(user, v[i].username) && !strcmp(pass, v[i].password));
		}
	}
	CHECK(saw_stun && saw_udp && saw_tcp);
	CHECK(!strcmp(sigclient_current(a.sc), c0.url));
	mem_deref(a.sc);
	coord_kill(&c0);
}

void t_live_failover(void)
{
	struct coord c0 = { 0 }, c1 = { 0 };
	struct cli a, b;
	char list[160];
	uint64_t e = (uint64_t)time(NULL) * 1000;

	if (!coord_start(&c0, 0) || !coord_start(&c1, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		kill_all();
		return;
	}
	snprintf(list, sizeof(list), "%s,%s", c0.url, c1.url);
	CHECK(cli_start(&a, "w1", list));
	snprintf(list, sizeof(list), " %s , %s ", c1.url, c0.url); /* another order */
	CHECK(cli_start(&b, "w2", list));
	CHECK(run_until(reachable, a.sc, 3000));
	CHECK(run_until(reachable, b.sc, 3000));
	run_for(300);
	struct sigclient_stats st;
	sigclient_stats(a.sc, &st);
	CHECK(st.coordinators == 2 && st.reachable == 2 && !st.shared);
	CHECK(publish(&a, "w2", "offer", e, "before") == 0);
	CHECK(wait_rx(&b, 1, 3000));
	run_for(200);
	/* Each coordinator has its own mailbox: it came through both, the
	 * second copy was recognised. */
	sigclient_stats(b.sc, &st);
	CHECK(b.nrx == 1 && st.dup_dropped == 1);

	/* kill -9 the first coordinator: messages keep flowing at once. */
	coord_kill(&c0);
	uint64_t t0 = tmr_jiffies();
	CHECK(publish(&a, "w2", "offer", e + 1, "after kill") == 0);
	CHECK(wait_rx(&b, 2, 5000));
	CHECK(publish(&b, "w1", "answer", e + 1, "reply") == 0);
	CHECK(wait_rx(&a, 1, 5000));
	uint64_t dt = tmr_jiffies() - t0;
	NOTE("round trip after kill -9 of %s: %" PRIu64 " ms", c0.url, dt);
	CHECK(dt < 3000);
	CHECK(b.nrx == 2 && !strcmp(b.rx[1].payload, "after kill") &&
	      !strcmp(b.rx[1].coord, c1.url));

	/* Bring it back on the same port and kill the other: the clients
	 * find it again (poll retries are capped at 5 s). */
	CHECK(coord_start(&c0, c0.http));
	run_for(6000);
	coord_kill(&c1);
	t0 = tmr_jiffies();
	CHECK(publish(&a, "w2", "offer", e + 2, "second kill") == 0);
	CHECK(wait_rx(&b, 3, 6000));
	dt = tmr_jiffies() - t0;
	NOTE("delivery after kill -9 of %s: %" PRIu64 " ms", c1.url, dt);
	CHECK(dt < 3000);
	CHECK(b.nrx >= 3 && !strcmp(b.rx[2].payload, "second kill") &&
	      !strcmp(b.rx[2].coord, c0.url));
	sigclient_stats(a.sc, &st);
	CHECK(st.reachable == 1);
	mem_deref(a.sc);
	mem_deref(b.sc);
	coord_kill(&c0);
	kill_all();
}

/* --- negotiations over the real client, with a fake link layer ------------ */

struct fake_link {
	struct cli *c;
	int idx;
	unsigned inc;
	uint64_t prep;        /* prepared epoch */
	char local[96];
	bool connecting;
	uint64_t conn;        /* connecting epoch */
	char remote[96];
	bool up;
	struct tmr tmr;       /* gathering */
	struct tmr ntmr;      /* the negotiation's timer */
	struct tmr dead;      /* the other side went away */
	uint64_t dead_epoch;  /* ... from the link of this epoch */
};

static struct fake_link g_fl[2];
static struct cli g_nc[2];
static const char FPS[2][65] = {
	"1111111111111111111111111111111111111111111111111111111111111111",
	"2222222222222222222222222222222222222222222222222222222222222222",
};
static struct tmr g_up_tmr;

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void neg_deliver(struct cli *c, const struct sig_msg *m)
{
	enum neg_rx rx = neg_recv(c->neg, wall_ms(), m->kind, m->epoch,
				  m->payload, m->payload_len);
	NOTE("%s <- %s %" PRIu64 ": %s", c->id, m->kind, m->epoch, neg_rx_name(rx));
}

static void f_pub_result(int err, uint64_t cur, void *arg);

struct pubctx {
	struct le le; /* in cli.pubs while in flight */
	struct fake_link *fl;
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	unsigned inc;
};

static void pubctx_destroy(void *arg)
{
	struct pubctx *pc = arg;

	list_unlink(&pc->le);
}

static void f_publish(const char *kind, uint64_t epoch, const char *payload,
		      size_t len, void *arg)
{
	struct fake_link *fl = arg;
	struct pubctx *pc = mem_zalloc(sizeof(*pc), pubctx_destroy);

	if (!pc)
		return;
	list_append(&fl->c->pubs, &pc->le, pc);
	pc->fl = fl;
	pc->epoch = epoch;
	pc->inc = fl->inc;
	snprintf(pc->kind, sizeof(pc->kind), "%s", kind);
	NOTE("%s -> %s %" PRIu64, fl->c->id, kind, epoch);
	if (sigclient_publish(fl->c->sc, fl->idx ? "w1" : "w2", kind, epoch,
			      payload, len, f_pub_result, pc))
		mem_deref(pc);
}

static void f_pub_result(int err, uint64_t cur, void *arg)
{
	struct pubctx *pc = arg;
	struct fake_link *fl = pc->fl;

	if (pc->inc == fl->inc && fl->c->neg)
		neg_publish_result(fl->c->neg, wall_ms(), pc->kind, pc->epoch, err, cur);
	mem_deref(pc);
}

static void gathered(void *arg)
{
	struct fake_link *fl = arg;

	snprintf(fl->local, sizeof(fl->local), "d/%d/%u/%" PRIu64, fl->idx, fl->inc, fl->prep);
	neg_local_ready(fl->c->neg, wall_ms(), fl->prep, fl->local, strlen(fl->local));
}

static void f_prepare(uint64_t epoch, void *arg)
{
	struct fake_link *fl = arg;

	fl->prep = epoch;
	fl->local[0] = '\0';
	tmr_start(&fl->tmr, 20, gathered, fl);
}

static bool fl_matched(void)
{
	struct fake_link *a = &g_fl[0], *b = &g_fl[1];

	return a->c && b->c && a->c->neg && b->c->neg && a->connecting &&
		b->connecting && a->conn == b->conn && !strcmp(a->remote, b->local) &&
		!strcmp(b->remote, a->local);
}

static void links_up(void *arg)
{
	(void)arg;
	if (!fl_matched())
		return;
	for (int i = 0; i < 2; i++) {
		g_fl[i].up = true;
		neg_link_up(g_fl[i].c->neg, wall_ms(), g_fl[i].conn);
	}
}

static void f_connect(const struct neg_remote *r, void *arg)
{
	struct fake_link *fl = arg;

	fl->connecting = true;
	fl->conn = r->epoch;
	snprintf(fl->remote, sizeof(fl->remote), "%.*s", (int)r->ice_len, r->ice);
	if (fl_matched())
		tmr_start(&g_up_tmr, 30, links_up, NULL);
}

static void dead(void *arg)
{
	struct fake_link *fl = arg;

	if (fl->c && fl->c->neg && (fl->up || fl->connecting) &&
	    fl->conn == fl->dead_epoch) {
		uint64_t e = fl->conn;
		fl->up = fl->connecting = false;
		neg_link_failed(fl->c->neg, wall_ms(), e, "peer gone");
	}
}

static void fl_clear(struct fake_link *fl)
{
	struct fake_link *o = &g_fl[!fl->idx];

	if ((fl->up || fl->connecting) && o->c && (o->up || o->connecting) &&
	    o->conn == fl->conn) {
		o->dead_epoch = o->conn;
		tmr_start(&o->dead, 500, dead, o); /* consent freshness, shortened */
	}
	tmr_cancel(&fl->tmr);
	fl->prep = 0;
	fl->local[0] = '\0';
	fl->connecting = fl->up = false;
	fl->conn = 0;
	fl->remote[0] = '\0';
}

static void f_down(uint64_t epoch, const char *why, void *arg)
{
	struct fake_link *fl = arg;

	(void)why;
	if (fl->prep == epoch)
		fl_clear(fl);
}

static void ntimeout(void *arg)
{
	struct fake_link *fl = arg;

	neg_timeout(fl->c->neg, wall_ms());
}

static void f_timer(uint32_t ms, void *arg)
{
	struct fake_link *fl = arg;

	if (ms)
		tmr_start(&fl->ntmr, ms, ntimeout, fl);
	else
		tmr_cancel(&fl->ntmr);
}

static const struct neg_actions f_actions = {
	.publish = f_publish, .link_prepare = f_prepare, .link_connect = f_connect,
	.link_down = f_down, .timer = f_timer,
};

static bool peer_up(int i, const char *coords)
{
	struct fake_link *fl = &g_fl[i];
	struct neg_config cfg = { .self = i ? "w2" : "w1", .peer = i ? "w1" : "w2",
				  .fp = FPS[i], .seed = rand_u32() | 1 };
	unsigned inc = fl->inc + 1;

	if (!cli_start(&g_nc[i], cfg.self, coords))
		return false;
	memset(fl, 0, sizeof(*fl));
	fl->inc = inc;
	fl->idx = i;
	fl->c = &g_nc[i];
	if (neg_alloc(&g_nc[i].neg, &cfg, &f_actions, fl))
		return false;
	neg_start(g_nc[i].neg, wall_ms());
	return true;
}

/* kill -9 of a peer: no bye, its link just vanishes. */
static void peer_kill(int i)
{
	struct fake_link *fl = &g_fl[i];

	fl_clear(fl);
	tmr_cancel(&fl->ntmr);
	tmr_cancel(&fl->dead);
	g_nc[i].neg = mem_deref(g_nc[i].neg);
	g_nc[i].sc = mem_deref(g_nc[i].sc);
	list_flush(&g_nc[i].pubs);
	fl->c = NULL;
}

static bool both_up(void *arg)
{
	(void)arg;
	return g_nc[0].neg && g_nc[1].neg && neg_is_up(g_nc[0].neg) &&
		neg_is_up(g_nc[1].neg) && neg_epoch(g_nc[0].neg) == neg_epoch(g_nc[1].neg) &&
		g_fl[0].up && g_fl[1].up;
}

void t_live_negotiate(void)
{
	struct coord c0 = { 0 }, c1 = { 0 };
	char list[160];
	uint64_t worst = 0, e0 = 0;

	if (!coord_start(&c0, 0) || !coord_start(&c1, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		kill_all();
		return;
	}
	snprintf(list, sizeof(list), "%s,%s", c0.url, c1.url);
	memset(g_fl, 0, sizeof(g_fl));
	CHECK(peer_up(0, list) && peer_up(1, list));
	CHECK(run_until(both_up, NULL, 5000));
	e0 = g_nc[0].neg ? neg_epoch(g_nc[0].neg) : 0;

	/* Each side restarted alone, then both together, five times each. */
	for (int round = 0; round < 15 && !g_checks_failed; round++) {
		int who = round < 5 ? 0 : round < 10 ? 1 : 2;
		if (who != 1)
			peer_kill(0);
		if (who != 0)
			peer_kill(1);
		run_for(50 + rand_u32() % 300);
		uint64_t t0 = tmr_jiffies();
		if (who != 1)
			CHECK(peer_up(0, list));
		if (who != 0)
			CHECK(peer_up(1, list));
		bool ok = run_until(both_up, NULL, 5000);
		uint64_t dt = tmr_jiffies() - t0;
		CHECKF(ok, "round %d (%s) did not converge in 5 s", round,
		       who == 2 ? "both" : who ? "w2" : "w1");
		if (!ok)
			break;
		uint64_t e = neg_epoch(g_nc[0].neg);
		CHECK(e > e0);
		e0 = e;
		if (dt > worst)
			worst = dt;
		/* ... and it stays up. */
		run_for(300);
		CHECK(both_up(NULL) && neg_epoch(g_nc[0].neg) == e);
	}
	NOTE("worst restart-to-link time over real coordinators: %" PRIu64 " ms", worst);

	/* Graceful stop of w1: w2 drops the link on the bye, not after
	 * dead-path detection; w1 back: linked at once. */
	neg_stop(g_nc[0].neg, wall_ms());
	run_for(300); /* the bye goes out */
	peer_kill(0);
	run_for(200);
	CHECK(g_nc[1].neg && neg_phase(g_nc[1].neg) == NEG_WAITING);
	CHECK(peer_up(0, list));
	CHECK(run_until(both_up, NULL, 3000));

	/* A coordinator dies under established negotiation: nothing flaps,
	 * and a restart still converges through the survivor. */
	coord_kill(&c0);
	run_for(500);
	CHECK(both_up(NULL));
	peer_kill(1);
	CHECK(peer_up(1, list));
	CHECK(run_until(both_up, NULL, 5000));

	peer_kill(0);
	peer_kill(1);
	tmr_cancel(&g_up_tmr);
	kill_all();
}

/* --- a shared mailbox: two coordinators --ha over Redis + Sentinel ------- */

static bool shared_both(void *arg)
{
	struct cli *c = arg;
	struct sigclient_stats st;

	sigclient_stats(c->sc, &st);
	return st.shared && st.coordinators == 2;
}

/* The registry lists both once each has written its entry, and the
 * mailbox takes writes (a replica confirmed one). */
static bool ha_ready(struct coord *c)
{
	struct raw x;
	char body[400], psig[SIG_HEX_LEN + 1];

	for (int i = 0; i < 100; i++) {
		psig_compute(g_keys.e2e, "w9", "w9x", 1, "probe", "", 0, psig);
		snprintf(body, sizeof(body),
			 "{\"from\":\"w9\",\"to\":\"w9x\",\"epoch\":1,\"kind\":\"probe\","
			 "\"payload\":\"\",\"psig\":\"%s\"}", psig);
		if (raw(c, "w1", "GET", "/v1/coordinators", NULL, &x) == 0 &&
		    x.status == 200 && strstr(x.body, "\"c0\"") && strstr(x.body, "\"c1\"") &&
		    raw(c, "w9", "POST", "/v1/publish", body, &x) == 0 && x.status == 202)
			return true;
		run_for(100);
	}
	return false;
}

/* A Redis master, one replica (--ha waits for a replica to confirm each
 * write, docs/ha.md) and one Sentinel, all on 127.0.0.1; the Sentinel's
 * "127.0.0.1:PORT" into sent. */
static bool ha_backend(char *sent, size_t cap)
{
	char conf[160], rport[8], sport[8];
	FILE *f;

	if (!setup_secret())
		return false;
	uint16_t rp = free_port(), sp = free_port();
	snprintf(rport, sizeof(rport), "%u", rp);
	snprintf(sport, sizeof(sport), "%u", sp);
	const char *redis[] = { "redis-server", "--bind", "127.0.0.1", "--port", rport,
				"--save", "", "--appendonly", "no", "--dir", g_dir, NULL };
	CHECK(spawn(redis) > 0);
	/* --ha waits for a replica to confirm each write (docs/ha.md). */
	char rport2[8], rdir[96];
	uint16_t rp2 = free_port();
	snprintf(rport2, sizeof(rport2), "%u", rp2);
	snprintf(rdir, sizeof(rdir), "%s/replica", g_dir);
	mkdir(rdir, 0700);
	const char *replica[] = { "redis-server", "--bind", "127.0.0.1", "--port", rport2,
				  "--save", "", "--appendonly", "no", "--dir", rdir,
				  "--replicaof", "127.0.0.1", rport, NULL };
	for (int i = 0; i < 300 && !tcp_answers(rp); i++)
		usleep(10000);
	CHECK(spawn(replica) > 0);
	snprintf(conf, sizeof(conf), "%s/sentinel.conf", g_dir);
	f = fopen(conf, "w");
	if (!f)
		return false;
	fprintf(f, "bind 127.0.0.1\nport %u\ndir %s\nsentinel monitor mesh 127.0.0.1 %u 1\n"
		"sentinel down-after-milliseconds mesh 1000\n", sp, g_dir, rp);
	fclose(f);
	const char *sentinel[] = { "redis-sentinel", conf, NULL };
	for (int i = 0; i < 300 && !tcp_answers(rp); i++)
		usleep(10000);
	CHECK(spawn(sentinel) > 0);
	for (int i = 0; i < 300 && !tcp_answers(sp); i++)
		usleep(10000);
	snprintf(sent, cap, "127.0.0.1:%u", sp);
	return tcp_answers(sp);
}

void t_live_ha(void)
{
	struct coord c0 = { 0 }, c1 = { 0 };
	struct cli a, b;
	char sent[32];
	uint64_t e = (uint64_t)time(NULL) * 1000;

	if (!ha_backend(sent, sizeof(sent))) {
		CHECKF(false, "cannot start redis-server and redis-sentinel");
		kill_all();
		return;
	}
	if (!coord_start_args(&c0, 0, sent, "c0") || !coord_start_args(&c1, 0, sent, "c1")) {
		CHECKF(false, "cannot start %s --ha", g_coord_bin);
		goto out;
	}
	CHECK(ha_ready(&c0));

	/* Each client is told only one coordinator; the registry gives the
	 * other, and the list says they share a mailbox. */
	g_refresh_ms = 1000;
	CHECK(cli_start(&a, "w1", c0.url));
	CHECK(cli_start(&b, "w2", c1.url));
	g_refresh_ms = 0;
	CHECK(run_until(shared_both, &a, 8000));
	CHECK(run_until(shared_both, &b, 8000));
	CHECK(publish(&a, "w2", "offer", e, "shared") == 0);
	CHECK(wait_rx(&b, 1, 3000));
	run_for(300);
	struct sigclient_stats st;
	sigclient_stats(b.sc, &st);
	/* One copy: published once, polled through one coordinator. */
	CHECK(b.nrx == 1 && st.dup_dropped == 0);

	/* kill -9 the coordinator b polls: it fails over within seconds
	 * and nothing queued is lost. */
	const char *cur = sigclient_current(b.sc);
	struct coord *victim = !strcmp(cur, c0.url) ? &c0 : &c1;
	struct coord *other = victim == &c0 ? &c1 : &c0;
	NOTE("b polls %s; killing it", cur);
	coord_kill(victim);
	uint64_t t0 = tmr_jiffies();
	CHECK(publish(&a, "w2", "offer", e + 1, "after kill") == 0);
	CHECK(wait_rx(&b, 2, 10000));
	uint64_t dt = tmr_jiffies() - t0;
	NOTE("delivery after kill -9 of the polled coordinator: %" PRIu64 " ms", dt);
	CHECK(dt < 5000);
	CHECK(b.nrx == 2 && !strcmp(b.rx[1].payload, "after kill") &&
	      !strcmp(b.rx[1].coord, other->url));
	sigclient_stats(b.sc, &st);
	CHECK(st.failovers >= 1);
	CHECK(publish(&b, "w1", "answer", e + 1, "reply") == 0);
	CHECK(wait_rx(&a, 1, 10000));

	/* A coordinator that hangs (SIGSTOP: connections stay open, nothing
	 * answers) is left within seconds too: the health probe beside the
	 * long poll notices it. */
	CHECK(coord_start_args(victim, victim->http, sent, victim == &c0 ? "c0" : "c1"));
	run_for(4000); /* back in the registry, and in the clients' lists */
	cur = sigclient_current(b.sc);
	struct coord *hung = !strcmp(cur, c0.url) ? &c0 : &c1;
	NOTE("b polls %s; stopping it", cur);
	kill(hung->pid, SIGSTOP);
	t0 = tmr_jiffies();
	CHECK(publish(&a, "w2", "offer", e + 2, "after stop") == 0);
	CHECK(wait_rx(&b, 3, 15000));
	dt = tmr_jiffies() - t0;
	NOTE("delivery with the polled coordinator stopped: %" PRIu64 " ms", dt);
	CHECK(dt < 8000);
	CHECK(b.nrx == 3 && !strcmp(b.rx[2].payload, "after stop"));
	kill(hung->pid, SIGCONT);
	mem_deref(a.sc);
	mem_deref(b.sc);
 out:
	kill_all();
}

/* --- coordinators that come late, and coordinators that go silent ---------- */

struct srv_want {
	struct cli *c;
	size_t n;          /* servers offered */
	const char *only;  /* every one at this address, or NULL */
};

static bool servers_are(void *arg)
{
	struct srv_want *w = arg;
	struct ice_server v[24];
	size_t n = sigclient_ice_servers(w->c->sc, v, 24);

	if (n != w->n)
		return false;
	for (size_t i = 0; w->only && i < n && i < 24; i++) {
		if (strcmp(v[i].addr, w->only))
			return false;
	}
	return true;
}

/* c's /v1/coordinators names id. */
static bool lists(struct coord *c, const char *id)
{
	struct raw x;
	char q[80];

	snprintf(q, sizeof(q), "\"id\":\"%s\"", id);
	return raw(c, "w1", "GET", "/v1/coordinators", NULL, &x) == 0 &&
	       x.status == 200 && strstr(x.body, q);
}

/* A client told one --ha coordinator that lists only itself (the other
 * starts later) learns the second one within seconds, not at the next
 * 30 s refresh: after start the list is fetched again at 2, 4, 8, 16 s.
 * Then a coordinator the client does not poll (shared mailbox) dies: the
 * health check beside the refresh finds it, and its STUN/TURN servers
 * are no longer offered to ICE. */
void t_live_ha_late_registry(void)
{
	struct coord c0 = { 0 }, c1 = { 0 };
	struct cli a, b;
	char sent[32], stun0[32];
	struct sigclient_stats st;

	if (!ha_backend(sent, sizeof(sent))) {
		CHECKF(false, "cannot start redis-server and redis-sentinel");
		kill_all();
		return;
	}
	if (!coord_start_args(&c0, 0, sent, "c0")) {
		CHECKF(false, "cannot start %s --ha", g_coord_bin);
		goto out;
	}
	bool alone = false;
	for (int i = 0; i < 100 && !alone; i++) {
		alone = lists(&c0, "c0");
		if (!alone)
			run_for(100);
	}
	CHECK(alone);
	CHECK(cli_start(&a, "w1", c0.url)); /* the default refresh: 30 s */
	CHECK(run_until(reachable, a.sc, 5000));
	run_for(500);
	sigclient_stats(a.sc, &st);
	CHECK(st.coordinators == 1 && !st.shared);

	CHECK(coord_start_args(&c1, 0, sent, "c1"));
	uint64_t t0 = tmr_jiffies();
	CHECK(run_until(shared_both, &a, 20000));
	NOTE("learnt c1 %" PRIu64 " ms after it started", tmr_jiffies() - t0);

	/* b refreshes every second; it polls c0, the one it was told. */
	g_refresh_ms = 1000;
	CHECK(cli_start(&b, "w2", c0.url));
	g_refresh_ms = 0;
	CHECK(run_until(shared_both, &b, 8000));
	struct srv_want all = { &b, 6, NULL }; /* stun, turn_udp, turn_tcp each */
	CHECK(run_until(servers_are, &all, 5000));
	CHECK(!strcmp(sigclient_current(b.sc), c0.url));
	unsigned calls = b.servers_calls;
	coord_kill(&c1);
	snprintf(stun0, sizeof(stun0), "127.0.0.1:%u", c0.stun);
	struct srv_want only0 = { &b, 3, stun0 };
	t0 = tmr_jiffies();
	CHECK(run_until(servers_are, &only0, 6000));
	NOTE("c1's servers left out %" PRIu64 " ms after it died", tmr_jiffies() - t0);
	CHECK(b.servers_calls > calls);
	CHECK(!strcmp(sigclient_current(b.sc), c0.url));
	mem_deref(a.sc);
	mem_deref(b.sc);
 out:
	kill_all();
}

/* Fan-out over two standalone coordinators: the servers of one killed -9
 * are left out of what ICE is offered (and the application is told);
 * with both silent all are offered (it may be our own network); one that
 * answers again is back, with the servers of its new run. */
void t_live_servers_unreachable(void)
{
	struct coord c0 = { 0 }, c1 = { 0 };
	struct cli a;
	char list[160], stun[32];

	if (!coord_start(&c0, 0) || !coord_start(&c1, 0)) {
		CHECKF(false, "cannot start %s", g_coord_bin);
		kill_all();
		return;
	}
	snprintf(list, sizeof(list), "%s,%s", c0.url, c1.url);
	CHECK(cli_start(&a, "w1", list));
	struct srv_want all = { &a, 6, NULL };
	CHECK(run_until(servers_are, &all, 5000));

	unsigned calls = a.servers_calls;
	coord_kill(&c0);
	snprintf(stun, sizeof(stun), "127.0.0.1:%u", c1.stun);
	struct srv_want only1 = { &a, 3, stun };
	CHECK(run_until(servers_are, &only1, 8000));
	CHECK(a.servers_calls > calls);

	coord_kill(&c1);
	CHECK(run_until(servers_are, &all, 8000));

	CHECK(coord_start(&c0, c0.http)); /* same HTTP port, another STUN port */
	snprintf(stun, sizeof(stun), "127.0.0.1:%u", c0.stun);
	struct srv_want only0 = { &a, 3, stun };
	CHECK(run_until(servers_are, &only0, 10000));
	mem_deref(a.sc);
	kill_all();
}
