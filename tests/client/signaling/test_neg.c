/* The negotiation state machine event by event: each call's actions are
 * recorded and checked against the rules of docs/signaling-flow.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re_types.h>
#include <re_mem.h>

#include "client/negotiate.h"
#include "tests/client/signaling/sigtest.h"

static const char FP_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char FP_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
#define NOW UINT64_C(1764000000000)

/* What the machine asked for since the last rec_clear(). */
struct rec {
	char log[64][160];
	unsigned n;
	/* the last of each */
	char pub_kind[20];
	uint64_t pub_epoch;
	char pub_payload[20000];
	unsigned pubs;
	uint64_t prepared, connected, down;
	char remote_ice[200];
	uint32_t timer;
	unsigned timers;
};

static void rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rec_add(struct rec *r, const char *fmt, ...)
{
	va_list ap;

	if (r->n >= 64)
		return;
	va_start(ap, fmt);
	vsnprintf(r->log[r->n++], sizeof(r->log[0]), fmt, ap);
	va_end(ap);
}

static void rec_clear(struct rec *r)
{
	memset(r, 0, sizeof(*r));
}

static void x_publish(const char *kind, uint64_t epoch, const char *payload,
		      size_t len, void *arg)
{
	struct rec *r = arg;

	snprintf(r->pub_kind, sizeof(r->pub_kind), "%s", kind);
	r->pub_epoch = epoch;
	snprintf(r->pub_payload, sizeof(r->pub_payload), "%.*s", (int)len, payload);
	r->pubs++;
	rec_add(r, "publish %s %" PRIu64, kind, epoch);
}

static void x_prepare(uint64_t epoch, void *arg)
{
	struct rec *r = arg;

	r->prepared = epoch;
	rec_add(r, "prepare %" PRIu64, epoch);
}

static void x_connect(const struct neg_remote *rm, void *arg)
{
	struct rec *r = arg;

	r->connected = rm->epoch;
	snprintf(r->remote_ice, sizeof(r->remote_ice), "%.*s", (int)rm->ice_len, rm->ice);
	rec_add(r, "connect %" PRIu64 " %s", rm->epoch, r->remote_ice);
}

static void x_down(uint64_t epoch, const char *why, void *arg)
{
	struct rec *r = arg;

	r->down = epoch;
	rec_add(r, "down %" PRIu64 " (%s)", epoch, why);
}

static void x_timer(uint32_t ms, void *arg)
{
	struct rec *r = arg;

	r->timer = ms;
	r->timers++;
}

static const struct neg_actions acts = {
	.publish = x_publish, .link_prepare = x_prepare,
	.link_connect = x_connect, .link_down = x_down, .timer = x_timer,
};

static struct negotiation *mk(const char *self, const char *peer, struct rec *r)
{
	struct negotiation *n = NULL;
	struct neg_config c = { .self = self, .peer = peer,
				.fp = strcmp(self, peer) < 0 ? FP_A : FP_B, .seed = 7 };

	if (neg_alloc(&n, &c, &acts, r))
		return NULL;
	return n;
}

static char *desc(const char *ice, const char *fp)
{
	static char buf[4][400];
	static int k;
	char *out = NULL;
	size_t len;

	if (neg_desc_encode(&out, &len, ice, strlen(ice), fp))
		return NULL;
	char *b = buf[k++ % 4];
	snprintf(b, 400, "%s", out);
	mem_deref(out);
	return b;
}

/* A controlling side that offered epoch *ep. */
static struct negotiation *offered(struct rec *r, uint64_t *ep)
{
	struct negotiation *n = mk("alpha", "bravo", r);

	neg_start(n, NOW);
	*ep = r->prepared;
	neg_local_ready(n, NOW + 10, *ep, "ice-a", 5);
	return n;
}

void t_neg_alloc_bounds(void)
{
	struct negotiation *n = NULL;
	struct rec r;
	struct neg_config c = { .self = "alpha", .peer = "bravo", .fp = FP_A };

	rec_clear(&r);
	CHECK(neg_alloc(&n, &c, &acts, &r) == 0);
	CHECK(neg_role(n) == NEG_CONTROLLING);
	n = mem_deref(n);
	c.self = "bravo";
	c.peer = "alpha";
	CHECK(neg_alloc(&n, &c, &acts, &r) == 0);
	CHECK(neg_role(n) == NEG_CONTROLLED);
	n = mem_deref(n);
	c.peer = "bravo";
	CHECK(neg_alloc(&n, &c, &acts, &r) == EINVAL);        /* itself */
	c.peer = "bad id!";
	CHECK(neg_alloc(&n, &c, &acts, &r) == EINVAL);
	c.peer = "alpha";
	c.fp = "ABCDEF";
	CHECK(neg_alloc(&n, &c, &acts, &r) == EINVAL);        /* not 64 lower hex */
	c.fp = FP_B;
	struct neg_actions bad = acts;
	bad.timer = NULL;
	CHECK(neg_alloc(&n, &c, &bad, &r) == EINVAL);
	CHECK(n == NULL);
	/* Lexical order decides the role, as in CONTRACT section 4. */
	c.self = "w10";
	c.peer = "w9";
	CHECK(neg_alloc(&n, &c, &acts, &r) == 0);
	CHECK(neg_role(n) == NEG_CONTROLLING);
	mem_deref(n);
}

void t_neg_payloads(void)
{
	char *out = NULL, *ice = NULL, fp[NEG_FP_LEN + 1];
	size_t len = 0, ilen = 0;
	uint64_t seen = 0;
	char big[NEG_ICE_MAX + 2];

	CHECK(neg_desc_encode(&out, &len, "a=ice\r\nline\"2\"", 14, FP_A) == 0);
	CHECK(out && strstr(out, "\"fp\":\"aaaa"));
	CHECK(neg_desc_decode(out, len, &ice, &ilen, fp) == 0);
	CHECK(ilen == 14 && !memcmp(ice, "a=ice\r\nline\"2\"", 14));
	CHECK(!strcmp(fp, FP_A));
	out = mem_deref(out);
	ice = mem_deref(ice);
	/* bounds */
	memset(big, 'x', sizeof(big));
	CHECK(neg_desc_encode(&out, &len, big, NEG_ICE_MAX, FP_A) == 0);
	out = mem_deref(out);
	CHECK(neg_desc_encode(&out, &len, big, NEG_ICE_MAX + 1, FP_A) == EMSGSIZE);
	CHECK(neg_desc_encode(&out, &len, big, 0, FP_A) == EMSGSIZE);
	CHECK(neg_desc_encode(&out, &len, "a\0b", 3, FP_A) == EINVAL);
	CHECK(neg_desc_encode(&out, &len, "\xff\xfe", 2, FP_A) == EINVAL); /* not UTF-8 */
	CHECK(neg_desc_encode(&out, &len, "x", 1, "AAAA") == EINVAL);
	/* An ICE description full of characters JSON must escape still fits
	 * the contract's payload bound, or is refused (never truncated). */
	memset(big, '\x01', NEG_ICE_MAX);
	int rc = neg_desc_encode(&out, &len, big, NEG_ICE_MAX, FP_A);
	CHECK(rc == EMSGSIZE);
	/* decode: exact shape only */
	static const char *bad[] = {
		"", "[]", "{}", "{\"ice\":\"x\"}",
		"{\"ice\":\"x\",\"fp\":\"aaaa\"}",
		"{\"ice\":\"\",\"fp\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"{\"ice\":1,\"fp\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"{\"ice\":\"x\",\"fp\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"z\":1}",
		"{\"ice\":\"x\",\"ice\":\"y\",\"fp\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"{\"ice\":\"a\\u0000b\",\"fp\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"{\"ice\":\"x\",\"fp\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECKF(neg_desc_decode(bad[i], strlen(bad[i]), &ice, &ilen, fp) == EBADMSG,
		       "%s", bad[i]);
	}
	CHECK(neg_reneg_decode("{\"seen\":0}", 10, &seen) && seen == 0);
	CHECK(neg_reneg_decode("{\"seen\":1764000000000}", 22, &seen) && seen == NOW);
	CHECK(!neg_reneg_decode("{\"seen\":-1}", 11, &seen));
	CHECK(!neg_reneg_decode("{\"seen\":9007199254740992}", 25, &seen)); /* 2^53 */
	CHECK(!neg_reneg_decode("{\"seen\":1,\"x\":2}", 16, &seen));
	CHECK(!neg_reneg_decode("{\"seen\":\"1\"}", 12, &seen));
}

void t_neg_controlling_start(void)
{
	struct rec r;
	uint64_t e;

	rec_clear(&r);
	struct negotiation *n = mk("alpha", "bravo", &r);
	CHECK(neg_phase(n) == NEG_INIT);
	/* Nothing happens before start. */
	CHECK(neg_recv(n, NOW, "answer", 5, "{}", 2) == NEG_RX_IGNORED);
	neg_start(n, NOW);
	e = r.prepared;
	CHECK(e == NOW); /* a fresh start takes the clock */
	CHECK(r.pubs == 0);
	CHECK(neg_phase(n) == NEG_PREPARING);
	CHECK(r.timer > 0);
	/* A stale gathering result does nothing. */
	neg_local_ready(n, NOW, e - 1, "ice-old", 7);
	CHECK(r.pubs == 0);
	neg_local_ready(n, NOW + 5, e, "ice-a", 5);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "offer") && r.pub_epoch == e);
	CHECK(strstr(r.pub_payload, "ice-a") && strstr(r.pub_payload, FP_A));
	CHECK(neg_phase(n) == NEG_OFFERED);
	/* The answer with the peer's description. */
	CHECK(neg_recv(n, NOW + 50, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_ACCEPTED);
	CHECK(r.connected == e && !strcmp(r.remote_ice, "ice-b"));
	CHECK(neg_phase(n) == NEG_CONNECTING);
	/* Its duplicate changes nothing. */
	CHECK(neg_recv(n, NOW + 60, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_DUPLICATE);
	neg_link_up(n, NOW + 100, e - 1);
	CHECK(neg_phase(n) == NEG_CONNECTING);
	neg_link_up(n, NOW + 100, e);
	CHECK(neg_is_up(n) && neg_epoch(n) == e);
	CHECK(r.timer == 0);
	/* Kinds this side never receives. */
	CHECK(neg_recv(n, NOW, "offer", e + 1, desc("x", FP_B), strlen(desc("x", FP_B))) == NEG_RX_WRONG_ROLE);
	CHECK(neg_recv(n, NOW, "hello", e + 1, "{}", 2) == NEG_RX_WRONG_ROLE);
	CHECK(neg_is_up(n));
	mem_deref(n);
}

void t_neg_controlled_start(void)
{
	struct rec r;
	uint64_t seen = 99;

	rec_clear(&r);
	struct negotiation *n = mk("bravo", "alpha", &r);
	neg_start(n, NOW);
	/* It asks for an epoch, at the clock minus the tolerated skew (a
	 * restart lands above everything an earlier run sent before that;
	 * the coordinator's 409 lifts it above the rest). */
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "renegotiate"));
	CHECK(r.pub_epoch == NOW - 300000);
	CHECK(neg_reneg_decode(r.pub_payload, strlen(r.pub_payload), &seen) && seen == 0);
	CHECK(neg_phase(n) == NEG_WAITING);
	CHECK(r.prepared == 0);
	/* An offer of an older epoch than its own request is not answered
	 * (the answer would be refused as stale in its direction). */
	CHECK(neg_recv(n, NOW, "offer", NOW - 300005, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_STALE);
	CHECK(r.prepared == 0);
	uint64_t e = NOW + 20;
	CHECK(neg_recv(n, NOW + 20, "offer", e, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	CHECK(r.prepared == e && neg_phase(n) == NEG_PREPARING);
	r.pubs = 0;
	neg_local_ready(n, NOW + 40, e, "ice-b", 5);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "answer") && r.pub_epoch == e);
	CHECK(strstr(r.pub_payload, FP_B) != NULL);
	CHECK(r.connected == e && !strcmp(r.remote_ice, "ice-a"));
	neg_link_up(n, NOW + 80, e);
	CHECK(neg_is_up(n));
	/* The same offer again (the controlling side resent it): our answer
	 * goes out again, at most every answer_resend_ms. */
	r.pubs = 0;
	CHECK(neg_recv(n, NOW + 5000, "offer", e, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_DUPLICATE);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "answer"));
	CHECK(neg_recv(n, NOW + 5001, "offer", e, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_DUPLICATE);
	CHECK(r.pubs == 1);
	CHECK(neg_is_up(n));
	/* A newer offer (the controlling side restarted) replaces the link. */
	rec_clear(&r);
	CHECK(neg_recv(n, NOW + 9000, "offer", e + 9000, desc("ice-a2", FP_A), strlen(desc("ice-a2", FP_A))) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared == e + 9000);
	CHECK(!strcmp(r.log[0], "down 1764000000020 (a newer offer)"));
	/* A malformed offer is ignored, the link untouched. */
	rec_clear(&r);
	CHECK(neg_recv(n, NOW, "offer", e + 99999, "{\"ice\":1}", 9) == NEG_RX_MALFORMED);
	CHECK(r.n == 0 && neg_epoch(n) == e + 9000);
	mem_deref(n);
}

void t_neg_stale_ignored(void)
{
	struct rec r;
	uint64_t e;

	rec_clear(&r);
	struct negotiation *a = offered(&r, &e);
	CHECK(neg_recv(a, NOW, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_ACCEPTED);
	neg_link_up(a, NOW, e);
	rec_clear(&r);
	/* Older answers, byes and requests than what is current: nothing. */
	CHECK(neg_recv(a, NOW, "answer", e - 1, desc("old", FP_B), strlen(desc("old", FP_B))) == NEG_RX_STALE);
	/* A request or bye older than the answer we hold predates it. */
	CHECK(neg_recv(a, NOW, "renegotiate", e - 1, "{\"seen\":0}", 10) == NEG_RX_STALE);
	CHECK(neg_recv(a, NOW, "bye", e - 2, "{}", 2) == NEG_RX_STALE);
	CHECK(neg_recv(a, NOW, "renegotiate", e - 3, "{\"seen\":0}", 10) == NEG_RX_STALE);
	CHECK(r.n == 0 && neg_is_up(a));
	mem_deref(a);

	rec_clear(&r);
	struct negotiation *b = mk("bravo", "alpha", &r);
	neg_start(b, NOW);
	uint64_t eb = NOW + 100;
	CHECK(neg_recv(b, NOW, "offer", eb, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	neg_local_ready(b, NOW, eb, "ice-b", 5);
	neg_link_up(b, NOW, eb);
	rec_clear(&r);
	CHECK(neg_recv(b, NOW, "offer", eb - 1, desc("ice-x", FP_A), strlen(desc("ice-x", FP_A))) == NEG_RX_STALE);
	CHECK(neg_recv(b, NOW, "bye", eb - 1, "{}", 2) == NEG_RX_STALE);
	CHECK(neg_recv(b, NOW, "answer", eb + 5, "{}", 2) == NEG_RX_WRONG_ROLE);
	CHECK(neg_recv(b, NOW, "renegotiate", eb + 5, "{\"seen\":0}", 10) == NEG_RX_WRONG_ROLE);
	CHECK(r.n == 0 && neg_is_up(b) && neg_epoch(b) == eb);
	struct neg_stats st;
	neg_stats(b, &st);
	CHECK(st.rx_stale == 2 && st.rx_wrong_role == 2);
	mem_deref(b);
}

void t_neg_reneg_rules(void)
{
	struct rec r;
	uint64_t e;
	char p[64];

	/* While gathering: the offer still to come answers the request. */
	rec_clear(&r);
	struct negotiation *a = mk("alpha", "bravo", &r);
	neg_start(a, NOW);
	e = r.prepared;
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 1, "renegotiate", NOW - 50, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.n == 0);
	CHECK(neg_recv(a, NOW + 1, "renegotiate", NOW - 50, "{\"seen\":0}", 10) == NEG_RX_DUPLICATE);
	CHECK(neg_recv(a, NOW + 1, "renegotiate", NOW - 60, "{\"seen\":0}", 10) == NEG_RX_STALE);
	CHECK(neg_recv(a, NOW + 1, "renegotiate", NOW - 40, "{\"seen\"}", 8) == NEG_RX_MALFORMED);
	/* A request at or above our epoch: a new epoch above it (and the
	 * clock). */
	CHECK(neg_recv(a, NOW + 1000, "renegotiate", e + 100, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared == NOW + 1000);
	e = r.prepared;
	neg_local_ready(a, NOW + 1001, e, "ice-a", 5);
	/* Offered, not answered, a request from before it saw our offer:
	 * resend the same offer while it is fresh ... */
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 1002, "renegotiate", NOW + 500, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "offer") && r.pub_epoch == e && r.prepared == 0);
	/* ... and start over once it is old. */
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 60000, "renegotiate", NOW + 600, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared == NOW + 60000);
	e = r.prepared;
	neg_local_ready(a, NOW + 60001, e, "ice-a", 5);
	/* It saw our offer and still asks (its side failed): new epoch. */
	rec_clear(&r);
	snprintf(p, sizeof(p), "{\"seen\":%" PRIu64 "}", e);
	CHECK(neg_recv(a, NOW + 60002, "renegotiate", NOW + 700, p, strlen(p)) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared == NOW + 60002);
	mem_deref(a);

	/* Up: a request above our epoch means the peer lost its state. */
	rec_clear(&r);
	a = offered(&r, &e);
	CHECK(neg_recv(a, NOW, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_ACCEPTED);
	neg_link_up(a, NOW, e);
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 7000, "renegotiate", e + 1, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared == NOW + 7000);
	mem_deref(a);
}

void t_neg_publish_stale(void)
{
	struct rec r;
	uint64_t e;

	/* A restarted controlling side whose clock is behind: the coordinator
	 * says 409 with current, it jumps above. */
	rec_clear(&r);
	struct negotiation *a = offered(&r, &e);
	rec_clear(&r);
	neg_publish_result(a, NOW + 20, "offer", e, ESTALE, e + 77777);
	CHECK(r.down == e && r.prepared == e + 77778);
	CHECK(neg_phase(a) == NEG_PREPARING);
	/* A late result for the superseded epoch does nothing. */
	rec_clear(&r);
	neg_publish_result(a, NOW + 21, "offer", e, ESTALE, e + 5);
	neg_publish_result(a, NOW + 21, "offer", e, ETIMEDOUT, 0);
	CHECK(r.n == 0);
	mem_deref(a);

	/* Controlled: its request refused as stale: ask again above current. */
	rec_clear(&r);
	struct negotiation *b = mk("bravo", "alpha", &r);
	neg_start(b, NOW);
	uint64_t r0 = r.pub_epoch;
	rec_clear(&r);
	neg_publish_result(b, NOW + 5, "renegotiate", r0, ESTALE, NOW + 999);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "renegotiate") && r.pub_epoch == NOW + 1000);
	/* Its answer refused as stale: drop the link, ask above current. */
	CHECK(neg_recv(b, NOW + 10, "offer", NOW + 2000, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	neg_local_ready(b, NOW + 11, NOW + 2000, "ice-b", 5);
	rec_clear(&r);
	neg_publish_result(b, NOW + 12, "answer", NOW + 2000, ESTALE, NOW + 3000);
	CHECK(r.down == NOW + 2000);
	CHECK(!strcmp(r.pub_kind, "renegotiate") && r.pub_epoch == NOW + 3001);
	CHECK(neg_phase(b) == NEG_WAITING);
	mem_deref(b);
}

void t_neg_bye(void)
{
	struct rec r;
	uint64_t e;

	rec_clear(&r);
	struct negotiation *a = offered(&r, &e);
	CHECK(neg_recv(a, NOW, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_ACCEPTED);
	neg_link_up(a, NOW, e);
	/* The peer stops: link down at once, wait for it to ask. */
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 1, "bye", e + 1, "{\"reason\":\"shutdown\"}", 21) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && neg_phase(a) == NEG_IDLE && r.pubs == 0 && r.timer == 0);
	/* It is back and asks: a new epoch. */
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 5000, "renegotiate", NOW + 5000, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.prepared == NOW + 5001 || r.prepared == NOW + 5000 + 1);
	/* We stop: bye above everything, nothing after. */
	rec_clear(&r);
	neg_stop(a, NOW + 6000);
	CHECK(r.pubs == 1 && !strcmp(r.pub_kind, "bye") && r.pub_epoch > NOW + 5001);
	CHECK(neg_phase(a) == NEG_STOPPED && r.down == NOW + 5001);
	rec_clear(&r);
	CHECK(neg_recv(a, NOW, "renegotiate", NOW + 99999, "{\"seen\":0}", 10) == NEG_RX_IGNORED);
	neg_timeout(a, NOW);
	CHECK(r.n == 0);
	mem_deref(a);

	/* Controlled side receiving bye: older offers die with it. */
	rec_clear(&r);
	struct negotiation *b = mk("bravo", "alpha", &r);
	neg_start(b, NOW);
	CHECK(neg_recv(b, NOW, "offer", NOW + 10, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	CHECK(neg_recv(b, NOW, "bye", NOW + 11, "{}", 2) == NEG_RX_ACCEPTED);
	CHECK(neg_phase(b) == NEG_WAITING && r.down == NOW + 10);
	CHECK(neg_recv(b, NOW, "offer", NOW + 10, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_STALE);
	rec_clear(&r);
	neg_stop(b, NOW + 20);
	CHECK(!strcmp(r.pub_kind, "bye") && r.pub_epoch > NOW + 11);
	mem_deref(b);
}

void t_neg_failure_pacing(void)
{
	struct rec r;
	uint64_t e;

	rec_clear(&r);
	struct negotiation *a = offered(&r, &e);
	CHECK(neg_recv(a, NOW, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B))) == NEG_RX_ACCEPTED);
	neg_link_up(a, NOW, e);
	/* A link that worked and failed: a new epoch at once. */
	rec_clear(&r);
	neg_link_failed(a, NOW + 1, e, "consent expired");
	CHECK(r.down == e && r.prepared > e);
	e = r.prepared;
	/* Failing again before ever coming up: still at once ... */
	neg_local_ready(a, NOW + 2, e, "ice-a", 5);
	neg_recv(a, NOW + 3, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B)));
	rec_clear(&r);
	neg_link_failed(a, NOW + 4, e, "no pair");
	CHECK(r.prepared == 0 && neg_phase(a) == NEG_BACKOFF); /* second failure in a row */
	CHECK(r.timer >= 800 && r.timer <= 1200);
	rec_clear(&r);
	neg_timeout(a, NOW + 2000);
	CHECK(r.prepared > e && neg_phase(a) == NEG_PREPARING);
	e = r.prepared;
	neg_local_ready(a, NOW + 2001, e, "ice-a", 5);
	neg_recv(a, NOW + 2002, "answer", e, desc("ice-b", FP_B), strlen(desc("ice-b", FP_B)));
	rec_clear(&r);
	neg_link_failed(a, NOW + 2003, e, "no pair");
	CHECK(neg_phase(a) == NEG_BACKOFF && r.timer >= 1600 && r.timer <= 2400);
	/* The peer asking cuts the backoff short. */
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 2004, "renegotiate", NOW + 2004, "{\"seen\":0}", 10) == NEG_RX_ACCEPTED);
	CHECK(r.prepared > e);
	mem_deref(a);

	/* No answer: re-offer in a fresh epoch with growing intervals. */
	rec_clear(&r);
	a = offered(&r, &e);
	uint32_t t1 = r.timer;
	CHECK(t1 >= 12000 && t1 <= 18000);
	rec_clear(&r);
	neg_timeout(a, NOW + 20000);
	CHECK(r.prepared > e);
	e = r.prepared;
	neg_local_ready(a, NOW + 20001, e, "ice-a", 5);
	CHECK(r.timer >= 24000 && r.timer <= 36000);
	mem_deref(a);
}

/* How each side tells a restarted peer from a repeat. */
void t_neg_restart_detection(void)
{
	struct rec r;
	uint64_t e;

	/* Controlling, up: the same answer again is a repeat; a different
	 * answer to the same epoch is a new run of the peer (it found our
	 * offer still queued): start over. */
	rec_clear(&r);
	struct negotiation *a = offered(&r, &e);
	const char *ans1 = desc("ice-b-run1", FP_B);
	CHECK(neg_recv(a, NOW, "answer", e, ans1, strlen(ans1)) == NEG_RX_ACCEPTED);
	neg_link_up(a, NOW, e);
	rec_clear(&r);
	CHECK(neg_recv(a, NOW + 1, "answer", e, ans1, strlen(ans1)) == NEG_RX_DUPLICATE);
	CHECK(r.n == 0);
	const char *ans2 = desc("ice-b-run2", FP_B);
	CHECK(neg_recv(a, NOW + 2, "answer", e, ans2, strlen(ans2)) == NEG_RX_ACCEPTED);
	CHECK(r.down == e && r.prepared > e);
	mem_deref(a);

	/* Controlled: a bye and an offer in the same epoch come from two runs
	 * of the peer (one ms apart on its clock): the offer wins, whichever
	 * arrives first. */
	rec_clear(&r);
	struct negotiation *b = mk("bravo", "alpha", &r);
	neg_start(b, NOW);
	CHECK(neg_recv(b, NOW, "bye", NOW + 50, "{}", 2) == NEG_RX_ACCEPTED);
	CHECK(neg_recv(b, NOW, "offer", NOW + 50, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	CHECK(r.prepared == NOW + 50);
	CHECK(neg_recv(b, NOW, "bye", NOW + 50, "{}", 2) == NEG_RX_STALE);
	CHECK(neg_phase(b) == NEG_PREPARING);
	CHECK(neg_recv(b, NOW, "offer", NOW + 50, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_DUPLICATE);
	mem_deref(b);

	/* Controlled, just restarted: its first request is refused as stale
	 * (an earlier run answered a higher epoch) while it prepares an
	 * answer to a leftover offer below that: the answer would be refused
	 * too, so it asks again above current. */
	rec_clear(&r);
	b = mk("bravo", "alpha", &r);
	neg_start(b, NOW);
	uint64_t r0 = r.pub_epoch;
	CHECK(neg_recv(b, NOW, "offer", NOW - 1000, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	rec_clear(&r);
	neg_publish_result(b, NOW + 1, "renegotiate", r0, ESTALE, NOW - 500);
	CHECK(r.down == NOW - 1000);
	CHECK(!strcmp(r.pub_kind, "renegotiate") && r.pub_epoch == NOW - 499);
	CHECK(neg_phase(b) == NEG_WAITING);
	/* ... but not when the offer it answers is at or above current:
	 * that answer tells the peer instead. */
	CHECK(neg_recv(b, NOW, "offer", NOW, desc("ice-a", FP_A), strlen(desc("ice-a", FP_A))) == NEG_RX_ACCEPTED);
	rec_clear(&r);
	neg_publish_result(b, NOW + 2, "renegotiate", NOW - 499, ESTALE, NOW - 400);
	CHECK(r.n == 0 && neg_phase(b) == NEG_PREPARING);
	mem_deref(b);

	/* Controlling: a bye below our epoch comes from a run of the peer
	 * that never saw our offer: the offer stands. */
	rec_clear(&r);
	a = offered(&r, &e);
	rec_clear(&r);
	CHECK(neg_recv(a, NOW, "bye", e - 10, "{}", 2) == NEG_RX_STALE);
	CHECK(r.n == 0 && neg_phase(a) == NEG_OFFERED);
	CHECK(neg_recv(a, NOW, "bye", e + 1, "{}", 2) == NEG_RX_ACCEPTED);
	CHECK(neg_phase(a) == NEG_IDLE);
	mem_deref(a);
}
