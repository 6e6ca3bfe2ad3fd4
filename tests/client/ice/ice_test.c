/* ice-test: unit tests of client/ice*.c that need no network namespace:
 * the description parser's bounds, and whole sessions on 127.0.0.1 (host
 * candidates only: connect, datagrams both ways, a role conflict, consent
 * expiry, path adoption). One binary, a table of named tests; run one by
 * name: `ice-test loopback-connect`. Prints ok/not ok lines and
 * "N passed, M failed". Owns no production code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re.h>

#include "client/ice.h"
#include "common/log.h"

static int failures;

#define CHECK(c) do { if (!(c)) { \
	fprintf(stderr, "    %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
	failures++; return; } } while (0)

static bool run_for(uint32_t ms);

/* --- Description parser ------------------------------------------------- */

static const char *good_head =
	"mesh-ice:1\n"
	"ice-ufrag:abcd\n"
	"ice-pwd:abcdefghijklmnopqrstuv\n";

static struct ice_session *idle_session(void)
{
	static const char *const host[] = {"127.0.0.1"};
	struct ice_config cfg = {0};
	struct ice_handlers h = {0};
	struct ice_session *s = NULL;

	cfg.name = "parser";
	cfg.host_addrs = host;
	cfg.n_host_addrs = 1;
	cfg.allow_loopback = true;
	if (ice_session_alloc(&s, &cfg, &h, NULL))
		return NULL;
	return s;
}

static int try_desc(const char *body)
{
	struct ice_session *s = idle_session();
	int err;

	if (!s)
		return ENOMEM;
	err = ice_session_set_remote(s, body, strlen(body));
	mem_deref(s);
	return err;
}

static int try_cand(const char *line)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s%s\nend-of-candidates\n", good_head, line);
	return try_desc(buf);
}

static void test_desc_parse(void)
{
	char *big;
	size_t off;

	CHECK(try_cand("candidate:1 1 udp 2130706431 198.18.1.10 40000 typ host") == 0);
	CHECK(try_cand("candidate:a+/9 1 UDP 1694498815 198.18.0.101 40000 typ srflx raddr 198.18.1.10 rport 40000") == 0);
	CHECK(try_cand("candidate:r 1 udp 16777215 198.18.0.10 49160 typ relay raddr 198.18.0.101 rport 3333 x-turn tls") == 0);
	CHECK(try_cand("candidate:x 1 udp 5 198.18.0.10 1 typ prflx some-ext value") == 0);
	CHECK(try_cand("candidate:6 1 udp 100 [2001:db8::1] 5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:6 1 udp 100 2001:db8::1 5 typ host") == 0);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == 0);
	CHECK(try_desc("mesh-ice:1\r\nice-ufrag:abcd\r\nice-pwd:abcdefghijklmnopqrstuv\r\nend-of-candidates\r\n") == 0);

	/* structure */
	CHECK(try_desc("") == EBADMSG);
	CHECK(try_desc("mesh-ice:2\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("ice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\nice-ufrag:x\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nice-ufrag:abce\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nwhat:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nx-later:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == 0);
	{
		static const char nul[] = "mesh-ice:1\nice-ufrag:ab\0d\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n";
		struct ice_session *s = idle_session();

		CHECK(s);
		CHECK(ice_session_set_remote(s, nul, sizeof(nul) - 1) == EBADMSG);
		mem_deref(s);
	}
	/* credentials (RFC 8839 5.4 lengths and characters) */
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abc\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:ab-d\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:abcd\nice-pwd:abcdefghijklmnopqrstu\nend-of-candidates\n") == EBADMSG);
	CHECK(try_desc("mesh-ice:1\nice-ufrag:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nice-pwd:abcdefghijklmnopqrstuv\nend-of-candidates\n") == EBADMSG);

	/* candidate lines */
	CHECK(try_cand("candidate:1 2 udp 2130706431 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 tcp 2130706431 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 0 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 2147483648 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp -5 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 99999999999999999999999 198.18.1.10 40000 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 0 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 65536 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 +5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.x 5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 example.org 5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 5 typ weird") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 5 type host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 5 typ") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 5 typ host raddr") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.0.10 5 typ relay x-turn sctp") == EBADMSG);
	CHECK(try_cand("candidate:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 udp 5 198.18.1.10 5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:a-b 1 udp 5 198.18.1.10 5 typ host") == EBADMSG);
	CHECK(try_cand("candidate:1 1 udp 5 198.18.1.10 5 typ host a b c d e f g h i j k l m n o p q r") == EBADMSG);
	/* well-formed but unusable addresses are skipped, not fatal */
	CHECK(try_cand("candidate:1 1 udp 5 224.0.0.1 5 typ host") == 0);
	CHECK(try_cand("candidate:1 1 udp 5 0.0.0.0 5 typ host") == 0);
	CHECK(try_cand("candidate:1 1 udp 5 169.254.3.4 5 typ host") == 0);

	/* too many candidates, too long a line, too long a description */
	big = mem_zalloc(20000, NULL);
	CHECK(big);
	off = (size_t)snprintf(big, 20000, "%s", good_head);
	for (int i = 0; i < 49; i++)
		off += (size_t)snprintf(big + off, 20000 - off,
			"candidate:%d 1 udp 5 198.18.1.%d 5 typ host\n", i, i + 1);
	snprintf(big + off, 20000 - off, "end-of-candidates\n");
	CHECK(try_desc(big) == EBADMSG);
	memset(big, 0, 20000);
	off = (size_t)snprintf(big, 20000, "%scandidate:1 1 udp 5 198.18.1.10 5 typ host", good_head);
	for (int i = 0; i < 300; i++)
		off += (size_t)snprintf(big + off, 20000 - off, " x y");
	snprintf(big + off, 20000 - off, "\nend-of-candidates\n");
	CHECK(try_desc(big) == EBADMSG);
	memset(big, 'x', 9000);
	memcpy(big, "mesh-ice:1\n", 11);
	big[9000] = '\0';
	CHECK(try_desc(big) == EBADMSG);
	mem_deref(big);
}

/* A description we produce is one we accept; loopback candidates only
 * when a test allows them. */
static void test_desc_roundtrip(void)
{
	struct ice_session *a = idle_session(), *b = idle_session();
	const char *d;

	CHECK(a && b);
	/* gathering ends on the event loop (no servers: at once) */
	(void)run_for(100);
	d = ice_session_local_desc(a);
	CHECK(d);
	CHECK(strlen(d) < ICE_DESC_MAX);
	CHECK(strstr(d, "typ host"));
	CHECK(ice_session_set_remote(b, d, strlen(d)) == 0);
	CHECK(ice_session_set_remote(b, d, strlen(d)) == EALREADY);
	mem_deref(a);
	mem_deref(b);
}

/* --- Two sessions on loopback ------------------------------------------- */

struct peer {
	const char *name;
	struct ice_session *s;
	struct peer *other;
	bool gathered, connected, failed;
	char reason[200];
	int err;
	unsigned rx;
	char last[64];
};

static unsigned want_connected, want_failed;

static void maybe_done(struct peer *p)
{
	unsigned c = (p->connected) + (p->other->connected);
	unsigned f = (p->failed) + (p->other->failed);

	if ((want_connected && c >= want_connected) ||
	    (want_failed && f >= want_failed))
		re_cancel();
}

static void h_gathered(struct ice_session *s, void *arg)
{
	struct peer *p = arg;
	const char *d = ice_session_local_desc(s);

	p->gathered = true;
	if (p->other->s && d)
		(void)ice_session_set_remote(p->other->s, d, strlen(d));
}

static void h_connected(struct ice_session *s, void *arg)
{
	struct peer *p = arg;
	(void)s;
	p->connected = true;
	maybe_done(p);
}

static void h_failed(struct ice_session *s, int err, const char *reason,
		     void *arg)
{
	struct peer *p = arg;
	(void)s;
	p->failed = true;
	p->err = err;
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	maybe_done(p);
}

static void dgram_recv(const uint8_t *data, size_t len, void *arg)
{
	struct peer *p = arg;

	p->rx++;
	if (len < sizeof(p->last)) {
		memcpy(p->last, data, len);
		p->last[len] = '\0';
	}
}

static void stop_timeout(void *arg)
{
	bool *expired = arg;

	*expired = true;
	re_cancel();
}

/* Runs the loop until a handler says done or ms pass; false on timeout. */
static bool run_for(uint32_t ms)
{
	struct tmr t;
	bool expired = false;

	tmr_init(&t);
	tmr_start(&t, ms, stop_timeout, &expired);
	re_main(NULL);
	tmr_cancel(&t);
	return !expired;
}

static const struct ice_handlers handlers = {
	.gathered = h_gathered,
	.connected = h_connected,
	.failed = h_failed,
};

static int pair_up(struct peer *a, struct peer *b, bool both_controlling,
		   uint32_t consent_ms)
{
	static const char *const host[] = {"127.0.0.1"};
	struct ice_config cfg = {0};
	int err;

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->name = "a";
	b->name = "b";
	a->other = b;
	b->other = a;
	cfg.host_addrs = host;
	cfg.n_host_addrs = 1;
	cfg.allow_loopback = true;
	cfg.consent_timeout_ms = consent_ms;
	cfg.name = "b";
	cfg.controlling = true;
	err = ice_session_alloc(&a->s, &cfg, &handlers, a);
	if (err)
		return err;
	cfg.name = "a";
	cfg.controlling = both_controlling;
	return ice_session_alloc(&b->s, &cfg, &handlers, b);
}

static void exchange(struct peer *a, struct peer *b)
{
	struct mesh_path *pa = ice_session_path(a->s), *pb = ice_session_path(b->s);
	static const char m1[] = "hello from a", m2[] = "hello from b";

	pa->recv = dgram_recv;
	pa->recv_arg = a;
	pb->recv = dgram_recv;
	pb->recv_arg = b;
	(void)pa->send(pa, (const uint8_t *)m1, strlen(m1));
	(void)pb->send(pb, (const uint8_t *)m2, strlen(m2));
	(void)run_for(200);
}

static void test_loopback_connect(void)
{
	struct peer a, b;
	struct ice_pair_info pi[8];
	struct ice_times t;
	size_t n;
	struct mesh_path *pa;

	CHECK(pair_up(&a, &b, false, 0) == 0);
	want_connected = 2;
	want_failed = 1;
	CHECK(run_for(5000));
	CHECK(a.connected && b.connected);
	CHECK(ice_session_state(a.s) == ICE_ST_CONNECTED);
	CHECK(ice_session_path_type(a.s) == ICE_PATH_HOST);
	CHECK(ice_session_path_type(b.s) == ICE_PATH_HOST);
	CHECK(ice_session_controlling(a.s) && !ice_session_controlling(b.s));
	CHECK(!strncmp(ice_session_local_cand(a.s), "host 127.0.0.1:", 15));
	n = ice_session_pairs(a.s, pi, 8);
	CHECK(n >= 1 && pi[0].selected && pi[0].nominated);
	CHECK(!strcmp(pi[0].state, "succeeded"));
	ice_session_times(a.s, &t);
	CHECK(t.connected_ms > 0 && t.connected_ms < 2000);
	pa = ice_session_path(a.s);
	CHECK(pa->mtu >= 1200);
	CHECK(pa->send(pa, (const uint8_t *)"", 0) == EINVAL);

	exchange(&a, &b);
	CHECK(a.rx == 1 && !strcmp(a.last, "hello from b"));
	CHECK(b.rx == 1 && !strcmp(b.last, "hello from a"));
	mem_deref(a.s);
	mem_deref(b.s);
}

/* Both sides claim the controlling role: the tie-breaker sorts it out
 * (RFC 8445 7.3.1.1) and they still connect. */
static void test_role_conflict(void)
{
	struct peer a, b;

	CHECK(pair_up(&a, &b, true, 0) == 0);
	want_connected = 2;
	want_failed = 1;
	CHECK(run_for(8000));
	CHECK(a.connected && b.connected);
	CHECK(ice_session_controlling(a.s) != ice_session_controlling(b.s));
	exchange(&a, &b);
	CHECK(a.rx == 1 && b.rx == 1);
	mem_deref(a.s);
	mem_deref(b.s);
}

/* The peer vanishes: consent expires and failed() names it. */
static void test_consent_expiry(void)
{
	struct peer a, b;
	struct mesh_path *pa;
	uint64_t t0;

	CHECK(pair_up(&a, &b, false, 1500) == 0);
	want_connected = 2;
	want_failed = 1;
	CHECK(run_for(5000));
	CHECK(a.connected && b.connected);
	pa = mem_ref(ice_session_path(a.s));
	b.s = mem_deref(b.s);
	b.connected = false;
	want_connected = 0;
	want_failed = 1;
	t0 = tmr_jiffies();
	CHECK(run_for(5000));
	CHECK(a.failed);
	CHECK(a.err == ETIMEDOUT);
	CHECK(strstr(a.reason, "consent expired"));
	CHECK(tmr_jiffies() - t0 <= 1700);
	CHECK(ice_session_state(a.s) == ICE_ST_FAILED);
	CHECK(pa->send(pa, (const uint8_t *)"x", 1) == ENOTCONN);
	/* the path outlives the session for whoever holds it */
	a.s = mem_deref(a.s);
	CHECK(pa->send(pa, (const uint8_t *)"x", 1) == ENOTCONN);
	mem_deref(pa);
}

/* A new epoch's session can carry on the same path object. */
static void test_path_adopt(void)
{
	static const char *const host[] = {"127.0.0.1"};
	struct peer a, b;
	struct mesh_path *old;
	struct ice_config cfg = {0};
	struct ice_session *s2 = NULL;

	CHECK(pair_up(&a, &b, false, 0) == 0);
	old = mem_ref(ice_session_path(a.s));
	cfg.host_addrs = host;
	cfg.n_host_addrs = 1;
	cfg.allow_loopback = true;
	cfg.path = old;
	CHECK(ice_session_alloc(&s2, &cfg, &handlers, &a) == 0);
	CHECK(ice_session_path(s2) == old);
	a.s = mem_deref(a.s);
	CHECK(ice_session_path(s2) == old);
	mem_deref(s2);
	mem_deref(b.s);
	mem_deref(old);
	{
		/* a foreign path object is refused */
		struct mesh_path foreign = {0};

		cfg.path = &foreign;
		CHECK(ice_session_alloc(&s2, &cfg, &handlers, &a) == EINVAL);
	}
}

static void test_config_errors(void)
{
	struct ice_config cfg = {0};
	struct ice_session *s = NULL;
	struct ice_server srv = {ICE_SRV_STUN, "198.18.0.10", NULL, NULL};
	static const char *const host[] = {"127.0.0.1"};

	/* a bad server entry is skipped and reported, not fatal */
	cfg.host_addrs = host;
	cfg.n_host_addrs = 1;
	cfg.allow_loopback = true;
	cfg.servers = &srv;
	cfg.n_servers = 1;
	static const char *const bad[] = {"198.18.0.10", "198.18.0.10:0",
		"198.18.0.10:70000", "[2001:db8::1]:3478x", "turn.example:3478",
		"198.18.0.10:34 78", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv.addr = bad[i];
		CHECK(ice_session_alloc(&s, &cfg, &handlers, NULL) == 0);
		CHECK(strstr(ice_session_gather_errors(s), "not IP:PORT"));
		s = mem_deref(s);
	}
	srv.kind = ICE_SRV_TURN_UDP; /* no credential */
	srv.addr = "198.18.0.10:3478";
	CHECK(ice_session_alloc(&s, &cfg, &handlers, NULL) == 0);
	CHECK(strstr(ice_session_gather_errors(s), "no usable credential"));
	s = mem_deref(s);

	cfg.n_servers = 0;
	cfg.relay_only = cfg.no_relay = true;
	CHECK(ice_session_alloc(&s, &cfg, &handlers, NULL) == EINVAL);
	cfg.relay_only = cfg.no_relay = false;
	cfg.allow_loopback = false; /* loopback host address refused */
	CHECK(ice_session_alloc(&s, &cfg, &handlers, NULL) == EINVAL);
	CHECK(s == NULL);
}

struct test {
	const char *name;
	void (*fn)(void);
};

static const struct test tests[] = {
	{"desc-parse", test_desc_parse},
	{"desc-roundtrip", test_desc_roundtrip},
	{"config-errors", test_config_errors},
	{"loopback-connect", test_loopback_connect},
	{"role-conflict", test_role_conflict},
	{"consent-expiry", test_consent_expiry},
	{"path-adopt", test_path_adopt},
};

int main(int argc, char **argv)
{
	unsigned pass = 0, fail = 0;
	const char *lvl = getenv("ICE_TEST_LOG");

	log_set_level(lvl ? lvl : "error");
	if (libre_init()) {
		fprintf(stderr, "libre_init failed\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool run = argc < 2;
		int before = failures;

		for (int k = 1; k < argc; k++)
			run |= !strcmp(argv[k], tests[i].name);
		if (!run)
			continue;
		tests[i].fn();
		if (failures == before) {
			printf("ok %s\n", tests[i].name);
			pass++;
		}
		else {
			printf("not ok %s\n", tests[i].name);
			fail++;
		}
		fflush(stdout);
	}
	libre_close();
	printf("ice-test: %u passed, %u failed\n", pass, fail);
	return fail ? 1 : 0;
}
