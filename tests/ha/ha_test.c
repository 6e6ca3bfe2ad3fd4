/* ha-test: tests of ha/ against real Redis processes started by
 * tests/ha/unit.sh: the Redis mailbox rule by rule, a differential run
 * against the in-memory mailbox (the reference semantics), concurrent
 * publishers, cross-instance wakes, shared replay nonces, NOSCRIPT
 * recovery, an unreachable Redis, and with --sentinel the HA path (WAIT,
 * registry, failover). One binary, a table of named tests, each runnable
 * alone (--only). Prints "PASS name" / "FAIL name: why"; exit 1 on any
 * failure. It must not start or stop servers itself, except the SHUTDOWN
 * the failover test sends to the master it was told to kill. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "common/log.h"
#include "ha/ha.h"
#include "ha/ha_priv.h"
#include "signaling/mailbox.h"
#include "signaling/replay.h"

static struct event_base *B;
static const char *REDIS_URL, *SENTINELS, *SECRET;
static int failures;
static char why[512];

#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond)) {                                           \
			snprintf(why, sizeof(why), __VA_ARGS__);        \
			return false;                                    \
		}                                                        \
	} while (0)

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until *flag or timeout. */
static bool run_until(const bool *flag, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	while (!*flag) {
		if (mono_ms() > end)
			return false;
		event_base_loop(B, EVLOOP_ONCE);
	}
	return true;
}

static void run_for(int ms)
{
	bool never = false;
	run_until(&never, ms);
}

/* ---- one coordinator's worth of ha ---------------------------------------- */

struct node {
	struct ha *ha;
	struct mailbox *mb;
	struct replay *rp;
};

static bool node_open(struct node *n, const char *url, bool ha_mode, unsigned ttl,
		      const char *id)
{
	char err[256];
	struct ha_config cfg = {
		.redis_url = url,
		.ha = ha_mode,
		.sentinels = ha_mode ? SENTINELS : NULL,
		.sentinel_master = "mesh",
		.secret_file = SECRET,
		.message_ttl_s = ttl,
		.self = { .node_id = id, .advertise_url = "http://198.18.0.1:7000",
			  .stun = "198.18.0.1:3478", .turn_udp = "198.18.0.1:3478",
			  .turn_tcp = "198.18.0.1:3478", .turn_tls = NULL },
	};
	memset(n, 0, sizeof(*n));
	if (ha_new(&n->ha, B, &cfg, &n->mb, &n->rp, err, sizeof(err))) {
		snprintf(why, sizeof(why), "ha_new: %s", err);
		return false;
	}
	return true;
}

static bool node_wait_ready(struct node *n, int ms)
{
	int64_t end = mono_ms() + ms;
	char w[256] = "";
	while (!n->mb->ops->ready(n->mb, w, sizeof(w))) {
		if (mono_ms() > end) {
			snprintf(why, sizeof(why), "not ready within %d ms: %s", ms, w);
			return false;
		}
		run_for(20);
	}
	return true;
}

static void node_close(struct node *n)
{
	ha_free(n->ha);
	memset(n, 0, sizeof(*n));
}

/* ---- blocking wrappers ----------------------------------------------------- */

struct pub_res {
	bool done;
	struct mb_publish_result r;
};

static void pub_cb(const struct mb_publish_result *r, void *arg)
{
	struct pub_res *p = arg;
	p->r = *r;
	p->done = true;
}

static const char PSIG[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void fill_msg(struct publish_msg *m, const char *from, const char *to, uint64_t epoch,
		     const char *kind, const char *payload)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->from, sizeof(m->from), "%s", from);
	snprintf(m->to, sizeof(m->to), "%s", to);
	snprintf(m->kind, sizeof(m->kind), "%s", kind);
	snprintf(m->psig, sizeof(m->psig), "%s", PSIG);
	m->epoch = epoch;
	m->payload = payload;
	m->payload_len = strlen(payload);
}

static struct mb_publish_result publish(struct mailbox *mb, const char *from, const char *to,
					uint64_t epoch, const char *payload)
{
	struct publish_msg m;
	fill_msg(&m, from, to, epoch, "offer", payload);
	struct pub_res p = { 0 };
	mb->ops->publish(mb, &m, pub_cb, &p);
	if (!run_until(&p.done, 5000))
		p.r.status = (enum mb_status)-1;
	return p.r;
}

struct fmsg {
	char id[MSG_ID_MAX];
	char from[PEER_ID_MAX + 1];
	char to[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	char psig[SIG_HEX_LEN + 1];
	uint64_t epoch;
	char *payload;
	size_t len;
	int64_t age_ms;
};

struct fres {
	bool done;
	enum mb_status st;
	size_t n;
	struct fmsg m[POLL_BATCH_MAX];
	char cursor[MSG_ID_MAX];
};

static void fres_clear(struct fres *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->m[i].payload);
	f->n = 0;
}

static void fetch_cb(const struct mb_fetch_result *r, void *arg)
{
	struct fres *f = arg;
	f->st = r->status;
	f->n = 0;
	for (size_t i = 0; r->status == MB_OK && i < r->count && i < POLL_BATCH_MAX; i++) {
		struct fmsg *o = &f->m[f->n++];
		const struct mb_message *s = &r->msgs[i];
		memcpy(o->id, s->id, sizeof(o->id));
		memcpy(o->from, s->from, sizeof(o->from));
		memcpy(o->to, s->to, sizeof(o->to));
		memcpy(o->kind, s->kind, sizeof(o->kind));
		memcpy(o->psig, s->psig, sizeof(o->psig));
		o->epoch = s->epoch;
		o->payload = strndup(s->payload, s->payload_len);
		o->len = s->payload_len;
		o->age_ms = s->age_ms;
	}
	snprintf(f->cursor, sizeof(f->cursor), "%s", r->cursor ? r->cursor : "(null)");
	f->done = true;
}

/* Heap: a result holds up to 256 messages. */
static struct fres *fetch(struct mailbox *mb, const char *peer, const char *ack, size_t max)
{
	struct fres *f = calloc(1, sizeof(*f));
	mb->ops->fetch(mb, peer, ack, max, fetch_cb, f);
	if (!run_until(&f->done, 5000))
		f->st = (enum mb_status)-1;
	return f;
}

static void fres_free(struct fres *f)
{
	if (f) {
		fres_clear(f);
		free(f);
	}
}

struct rp_res {
	bool done;
	enum replay_result r;
};

static void rp_cb(enum replay_result r, void *arg)
{
	struct rp_res *p = arg;
	p->r = r;
	p->done = true;
}

static enum replay_result replay_check(struct replay *rp, const char *nonce)
{
	struct rp_res p = { 0 };
	rp->ops->check(rp, nonce, rp_cb, &p);
	if (!run_until(&p.done, 5000))
		return (enum replay_result)-1;
	return p.r;
}

static void rand_id(char *out, size_t len, const char *prefix)
{
	snprintf(out, len, "%s%08lx", prefix, (unsigned long)random());
}

static void rand_nonce(char out[NONCE_HEX_LEN + 1])
{
	for (int i = 0; i < NONCE_HEX_LEN; i++)
		out[i] = "0123456789abcdef"[random() % 16];
	out[NONCE_HEX_LEN] = '\0';
}

/* A synchronous connection for poking the server (SCRIPT FLUSH...). */
static redisContext *sync_conn(const char *url)
{
	struct ha_redis_url u;
	char err[128];
	if (ha_parse_redis_url(url, &u, err, sizeof(err)))
		return NULL;
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout(u.addr.host, u.addr.port, tv);
	if (!c || c->err)
		return c;
	char pw[HA_PASSWORD_MAX] = "";
	if (u.password[0])
		snprintf(pw, sizeof(pw), "%s", u.password);
	else if (SECRET)
		ha_derive_password(SECRET, HA_INFO_REDIS, pw, err, sizeof(err));
	if (pw[0]) {
		redisReply *r = redisCommand(c, "AUTH %s", pw);
		freeReplyObject(r);
	}
	return c;
}

static bool metric_value(struct node *n, const char *name, double *v)
{
	struct evbuffer *b = evbuffer_new();
	ha_metrics(n->ha, b);
	evbuffer_add(b, "", 1);
	const char *s = (const char *)evbuffer_pullup(b, -1);
	char pat[128];
	snprintf(pat, sizeof(pat), "\n%s ", name);
	const char *p = strstr(s, pat);
	bool ok = p && sscanf(p + strlen(pat), "%lf", v) == 1;
	evbuffer_free(b);
	return ok;
}

/* ---- pure tests ---------------------------------------------------------------- */

static bool t_url(void)
{
	struct ha_redis_url u;
	char err[128];
	CHECK(ha_parse_redis_url("redis://198.18.0.1", &u, err, sizeof(err)) == 0 &&
		      !strcmp(u.addr.host, "198.18.0.1") && u.addr.port == 6379 && u.db == 0 &&
		      !u.password[0], "plain host");
	CHECK(ha_parse_redis_url("redis://:p%40ss@h.example:7000/3", &u, err, sizeof(err)) == 0 &&
		      !strcmp(u.password, "p@ss") && !strcmp(u.addr.host, "h.example") &&
		      u.addr.port == 7000 && u.db == 3, "password, port, db: %s", err);
	CHECK(ha_parse_redis_url("redis://default:x@[::1]:6380", &u, err, sizeof(err)) == 0 &&
		      !strcmp(u.addr.host, "::1") && u.addr.port == 6380 && !strcmp(u.password, "x"),
	      "v6 %s", err);
	const char *bad[] = { "http://h", "redis://", "redis://h:0", "redis://h:65536",
			      "redis://h:x", "redis://u:p@h", "redis://h/x", "redis://h/99999999",
			      "redis://[::1", "redis://:%zz@h", "redis://h h", NULL };
	for (int i = 0; bad[i]; i++)
		CHECK(ha_parse_redis_url(bad[i], &u, err, sizeof(err)) != 0, "accepted %s", bad[i]);
	struct ha_addr a[HA_SENTINELS_MAX];
	size_t n;
	CHECK(ha_parse_hostports("198.18.0.1:26379,198.18.0.2:26379,[::1]:5", a, HA_SENTINELS_MAX,
				 &n, err, sizeof(err)) == 0 && n == 3 && a[2].port == 5 &&
		      !strcmp(a[2].host, "::1"), "list: %s", err);
	const char *badl[] = { "", "h", "h:1,", "h:1,h:1", ",h:1", "h:99999", NULL };
	for (int i = 0; badl[i]; i++)
		CHECK(ha_parse_hostports(badl[i], a, HA_SENTINELS_MAX, &n, err, sizeof(err)) != 0,
		      "accepted list '%s'", badl[i]);
	return true;
}

/* ---- mailbox rules against Redis ---------------------------------------------------- */

static struct node N1, N2;

static bool t_basic(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	struct mb_publish_result r = publish(N1.mb, a, b, 7, "hello \"world\"\n\x01");
	CHECK(r.status == MB_OK && r.epoch == 7 && strchr(r.id, '-'), "publish: status %d",
	      r.status);
	struct fres *f = fetch(N1.mb, b, NULL, POLL_BATCH_MAX);
	bool ok = f->st == MB_OK && f->n == 1 && !strcmp(f->m[0].id, r.id) &&
		  !strcmp(f->m[0].from, a) && !strcmp(f->m[0].to, b) && f->m[0].epoch == 7 &&
		  !strcmp(f->m[0].kind, "offer") && !strcmp(f->m[0].psig, PSIG) &&
		  f->m[0].len == 15 && !memcmp(f->m[0].payload, "hello \"world\"\n\x01", 15) &&
		  f->m[0].age_ms >= 0 && f->m[0].age_ms < 2000 && !strcmp(f->cursor, r.id);
	snprintf(why, sizeof(why), "fetch: st %d n %zu cursor %s", f->st, f->n, f->cursor);
	fres_free(f);
	if (!ok)
		return false;
	/* Returned is not deleted; acknowledged is. */
	f = fetch(N1.mb, b, NULL, POLL_BATCH_MAX);
	ok = f->st == MB_OK && f->n == 1;
	fres_free(f);
	CHECK(ok, "message gone without an ack");
	f = fetch(N1.mb, b, r.id, POLL_BATCH_MAX);
	ok = f->st == MB_OK && f->n == 0 && !strcmp(f->cursor, r.id);
	snprintf(why, sizeof(why), "after ack: st %d n %zu cursor %s", f->st, f->n, f->cursor);
	fres_free(f);
	if (!ok)
		return false;
	/* Empty mailbox, no cursor: cursor "". */
	f = fetch(N1.mb, b, NULL, 10);
	ok = f->st == MB_OK && f->n == 0 && !strcmp(f->cursor, "");
	fres_free(f);
	CHECK(ok, "empty fetch");
	/* Ids rise. */
	struct mb_publish_result r2 = publish(N1.mb, a, b, 7, "x");
	struct mb_publish_result r3 = publish(N2.mb, a, b, 7, "y");
	CHECK(r2.status == MB_OK && r3.status == MB_OK, "publish 2/3");
	unsigned long long s1 = strtoull(strchr(r.id, '-') + 1, NULL, 10),
			   s2 = strtoull(strchr(r2.id, '-') + 1, NULL, 10),
			   s3 = strtoull(strchr(r3.id, '-') + 1, NULL, 10);
	CHECK(s1 < s2 && s2 < s3, "ids not increasing: %s %s %s", r.id, r2.id, r3.id);
	f = fetch(N2.mb, b, r3.id, 10);
	fres_free(f);
	return true;
}

static bool t_epochs(void)
{
	char a[32], b[32], c[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	rand_id(c, sizeof(c), "c");
	CHECK(publish(N1.mb, a, b, 5, "a5-1").status == MB_OK, "a5-1");
	CHECK(publish(N2.mb, a, b, 5, "a5-2").status == MB_OK, "a5-2 (equal epoch appends)");
	CHECK(publish(N1.mb, c, b, 1, "c1").status == MB_OK, "c1");
	struct mb_publish_result r = publish(N2.mb, a, b, 4, "a4");
	CHECK(r.status == MB_STALE && r.epoch == 5, "stale: status %d epoch %" PRIu64, r.status,
	      r.epoch);
	r = publish(N1.mb, a, b, 6, "a6");
	CHECK(r.status == MB_OK && r.epoch == 6, "a6");
	struct fres *f = fetch(N2.mb, b, NULL, 100);
	bool ok = f->st == MB_OK && f->n == 2 && !strcmp(f->m[0].payload, "c1") &&
		  !strcmp(f->m[1].payload, "a6");
	snprintf(why, sizeof(why), "after a6: n %zu", f->n);
	fres_free(f);
	if (!ok)
		return false;
	/* The pair (c, b) is separate from (a, b). */
	CHECK(publish(N1.mb, c, b, 1, "c1b").status == MB_OK, "c1b");
	/* (a, c) is another pair entirely. */
	CHECK(publish(N1.mb, a, c, 1, "ac1").status == MB_OK, "ac1 independent pair");
	r = publish(N2.mb, a, b, 5, "a5-late");
	CHECK(r.status == MB_STALE && r.epoch == 6, "late a5: %d", r.status);
	struct mb_stats st;
	N1.mb->ops->stats(N1.mb, &st);
	return true;
}

static bool t_cursor(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	struct mb_publish_result r1 = publish(N1.mb, a, b, 1, "1");
	struct mb_publish_result r2 = publish(N1.mb, a, b, 1, "2");
	struct mb_publish_result r3 = publish(N1.mb, a, b, 1, "3");
	CHECK(r1.status == MB_OK && r2.status == MB_OK && r3.status == MB_OK, "publish");
	const char *bad[] = { "abc", "-1", "zz-1", "12345678901234567-1", "ab-", "ab-1x",
			      "ab-123456789012345678901", "AB-1", "ab--1", "ab-99999999999999999999",
			      NULL };
	for (int i = 0; bad[i]; i++) {
		struct fres *f = fetch(N1.mb, b, bad[i], 10);
		bool ok = f->st == MB_BAD_CURSOR;
		fres_free(f);
		CHECK(ok, "cursor '%s' not refused as malformed", bad[i]);
	}
	/* Another generation's cursor acknowledges nothing. */
	struct fres *f = fetch(N1.mb, b, "0-99999999999999999", 10);
	bool ok = f->st == MB_OK && f->n == 3 && !strcmp(f->cursor, f->m[2].id);
	fres_free(f);
	CHECK(ok, "foreign generation acknowledged something");
	/* Up to and including the cursor. */
	f = fetch(N2.mb, b, r2.id, 10);
	ok = f->st == MB_OK && f->n == 1 && !strcmp(f->m[0].id, r3.id);
	fres_free(f);
	CHECK(ok, "partial ack");
	/* max */
	f = fetch(N2.mb, b, NULL, 0);
	ok = f->st == MB_OK && f->n == 0;
	fres_free(f);
	CHECK(ok, "max 0");
	f = fetch(N2.mb, b, r3.id, 10);
	fres_free(f);
	return true;
}

static bool t_batch(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	for (int i = 0; i < 300; i++) {
		char p[16];
		snprintf(p, sizeof(p), "%d", i);
		CHECK(publish(i % 2 ? N1.mb : N2.mb, a, b, 1, p).status == MB_OK, "publish %d", i);
	}
	struct fres *f = fetch(N1.mb, b, NULL, 1000);
	bool ok = f->st == MB_OK && f->n == POLL_BATCH_MAX && !strcmp(f->m[0].payload, "0") &&
		  !strcmp(f->m[255].payload, "255") && !strcmp(f->cursor, f->m[255].id);
	char cur[MSG_ID_MAX];
	snprintf(cur, sizeof(cur), "%s", f->cursor);
	fres_free(f);
	CHECK(ok, "first batch");
	f = fetch(N2.mb, b, cur, 1000);
	ok = f->st == MB_OK && f->n == 44 && !strcmp(f->m[0].payload, "256");
	snprintf(cur, sizeof(cur), "%s", f->n ? f->m[f->n - 1].id : "");
	fres_free(f);
	CHECK(ok, "second batch");
	f = fetch(N2.mb, b, cur, 1000);
	fres_free(f);
	return true;
}

/* Fires n publishes without waiting, then collects them. */
struct burst {
	size_t n, done;
	struct pub_res *res;
};

static void burst_cb(const struct mb_publish_result *r, void *arg)
{
	struct pub_res *p = arg;
	p->r = *r;
	p->done = true;
}

static bool t_cap(void)
{
	char x[32], y[32], b[32];
	rand_id(x, sizeof(x), "x");
	rand_id(y, sizeof(y), "y");
	rand_id(b, sizeof(b), "b");
	size_t n = MAILBOX_CAP;
	struct pub_res *res = calloc(n, sizeof(*res));
	char (*pl)[16] = calloc(n, sizeof(*pl));
	struct publish_msg m;
	for (size_t i = 0; i < n; i++) {
		snprintf(pl[i], sizeof(pl[i]), "p%zu", i);
		fill_msg(&m, x, b, 1, "cand", pl[i]);
		N1.mb->ops->publish(N1.mb, &m, burst_cb, &res[i]);
	}
	int64_t end = mono_ms() + 10000;
	size_t done;
	do {
		event_base_loop(B, EVLOOP_ONCE);
		done = 0;
		for (size_t i = 0; i < n; i++)
			done += res[i].done;
	} while (done < n && mono_ms() < end);
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		ok += res[i].done && res[i].r.status == MB_OK;
	free(res);
	free(pl);
	CHECK(ok == n, "only %zu of %zu pipelined publishes OK", ok, n);
	struct mb_publish_result r = publish(N2.mb, y, b, 5, "y5");
	CHECK(r.status == MB_FULL, "1025th: status %d", r.status);
	r = publish(N2.mb, x, b, 1, "x1");
	CHECK(r.status == MB_FULL, "1025th same pair: status %d", r.status);
	/* A newer epoch of the sender holding them all makes room. */
	r = publish(N2.mb, x, b, 2, "x2");
	CHECK(r.status == MB_OK, "x2 purging 1024: status %d", r.status);
	/* y's refused e5 did not move y's epoch. */
	r = publish(N2.mb, y, b, 3, "y3");
	CHECK(r.status == MB_OK, "y3 after a refused y5: status %d (epoch moved?)", r.status);
	struct fres *f = fetch(N1.mb, b, NULL, 10);
	bool good = f->st == MB_OK && f->n == 2 && !strcmp(f->m[0].payload, "x2") &&
		    !strcmp(f->m[1].payload, "y3");
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[f->n - 1].id, 1));
	fres_free(f);
	CHECK(good, "after purge");
	return true;
}

/* CONTRACT section 2 (and the conformance suite): an identical message
 * published twice is queued twice, also after the first was acknowledged. */
static bool t_identical(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	struct mb_publish_result r1 = publish(N1.mb, a, b, 4, "same");
	struct mb_publish_result r2 = publish(N2.mb, a, b, 4, "same");
	CHECK(r1.status == MB_OK && r2.status == MB_OK && strcmp(r1.id, r2.id),
	      "second got %s, first %s", r2.id, r1.id);
	struct fres *f = fetch(N1.mb, b, r2.id, 10);
	bool ok = f->st == MB_OK && f->n == 0;
	fres_free(f);
	CHECK(ok, "ack");
	struct mb_publish_result r3 = publish(N1.mb, a, b, 4, "same");
	CHECK(r3.status == MB_OK && strcmp(r3.id, r2.id), "after the ack: %d", r3.status);
	f = fetch(N1.mb, b, NULL, 10);
	ok = f->st == MB_OK && f->n == 1 && !strcmp(f->m[0].id, r3.id);
	fres_free(f);
	CHECK(ok, "identical message after the ack not queued");
	fres_free(fetch(N1.mb, b, r3.id, 1));
	return true;
}

static bool t_ttl(void)
{
	struct node t;
	if (!node_open(&t, REDIS_URL, false, 1, "ttl") || !node_wait_ready(&t, 3000))
		return false;
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	double before = 0, after = 0;
	struct mb_publish_result r = publish(t.mb, a, b, 1, "short");
	bool ok = r.status == MB_OK;
	run_for(1100);
	struct fres *f = fetch(t.mb, b, NULL, 10);
	ok = ok && f->st == MB_OK && f->n == 0;
	fres_free(f);
	/* The sweep refreshes the cluster-wide stats every 2 s. */
	struct mb_stats st;
	t.mb->ops->stats(t.mb, &st);
	before = (double)st.expired_total;
	run_for(2300);
	t.mb->ops->stats(t.mb, &st);
	after = (double)st.expired_total;
	node_close(&t);
	CHECK(ok, "message outlived its TTL");
	CHECK(after >= 1 && after >= before, "expired_total %g", after);
	return true;
}

struct wake_rec {
	bool woke;
	int64_t at;
	int count;
};

static void wake_cb(void *arg)
{
	struct wake_rec *w = arg;
	w->woke = true;
	w->count++;
	w->at = mono_ms();
}

static bool t_wake(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	int64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		struct wake_rec w = { 0 };
		struct mb_watch *wt = N2.mb->ops->watch(N2.mb, b, wake_cb, &w);
		CHECK(wt, "watch");
		int64_t t0 = mono_ms();
		struct publish_msg m;
		char pl[16];
		snprintf(pl, sizeof(pl), "wake%d", i);
		fill_msg(&m, a, b, 1, "offer", pl);
		struct pub_res p = { 0 };
		N1.mb->ops->publish(N1.mb, &m, pub_cb, &p);
		bool ok = run_until(&w.woke, 1000);
		run_until(&p.done, 1000);
		N2.mb->ops->unwatch(N2.mb, wt);
		CHECK(ok, "no wake within 1 s (round %d)", i);
		if (w.at - t0 > worst)
			worst = w.at - t0;
	}
	CHECK(worst <= 100, "worst wake %" PRId64 " ms > 100 ms", worst);
	/* Unwatched: nothing fires; other peers do not wake us. */
	struct wake_rec w = { 0 };
	struct mb_watch *wt = N2.mb->ops->watch(N2.mb, b, wake_cb, &w);
	publish(N1.mb, a, "someone-else", 1, "x");
	run_for(150);
	N2.mb->ops->unwatch(N2.mb, wt);
	CHECK(!w.woke, "woken by another peer's message");
	publish(N1.mb, a, b, 1, "after unwatch");
	run_for(100);
	printf("  wake across two instances: worst %" PRId64 " ms of 20\n", worst);
	struct fres *f = fetch(N1.mb, b, NULL, 100);
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[f->n - 1].id, 1));
	fres_free(f);
	return true;
}

/* EXISTS / PTTL of a peer's watch mark, straight from Redis. */
static long long mark_pttl(redisContext *c, const char *peer)
{
	redisReply *r = redisCommand(c, "PTTL %s%s%s", HA_PREFIX, "w:", peer);
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
	freeReplyObject(r);
	return v;
}

/* Wakes only for watched peers: an unwatched recipient's publish sends
 * no pub/sub message; a watch marks the peer before its first read; a
 * mark lost with a failover comes back when the data connection does. */
static bool t_marks(void)
{
	redisContext *c = sync_conn(REDIS_URL);
	CHECK(c && !c->err, "sync connection");
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	double w0 = 0, w1 = 0, w2 = 0;
	metric_value(&N2, "mesh_redis_wakes_total", &w0);
	CHECK(publish(N1.mb, a, b, 1, "nobody polls").status == MB_OK, "publish");
	run_for(150);
	metric_value(&N2, "mesh_redis_wakes_total", &w1);
	long long ttl_unwatched = mark_pttl(c, b);

	struct wake_rec w = { 0 };
	struct mb_watch *wt = N2.mb->ops->watch(N2.mb, b, wake_cb, &w);
	CHECK(wt, "watch");
	struct fres *f = fetch(N2.mb, b, NULL, 10); /* as the broker: watch, then read */
	long long ttl_watched = mark_pttl(c, b);
	bool seen = f->st == MB_OK && f->n == 1;
	if (f->n)
		fres_free(fetch(N2.mb, b, f->m[0].id, 1));
	fres_free(f);
	CHECK(publish(N1.mb, a, b, 1, "watched").status == MB_OK, "publish");
	bool woke = run_until(&w.woke, 1000);
	metric_value(&N2, "mesh_redis_wakes_total", &w2);

	/* A failover to a replica that never got the mark: it is gone, the
	 * data connection comes back, and the mark with it. */
	redisReply *r = redisCommand(c, "DEL %s%s%s", HA_PREFIX, "w:", b);
	freeReplyObject(r);
	rconn_kick(ha_data(N2.ha), "test: simulated failover");
	w.woke = false;
	bool rewoke = run_until(&w.woke, 3000); /* reconnecting wakes every watcher */
	run_for(100);
	long long ttl_back = mark_pttl(c, b);
	w.woke = false;
	CHECK(publish(N1.mb, a, b, 1, "after reconnect").status == MB_OK, "publish");
	bool woke_again = run_until(&w.woke, 1000);
	N2.mb->ops->unwatch(N2.mb, wt);
	f = fetch(N1.mb, b, NULL, 100);
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[f->n - 1].id, 1));
	fres_free(f);
	redisFree(c);

	CHECK(ttl_unwatched == -2, "an unwatched peer has a mark (PTTL %lld)", ttl_unwatched);
	CHECK(w1 == w0, "publish to an unwatched peer sent a wake (%g -> %g)", w0, w1);
	CHECK(seen, "the message published before the watch is read");
	CHECK(ttl_watched > HA_MARK_TTL_MS - 5000 && ttl_watched <= HA_MARK_TTL_MS,
	      "mark PTTL %lld after watch", ttl_watched);
	CHECK(woke && w2 > w1, "watched peer not woken (wakes %g -> %g)", w1, w2);
	CHECK(rewoke, "reconnect did not wake the watcher");
	CHECK(ttl_back > 0, "mark not restored after reconnect (PTTL %lld)", ttl_back);
	CHECK(woke_again, "no wake after the reconnect");
	return true;
}

static bool t_replay(void)
{
	char n1[NONCE_HEX_LEN + 1], n2[NONCE_HEX_LEN + 1];
	rand_nonce(n1);
	rand_nonce(n2);
	CHECK(replay_check(N1.rp, n1) == REPLAY_FRESH, "first use");
	CHECK(replay_check(N1.rp, n1) == REPLAY_SEEN, "same node replay");
	CHECK(replay_check(N2.rp, n1) == REPLAY_SEEN, "replay to the other node");
	CHECK(replay_check(N2.rp, n2) == REPLAY_FRESH, "fresh on the other node");
	CHECK(N1.rp->ops->size(N1.rp) >= 1, "size");
	redisContext *c = sync_conn(REDIS_URL);
	CHECK(c && !c->err, "sync connection");
	char key[80];
	snprintf(key, sizeof(key), "mesh:nonce:%s", n1);
	redisReply *r = redisCommand(c, "TTL %s", key);
	bool ok = r && r->type == REDIS_REPLY_INTEGER && r->integer > 230 && r->integer <= 240;
	freeReplyObject(r);
	redisFree(c);
	CHECK(ok, "nonce TTL is not 240 s");
	return true;
}

static struct mb_publish_result publish_once(struct mailbox *mb, const char *from, const char *to,
					     uint64_t epoch, const char *payload, const char *nonce)
{
	struct publish_msg m;
	fill_msg(&m, from, to, epoch, "offer", payload);
	struct pub_res p = { 0 };
	mb->ops->publish_once(mb, &m, nonce, pub_cb, &p);
	if (!run_until(&p.done, 5000))
		p.r.status = (enum mb_status)-1;
	return p.r;
}

/* The nonce check inside the publish script shares the replay store's
 * nonces: a nonce is refused the second time whichever path (publish
 * script or replay check) and coordinator saw it first, and a refused
 * publish queues nothing. */
static bool t_publish_once(void)
{
	CHECK(N1.mb->ops->publish_once, "the Redis mailbox has publish_once");
	char a[32], b[32], n1[NONCE_HEX_LEN + 1], n2[NONCE_HEX_LEN + 1];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	rand_nonce(n1);
	rand_nonce(n2);
	struct mb_publish_result r1 = publish_once(N1.mb, a, b, 1, "first", n1);
	struct mb_publish_result r2 = publish_once(N2.mb, a, b, 1, "again", n1);
	enum replay_result rc = replay_check(N2.rp, n1);
	enum replay_result rc2 = replay_check(N1.rp, n2);
	struct mb_publish_result r3 = publish_once(N1.mb, a, b, 1, "checked before", n2);
	/* A stale publish still uses up its nonce, as a separate check would. */
	char n3[NONCE_HEX_LEN + 1];
	rand_nonce(n3);
	CHECK(publish(N1.mb, a, b, 5, "epoch 5").status == MB_OK, "publish at epoch 5");
	struct mb_publish_result r4 = publish_once(N1.mb, a, b, 2, "stale", n3);
	struct mb_publish_result r5 = publish_once(N1.mb, a, b, 6, "stale nonce", n3);
	struct fres *f = fetch(N1.mb, b, NULL, 10);
	bool one = f->st == MB_OK && f->n == 1 && !strcmp(f->m[0].payload, "epoch 5");
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[f->n - 1].id, 1));
	fres_free(f);
	CHECK(r1.status == MB_OK, "first publish_once: %d", r1.status);
	CHECK(r2.status == MB_REPLAY, "same nonce on the other node: %d", r2.status);
	CHECK(rc == REPLAY_SEEN, "replay store did not see the publish's nonce: %d", rc);
	CHECK(rc2 == REPLAY_FRESH && r3.status == MB_REPLAY,
	      "nonce checked by the replay store then published: %d %d", rc2, r3.status);
	CHECK(r4.status == MB_STALE && r5.status == MB_REPLAY, "stale publish kept its nonce: %d %d",
	      r4.status, r5.status);
	CHECK(one, "refused publishes queued something");
	return true;
}

static bool t_noscript(void)
{
	redisContext *c = sync_conn(REDIS_URL);
	CHECK(c && !c->err, "sync connection");
	redisReply *r = redisCommand(c, "SCRIPT FLUSH");
	bool ok = r && r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	redisFree(c);
	CHECK(ok, "SCRIPT FLUSH");
	double before = 0, after = 0;
	metric_value(&N1, "mesh_redis_noscript_total", &before);
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	CHECK(publish(N1.mb, a, b, 1, "after flush").status == MB_OK, "publish after SCRIPT FLUSH");
	struct fres *f = fetch(N1.mb, b, NULL, 10);
	ok = f->st == MB_OK && f->n == 1;
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[0].id, 1));
	fres_free(f);
	CHECK(ok, "fetch after SCRIPT FLUSH");
	metric_value(&N1, "mesh_redis_noscript_total", &after);
	CHECK(after >= before + 1, "noscript counter did not move");
	return true;
}

static bool t_unavailable(void)
{
	struct node t;
	/* Port 1 on loopback: refused at once. */
	if (!node_open(&t, "redis://127.0.0.1:1", false, 60, "down"))
		return false;
	run_for(200);
	char w[256] = "";
	bool ready = t.mb->ops->ready(t.mb, w, sizeof(w));
	int64_t t0 = mono_ms();
	struct mb_publish_result r = publish(t.mb, "a", "b", 1, "x");
	struct fres *f = fetch(t.mb, "b", NULL, 10);
	enum mb_status fst = f->st;
	fres_free(f);
	f = fetch(t.mb, "b", "zz", 10);
	enum mb_status bst = f->st;
	fres_free(f);
	enum replay_result rr = replay_check(t.rp, "0123456789abcdef0123456789abcdef");
	int64_t took = mono_ms() - t0;
	double up = -1;
	metric_value(&t, "mesh_redis_up", &up);
	struct evbuffer *cj = evbuffer_new();
	ha_coordinators_json(t.ha, cj);
	evbuffer_add(cj, "", 1);
	bool self_only = strstr((char *)evbuffer_pullup(cj, -1), "\"id\":\"down\"") != NULL;
	evbuffer_free(cj);
	node_close(&t);
	CHECK(!ready && w[0], "ready with no Redis (why '%s')", w);
	CHECK(r.status == MB_UNAVAILABLE, "publish: %d", r.status);
	CHECK(fst == MB_UNAVAILABLE, "fetch: %d", fst);
	CHECK(bst == MB_BAD_CURSOR, "bad cursor: %d", bst);
	CHECK(rr == REPLAY_UNAVAILABLE, "replay: %d", rr);
	CHECK(took < 200, "answers took %" PRId64 " ms", took);
	CHECK(up == 0, "mesh_redis_up %g", up);
	CHECK(self_only, "coordinators list without this node");
	printf("  unavailable reason: %s\n", w);
	return true;
}

/* Two instances race publishes for one pair with random epochs: every
 * refusal names a higher epoch, and what stays queued from the sender
 * carries only the final epoch. */
static bool t_race(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	enum { N = 400 };
	struct pub_res *res = calloc(N, sizeof(*res));
	struct publish_msg *m = calloc(N, sizeof(*m));
	for (int i = 0; i < N; i++) {
		fill_msg(&m[i], a, b, 1 + (uint64_t)(random() % 30), "offer", "race");
		struct mailbox *mb = i % 2 ? N1.mb : N2.mb;
		mb->ops->publish(mb, &m[i], burst_cb, &res[i]);
	}
	int64_t end = mono_ms() + 10000;
	int done;
	do {
		event_base_loop(B, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < N; i++)
			done += res[i].done;
	} while (done < N && mono_ms() < end);
	uint64_t max_ok = 0;
	bool good = done == N;
	for (int i = 0; i < N && good; i++) {
		if (res[i].r.status == MB_OK && m[i].epoch > max_ok)
			max_ok = m[i].epoch;
		if (res[i].r.status == MB_STALE && res[i].r.epoch <= m[i].epoch)
			good = false;
		if (res[i].r.status != MB_OK && res[i].r.status != MB_STALE)
			good = false;
	}
	free(res);
	free(m);
	CHECK(good, "a refusal without a higher current epoch (or an error)");
	struct fres *f = fetch(N1.mb, b, NULL, POLL_BATCH_MAX);
	good = f->st == MB_OK && f->n >= 1;
	for (size_t i = 0; i < f->n; i++)
		if (f->m[i].epoch != max_ok)
			good = false;
	size_t n = f->n;
	if (f->n)
		fres_free(fetch(N1.mb, b, f->m[f->n - 1].id, 1));
	fres_free(f);
	CHECK(good, "queued epochs differ from the final %" PRIu64 " (n %zu)", max_ok, n);
	return true;
}

/* A second HTTP thread (ha_bind_thread) gets its own instance: it
 * publishes on its own loop and connection, a watcher on the main loop is
 * woken, and its instance goes away when the thread ends. */
struct thr {
	char from[32], to[32];
	bool ok;
	char id[MSG_ID_MAX];
	int fetched;
	char why[200];
};

static void thr_pub_cb(const struct mb_publish_result *r, void *arg)
{
	struct pub_res *p = arg;
	p->r = *r;
	p->done = true;
}

static void thr_fetch_cb(const struct mb_fetch_result *r, void *arg)
{
	int *n = arg;
	*n = r->status == MB_OK ? (int)r->count : -1;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct event_base *b = event_base_new();
	struct event *tk = event_new(b, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = { 0, 5000 };
	event_add(tk, &tv);
	if (ha_bind_thread(N1.ha, b) != 0) {
		snprintf(t->why, sizeof(t->why), "ha_bind_thread failed");
		goto out;
	}
	int64_t end = mono_ms() + 5000;
	while (!N1.mb->ops->ready(N1.mb, NULL, 0) && mono_ms() < end)
		event_base_loop(b, EVLOOP_ONCE);
	struct publish_msg m;
	fill_msg(&m, t->from, t->to, 1, "offer", "from a thread");
	struct pub_res p = { 0 };
	N1.mb->ops->publish(N1.mb, &m, thr_pub_cb, &p);
	while (!p.done && mono_ms() < end)
		event_base_loop(b, EVLOOP_ONCE);
	if (!p.done || p.r.status != MB_OK) {
		snprintf(t->why, sizeof(t->why), "publish on the thread: %d", p.r.status);
		goto out;
	}
	snprintf(t->id, sizeof(t->id), "%s", p.r.id);
	t->fetched = -2;
	N1.mb->ops->fetch(N1.mb, t->to, NULL, 10, thr_fetch_cb, &t->fetched);
	while (t->fetched == -2 && mono_ms() < end)
		event_base_loop(b, EVLOOP_ONCE);
	t->ok = t->fetched == 1;
	if (!t->ok)
		snprintf(t->why, sizeof(t->why), "fetch on the thread: %d", t->fetched);
out:
	event_free(tk);
	/* The instance's events go at thread exit (key destructor), before
	 * its loop is freed, exactly as the broker's workers end. */
	pthread_exit(b);
}

static bool t_threads(void)
{
	struct thr t = { .ok = false };
	rand_id(t.from, sizeof(t.from), "a");
	rand_id(t.to, sizeof(t.to), "b");
	struct wake_rec w = { 0 };
	struct mb_watch *wt = N1.mb->ops->watch(N1.mb, t.to, wake_cb, &w);
	CHECK(wt, "watch");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, thr_main, &t) == 0, "pthread_create");
	bool woke = run_until(&w.woke, 6000);
	void *tb = NULL;
	pthread_join(th, &tb);
	if (tb)
		event_base_free(tb);
	N1.mb->ops->unwatch(N1.mb, wt);
	CHECK(t.ok, "%s", t.why);
	CHECK(woke, "main loop's watcher not woken by the thread's publish");
	double conns = 0;
	metric_value(&N1, "mesh_redis_connections", &conns);
	CHECK(conns == 1, "the thread's instance outlived it (%g)", conns);
	struct fres *f = fetch(N1.mb, t.to, t.id, 10);
	bool ok = f->st == MB_OK && f->n == 0;
	fres_free(f);
	CHECK(ok, "ack from the main loop");
	return true;
}

/* Random operations on the Redis and the memory mailbox side by side:
 * same statuses, same epochs, same messages. */
static bool t_diff(void)
{
	struct mailbox *mem;
	struct mailbox_mem_config mc = { .message_ttl_s = 600, .pair_idle_s = 3600,
					 .max_bytes = 1u << 30 };
	CHECK(mailbox_mem_new(&mem, B, &mc) == 0, "mailbox_mem_new");
	char peers[4][32];
	for (int i = 0; i < 4; i++)
		rand_id(peers[i], sizeof(peers[i]), "d");
	char cur_r[4][MSG_ID_MAX] = { { 0 } }, cur_m[4][MSG_ID_MAX] = { { 0 } };
	bool good = true;
	int ops = 4000;
	for (int i = 0; i < ops && good; i++) {
		int op = (int)(random() % 10);
		int from = (int)(random() % 4), to = (int)(random() % 4);
		if (op < 6) {
			uint64_t epoch = 1 + (uint64_t)(random() % 6);
			char payload[32];
			snprintf(payload, sizeof(payload), "p%d", i);
			struct mailbox *rmb = random() % 2 ? N1.mb : N2.mb;
			struct mb_publish_result rr = publish(rmb, peers[from], peers[to], epoch, payload);
			struct mb_publish_result mr = publish(mem, peers[from], peers[to], epoch, payload);
			if (rr.status != mr.status || rr.epoch != mr.epoch) {
				snprintf(why, sizeof(why),
					 "op %d publish %d->%d e%" PRIu64 ": redis %d/%" PRIu64
					 " memory %d/%" PRIu64, i, from, to, epoch, rr.status, rr.epoch,
					 mr.status, mr.epoch);
				good = false;
			}
			continue;
		}
		/* fetch, acknowledging either the last cursor or a random
		 * message of the last answer */
		bool ack = op < 9;
		size_t max = 1 + (size_t)(random() % 8);
		struct mailbox *rmb = random() % 2 ? N1.mb : N2.mb;
		struct fres *fr = fetch(rmb, peers[to], ack ? cur_r[to] : NULL, max);
		struct fres *fm = fetch(mem, peers[to], ack ? cur_m[to] : NULL, max);
		if (fr->st != fm->st || fr->n != fm->n) {
			snprintf(why, sizeof(why), "op %d fetch %d: redis %d/%zu memory %d/%zu", i, to,
				 fr->st, fr->n, fm->st, fm->n);
			good = false;
		}
		for (size_t k = 0; good && k < fr->n; k++)
			if (strcmp(fr->m[k].from, fm->m[k].from) || fr->m[k].epoch != fm->m[k].epoch ||
			    strcmp(fr->m[k].payload, fm->m[k].payload) || strcmp(fr->m[k].kind, fm->m[k].kind)) {
				snprintf(why, sizeof(why), "op %d fetch %d: message %zu differs (%s/%s)", i,
					 to, k, fr->m[k].payload, fm->m[k].payload);
				good = false;
			}
		if (good && fr->n) {
			size_t k = (size_t)(random() % fr->n);
			snprintf(cur_r[to], sizeof(cur_r[to]), "%s", fr->m[k].id);
			snprintf(cur_m[to], sizeof(cur_m[to]), "%s", fm->m[k].id);
		} else if (good && ack) {
			cur_r[to][0] = cur_m[to][0] = '\0';
		}
		fres_free(fr);
		fres_free(fm);
	}
	mem->ops->free(mem);
	return good;
}

/* ---- HA (Sentinel) tests ---------------------------------------------------------------- */

static struct node H1, H2;

static bool t_ha_basic(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	struct mb_publish_result r = publish(H1.mb, a, b, 1, "ha");
	CHECK(r.status == MB_OK, "publish through WAIT: status %d", r.status);
	struct fres *f = fetch(H2.mb, b, NULL, 10);
	bool ok = f->st == MB_OK && f->n == 1;
	char id[MSG_ID_MAX];
	snprintf(id, sizeof(id), "%s", f->n ? f->m[0].id : "");
	fres_free(f);
	CHECK(ok, "fetch on the other node");
	f = fetch(H2.mb, b, id, 10);
	ok = f->st == MB_OK && f->n == 0 && !strcmp(f->cursor, id);
	fres_free(f);
	CHECK(ok, "ack through WAIT");
	double unrep = -1;
	metric_value(&H1, "mesh_redis_unreplicated_total", &unrep);
	CHECK(unrep == 0, "unreplicated writes: %g", unrep);
	return true;
}

static bool coordinators_has(struct node *n, const char *id)
{
	struct evbuffer *b = evbuffer_new();
	ha_coordinators_json(n->ha, b);
	evbuffer_add(b, "", 1);
	char pat[96];
	snprintf(pat, sizeof(pat), "\"id\":\"%s\"", id);
	bool has = strstr((char *)evbuffer_pullup(b, -1), pat) != NULL;
	evbuffer_free(b);
	return has;
}

static bool t_registry(void)
{
	int64_t t0 = mono_ms();
	while (!coordinators_has(&H1, "h2") || !coordinators_has(&H2, "h1")) {
		CHECK(mono_ms() - t0 < 5000, "nodes do not see each other within 5 s");
		run_for(50);
	}
	int64_t seen = mono_ms() - t0;
	struct evbuffer *b = evbuffer_new();
	ha_coordinators_json(H1.ha, b);
	evbuffer_add(b, "", 1);
	printf("  /v1/coordinators body: %s\n", (char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	/* h2 goes away: dropped within 10 s. */
	node_close(&H2);
	t0 = mono_ms();
	while (coordinators_has(&H1, "h2")) {
		CHECK(mono_ms() - t0 < 10000, "dead node still listed after 10 s");
		run_for(100);
	}
	int64_t dropped = mono_ms() - t0;
	/* ... and back within 5 s. */
	if (!node_open(&H2, NULL, true, 60, "h2"))
		return false;
	t0 = mono_ms();
	while (!coordinators_has(&H1, "h2")) {
		CHECK(mono_ms() - t0 < 5000, "returning node not listed within 5 s");
		run_for(50);
	}
	int64_t back = mono_ms() - t0;
	printf("  registry: seen after %" PRId64 " ms, dropped after %" PRId64
	       " ms, back after %" PRId64 " ms\n", seen, dropped, back);
	return node_wait_ready(&H2, 5000);
}

/* The master is shut down; Sentinel promotes a replica; both nodes
 * follow and serve again; the queued message survived. */
static bool t_failover(void)
{
	char a[32], b[32];
	rand_id(a, sizeof(a), "a");
	rand_id(b, sizeof(b), "b");
	struct mb_publish_result r = publish(H1.mb, a, b, 3, "before failover");
	CHECK(r.status == MB_OK, "publish before: %d", r.status);
	struct sentinel_probe {
		char host[64];
		int port;
	} old = { "", 0 };
	{
		struct evbuffer *buf = evbuffer_new();
		ha_metrics(H1.ha, buf);
		evbuffer_add(buf, "", 1);
		const char *s = strstr((char *)evbuffer_pullup(buf, -1), "mesh_redis_master{addr=\"");
		if (s)
			sscanf(s + strlen("mesh_redis_master{addr=\""), "%63[^:]:%d", old.host, &old.port);
		evbuffer_free(buf);
	}
	CHECK(old.port > 0, "no master in the metrics");
	char url[128];
	snprintf(url, sizeof(url), "redis://%s:%d", old.host, old.port);
	redisContext *c = sync_conn(url);
	CHECK(c && !c->err, "connection to the master");
	redisReply *rr = redisCommand(c, "SHUTDOWN NOSAVE NOW");
	freeReplyObject(rr);
	redisFree(c);
	int64_t t0 = mono_ms(), unready_at = -1, back_at = -1;
	for (;;) {
		run_for(100);
		bool ready1 = H1.mb->ops->ready(H1.mb, NULL, 0);
		if (!ready1 && unready_at < 0)
			unready_at = mono_ms() - t0;
		if (ready1 && H2.mb->ops->ready(H2.mb, NULL, 0)) {
			struct mb_publish_result p = publish(H2.mb, a, b, 3, "after failover");
			if (p.status == MB_OK) {
				back_at = mono_ms() - t0;
				break;
			}
		}
		CHECK(mono_ms() - t0 < 15000, "not serving 15 s after the master died");
	}
	struct fres *f = fetch(H1.mb, b, NULL, 10);
	bool ok = f->st == MB_OK && f->n == 2 && !strcmp(f->m[0].payload, "before failover") &&
		  !strcmp(f->m[1].payload, "after failover") && !strcmp(f->m[0].id, r.id);
	fres_free(f);
	double fo = 0;
	metric_value(&H1, "mesh_redis_failovers_total", &fo);
	printf("  failover: not ready after %" PRId64 " ms, serving again after %" PRId64
	       " ms (failovers_total %g)\n", unready_at, back_at, fo);
	CHECK(ok, "messages across the failover");
	CHECK(unready_at >= 0, "ready never turned false");
	CHECK(fo >= 1, "failover not counted");
	return true;
}

/* ---- main -------------------------------------------------------------------------------------- */

struct test {
	const char *name;
	bool (*fn)(void);
	int needs; /* 0 none, 1 --redis, 2 --sentinel */
};

static const struct test TESTS[] = {
	{ "url", t_url, 0 },
	{ "basic", t_basic, 1 },
	{ "epochs", t_epochs, 1 },
	{ "cursor", t_cursor, 1 },
	{ "batch", t_batch, 1 },
	{ "cap", t_cap, 1 },
	{ "identical", t_identical, 1 },
	{ "ttl", t_ttl, 1 },
	{ "wake", t_wake, 1 },
	{ "marks", t_marks, 1 },
	{ "replay", t_replay, 1 },
	{ "publish-once", t_publish_once, 1 },
	{ "noscript", t_noscript, 1 },
	{ "unavailable", t_unavailable, 1 },
	{ "race", t_race, 1 },
	{ "threads", t_threads, 1 },
	{ "diff", t_diff, 1 },
	{ "ha-basic", t_ha_basic, 2 },
	{ "registry", t_registry, 2 },
	{ "failover", t_failover, 2 },
};

static bool selected(const char *only, const char *name)
{
	if (!only)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; p && *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && !strncmp(p, name, n))
			return true;
		p = c ? c + 1 : NULL;
	}
	return false;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	static const struct option lo[] = {
		{ "redis", required_argument, NULL, 'r' },
		{ "sentinel", required_argument, NULL, 's' },
		{ "secret-file", required_argument, NULL, 'k' },
		{ "only", required_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	log_set_level("warn");
	while ((c = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
		switch (c) {
		case 'r': REDIS_URL = optarg; break;
		case 's': SENTINELS = optarg; break;
		case 'k': SECRET = optarg; break;
		case 'o': only = optarg; break;
		case 'v': log_set_level("debug"); break;
		default:
			fprintf(stderr, "usage: ha-test [--redis URL] [--sentinel H:P,...] "
					"[--secret-file F] [--only T,...] [-v]\n"
					"       ha-test derive SECRET_FILE INFO\n"
					"       ha-test script publish|fetch|sweep|registry\n");
			return 2;
		}
	}
	if (optind + 3 == argc && !strcmp(argv[optind], "derive")) {
		char pw[65], err[200];
		if (ha_derive_password(argv[optind + 1], argv[optind + 2], pw, err, sizeof(err))) {
			fprintf(stderr, "ha-test: %s\n", err);
			return 1;
		}
		printf("%s\n", pw);
		return 0;
	}
	if (optind + 2 == argc && !strcmp(argv[optind], "script")) {
		for (int i = 0; i < HA_SCRIPT_COUNT; i++)
			if (!strcmp(ha_script(i)->name, argv[optind + 1])) {
				fputs(ha_script(i)->body, stdout);
				return 0;
			}
		fprintf(stderr, "ha-test: no script %s\n", argv[optind + 1]);
		return 2;
	}
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	B = event_base_new();
	struct event *tick = event_new(B, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = { 0, 5000 };
	event_add(tick, &tv);

	bool have_nodes = false, have_ha = false;
	if (REDIS_URL) {
		if (!node_open(&N1, REDIS_URL, false, 60, "n1") || !node_open(&N2, REDIS_URL, false, 60, "n2") ||
		    !node_wait_ready(&N1, 5000) || !node_wait_ready(&N2, 5000)) {
			printf("FAIL setup: %s\n", why);
			return 1;
		}
		have_nodes = true;
	}
	if (SENTINELS) {
		if (!node_open(&H1, NULL, true, 60, "h1") || !node_open(&H2, NULL, true, 60, "h2") ||
		    !node_wait_ready(&H1, 10000) || !node_wait_ready(&H2, 10000)) {
			printf("FAIL ha-setup: %s\n", why);
			return 1;
		}
		have_ha = true;
	}
	int ran = 0;
	for (size_t i = 0; i < sizeof(TESTS) / sizeof(TESTS[0]); i++) {
		const struct test *t = &TESTS[i];
		if (!selected(only, t->name))
			continue;
		if ((t->needs == 1 && !have_nodes) || (t->needs == 2 && !have_ha)) {
			if (only) {
				printf("FAIL %s: needs %s\n", t->name, t->needs == 1 ? "--redis" : "--sentinel");
				failures++;
			}
			continue;
		}
		why[0] = '\0';
		int64_t t0 = mono_ms();
		bool ok = t->fn();
		ran++;
		if (ok) {
			printf("PASS %s (%" PRId64 " ms)\n", t->name, mono_ms() - t0);
		} else {
			printf("FAIL %s: %s\n", t->name, why);
			failures++;
		}
		fflush(stdout);
	}
	if (have_nodes) {
		node_close(&N1);
		node_close(&N2);
	}
	if (have_ha) {
		node_close(&H1);
		node_close(&H2);
	}
	event_free(tick);
	event_base_free(B);
	printf("ha-test: %d run, %d failed\n", ran, failures);
	return failures ? 1 : 0;
}
