/* conformance: a black-box test of a running coordinator against CONTRACT
 * section 2 (signaling API v1). Drives it over HTTP through every rule
 * and status code, prints one line per check ("ok - name" or "not ok -
 * name: why") and finally "N passed, M failed"; exits 1 when any check
 * failed, 2 on usage errors. It must not look inside the coordinator
 * (no shared state, no internal headers beyond the signing code) and
 * must not talk to anything but the URLs it is given.
 *
 * Every request takes its base URL from next_base(), which alternates
 * between --url and --url2 when both are given, so the same checks prove
 * that two coordinators sharing one mailbox behave as one. Peer ids are
 * random per run, so reruns against the same server do not interfere. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "signaling/auth.h"
#include "signaling/keys.h"
#include "tests/tools/httpc.h"

#define WHY 1536
#define DEFAULT_TIMEOUT_MS 10000
#define EPOCH_MAX 9007199254740991LL /* 2^53-1, CONTRACT section 2 */
#define PAYLOAD_MAX 16384            /* CONTRACT section 2 */
#define BODY_MAX 65536               /* CONTRACT section 2 */
#define MAILBOX_MAX 1024             /* CONTRACT section 2 */
#define POLL_MAX 256                 /* CONTRACT section 2 */
#define LONGPOLL_BOUND_MS 100        /* CONTRACT section 2: "within 100 ms" */

static struct {
	struct http_url url[2];
	int nurl;
	unsigned flip;
	struct mesh_keys keys;
	struct mesh_keys wrong;
	int ttl;
	const char *realm;
	char run[9];
	unsigned npeer;
	int passed, failed;
	bool verbose;
} G;

/* ---- reporting ---------------------------------------------------- */

static void report(const char *name, bool ok, const char *why)
{
	if (ok) {
		G.passed++;
		printf("ok - %s\n", name);
	} else {
		G.failed++;
		printf("not ok - %s: %s\n", name, why && *why ? why : "failed");
	}
	fflush(stdout);
}

static void reportf(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reportf(const char *name, bool ok, const char *fmt, ...)
{
	char why[WHY];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	report(name, ok, why);
}

static void skip(const char *name, const char *why)
{
	printf("# skip %s: %s\n", name, why);
	fflush(stdout);
}

static void seterr(char *why, size_t wl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *why, size_t wl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
}

/* "HTTP 400 {"error":...}" with the body cut and escaped, for messages. */
static const char *ans(const struct http_resp *rs)
{
	static char ring[4][400];
	static unsigned k;
	char *o = ring[k++ % 4];
	size_t n = 0, i;

	n = (size_t)snprintf(o, 400, "HTTP %d ", rs->status);
	for (i = 0; i < rs->body_len && n < 380; i++) {
		unsigned char ch = (unsigned char)rs->body[i];

		if (ch >= 0x20 && ch < 0x7f)
			o[n++] = (char)ch;
		else
			n += (size_t)snprintf(o + n, 400 - n, "\\x%02x", ch);
	}
	if (i < rs->body_len && n < 396) {
		memcpy(o + n, "...", 3);
		n += 3;
	}
	o[n < 400 ? n : 399] = 0;
	return o;
}

/* ---- small helpers ------------------------------------------------ */

static void sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Sleeps until early in a wall-clock second, so that a ts computed now
 * and the server's clock agree on the second (edge-of-skew checks). */
static void align_second(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_nsec > 200000000L)
		sleep_ms((1000000000L - ts.tv_nsec) / 1000000 + 20);
}

static void fresh_peer(char out[PEER_ID_MAX + 1])
{
	snprintf(out, PEER_ID_MAX + 1, "cf-%s-%u", G.run, ++G.npeer);
}

static const struct http_url *next_base(void)
{
	if (G.nurl < 2)
		return &G.url[0];
	return &G.url[G.flip++ % 2];
}

static void urlenc(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *in && n + 4 < cap; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = 0;
}

static bool is_json_ctype(const struct http_resp *rs)
{
	char ct[128];

	if (!http_resp_header(rs, "Content-Type", ct, sizeof(ct)))
		return false;
	return strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == 0 || ct[16] == ';' || ct[16] == ' ');
}

static json_t *parse_body(const struct http_resp *rs, char *why, size_t wl)
{
	json_error_t je;
	json_t *j = json_loadb(rs->body, rs->body_len, JSON_REJECT_DUPLICATES, &je);

	if (!j)
		seterr(why, wl, "body is not JSON (%s): %s", je.text, ans(rs));
	return j;
}

/* ---- requests ----------------------------------------------------- */

struct req {
	const char *method;
	const char *path;        /* path and query after the base prefix */
	const char *as;          /* peer to sign as; NULL: no Authorization */
	const void *body;        /* NULL: no body */
	size_t body_len;
	const char *ctype;       /* NULL: application/json with a body; "": none */
	const char *raw_auth;    /* Authorization value sent verbatim */
	const uint8_t *key;      /* NULL: the signal key */
	int64_t ts_offset;       /* added to now */
	const char *nonce;       /* NULL: random */
	const char *sign_method; /* NULL: method */
	const char *sign_path;   /* NULL: path */
	const void *sign_body;   /* with sign_body_set: what is hashed instead */
	size_t sign_body_len;
	bool sign_body_set;
	int timeout_ms;          /* 0: DEFAULT_TIMEOUT_MS */
	const struct http_url *base; /* NULL: next_base() */
	bool conn_close;         /* send "Connection: close" */
	bool chunked;            /* body with Transfer-Encoding: chunked */
};

struct prepared {
	struct http_req rq;
	const char *hdrs[4];
	char path[HTTPC_PATH_MAX + 4096];
	char auth[AUTH_HEADER_MAX + 320];
	char ctype[256];
	const struct http_url *base;
};

static int prepare(const struct req *r, struct prepared *p, char *why, size_t wl)
{
	char spath[sizeof(p->path)], val[AUTH_HEADER_MAX + 256];
	size_t nh = 0;

	memset(p, 0, sizeof(*p));
	p->base = r->base ? r->base : next_base();
	if ((size_t)snprintf(p->path, sizeof(p->path), "%s%s", p->base->prefix, r->path) >=
	    sizeof(p->path)) {
		seterr(why, wl, "path too long");
		return -1;
	}
	if (r->raw_auth) {
		snprintf(p->auth, sizeof(p->auth), "Authorization: %s", r->raw_auth);
		p->hdrs[nh++] = p->auth;
	} else if (r->as) {
		const void *sb = r->sign_body_set ? r->sign_body : r->body;
		size_t sbl = r->sign_body_set ? r->sign_body_len : r->body_len;

		snprintf(spath, sizeof(spath), "%s%s", p->base->prefix,
			 r->sign_path ? r->sign_path : r->path);
		if (http_auth_value(val, sizeof(val), r->key ? r->key : G.keys.signal, r->as,
				    (int64_t)time(NULL) + r->ts_offset, r->nonce,
				    r->sign_method ? r->sign_method : r->method, spath, sb,
				    sb ? sbl : 0) < 0) {
			seterr(why, wl, "cannot build Authorization");
			return -1;
		}
		snprintf(p->auth, sizeof(p->auth), "Authorization: %s", val);
		p->hdrs[nh++] = p->auth;
	}
	if (r->body && !(r->ctype && !*r->ctype)) {
		snprintf(p->ctype, sizeof(p->ctype), "Content-Type: %s",
			 r->ctype ? r->ctype : "application/json");
		p->hdrs[nh++] = p->ctype;
	}
	p->rq.method = r->method;
	p->rq.host = p->base->host;
	p->rq.port = p->base->port;
	p->rq.path_query = p->path;
	p->rq.headers = p->hdrs;
	p->rq.nheaders = nh;
	p->rq.body = r->body;
	p->rq.body_len = r->body_len;
	p->rq.timeout_ms = r->timeout_ms ? r->timeout_ms : DEFAULT_TIMEOUT_MS;
	p->rq.conn_close = r->conn_close;
	p->rq.chunked = r->chunked;
	return 0;
}

/* One request; 0, or -1 with why (connection-level failure). */
static int send_req(const struct req *r, struct http_resp *rs, char *why, size_t wl)
{
	struct prepared p;
	char err[512];

	memset(rs, 0, sizeof(*rs));
	if (prepare(r, &p, why, wl))
		return -1;
	if (http_do(&p.rq, rs, err, sizeof(err))) {
		seterr(why, wl, "%s %s: %s", r->method, p.path, err);
		return -1;
	}
	if (G.verbose)
		fprintf(stderr, "# %s %s -> %s\n", r->method, p.path, ans(rs));
	return 0;
}

/* The answer is status with a CONTRACT error body carrying code (NULL:
 * any code). */
static bool is_error(const struct http_resp *rs, int status, const char *code,
		     char *why, size_t wl)
{
	json_t *j, *e, *m;
	bool ok = false;

	if (rs->status != status) {
		seterr(why, wl, "want %d %s, got %s", status, code ? code : "error", ans(rs));
		return false;
	}
	if (!is_json_ctype(rs)) {
		char ct[128] = "(none)";

		http_resp_header(rs, "Content-Type", ct, sizeof(ct));
		seterr(why, wl, "error answer Content-Type is %s, want application/json: %s", ct,
		       ans(rs));
		return false;
	}
	j = parse_body(rs, why, wl);
	if (!j)
		return false;
	e = json_object_get(j, "error");
	m = json_object_get(j, "message");
	if (!json_is_string(e))
		seterr(why, wl, "no \"error\" string: %s", ans(rs));
	else if (code && strcmp(json_string_value(e), code) != 0)
		seterr(why, wl, "want error \"%s\", got %s", code, ans(rs));
	else if (!json_is_string(m))
		seterr(why, wl, "no \"message\" string: %s", ans(rs));
	else
		ok = true;
	json_decref(j);
	return ok;
}

/* Sends r and reports name as passing when the answer is the error. */
static bool expect_err(const char *name, const struct req *r, int status, const char *code)
{
	struct http_resp rs;
	char why[WHY];
	bool ok;

	if (send_req(r, &rs, why, sizeof(why))) {
		report(name, false, why);
		return false;
	}
	ok = is_error(&rs, status, code, why, sizeof(why));
	report(name, ok, why);
	http_resp_free(&rs);
	return ok;
}

/* Sends r; on the given status with a JSON object body returns it. */
static json_t *want_json(const struct req *r, int status, struct http_resp *rsout,
			 char *why, size_t wl)
{
	struct http_resp rs;
	json_t *j;

	if (send_req(r, &rs, why, wl))
		return NULL;
	if (rs.status != status) {
		seterr(why, wl, "want %d, got %s", status, ans(&rs));
		http_resp_free(&rs);
		return NULL;
	}
	if (!is_json_ctype(&rs)) {
		seterr(why, wl, "Content-Type is not application/json: %s", ans(&rs));
		http_resp_free(&rs);
		return NULL;
	}
	j = parse_body(&rs, why, wl);
	if (j && !json_is_object(j)) {
		seterr(why, wl, "body is not a JSON object: %s", ans(&rs));
		json_decref(j);
		j = NULL;
	}
	if (rsout)
		*rsout = rs;
	else
		http_resp_free(&rs);
	return j;
}

/* ---- publish and poll --------------------------------------------- */

static json_t *msg_obj(const char *from, const char *to, int64_t epoch,
		       const char *kind, const char *payload)
{
	char psig[SIG_HEX_LEN + 1];

	psig_compute(G.keys.e2e, from, to, (uint64_t)epoch, kind, payload,
		     strlen(payload), psig);
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "from", from, "to", to, "epoch",
			 (json_int_t)epoch, "kind", kind, "payload", payload, "psig", psig);
}

static char *dump(const json_t *o)
{
	return json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* Publishes body as peer; rs holds the answer. */
static int publish_raw(const char *as, const char *body, size_t len,
		       struct http_resp *rs, char *why, size_t wl)
{
	struct req r = { .method = "POST", .path = "/v1/publish", .as = as,
			 .body = body, .body_len = len };

	return send_req(&r, rs, why, wl);
}

static int retry_after_s(const struct http_resp *rs)
{
	char v[32];
	long s;

	if (!http_resp_header(rs, "Retry-After", v, sizeof(v)))
		return 1;
	s = strtol(v, NULL, 10);
	return s < 1 ? 1 : s > 5 ? 5 : (int)s;
}

/* A good publish: 202 {"id","epoch"}. Pauses and retries when the server
 * says rate_limited (not what is being tested here). id_out may be NULL. */
static bool publish_ok(const char *from, const char *to, int64_t epoch, const char *kind,
		       const char *payload, char *id_out, size_t idcap, char *why, size_t wl)
{
	json_t *o = msg_obj(from, to, epoch, kind, payload);
	char *body = dump(o);
	struct http_resp rs;
	json_t *j = NULL, *id, *ep;
	bool ok = false;
	int tries;

	json_decref(o);
	for (tries = 0; tries < 6; tries++) {
		if (publish_raw(from, body, strlen(body), &rs, why, wl))
			goto out;
		if (rs.status == 429 && strstr(rs.body, "rate_limited")) {
			sleep_ms(1000L * retry_after_s(&rs));
			http_resp_free(&rs);
			continue;
		}
		break;
	}
	if (rs.status != 202) {
		seterr(why, wl, "publish %s->%s epoch %" PRId64 ": want 202, got %s", from, to,
		       epoch, ans(&rs));
		goto out_rs;
	}
	if (!is_json_ctype(&rs)) {
		seterr(why, wl, "202 Content-Type is not application/json");
		goto out_rs;
	}
	j = parse_body(&rs, why, wl);
	if (!j)
		goto out_rs;
	id = json_object_get(j, "id");
	ep = json_object_get(j, "epoch");
	if (!json_is_string(id) || !*json_string_value(id)) {
		seterr(why, wl, "202 without an \"id\" string: %s", ans(&rs));
	} else if (!json_is_integer(ep) || json_integer_value(ep) != epoch) {
		seterr(why, wl, "202 \"epoch\" is not %" PRId64 ": %s", epoch, ans(&rs));
	} else {
		if (id_out)
			snprintf(id_out, idcap, "%s", json_string_value(id));
		ok = true;
	}
	json_decref(j);
out_rs:
	http_resp_free(&rs);
out:
	free(body);
	return ok;
}

struct polled {
	json_t *root;
	json_t *msgs;       /* borrowed from root */
	size_t n;
	char cursor[1024];  /* "" when absent or null */
	int64_t elapsed_ms;
};

static void polled_free(struct polled *p)
{
	json_decref(p->root);
	memset(p, 0, sizeof(*p));
}

static bool msg_shape(json_t *m, size_t i, char *why, size_t wl)
{
	static const char *const strs[] = { "id", "from", "to", "kind", "payload", "psig" };
	json_t *v;
	size_t k;

	if (!json_is_object(m)) {
		seterr(why, wl, "messages[%zu] is not an object", i);
		return false;
	}
	for (k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
		if (!json_is_string(json_object_get(m, strs[k]))) {
			seterr(why, wl, "messages[%zu] has no \"%s\" string", i, strs[k]);
			return false;
		}
	}
	v = json_object_get(m, "epoch");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > EPOCH_MAX) {
		seterr(why, wl, "messages[%zu] has no integer \"epoch\" in 1..2^53-1", i);
		return false;
	}
	v = json_object_get(m, "age_ms");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		seterr(why, wl, "messages[%zu] has no non-negative integer \"age_ms\"", i);
		return false;
	}
	return true;
}

static const char *mstr(json_t *m, const char *k)
{
	const char *s = json_string_value(json_object_get(m, k));

	return s ? s : "";
}

static int64_t mint(json_t *m, const char *k)
{
	return json_integer_value(json_object_get(m, k));
}

/* GET /v1/poll as peer; wait < 0 leaves the parameter out. Checks the
 * answer's shape. */
static bool poll_ok(const char *peer, const char *cursor, int wait, struct polled *out,
		    char *why, size_t wl)
{
	char path[2048], enc[1536];
	struct req r = { .method = "GET", .as = peer, .path = path };
	json_t *c;
	size_t i;
	int64_t t0;

	memset(out, 0, sizeof(*out));
	if (cursor && *cursor) {
		urlenc(cursor, enc, sizeof(enc));
		if (wait >= 0)
			snprintf(path, sizeof(path), "/v1/poll?cursor=%s&wait=%d", enc, wait);
		else
			snprintf(path, sizeof(path), "/v1/poll?cursor=%s", enc);
	} else if (wait >= 0) {
		snprintf(path, sizeof(path), "/v1/poll?wait=%d", wait);
	} else {
		snprintf(path, sizeof(path), "/v1/poll");
	}
	r.timeout_ms = (wait < 0 ? 25 : wait) * 1000 + DEFAULT_TIMEOUT_MS;
	t0 = http_now_ms();
	out->root = want_json(&r, 200, NULL, why, wl);
	out->elapsed_ms = http_now_ms() - t0;
	if (!out->root)
		return false;
	out->msgs = json_object_get(out->root, "messages");
	if (!json_is_array(out->msgs)) {
		seterr(why, wl, "poll answer has no \"messages\" array");
		goto bad;
	}
	out->n = json_array_size(out->msgs);
	for (i = 0; i < out->n; i++)
		if (!msg_shape(json_array_get(out->msgs, i), i, why, wl))
			goto bad;
	c = json_object_get(out->root, "cursor");
	if (json_is_string(c)) {
		snprintf(out->cursor, sizeof(out->cursor), "%s", json_string_value(c));
	} else if (!(out->n == 0 && (!c || json_is_null(c)))) {
		seterr(why, wl, "poll answer with %zu messages has no \"cursor\" string", out->n);
		goto bad;
	}
	if (out->n && !out->cursor[0]) {
		seterr(why, wl, "poll answer with %zu messages has an empty cursor", out->n);
		goto bad;
	}
	return true;
bad:
	polled_free(out);
	return false;
}

/* Polls (and acknowledges) until the mailbox is empty; returns all the
 * messages seen, in order, as a new array (NULL on error). */
static json_t *drain(const char *peer, char *why, size_t wl)
{
	json_t *all = json_array();
	char cursor[1024] = "";
	struct polled p;
	int rounds;

	for (rounds = 0; rounds < 64; rounds++) {
		size_t i;

		if (!poll_ok(peer, cursor, 0, &p, why, wl)) {
			json_decref(all);
			return NULL;
		}
		if (p.n == 0) {
			polled_free(&p);
			return all;
		}
		for (i = 0; i < p.n; i++)
			json_array_append(all, json_array_get(p.msgs, i));
		snprintf(cursor, sizeof(cursor), "%s", p.cursor);
		polled_free(&p);
	}
	seterr(why, wl, "mailbox of %s never drained", peer);
	json_decref(all);
	return NULL;
}

/* Messages from sender in a message array, counted. */
static size_t count_from(json_t *arr, const char *from)
{
	size_t i, n = 0;

	for (i = 0; i < json_array_size(arr); i++)
		if (strcmp(mstr(json_array_get(arr, i), "from"), from) == 0)
			n++;
	return n;
}

/* Publishes n messages at once: every request is sent before any answer
 * is read, each on its own connection. status[i] is the answer's status
 * (-1: connection failure); current[i] the "current" of a 409 (or -1);
 * code[i] the error code of a non-2xx answer. */
#define PAR_MAX 64
struct par_result {
	int status;
	int64_t current;
	char code[32];
	char id[128]; /* of a 202 */
};

static void par_publish(size_t n, const char *const *from, const char *to,
			const int64_t *epoch, struct par_result *res)
{
	struct http_conn c[PAR_MAX];
	char *bodies[PAR_MAX];
	size_t i;

	for (i = 0; i < n && i < PAR_MAX; i++) {
		char pl[32], why[WHY], err[512];
		struct prepared pp;
		json_t *o;

		snprintf(pl, sizeof(pl), "par-%zu", i);
		o = msg_obj(from[i], to, epoch[i], "offer", pl);
		bodies[i] = dump(o);
		json_decref(o);
		res[i].status = -1;
		res[i].current = -1;
		res[i].code[0] = 0;
		res[i].id[0] = 0;
		c[i].fd = -1;
		{
			struct req r = { .method = "POST", .path = "/v1/publish", .as = from[i],
					 .body = bodies[i], .body_len = strlen(bodies[i]) };

			if (prepare(&r, &pp, why, sizeof(why)) ||
			    http_send(&pp.rq, &c[i], err, sizeof(err)))
				c[i].fd = -1;
		}
	}
	for (i = 0; i < n && i < PAR_MAX; i++) {
		struct http_resp rs;
		char err[512];
		json_t *j;

		if (c[i].fd >= 0 && http_recv(&c[i], &rs, err, sizeof(err)) == 0) {
			res[i].status = rs.status;
			j = json_loadb(rs.body, rs.body_len, 0, NULL);
			if (json_is_integer(json_object_get(j, "current")))
				res[i].current = json_integer_value(json_object_get(j, "current"));
			if (json_is_string(json_object_get(j, "error")))
				snprintf(res[i].code, sizeof(res[i].code), "%s",
					 json_string_value(json_object_get(j, "error")));
			if (json_is_string(json_object_get(j, "id")))
				snprintf(res[i].id, sizeof(res[i].id), "%s",
					 json_string_value(json_object_get(j, "id")));
			json_decref(j);
			http_resp_free(&rs);
		}
		free(bodies[i]);
	}
}

/* ---- groups ------------------------------------------------------- */

static bool wait_ready(void)
{
	int i;
	bool all = true;

	for (i = 0; i < G.nurl; i++) {
		int64_t deadline = http_now_ms() + 15000;
		struct http_resp rs;
		char why[WHY] = "";
		bool ok = false;
		struct req r = { .method = "GET", .path = "/v1/ready", .base = &G.url[i],
				 .timeout_ms = 3000 };

		while (http_now_ms() < deadline) {
			if (send_req(&r, &rs, why, sizeof(why)) == 0) {
				ok = rs.status == 200;
				if (!ok)
					seterr(why, sizeof(why), "still %s", ans(&rs));
				http_resp_free(&rs);
				if (ok)
					break;
			}
			sleep_ms(200);
		}
		reportf(i ? "ready.200_url2" : "ready.200", ok,
			"not ready within 15 s: %s", why);
		all = all && ok;
	}
	return all;
}

static void g_health(void)
{
	struct req r = { .method = "GET", .path = "/v1/health" };
	struct http_resp rs;
	char why[WHY];
	json_t *j;

	j = want_json(&r, 200, &rs, why, sizeof(why));
	report("health.200_without_auth", j != NULL, why);
	if (j) {
		json_t *s = json_object_get(j, "status");

		reportf("health.body_status_ok", json_is_string(s) &&
			strcmp(json_string_value(s), "ok") == 0, "body: %s", ans(&rs));
		http_resp_free(&rs);
		json_decref(j);
	}
	r.path = "/v1/ready";
	if (send_req(&r, &rs, why, sizeof(why)) == 0) {
		reportf("ready.200_without_auth", rs.status == 200, "got %s", ans(&rs));
		http_resp_free(&rs);
	} else {
		report("ready.200_without_auth", false, why);
	}
	/* HTTP/1.1 clients may ask for the connection to close after the
	 * answer (RFC 9112 section 9.6); the answer must still come. */
	r.path = "/v1/health";
	r.conn_close = true;
	if (send_req(&r, &rs, why, sizeof(why)) == 0) {
		reportf("http.connection_close_answered", rs.status == 200, "got %s", ans(&rs));
		http_resp_free(&rs);
	} else {
		report("http.connection_close_answered", false, why);
	}
	{
		char P[PEER_ID_MAX + 1];
		struct req a = { .method = "GET", .path = "/v1/poll?wait=0", .conn_close = true };

		fresh_peer(P);
		a.as = P;
		if (send_req(&a, &rs, why, sizeof(why)) == 0) {
			reportf("http.connection_close_answered_authenticated", rs.status == 200,
				"got %s", ans(&rs));
			http_resp_free(&rs);
		} else {
			report("http.connection_close_answered_authenticated", false, why);
		}
	}
}

struct sample {
	char key[256];
	double val;
};

/* Parses Prometheus text: counter families and every sample. */
static size_t parse_metrics(const char *text, struct sample *s, size_t cap,
			    char fams[][128], size_t *nfam, size_t famcap, size_t *ntype)
{
	const char *line = text;
	size_t n = 0;

	*nfam = 0;
	*ntype = 0;
	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char buf[512];

		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		memcpy(buf, line, len);
		buf[len] = 0;
		if (strncmp(buf, "# TYPE ", 7) == 0) {
			char name[128], type[32];

			(*ntype)++;
			if (sscanf(buf + 7, "%127s %31s", name, type) == 2 &&
			    strcmp(type, "counter") == 0 && *nfam < famcap)
				snprintf(fams[(*nfam)++], 128, "%s", name);
		} else if (buf[0] && buf[0] != '#' && n < cap) {
			char *sp = strchr(buf, '}');

			sp = strchr(sp ? sp : buf, ' ');
			if (sp) {
				*sp = 0;
				snprintf(s[n].key, sizeof(s[n].key), "%.255s", buf);
				s[n].val = strtod(sp + 1, NULL);
				n++;
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	return n;
}

static bool sample_in_family(const char *key, char fams[][128], size_t nfam)
{
	size_t i, kl = strcspn(key, "{");

	for (i = 0; i < nfam; i++) {
		size_t fl = strlen(fams[i]);

		if (kl == fl && strncmp(key, fams[i], fl) == 0)
			return true;
		if (kl == fl + 6 && strncmp(key, fams[i], fl) == 0 &&
		    strncmp(key + fl, "_total", 6) == 0)
			return true;
	}
	return false;
}

static void g_metrics(void)
{
	static struct sample before[4096], after[4096];
	static char fams[512][128];
	const struct http_url *base = &G.url[0];
	struct req r = { .method = "GET", .path = "/metrics", .base = base };
	struct http_resp rs;
	char why[WHY], ct[128] = "(none)", a[PEER_ID_MAX + 1], b[PEER_ID_MAX + 1];
	size_t nb, na, nfam, ntype, i, k;
	bool changed = false;

	if (send_req(&r, &rs, why, sizeof(why))) {
		report("metrics.200_without_auth", false, why);
		return;
	}
	reportf("metrics.200_without_auth", rs.status == 200, "got %s", ans(&rs));
	http_resp_header(&rs, "Content-Type", ct, sizeof(ct));
	reportf("metrics.content_type_text", strncasecmp(ct, "text/plain", 10) == 0,
		"Content-Type is %s", ct);
	nb = parse_metrics(rs.body, before, 4096, fams, &nfam, 512, &ntype);
	reportf("metrics.type_lines", ntype > 0 && nb > 0,
		"%zu \"# TYPE\" lines and %zu samples", ntype, nb);
	reportf("metrics.has_counter", nfam > 0, "no \"# TYPE x counter\" family");
	http_resp_free(&rs);

	/* Traffic on the same node: publishes, polls, a refused request. */
	fresh_peer(a);
	fresh_peer(b);
	for (i = 0; i < 3; i++) {
		struct req pr = { .method = "GET", .path = "/v1/poll?wait=0", .as = b,
				  .base = base };
		struct req bad = { .method = "GET", .path = "/v1/poll?wait=0", .base = base };
		json_t *o = msg_obj(a, b, 1, "offer", "metrics");
		char *body = dump(o);
		struct req pub = { .method = "POST", .path = "/v1/publish", .as = a,
				   .body = body, .body_len = strlen(body), .base = base };

		if (send_req(&pub, &rs, why, sizeof(why)) == 0)
			http_resp_free(&rs);
		if (send_req(&pr, &rs, why, sizeof(why)) == 0)
			http_resp_free(&rs);
		if (send_req(&bad, &rs, why, sizeof(why)) == 0)
			http_resp_free(&rs);
		free(body);
		json_decref(o);
	}
	if (send_req(&r, &rs, why, sizeof(why))) {
		report("metrics.counter_changes", false, why);
		return;
	}
	na = parse_metrics(rs.body, after, 4096, fams, &nfam, 512, &ntype);
	for (i = 0; i < na && !changed; i++) {
		if (!sample_in_family(after[i].key, fams, nfam))
			continue;
		for (k = 0; k < nb; k++)
			if (strcmp(before[k].key, after[i].key) == 0)
				break;
		if ((k == nb && after[i].val > 0) || (k < nb && after[i].val > before[k].val))
			changed = true;
	}
	reportf("metrics.counter_changes", changed,
		"no counter sample grew after 3 publishes, 3 polls and 3 refused requests "
		"(%zu counter families, %zu samples)", nfam, na);
	http_resp_free(&rs);
}

/* Builds an Authorization value from parts (sig computed over what the
 * request really is, unless told otherwise). */
static void auth_parts(char *out, size_t cap, const char *fmt_peer, const char *ts,
		       const char *nonce, const char *sig)
{
	snprintf(out, cap, "MESH-HMAC-SHA256 peer=%s,ts=%s,nonce=%s,sig=%s", fmt_peer, ts,
		 nonce, sig);
}

static void g_auth(void)
{
	char P[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1];
	char nonce[NONCE_HEX_LEN + 1], sig[SIG_HEX_LEN + 1], ts[32], hv[1024];
	char path[HTTPC_PATH_MAX + 64], why[WHY], tmp[256], longpeer[80];
	const char *pq = "/v1/poll?wait=0";
	struct polled p;
	int64_t now;
	size_t i;

	fresh_peer(P);
	fresh_peer(B);
	fresh_peer(C);

	{
		struct req r = { .method = "GET", .path = pq, .as = P };
		json_t *j = want_json(&r, 200, NULL, why, sizeof(why));

		report("auth.valid_200", j != NULL, why);
		json_decref(j);
	}
	{
		struct req r = { .method = "GET", .path = pq };

		expect_err("auth.missing_header", &r, 401, "bad_auth");
		r.path = "/v1/turn";
		expect_err("auth.missing_header_turn", &r, 401, "bad_auth");
		r.path = "/v1/coordinators";
		expect_err("auth.missing_header_coordinators", &r, 401, "bad_auth");
	}
	{
		json_t *o = msg_obj(P, B, 1, "offer", "unauthenticated");
		char *body = dump(o);
		struct req r = { .method = "POST", .path = "/v1/publish", .body = body,
				 .body_len = strlen(body) };

		expect_err("auth.missing_header_publish", &r, 401, "bad_auth");
		free(body);
		json_decref(o);
		if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
			reportf("auth.missing_header_publish_not_queued", p.n == 0,
				"%zu messages queued", p.n);
			polled_free(&p);
		} else {
			report("auth.missing_header_publish_not_queued", false, why);
		}
	}

	/* Malformed headers. Each one carries a signature that is right for
	 * its own fields where it can, so only the form is wrong. */
	{
		struct bad {
			const char *name;
			int kind;
		};
		enum { K_SCHEME, K_BEARER, K_SCHEME_ONLY, K_EMPTY, K_NO_PEER, K_NO_TS,
		       K_NO_NONCE, K_NO_SIG, K_DUP_PEER, K_DUP_NONCE, K_DUP_SIG, K_EXTRA,
		       K_NONCE_HEX, K_NONCE_31, K_NONCE_33, K_SIG_HEX, K_SIG_UPPER, K_SIG_63,
		       K_SIG_65, K_TS_NAN, K_TS_EMPTY, K_PEER_BAD, K_PEER_LONG, K_PEER_EMPTY,
		       K_NOSPACE, K_SIG_EMPTY };
		static const struct bad bads[] = {
			{ "auth.malformed_wrong_scheme", K_SCHEME },
			{ "auth.malformed_bearer", K_BEARER },
			{ "auth.malformed_scheme_only", K_SCHEME_ONLY },
			{ "auth.malformed_empty_value", K_EMPTY },
			{ "auth.malformed_missing_peer", K_NO_PEER },
			{ "auth.malformed_missing_ts", K_NO_TS },
			{ "auth.malformed_missing_nonce", K_NO_NONCE },
			{ "auth.malformed_missing_sig", K_NO_SIG },
			{ "auth.malformed_duplicate_peer", K_DUP_PEER },
			{ "auth.malformed_duplicate_nonce", K_DUP_NONCE },
			{ "auth.malformed_duplicate_sig", K_DUP_SIG },
			{ "auth.malformed_extra_field", K_EXTRA },
			{ "auth.malformed_nonce_bad_hex", K_NONCE_HEX },
			{ "auth.malformed_nonce_31_hex", K_NONCE_31 },
			{ "auth.malformed_nonce_33_hex", K_NONCE_33 },
			{ "auth.malformed_sig_bad_hex", K_SIG_HEX },
			{ "auth.malformed_sig_upper_case", K_SIG_UPPER },
			{ "auth.malformed_sig_63_hex", K_SIG_63 },
			{ "auth.malformed_sig_65_hex", K_SIG_65 },
			{ "auth.malformed_sig_empty", K_SIG_EMPTY },
			{ "auth.malformed_ts_not_a_number", K_TS_NAN },
			{ "auth.malformed_ts_empty", K_TS_EMPTY },
			{ "auth.malformed_peer_bad_chars", K_PEER_BAD },
			{ "auth.malformed_peer_65_chars", K_PEER_LONG },
			{ "auth.malformed_peer_empty", K_PEER_EMPTY },
			{ "auth.malformed_no_space_after_scheme", K_NOSPACE },
		};

		memset(longpeer, 'p', 65);
		longpeer[65] = 0;
		for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			const struct http_url *base = next_base();
			struct req r = { .method = "GET", .path = pq, .raw_auth = hv, .base = base };
			char full[HTTPC_PATH_MAX + 64], n2[NONCE_HEX_LEN + 8];

			snprintf(full, sizeof(full), "%s%s", base->prefix, pq);
			now = (int64_t)time(NULL);
			snprintf(ts, sizeof(ts), "%" PRId64, now);
			http_random_nonce(nonce);
			auth_compute_sig(G.keys.signal, "GET", full, now, nonce, "", 0, sig);
			switch (bads[i].kind) {
			case K_SCHEME:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA1 peer=%s,ts=%s,nonce=%s,sig=%s",
					 P, ts, nonce, sig);
				break;
			case K_BEARER:
				snprintf(hv, sizeof(hv), "Bearer %s", sig);
				break;
			case K_SCHEME_ONLY:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256");
				break;
			case K_EMPTY:
				hv[0] = 0;
				break;
			case K_NO_PEER:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256 ts=%s,nonce=%s,sig=%s", ts,
					 nonce, sig);
				break;
			case K_NO_TS:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256 peer=%s,nonce=%s,sig=%s", P,
					 nonce, sig);
				break;
			case K_NO_NONCE:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256 peer=%s,ts=%s,sig=%s", P, ts,
					 sig);
				break;
			case K_NO_SIG:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256 peer=%s,ts=%s,nonce=%s", P, ts,
					 nonce);
				break;
			case K_DUP_PEER:
				snprintf(hv, sizeof(hv),
					 "MESH-HMAC-SHA256 peer=%s,peer=%s,ts=%s,nonce=%s,sig=%s", P, P, ts,
					 nonce, sig);
				break;
			case K_DUP_NONCE:
				snprintf(hv, sizeof(hv),
					 "MESH-HMAC-SHA256 peer=%s,ts=%s,nonce=%s,nonce=%s,sig=%s", P, ts,
					 nonce, nonce, sig);
				break;
			case K_DUP_SIG:
				snprintf(hv, sizeof(hv),
					 "MESH-HMAC-SHA256 peer=%s,ts=%s,nonce=%s,sig=%s,sig=%s", P, ts,
					 nonce, sig, sig);
				break;
			case K_EXTRA:
				snprintf(hv, sizeof(hv),
					 "MESH-HMAC-SHA256 peer=%s,ts=%s,nonce=%s,sig=%s,extra=1", P, ts,
					 nonce, sig);
				break;
			case K_NONCE_HEX:
				nonce[5] = 'g';
				auth_compute_sig(G.keys.signal, "GET", full, now, nonce, "", 0, sig);
				auth_parts(hv, sizeof(hv), P, ts, nonce, sig);
				break;
			case K_NONCE_31:
				nonce[31] = 0;
				auth_compute_sig(G.keys.signal, "GET", full, now, nonce, "", 0, sig);
				auth_parts(hv, sizeof(hv), P, ts, nonce, sig);
				break;
			case K_NONCE_33:
				snprintf(n2, sizeof(n2), "%sa", nonce);
				auth_compute_sig(G.keys.signal, "GET", full, now, n2, "", 0, sig);
				auth_parts(hv, sizeof(hv), P, ts, n2, sig);
				break;
			case K_SIG_HEX:
				sig[10] = 'x';
				auth_parts(hv, sizeof(hv), P, ts, nonce, sig);
				break;
			case K_SIG_UPPER: {
				size_t k;

				for (k = 0; sig[k]; k++)
					if (sig[k] >= 'a' && sig[k] <= 'f')
						sig[k] = (char)(sig[k] - 'a' + 'A');
				auth_parts(hv, sizeof(hv), P, ts, nonce, sig);
				break;
			}
			case K_SIG_63:
				sig[63] = 0;
				auth_parts(hv, sizeof(hv), P, ts, nonce, sig);
				break;
			case K_SIG_65:
				snprintf(tmp, sizeof(tmp), "%s0", sig);
				auth_parts(hv, sizeof(hv), P, ts, nonce, tmp);
				break;
			case K_SIG_EMPTY:
				auth_parts(hv, sizeof(hv), P, ts, nonce, "");
				break;
			case K_TS_NAN:
				snprintf(tmp, sizeof(tmp), "%sx", ts);
				auth_parts(hv, sizeof(hv), P, tmp, nonce, sig);
				break;
			case K_TS_EMPTY:
				auth_parts(hv, sizeof(hv), P, "", nonce, sig);
				break;
			case K_PEER_BAD:
				auth_parts(hv, sizeof(hv), "bad/peer", ts, nonce, sig);
				break;
			case K_PEER_LONG:
				auth_parts(hv, sizeof(hv), longpeer, ts, nonce, sig);
				break;
			case K_PEER_EMPTY:
				auth_parts(hv, sizeof(hv), "", ts, nonce, sig);
				break;
			case K_NOSPACE:
				snprintf(hv, sizeof(hv), "MESH-HMAC-SHA256peer=%s,ts=%s,nonce=%s,sig=%s",
					 P, ts, nonce, sig);
				break;
			}
			expect_err(bads[i].name, &r, 401, "bad_auth");
		}
	}

	/* A well-formed header signed with a key from another secret. */
	{
		struct req r = { .method = "GET", .path = pq, .as = P, .key = G.wrong.signal };

		expect_err("auth.wrong_key", &r, 401, "bad_auth");
	}

	/* Clock skew: more than 120 s either way is refused. */
	{
		struct req r = { .method = "GET", .path = pq, .as = P };
		json_t *j;

		align_second();
		r.ts_offset = -121;
		expect_err("auth.ts_121s_old", &r, 401, "bad_auth");
		align_second();
		r.ts_offset = 121;
		expect_err("auth.ts_121s_ahead", &r, 401, "bad_auth");
		r.ts_offset = -100;
		j = want_json(&r, 200, NULL, why, sizeof(why));
		report("auth.ts_100s_old_accepted", j != NULL, why);
		json_decref(j);
		r.ts_offset = 100;
		j = want_json(&r, 200, NULL, why, sizeof(why));
		report("auth.ts_100s_ahead_accepted", j != NULL, why);
		json_decref(j);
		r.ts_offset = -3600;
		expect_err("auth.ts_one_hour_old", &r, 401, "bad_auth");
		/* "more than 120 s" refuses; exactly 120 s is still accepted. */
		align_second();
		r.ts_offset = -120;
		j = want_json(&r, 200, NULL, why, sizeof(why));
		report("auth.ts_120s_old_accepted", j != NULL, why);
		json_decref(j);
		align_second();
		r.ts_offset = 120;
		j = want_json(&r, 200, NULL, why, sizeof(why));
		report("auth.ts_120s_ahead_accepted", j != NULL, why);
		json_decref(j);
	}

	/* Replay: the identical request twice (same ts, nonce, signature). */
	{
		const struct http_url *base = next_base();

		snprintf(path, sizeof(path), "%s%s", base->prefix, pq);
		now = (int64_t)time(NULL);
		http_auth_value(tmp, sizeof(tmp), G.keys.signal, P, now, NULL, "GET", path, "", 0);
		snprintf(hv, sizeof(hv), "%s", tmp);
		{
			struct req r = { .method = "GET", .path = pq, .raw_auth = hv, .base = base };
			json_t *j = want_json(&r, 200, NULL, why, sizeof(why));

			report("auth.replay_first_accepted", j != NULL, why);
			json_decref(j);
			r.base = NULL; /* the replay may go to the other coordinator */
			expect_err("auth.replay_second_refused", &r, 401, "bad_auth");
		}
	}
	/* The same nonce again in a different, freshly signed request. */
	{
		struct req r = { .method = "GET", .path = pq, .as = P, .nonce = nonce };
		json_t *j;

		http_random_nonce(nonce);
		j = want_json(&r, 200, NULL, why, sizeof(why));
		report("auth.nonce_first_use", j != NULL, why);
		json_decref(j);
		r.path = "/v1/turn";
		expect_err("auth.nonce_reused_other_request", &r, 401, "bad_auth");
	}
	/* A replayed publish is refused and queues nothing twice. */
	{
		json_t *o = msg_obj(P, C, 5, "offer", "replayed");
		char *body = dump(o);
		struct req r = { .method = "POST", .path = "/v1/publish", .as = P, .body = body,
				 .body_len = strlen(body), .nonce = nonce };
		json_t *j;

		http_random_nonce(nonce);
		j = want_json(&r, 202, NULL, why, sizeof(why));
		report("auth.replay_publish_first_202", j != NULL, why);
		json_decref(j);
		expect_err("auth.replay_publish_second_401", &r, 401, "bad_auth");
		free(body);
		json_decref(o);
		if (poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
			reportf("auth.replay_publish_queued_once", p.n == 1, "%zu messages queued",
				p.n);
			polled_free(&p);
		} else {
			report("auth.replay_publish_queued_once", false, why);
		}
	}

	/* Signatures over something other than what is sent. */
	{
		struct req r = { .method = "GET", .path = "/v1/coordinators", .as = P,
				 .sign_path = "/v1/turn" };

		expect_err("auth.sig_over_other_path", &r, 401, "bad_auth");
		r.path = "/v1/poll?wait=0";
		r.sign_path = "/v1/poll?wait=1";
		expect_err("auth.sig_over_other_query", &r, 401, "bad_auth");
		r.sign_path = "/v1/poll";
		expect_err("auth.sig_without_query", &r, 401, "bad_auth");
		r.sign_path = NULL;
		r.sign_method = "POST";
		expect_err("auth.sig_over_other_method", &r, 401, "bad_auth");
	}
	{
		json_t *o1 = msg_obj(P, B, 7, "offer", "signed body");
		json_t *o2 = msg_obj(P, B, 7, "offer", "sent body");
		char *b1 = dump(o1), *b2 = dump(o2);
		struct req r = { .method = "POST", .path = "/v1/publish", .as = P, .body = b2,
				 .body_len = strlen(b2), .sign_body = b1,
				 .sign_body_len = strlen(b1), .sign_body_set = true };

		expect_err("auth.sig_over_other_body", &r, 401, "bad_auth");
		r.sign_body = NULL;
		r.sign_body_len = 0;
		expect_err("auth.sig_over_empty_body", &r, 401, "bad_auth");
		free(b1);
		free(b2);
		json_decref(o1);
		json_decref(o2);
		if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
			reportf("auth.bad_sig_publish_not_queued", p.n == 0, "%zu messages queued",
				p.n);
			polled_free(&p);
		} else {
			report("auth.bad_sig_publish_not_queued", false, why);
		}
	}
}

/* Publish one JSON text; expect status/code. */
static void pub_expect(const char *name, const char *as, const char *body, size_t len,
		       const char *ctype, int status, const char *code)
{
	struct req r = { .method = "POST", .path = "/v1/publish", .as = as, .body = body,
			 .body_len = len, .ctype = ctype };

	expect_err(name, &r, status, code);
}

/* Publish a message object with one field replaced (v == NULL: removed);
 * takes ownership of v. */
static void pub_field(const char *name, const char *A, const char *B, int64_t epoch,
		      const char *field, json_t *v, int status, const char *code)
{
	json_t *o = msg_obj(A, B, epoch, "offer", "field test");
	char *body;

	if (v)
		json_object_set_new(o, field, v);
	else
		json_object_del(o, field);
	body = dump(o);
	pub_expect(name, A, body, strlen(body), NULL, status, code);
	free(body);
	json_decref(o);
}

/* 202 for a JSON text; returns true when accepted. */
static bool pub_accept(const char *name, const char *as, const char *body, size_t len,
		       const char *ctype)
{
	struct req r = { .method = "POST", .path = "/v1/publish", .as = as, .body = body,
			 .body_len = len, .ctype = ctype };
	char why[WHY];
	json_t *j = want_json(&r, 202, NULL, why, sizeof(why));

	report(name, j != NULL, why);
	json_decref(j);
	return j != NULL;
}

static void g_publish(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1], D[PEER_ID_MAX + 1];
	char why[WHY], id1[256] = "", id2[256] = "", big[PAYLOAD_MAX + 8];
	const int64_t E = 1000;
	size_t accepted_b = 0, i;
	struct polled p;
	char *body;
	json_t *o;
	bool ok;

	fresh_peer(A);
	fresh_peer(B);
	fresh_peer(C);
	fresh_peer(D);

	ok = publish_ok(A, B, E, "offer", "hello", id1, sizeof(id1), why, sizeof(why));
	report("publish.accepted_202_id_epoch", ok, why);
	accepted_b += ok;
	ok = publish_ok(A, B, E, "answer", "hello again", id2, sizeof(id2), why, sizeof(why));
	accepted_b += ok;
	reportf("publish.ids_distinct", ok && strcmp(id1, id2) != 0, "ids \"%s\" and \"%s\"", id1,
		id2);

	/* from must be the authenticated peer. */
	o = msg_obj(C, B, E, "offer", "impersonation");
	body = dump(o);
	pub_expect("publish.from_not_authenticated_peer_403", A, body, strlen(body), NULL, 403,
		   "forbidden");
	free(body);
	json_decref(o);

	/* Bad JSON. */
	{
		static const struct {
			const char *name, *text;
		} bj[] = {
			{ "publish.bad_json_truncated", "{\"from\":" },
			{ "publish.bad_json_not_json", "hello" },
			{ "publish.bad_json_array", "[]" },
			{ "publish.bad_json_null", "null" },
			{ "publish.bad_json_string", "\"offer\"" },
			{ "publish.bad_json_empty_object", "{}" },
			{ "publish.bad_json_empty_body", "" },
		};

		for (i = 0; i < sizeof(bj) / sizeof(bj[0]); i++)
			pub_expect(bj[i].name, A, bj[i].text, strlen(bj[i].text), NULL, 400,
				   "bad_request");
		o = msg_obj(A, B, E, "offer", "trailing");
		body = dump(o);
		{
			char *t = malloc(strlen(body) + 8);

			sprintf(t, "%s x", body);
			pub_expect("publish.bad_json_trailing_garbage", A, t, strlen(t), NULL, 400,
				   "bad_request");
			sprintf(t, "%s{}", body);
			pub_expect("publish.bad_json_two_objects", A, t, strlen(t), NULL, 400,
				   "bad_request");
			free(t);
		}
		free(body);
		json_decref(o);
	}

	/* Missing fields. */
	{
		static const char *const f[] = { "from", "to", "epoch", "kind", "payload", "psig" };
		char name[96];

		for (i = 0; i < 6; i++) {
			snprintf(name, sizeof(name), "publish.missing_%s", f[i]);
			pub_field(name, A, B, E, f[i], NULL, 400, "bad_request");
		}
	}

	/* Mistyped fields and out-of-range values. */
	pub_field("publish.epoch_string", A, B, E, "epoch", json_string("1000"), 400, "bad_request");
	pub_field("publish.epoch_zero", A, B, E, "epoch", json_integer(0), 400, "bad_request");
	pub_field("publish.epoch_negative", A, B, E, "epoch", json_integer(-1), 400, "bad_request");
	pub_field("publish.epoch_2pow53", A, B, E, "epoch", json_integer(EPOCH_MAX + 1), 400,
		  "bad_request");
	pub_field("publish.epoch_float", A, B, E, "epoch", json_real(1000.5), 400, "bad_request");
	pub_field("publish.epoch_bool", A, B, E, "epoch", json_true(), 400, "bad_request");
	pub_field("publish.epoch_null", A, B, E, "epoch", json_null(), 400, "bad_request");
	pub_field("publish.from_number", A, B, E, "from", json_integer(1), 400, "bad_request");
	pub_field("publish.to_number", A, B, E, "to", json_integer(1), 400, "bad_request");
	pub_field("publish.to_null", A, B, E, "to", json_null(), 400, "bad_request");
	pub_field("publish.kind_number", A, B, E, "kind", json_integer(1), 400, "bad_request");
	pub_field("publish.payload_number", A, B, E, "payload", json_integer(1), 400,
		  "bad_request");
	pub_field("publish.payload_object", A, B, E, "payload", json_object(), 400, "bad_request");
	pub_field("publish.payload_null", A, B, E, "payload", json_null(), 400, "bad_request");
	pub_field("publish.psig_number", A, B, E, "psig", json_integer(1), 400, "bad_request");
	pub_field("publish.psig_array", A, B, E, "psig", json_array(), 400, "bad_request");
	{
		/* A large integer literal beyond int64 as raw text. */
		char t[512];

		snprintf(t, sizeof(t),
			 "{\"from\":\"%s\",\"to\":\"%s\",\"epoch\":99999999999999999999999,"
			 "\"kind\":\"offer\",\"payload\":\"x\",\"psig\":\"%064d\"}",
			 A, B, 0);
		pub_expect("publish.epoch_huge_literal", A, t, strlen(t), NULL, 400, "bad_request");
		snprintf(t, sizeof(t),
			 "{\"from\":\"%s\",\"to\":\"%s\",\"epoch\":1e3,"
			 "\"kind\":\"offer\",\"payload\":\"x\",\"psig\":\"%064d\"}",
			 A, B, 0);
		pub_expect("publish.epoch_exponent_literal", A, t, strlen(t), NULL, 400,
			   "bad_request");
	}

	/* kind ^[a-z]{1,16}$ */
	{
		static const struct {
			const char *name, *kind;
		} bk[] = {
			{ "publish.kind_empty", "" },
			{ "publish.kind_upper_case", "Offer" },
			{ "publish.kind_digit", "offer2" },
			{ "publish.kind_dash", "ice-candidate" },
			{ "publish.kind_17_chars", "abcdefghijklmnopq" },
			{ "publish.kind_space", "offer " },
			{ "publish.kind_non_ascii", "\xc3\xa9t\xc3\xa9" },
		};

		for (i = 0; i < sizeof(bk) / sizeof(bk[0]); i++)
			pub_field(bk[i].name, A, B, E, "kind", json_string(bk[i].kind), 400,
				  "bad_request");
		ok = publish_ok(A, B, E, "abcdefghijklmnop", "16-letter kind", NULL, 0, why,
				sizeof(why));
		report("publish.kind_16_chars_accepted", ok, why);
		accepted_b += ok;
	}

	/* payload: at most 16384 bytes, counted as UTF-8 bytes. */
	memset(big, 'x', PAYLOAD_MAX);
	big[PAYLOAD_MAX] = 0;
	ok = publish_ok(A, B, E, "offer", big, NULL, 0, why, sizeof(why));
	report("publish.payload_16384_accepted", ok, why);
	accepted_b += ok;
	big[PAYLOAD_MAX] = 'x';
	big[PAYLOAD_MAX + 1] = 0;
	pub_field("publish.payload_16385_refused", A, B, E, "payload", json_string(big), 400,
		  "bad_request");
	ok = publish_ok(A, B, E, "offer", "", NULL, 0, why, sizeof(why));
	report("publish.payload_empty_accepted", ok, why);
	accepted_b += ok;
	{
		char *u = malloc(2 * 8193 + 1);

		for (i = 0; i < 8192; i++)
			memcpy(u + 2 * i, "\xc3\xa9", 2);
		u[2 * 8192] = 0;
		ok = publish_ok(A, B, E, "offer", u, NULL, 0, why, sizeof(why));
		report("publish.payload_8192_two_byte_chars_accepted", ok, why);
		accepted_b += ok;
		memcpy(u + 2 * 8192, "\xc3\xa9", 3);
		pub_field("publish.payload_8193_two_byte_chars_refused", A, B, E, "payload",
			  json_string(u), 400, "bad_request");
		free(u);
	}
	{
		/* Invalid UTF-8 inside a string. */
		char t[512];

		snprintf(t, sizeof(t),
			 "{\"from\":\"%s\",\"to\":\"%s\",\"epoch\":%" PRId64 ",\"kind\":\"offer\","
			 "\"payload\":\"bad \xff\xfe utf8\",\"psig\":\"%064d\"}",
			 A, B, E, 0);
		pub_expect("publish.invalid_utf8", A, t, strlen(t), NULL, 400, "bad_request");
	}

	/* psig: 64 lower-case hex, otherwise opaque. */
	{
		static const struct {
			const char *name;
			int len;
			char fill;
		} bp[] = {
			{ "publish.psig_63_hex", 63, 'a' },
			{ "publish.psig_65_hex", 65, 'a' },
			{ "publish.psig_upper_case", 64, 'A' },
			{ "publish.psig_not_hex", 64, 'g' },
			{ "publish.psig_empty", 0, 'a' },
		};
		char ps[80];

		for (i = 0; i < sizeof(bp) / sizeof(bp[0]); i++) {
			memset(ps, bp[i].fill, (size_t)bp[i].len);
			ps[bp[i].len] = 0;
			pub_field(bp[i].name, A, B, E, "psig", json_string(ps), 400, "bad_request");
		}
		memset(ps, '7', 64);
		ps[64] = 0;
		o = msg_obj(A, B, E, "offer", "opaque psig");
		json_object_set_new(o, "psig", json_string(ps));
		body = dump(o);
		ok = pub_accept("publish.psig_opaque_accepted", A, body, strlen(body), NULL);
		accepted_b += ok;
		free(body);
		json_decref(o);
	}

	/* Ids ^[A-Za-z0-9._-]{1,64}$ */
	{
		static const struct {
			const char *name, *id;
		} bi[] = {
			{ "publish.to_empty", "" },
			{ "publish.to_space", "a b" },
			{ "publish.to_slash", "a/b" },
			{ "publish.to_colon", "a:b" },
			{ "publish.to_non_ascii", "w\xc3\xa9" },
			{ "publish.to_65_chars",
			  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm" },
		};
		char to64[65], name[80];

		for (i = 0; i < sizeof(bi) / sizeof(bi[0]); i++)
			pub_field(bi[i].name, A, B, E, "to", json_string(bi[i].id), 400,
				  "bad_request");
		pub_field("publish.from_empty", A, B, E, "from", json_string(""), 400, "bad_request");
		pub_field("publish.from_space", A, B, E, "from", json_string("a b"), 400,
			  "bad_request");
		memset(to64, 'Z', 64);
		to64[64] = 0;
		memcpy(to64, G.run, strlen(G.run));
		ok = publish_ok(A, to64, 1, "offer", "64-char id", NULL, 0, why, sizeof(why));
		report("publish.to_64_chars_accepted", ok, why);
		snprintf(name, sizeof(name), "%s.x_y-Z9", D);
		ok = publish_ok(A, name, 1, "offer", "punctuated id", NULL, 0, why, sizeof(why));
		report("publish.to_dot_underscore_dash_accepted", ok, why);
	}

	/* Extra top-level fields. */
	{
		o = msg_obj(A, B, E, "offer", "extra");
		json_object_set_new(o, "extra", json_integer(1));
		body = dump(o);
		pub_expect("publish.extra_field", A, body, strlen(body), NULL, 400, "bad_request");
		free(body);
		json_object_del(o, "extra");
		json_object_set_new(o, "id", json_string("forged"));
		body = dump(o);
		pub_expect("publish.extra_field_id", A, body, strlen(body), NULL, 400, "bad_request");
		free(body);
		json_decref(o);
	}

	/* Content-Type. */
	o = msg_obj(A, B, E, "offer", "content type");
	body = dump(o);
	pub_expect("publish.content_type_missing", A, body, strlen(body), "", 400, "bad_request");
	pub_expect("publish.content_type_text_plain", A, body, strlen(body), "text/plain", 400,
		   "bad_request");
	pub_expect("publish.content_type_form", A, body, strlen(body),
		   "application/x-www-form-urlencoded", 400, "bad_request");
	ok = pub_accept("publish.content_type_with_charset_accepted", A, body, strlen(body),
			"application/json; charset=utf-8");
	accepted_b += ok;
	free(body);
	json_decref(o);

	/* Body size: 65536 bytes is fine, one more is 413. Padding with JSON
	 * whitespace keeps the document valid. */
	{
		char *pad = malloc(1024 * 1024 + 1);
		size_t base_len;

		o = msg_obj(A, B, E, "offer", "padded");
		body = dump(o);
		base_len = strlen(body);
		memset(pad, ' ', 1024 * 1024);
		memcpy(pad, body, base_len - 1);
		pad[BODY_MAX - 1] = '}';
		ok = pub_accept("publish.body_65536_bytes_accepted", A, pad, BODY_MAX, NULL);
		accepted_b += ok;
		pad[BODY_MAX - 1] = ' ';
		pad[BODY_MAX] = '}';
		pub_expect("publish.body_65537_bytes_too_large", A, pad, BODY_MAX + 1, NULL, 413,
			   "too_large");
		/* The same limit holds for a chunked body (no Content-Length). */
		{
			struct req r = { .method = "POST", .path = "/v1/publish", .as = A,
					 .body = pad, .body_len = BODY_MAX + 1, .chunked = true };
			char w2[WHY];
			json_t *j;

			json_t *oc = msg_obj(A, B, E, "offer", "chunked");
			char *bc = dump(oc);

			expect_err("publish.chunked_body_65537_bytes_too_large", &r, 413,
				   "too_large");
			r.body = bc;
			r.body_len = strlen(bc);
			j = want_json(&r, 202, NULL, w2, sizeof(w2));
			report("publish.chunked_body_accepted", j != NULL, w2);
			accepted_b += j != NULL;
			json_decref(j);
			free(bc);
			json_decref(oc);
		}
		pad[BODY_MAX] = ' ';
		pad[1024 * 1024 - 1] = '}';
		pub_expect("publish.body_1mib_too_large", A, pad, 1024 * 1024, NULL, 413, "too_large");
		{
			struct req r = { .method = "POST", .path = "/v1/publish", .as = A,
					 .body = pad, .body_len = 1024 * 1024, .chunked = true };

			expect_err("publish.chunked_body_1mib_too_large", &r, 413, "too_large");
		}
		free(body);
		json_decref(o);
		free(pad);
	}

	/* Error paths queued nothing: B holds exactly the accepted ones. */
	{
		json_t *all = drain(B, why, sizeof(why));

		if (all) {
			size_t n = json_array_size(all), fa = count_from(all, A);

			reportf("publish.refused_requests_queued_nothing", n == accepted_b && fa == n,
				"B holds %zu messages (%zu from A), %zu were accepted", n, fa,
				accepted_b);
			json_decref(all);
		} else {
			report("publish.refused_requests_queued_nothing", false, why);
		}
	}
	/* Rule 3 queues every accepted publish: the same message sent twice
	 * (a client repeating an ICE candidate) is two messages. */
	{
		char X[PEER_ID_MAX + 1], Y[PEER_ID_MAX + 1], i1[256] = "", i2[256] = "";
		json_t *all;
		bool a1, a2;

		fresh_peer(X);
		fresh_peer(Y);
		a1 = publish_ok(X, Y, 3, "candidate", "same candidate", i1, sizeof(i1), why,
				sizeof(why));
		a2 = a1 && publish_ok(X, Y, 3, "candidate", "same candidate", i2, sizeof(i2), why,
				      sizeof(why));
		all = (a1 && a2) ? drain(Y, why, sizeof(why)) : NULL;
		if (all)
			reportf("publish.identical_message_twice_queued_twice",
				strcmp(i1, i2) != 0 && json_array_size(all) == 2,
				"ids \"%s\" and \"%s\", %zu queued (want 2 distinct ids, 2 queued)", i1,
				i2, json_array_size(all));
		else
			report("publish.identical_message_twice_queued_twice", false, why);
		json_decref(all);
		/* ... and once more after the recipient acknowledged them: a 202
		 * must mean queued, never "already seen". */
		if (publish_ok(X, Y, 3, "candidate", "same candidate", i2, sizeof(i2), why,
			       sizeof(why)) &&
		    (all = drain(Y, why, sizeof(why)))) {
			reportf("publish.identical_message_after_ack_queued_again",
				json_array_size(all) == 1,
				"202 with id \"%s\" but %zu queued (want 1)", i2, json_array_size(all));
			json_decref(all);
		} else {
			report("publish.identical_message_after_ack_queued_again", false, why);
		}
	}

	/* Publishes at once (from several senders, through both coordinators
	 * when --url2 is given) get distinct ids and all stay queued. */
	{
		enum { NPAR = 48, NS = 4 };
		char S[NS][PEER_ID_MAX + 1], R[PEER_ID_MAX + 1];
		const char *from[NPAR];
		int64_t ep[NPAR];
		struct par_result res[NPAR];
		size_t k, m, acc = 0, dup = 0;
		json_t *all;

		fresh_peer(R);
		for (k = 0; k < NS; k++)
			fresh_peer(S[k]);
		for (k = 0; k < NPAR; k++) {
			from[k] = S[k % NS];
			ep[k] = 1;
		}
		par_publish(NPAR, from, R, ep, res);
		for (k = 0; k < NPAR; k++) {
			if (res[k].status != 202)
				continue;
			acc++;
			for (m = 0; m < k; m++)
				if (res[m].status == 202 && strcmp(res[m].id, res[k].id) == 0)
					dup++;
		}
		all = drain(R, why, sizeof(why));
		reportf("publish.concurrent_ids_distinct_and_all_queued",
			acc == NPAR && dup == 0 && all && json_array_size(all) == NPAR,
			"%zu of %d accepted, %zu duplicate ids, %zu queued", acc, NPAR, dup,
			all ? json_array_size(all) : 0);
		json_decref(all);
	}

	/* The largest epoch is accepted. */
	ok = publish_ok(A, C, EPOCH_MAX, "offer", "max epoch", NULL, 0, why, sizeof(why));
	report("publish.epoch_2pow53_minus_1_accepted", ok, why);
	if (poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
		reportf("publish.epoch_2pow53_minus_1_round_trips",
			p.n == 1 && mint(json_array_get(p.msgs, 0), "epoch") == EPOCH_MAX,
			"%zu messages, epoch %" PRId64, p.n,
			p.n ? mint(json_array_get(p.msgs, 0), "epoch") : 0);
		polled_free(&p);
	} else {
		report("publish.epoch_2pow53_minus_1_round_trips", false, why);
	}
}

static void g_epoch(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1], D[PEER_ID_MAX + 1];
	char why[WHY];
	struct polled p;
	bool ok;

	fresh_peer(A);
	fresh_peer(B);
	fresh_peer(C);
	fresh_peer(D);

	ok = publish_ok(A, B, 10, "offer", "a10-1", NULL, 0, why, sizeof(why)) &&
	     publish_ok(A, B, 10, "offer", "a10-2", NULL, 0, why, sizeof(why));
	report("epoch.equal_epoch_accepted", ok, why);
	ok = publish_ok(C, B, 5, "offer", "c5", NULL, 0, why, sizeof(why));
	report("epoch.other_sender_lower_epoch_accepted", ok, why);
	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		reportf("epoch.equal_epoch_appends",
			p.n == 3 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), "a10-1") == 0 &&
			strcmp(mstr(json_array_get(p.msgs, 1), "payload"), "a10-2") == 0,
			"want a10-1, a10-2, c5 queued; got %zu messages", p.n);
		polled_free(&p);
	} else {
		report("epoch.equal_epoch_appends", false, why);
	}

	/* Lower epoch: 409 with current, nothing queued. */
	{
		json_t *o = msg_obj(A, B, 9, "offer", "a9");
		char *body = dump(o);
		struct http_resp rs;

		if (publish_raw(A, body, strlen(body), &rs, why, sizeof(why)) == 0) {
			bool e = is_error(&rs, 409, "stale_epoch", why, sizeof(why));

			report("epoch.lower_epoch_409_stale_epoch", e, why);
			if (e) {
				json_t *j = parse_body(&rs, why, sizeof(why));
				json_t *cur = json_object_get(j, "current");

				reportf("epoch.lower_epoch_reports_current",
					json_is_integer(cur) && json_integer_value(cur) == 10,
					"want \"current\":10: %s", ans(&rs));
				json_decref(j);
			} else {
				report("epoch.lower_epoch_reports_current", false, "no 409");
			}
			http_resp_free(&rs);
		} else {
			report("epoch.lower_epoch_409_stale_epoch", false, why);
		}
		free(body);
		json_decref(o);
	}
	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		size_t i;
		bool none9 = true;

		for (i = 0; i < p.n; i++)
			if (mint(json_array_get(p.msgs, i), "epoch") == 9)
				none9 = false;
		reportf("epoch.lower_epoch_queues_nothing", p.n == 3 && none9,
			"%zu messages queued (want 3), epoch-9 message %s", p.n,
			none9 ? "absent" : "present");
		polled_free(&p);
	} else {
		report("epoch.lower_epoch_queues_nothing", false, why);
	}

	/* Epochs are per ordered pair. */
	ok = publish_ok(A, D, 3, "offer", "a3-to-d", NULL, 0, why, sizeof(why));
	report("epoch.per_pair_other_recipient", ok, why);
	ok = publish_ok(B, A, 1, "offer", "b1-to-a", NULL, 0, why, sizeof(why));
	report("epoch.per_pair_reverse_direction", ok, why);

	/* Higher epoch purges A's older messages for B only. */
	ok = publish_ok(A, B, 11, "offer", "a11", NULL, 0, why, sizeof(why));
	report("epoch.higher_epoch_accepted", ok, why);
	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		size_t i, fa = 0, fc = 0;
		bool only11 = true;

		for (i = 0; i < p.n; i++) {
			json_t *m = json_array_get(p.msgs, i);

			if (strcmp(mstr(m, "from"), A) == 0) {
				fa++;
				if (mint(m, "epoch") != 11)
					only11 = false;
			} else if (strcmp(mstr(m, "from"), C) == 0) {
				fc++;
			}
		}
		reportf("epoch.higher_epoch_purges_older", fa == 1 && only11,
			"%zu messages from A for B (want only the epoch-11 one)", fa);
		reportf("epoch.higher_epoch_keeps_other_senders", fc == 1,
			"%zu messages from C for B (want 1)", fc);
		reportf("epoch.order_after_purge",
			p.n == 2 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), "c5") == 0 &&
			strcmp(mstr(json_array_get(p.msgs, 1), "payload"), "a11") == 0,
			"want [c5, a11], got %zu messages", p.n);
		polled_free(&p);
	} else {
		report("epoch.higher_epoch_purges_older", false, why);
	}
	if (poll_ok(D, NULL, 0, &p, why, sizeof(why))) {
		reportf("epoch.higher_epoch_keeps_other_recipients",
			p.n == 1 && mint(json_array_get(p.msgs, 0), "epoch") == 3,
			"D holds %zu messages (want A's epoch-3 one)", p.n);
		polled_free(&p);
	} else {
		report("epoch.higher_epoch_keeps_other_recipients", false, why);
	}

	/* The pair's epoch is state, not derived from what is queued. */
	{
		json_t *all = drain(B, why, sizeof(why));
		json_t *o = msg_obj(A, B, 10, "offer", "a10-late");
		char *body = dump(o);
		struct http_resp rs;

		json_decref(all);
		if (publish_raw(A, body, strlen(body), &rs, why, sizeof(why)) == 0) {
			bool e = is_error(&rs, 409, "stale_epoch", why, sizeof(why));

			if (e) {
				json_t *j = parse_body(&rs, why, sizeof(why));
				json_t *cur = json_object_get(j, "current");

				e = json_is_integer(cur) && json_integer_value(cur) == 11;
				if (!e)
					seterr(why, sizeof(why), "want \"current\":11: %s", ans(&rs));
				json_decref(j);
			}
			report("epoch.remembered_after_mailbox_emptied", e, why);
			http_resp_free(&rs);
		} else {
			report("epoch.remembered_after_mailbox_emptied", false, why);
		}
		free(body);
		json_decref(o);
	}

	/* Rules 1-3 are atomic per pair: 24 epochs published at once, in
	 * shuffled order. Whatever the interleaving, the highest epoch is
	 * accepted, every 409 names a current above its epoch, and only
	 * messages of the highest epoch stay queued. */
	{
		enum { NPAR = 24 };
		const char *from[NPAR];
		int64_t ep[NPAR];
		struct par_result res[NPAR];
		char X[PEER_ID_MAX + 1], Y[PEER_ID_MAX + 1];
		size_t i, acc = 0, stale = 0, other = 0;
		bool top_ok = false, cur_ok = true;
		json_t *all;

		fresh_peer(X);
		fresh_peer(Y);
		for (i = 0; i < NPAR; i++) {
			from[i] = X;
			ep[i] = 100 + (int64_t)((i * 7) % NPAR); /* a permutation of 100..123 */
		}
		par_publish(NPAR, from, Y, ep, res);
		for (i = 0; i < NPAR; i++) {
			if (res[i].status == 202) {
				acc++;
				if (ep[i] == 100 + NPAR - 1)
					top_ok = true;
			} else if (res[i].status == 409 && strcmp(res[i].code, "stale_epoch") == 0) {
				stale++;
				if (res[i].current <= ep[i])
					cur_ok = false;
			} else {
				other++;
			}
		}
		reportf("epoch.concurrent_publishes_answers", top_ok && cur_ok && other == 0,
			"%zu accepted, %zu stale, %zu other; highest epoch %s; 409 currents %s", acc,
			stale, other, top_ok ? "accepted" : "NOT accepted",
			cur_ok ? "consistent" : "not above the refused epoch");
		all = drain(Y, why, sizeof(why));
		if (all) {
			size_t n = json_array_size(all);
			bool only_top = n >= 1;

			for (i = 0; i < n; i++)
				if (mint(json_array_get(all, i), "epoch") != 100 + NPAR - 1)
					only_top = false;
			reportf("epoch.concurrent_publishes_leave_only_highest", only_top,
				"%zu messages queued; want only epoch %d ones", n, 100 + NPAR - 1);
			json_decref(all);
		} else {
			report("epoch.concurrent_publishes_leave_only_highest", false, why);
		}
	}
}


/* Payload fidelity, odd cursors, the largest answer. */
static void g_poll_more(const char *A, const char *C)
{
	static const char special[] =
		"q\"b\\s/n\nr\rt\tc\x01\x1f \xc3\xa9 \xf0\x9f\x98\x80 </script> "
		"\xe2\x80\xa8 {\"json\":[1,2]} %00 &amp;";
	char F[PEER_ID_MAX + 1], H[PEER_ID_MAX + 1], S2[PEER_ID_MAX + 1], why[WHY];
	char cc[1024] = "";
	struct polled p;
	size_t i;
	bool ok;

	fresh_peer(F);
	fresh_peer(H);
	fresh_peer(S2);
	ok = publish_ok(A, F, 1, "offer", special, NULL, 0, why, sizeof(why));
	if (ok && poll_ok(F, NULL, 0, &p, why, sizeof(why))) {
		reportf("poll.payload_round_trips_exactly",
			p.n == 1 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), special) == 0,
			"%zu messages; payload %s", p.n,
			p.n ? "differs from what was published" : "missing");
		polled_free(&p);
	} else {
		report("poll.payload_round_trips_exactly", false, why);
	}

	/* A cursor that names nothing in this mailbox must not delete. */
	ok = publish_ok(A, H, 1, "offer", "h1", NULL, 0, why, sizeof(why)) &&
	     publish_ok(A, H, 1, "offer", "h2", NULL, 0, why, sizeof(why));
	{
		struct req r = { .method = "GET", .path = "/v1/poll?cursor=zzz&wait=0", .as = H };
		struct http_resp rs;

		if (send_req(&r, &rs, why, sizeof(why)) == 0) {
			bool okr = rs.status == 200 || is_error(&rs, 400, "bad_request", why,
								    sizeof(why));
			if (!okr)
				seterr(why, sizeof(why), "want 200 or 400 bad_request, got %s",
				       ans(&rs));
			report("poll.garbage_cursor_answer", okr, why);
			http_resp_free(&rs);
		} else {
			report("poll.garbage_cursor_answer", false, why);
		}
	}
	if (ok && poll_ok(H, NULL, 0, &p, why, sizeof(why))) {
		reportf("poll.garbage_cursor_deletes_nothing", p.n == 2, "%zu of 2 messages left",
			p.n);
		polled_free(&p);
	} else {
		report("poll.garbage_cursor_deletes_nothing", false, why);
	}
	/* Another mailbox's cursor acknowledges nothing over there. */
	if (publish_ok(A, C, 1, "offer", "c-own", NULL, 0, why, sizeof(why)) &&
	    poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
		size_t before = p.n;

		snprintf(cc, sizeof(cc), "%s", p.cursor);
		polled_free(&p);
		if (poll_ok(H, cc, 0, &p, why, sizeof(why)))
			polled_free(&p);
		if (poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
			reportf("poll.foreign_cursor_leaves_other_mailbox", p.n == before,
				"peer C held %zu, after H polled with C's cursor %zu", before, p.n);
			polled_free(&p);
		} else {
			report("poll.foreign_cursor_leaves_other_mailbox", false, why);
		}
	} else {
		report("poll.foreign_cursor_leaves_other_mailbox", false, why);
	}

	/* 256 messages of 16384 bytes: every one arrives intact and in order,
	 * in answers of at most 256 (a server may send fewer per answer to
	 * bound its memory; the cursor then walks through the rest). */
	{
		static char big[PAYLOAD_MAX + 1];
		char G2[PEER_ID_MAX + 1], cur[1024] = "";
		bool intact = true, bounded = true;
		size_t got = 0, answers = 0;

		fresh_peer(G2);
		ok = true;
		for (i = 0; i < POLL_MAX && ok; i++) {
			size_t k;

			for (k = 0; k < PAYLOAD_MAX; k++)
				big[k] = (char)('a' + (k * 7 + i) % 26);
			snprintf(big, 8, "%06zu", i);
			big[6] = '.';
			big[PAYLOAD_MAX] = 0;
			ok = publish_ok(S2, G2, 1, "offer", big, NULL, 0, why, sizeof(why));
		}
		while (ok && got < POLL_MAX && answers < POLL_MAX &&
		       (ok = poll_ok(G2, cur[0] ? cur : NULL, 0, &p, why, sizeof(why)))) {
			answers++;
			if (p.n == 0 || p.n > POLL_MAX)
				bounded = false;
			for (i = 0; i < p.n && intact; i++, got++) {
				const char *pl = mstr(json_array_get(p.msgs, i), "payload");
				size_t k;

				if (strlen(pl) != PAYLOAD_MAX || atoi(pl) != (int)got)
					intact = false;
				for (k = 7; intact && k < PAYLOAD_MAX; k++)
					if (pl[k] != (char)('a' + (k * 7 + got) % 26))
						intact = false;
			}
			snprintf(cur, sizeof(cur), "%s", p.cursor);
			polled_free(&p);
			if (!bounded || !intact)
				break;
		}
		if (ok)
			reportf("poll.256_max_payloads_intact", got == POLL_MAX && intact && bounded,
				"%zu of %d messages in %zu answers, %s", got, POLL_MAX, answers,
				intact ? "intact" : "payload corrupted or out of order");
		else
			report("poll.256_max_payloads_intact", false, why);
	}
}

static void g_poll(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1], E2[PEER_ID_MAX + 1];
	char why[WHY], ids[4][256], c1[1024], c4[1024];
	struct polled p, q;
	size_t i;
	bool ok;

	fresh_peer(A);
	fresh_peer(B);
	fresh_peer(C);
	fresh_peer(E2);

	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		reportf("poll.empty_mailbox", p.n == 0, "%zu messages", p.n);
		polled_free(&p);
	} else {
		report("poll.empty_mailbox", false, why);
	}

	ok = true;
	for (i = 0; i < 3 && ok; i++) {
		char pl[32];

		snprintf(pl, sizeof(pl), "m%zu", i + 1);
		ok = publish_ok(A, B, 42, i == 1 ? "candidate" : "offer", pl, ids[i],
				sizeof(ids[i]), why, sizeof(why));
	}
	report("poll.setup_three_publishes", ok, why);
	if (!poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		report("poll.fields", false, why);
		return;
	}
	{
		json_t *m = json_array_get(p.msgs, 0);
		char psig[SIG_HEX_LEN + 1];

		psig_compute(G.keys.e2e, A, B, 42, "offer", "m1", 2, psig);
		reportf("poll.fields",
			p.n >= 1 && strcmp(mstr(m, "id"), ids[0]) == 0 && strcmp(mstr(m, "from"), A) == 0 &&
			strcmp(mstr(m, "to"), B) == 0 && mint(m, "epoch") == 42 &&
			strcmp(mstr(m, "kind"), "offer") == 0 && strcmp(mstr(m, "payload"), "m1") == 0 &&
			strcmp(mstr(m, "psig"), psig) == 0,
			"first message does not echo the published fields and id \"%s\"", ids[0]);
	}
	reportf("poll.oldest_first",
		p.n == 3 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), "m1") == 0 &&
		strcmp(mstr(json_array_get(p.msgs, 1), "payload"), "m2") == 0 &&
		strcmp(mstr(json_array_get(p.msgs, 2), "payload"), "m3") == 0,
		"want m1, m2, m3; got %zu messages", p.n);
	snprintf(c1, sizeof(c1), "%s", p.cursor);
	if (poll_ok(B, NULL, 0, &q, why, sizeof(why))) {
		bool same = q.n == p.n;

		for (i = 0; same && i < q.n; i++)
			same = strcmp(mstr(json_array_get(p.msgs, i), "id"),
				      mstr(json_array_get(q.msgs, i), "id")) == 0;
		report("poll.returned_messages_stay_until_acked", same,
		       "a second poll without cursor returned different messages");
		polled_free(&q);
	} else {
		report("poll.returned_messages_stay_until_acked", false, why);
	}
	polled_free(&p);

	ok = publish_ok(A, B, 42, "offer", "m4", ids[3], sizeof(ids[3]), why, sizeof(why));
	if (!ok)
		report("poll.setup_fourth_publish", false, why);
	if (poll_ok(B, c1, 0, &p, why, sizeof(why))) {
		reportf("poll.cursor_acks_up_to_and_including",
			p.n == 1 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), "m4") == 0,
			"after ack of m1..m3 want [m4], got %zu messages", p.n);
		snprintf(c4, sizeof(c4), "%s", p.cursor);
		polled_free(&p);
	} else {
		report("poll.cursor_acks_up_to_and_including", false, why);
		c4[0] = 0;
	}
	/* The answer to that poll is "lost": the same cursor again. */
	if (poll_ok(B, c1, 0, &p, why, sizeof(why))) {
		reportf("poll.lost_answer_loses_nothing",
			p.n == 1 && strcmp(mstr(json_array_get(p.msgs, 0), "payload"), "m4") == 0,
			"repeating the cursor: want [m4], got %zu messages", p.n);
		polled_free(&p);
	} else {
		report("poll.lost_answer_loses_nothing", false, why);
	}
	if (poll_ok(B, c4, 0, &p, why, sizeof(why))) {
		reportf("poll.cursor_acks_all", p.n == 0, "%zu messages left", p.n);
		polled_free(&p);
	} else {
		report("poll.cursor_acks_all", false, why);
	}

	/* Own mailbox only. */
	publish_ok(A, B, 42, "offer", "for-b-only", NULL, 0, why, sizeof(why));
	if (poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
		reportf("poll.own_mailbox_only", p.n == 0, "peer C sees %zu messages", p.n);
		polled_free(&p);
	} else {
		report("poll.own_mailbox_only", false, why);
	}
	json_decref(drain(B, why, sizeof(why)));

	/* age_ms grows while queued. */
	publish_ok(A, C, 1, "offer", "aging", NULL, 0, why, sizeof(why));
	sleep_ms(500);
	if (poll_ok(C, NULL, 0, &p, why, sizeof(why))) {
		int64_t age = p.n ? mint(json_array_get(p.msgs, 0), "age_ms") : -1;

		reportf("poll.age_ms", p.n == 1 && age >= 400 && age < 10000,
			"%zu messages, age_ms %" PRId64 " after 500 ms", p.n, age);
		polled_free(&p);
	} else {
		report("poll.age_ms", false, why);
	}

	/* wait=30 and the default wait answer at once when something is queued. */
	{
		int64_t t0 = http_now_ms();

		if (poll_ok(C, NULL, 30, &p, why, sizeof(why))) {
			reportf("poll.wait_30_accepted", p.n == 1 && http_now_ms() - t0 < 1000,
				"%zu messages after %" PRId64 " ms", p.n, http_now_ms() - t0);
			polled_free(&p);
		} else {
			report("poll.wait_30_accepted", false, why);
		}
		t0 = http_now_ms();
		if (poll_ok(C, NULL, -1, &p, why, sizeof(why))) {
			reportf("poll.default_wait_returns_queued_at_once",
				p.n == 1 && http_now_ms() - t0 < 1000, "%zu messages after %" PRId64 " ms",
				p.n, http_now_ms() - t0);
			polled_free(&p);
		} else {
			report("poll.default_wait_returns_queued_at_once", false, why);
		}
	}

	/* wait=0 on an empty mailbox answers at once; wait=1 after ~1 s. */
	if (poll_ok(E2, NULL, 0, &p, why, sizeof(why))) {
		reportf("poll.wait_0_immediate", p.n == 0 && p.elapsed_ms < 250,
			"%zu messages after %" PRId64 " ms", p.n, p.elapsed_ms);
		polled_free(&p);
	} else {
		report("poll.wait_0_immediate", false, why);
	}
	if (poll_ok(E2, NULL, 1, &p, why, sizeof(why))) {
		reportf("poll.wait_1_empty_after_1s",
			p.n == 0 && p.elapsed_ms >= 900 && p.elapsed_ms < 2000,
			"%zu messages after %" PRId64 " ms (want none after ~1000 ms)", p.n,
			p.elapsed_ms);
		polled_free(&p);
	} else {
		report("poll.wait_1_empty_after_1s", false, why);
	}

	/* wait out of range. */
	{
		static const struct {
			const char *name, *q;
		} bw[] = {
			{ "poll.wait_31_refused", "/v1/poll?wait=31" },
			{ "poll.wait_negative_refused", "/v1/poll?wait=-1" },
			{ "poll.wait_not_a_number_refused", "/v1/poll?wait=x" },
			{ "poll.wait_empty_refused", "/v1/poll?wait=" },
			{ "poll.wait_fraction_refused", "/v1/poll?wait=1.5" },
			{ "poll.wait_huge_refused", "/v1/poll?wait=99999999999999999999" },
		};

		for (i = 0; i < sizeof(bw) / sizeof(bw[0]); i++) {
			struct req r = { .method = "GET", .path = bw[i].q, .as = E2,
					 .timeout_ms = 5000 };

			expect_err(bw[i].name, &r, 400, "bad_request");
		}
	}

	/* At most 256 per answer, the rest on the next. */
	{
		char pl[32], cur[1024] = "";
		bool order = true;

		ok = true;
		for (i = 0; i < 300 && ok; i++) {
			snprintf(pl, sizeof(pl), "%zu", i);
			ok = publish_ok(A, E2, 7, "offer", pl, NULL, 0, why, sizeof(why));
		}
		report("poll.setup_300_publishes", ok, why);
		if (poll_ok(E2, NULL, 0, &p, why, sizeof(why))) {
			for (i = 0; i < p.n && order; i++)
				order = atoi(mstr(json_array_get(p.msgs, i), "payload")) == (int)i;
			reportf("poll.at_most_256_per_answer", p.n == POLL_MAX && order,
				"first answer has %zu messages (%s)", p.n,
				order ? "in order" : "out of order");
			snprintf(cur, sizeof(cur), "%s", p.cursor);
			polled_free(&p);
			if (poll_ok(E2, cur, 0, &p, why, sizeof(why))) {
				order = true;
				for (i = 0; i < p.n && order; i++)
					order = atoi(mstr(json_array_get(p.msgs, i), "payload")) ==
						(int)(i + POLL_MAX);
				reportf("poll.rest_on_next_answer", p.n == 300 - POLL_MAX && order,
					"second answer has %zu messages (%s)", p.n,
					order ? "in order" : "out of order");
				polled_free(&p);
			} else {
				report("poll.rest_on_next_answer", false, why);
			}
		} else {
			report("poll.at_most_256_per_answer", false, why);
		}
	}
	g_poll_more(A, C);
}

/* Sends a poll and leaves it parked on the server. */
static int park(const char *peer, const char *path, struct http_conn *c, char *why, size_t wl)
{
	struct req r = { .method = "GET", .path = path, .as = peer, .timeout_ms = 15000 };
	struct prepared pp;
	char err[512];

	c->fd = -1;
	if (prepare(&r, &pp, why, wl))
		return -1;
	if (http_send(&pp.rq, c, err, sizeof(err))) {
		seterr(why, wl, "cannot park the poll: %s", err);
		return -1;
	}
	return 0;
}

/* True when the parked poll has already been answered (or closed). */
static bool answered_early(struct http_conn *c, char *why, size_t wl)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	struct http_resp rs;
	char err[512];

	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (http_recv(c, &rs, err, sizeof(err)) == 0) {
		seterr(why, wl, "poll answered before any publish: %s", ans(&rs));
		http_resp_free(&rs);
	} else {
		seterr(why, wl, "poll connection ended early: %s", err);
	}
	return true;
}

/* Reads a parked poll's answer; true when it is 200 and its last message
 * has payload pl. *dt: ms since t0. */
static bool woken_with(struct http_conn *c, const char *pl, int64_t t0, int64_t *dt,
		       char *cursor, size_t ccap, char *why, size_t wl)
{
	struct http_resp rs;
	char err[512];
	json_t *j, *msgs, *last, *cur;
	bool ok;

	if (http_recv(c, &rs, err, sizeof(err))) {
		seterr(why, wl, "parked poll: %s", err);
		return false;
	}
	*dt = http_now_ms() - t0;
	j = json_loadb(rs.body, rs.body_len, 0, NULL);
	msgs = json_object_get(j, "messages");
	last = json_array_get(msgs, json_array_size(msgs) - 1);
	cur = json_object_get(j, "cursor");
	ok = rs.status == 200 && json_array_size(msgs) >= 1 && strcmp(mstr(last, "payload"), pl) == 0;
	if (cursor)
		snprintf(cursor, ccap, "%s", json_is_string(cur) ? json_string_value(cur) : "");
	seterr(why, wl, "answered %" PRId64 " ms after the publish with %s", *dt, ans(&rs));
	json_decref(j);
	http_resp_free(&rs);
	return ok;
}

static void g_longpoll(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1];
	char why[WHY], name[64], cursor[1024];
	struct polled p;
	int round;

	fresh_peer(A);
	fresh_peer(B);
	fresh_peer(C);

	for (round = 1; round <= 5; round++) {
		struct http_conn c;
		char pl[32];
		int64_t t0, dt = -1;
		bool ok;

		snprintf(name, sizeof(name), "longpoll.answered_within_100ms_%d", round);
		snprintf(pl, sizeof(pl), "wake-%d", round);
		if (park(B, "/v1/poll?wait=5", &c, why, sizeof(why))) {
			report(name, false, why);
			continue;
		}
		sleep_ms(300);
		if (answered_early(&c, why, sizeof(why))) {
			report(name, false, why);
			continue;
		}
		t0 = http_now_ms();
		if (!publish_ok(A, B, 1, "offer", pl, NULL, 0, why, sizeof(why))) {
			http_abort(&c);
			report(name, false, why);
			continue;
		}
		ok = woken_with(&c, pl, t0, &dt, cursor, sizeof(cursor), why, sizeof(why));
		printf("# longpoll round %d: answered %" PRId64 " ms after the publish\n", round, dt);
		report(name, ok && dt >= 0 && dt < LONGPOLL_BOUND_MS, why);
		/* Acknowledge so the next round parks on an empty mailbox. */
		if (cursor[0] && poll_ok(B, cursor, 0, &p, why, sizeof(why)))
			polled_free(&p);
	}

	/* Two polls parked for one peer: the publish answers both. */
	{
		struct http_conn c1, c2;
		int64_t t0, d1 = -1, d2 = -1;
		char w1[WHY], w2[WHY];
		bool ok1, ok2;

		if (park(B, "/v1/poll?wait=5", &c1, why, sizeof(why)) ||
		    park(B, "/v1/poll?wait=5", &c2, why, sizeof(why))) {
			http_abort(&c1);
			report("longpoll.two_parked_polls_both_answered", false, why);
		} else {
			sleep_ms(300);
			ok1 = !answered_early(&c1, w1, sizeof(w1));
			ok2 = !answered_early(&c2, w2, sizeof(w2));
			t0 = http_now_ms();
			if (publish_ok(A, B, 1, "offer", "both", NULL, 0, why, sizeof(why))) {
				if (ok1)
					ok1 = woken_with(&c1, "both", t0, &d1, cursor, sizeof(cursor), w1,
							 sizeof(w1)) && d1 < LONGPOLL_BOUND_MS;
				if (ok2)
					ok2 = woken_with(&c2, "both", t0, &d2, NULL, 0, w2, sizeof(w2)) &&
					      d2 < LONGPOLL_BOUND_MS;
				reportf("longpoll.two_parked_polls_both_answered", ok1 && ok2,
					"first: %s; second: %s", w1, w2);
			} else {
				http_abort(&c1);
				http_abort(&c2);
				report("longpoll.two_parked_polls_both_answered", false, why);
			}
			json_decref(drain(B, why, sizeof(why)));
		}
	}

	/* A cursor that empties the mailbox still waits. */
	if (publish_ok(A, B, 1, "offer", "ack-me", NULL, 0, why, sizeof(why)) &&
	    poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		snprintf(cursor, sizeof(cursor), "%s", p.cursor);
		polled_free(&p);
		if (poll_ok(B, cursor, 1, &p, why, sizeof(why))) {
			reportf("longpoll.ack_then_wait", p.n == 0 && p.elapsed_ms >= 900 &&
				p.elapsed_ms < 2000,
				"%zu messages after %" PRId64 " ms (want none after ~1000 ms)", p.n,
				p.elapsed_ms);
			polled_free(&p);
		} else {
			report("longpoll.ack_then_wait", false, why);
		}
	} else {
		report("longpoll.ack_then_wait", false, why);
	}

	/* A publish for someone else does not wake this poll. */
	{
		struct http_conn c;
		struct http_resp rs;
		char err[512];
		int64_t t0;

		t0 = http_now_ms();
		if (park(B, "/v1/poll?wait=2", &c, why, sizeof(why))) {
			report("longpoll.other_peer_publish_does_not_wake", false, why);
			return;
		}
		sleep_ms(200);
		publish_ok(A, C, 1, "offer", "for-c", NULL, 0, why, sizeof(why));
		if (http_recv(&c, &rs, err, sizeof(err))) {
			reportf("longpoll.other_peer_publish_does_not_wake", false, "%s", err);
			return;
		}
		{
			int64_t dt = http_now_ms() - t0;
			json_t *j = json_loadb(rs.body, rs.body_len, 0, NULL);
			size_t n = json_array_size(json_object_get(j, "messages"));

			reportf("longpoll.other_peer_publish_does_not_wake",
				rs.status == 200 && n == 0 && dt >= 1800,
				"answered after %" PRId64 " ms with %s (want empty after ~2000 ms)", dt,
				ans(&rs));
			json_decref(j);
		}
		http_resp_free(&rs);
	}
}

static void g_mailbox(void)
{
	enum { NSEND = 8 };
	char S[NSEND + 1][PEER_ID_MAX + 1], R[PEER_ID_MAX + 1], why[WHY], pl[32];
	char cursor[1024] = "";
	struct polled p;
	size_t i, seen = 0;
	bool ok = true, order = true;
	int page;

	fresh_peer(R);
	for (i = 0; i <= NSEND; i++)
		fresh_peer(S[i]);
	/* 1024 messages from 8 senders, interleaved, numbered in order. */
	for (i = 0; i < MAILBOX_MAX && ok; i++) {
		snprintf(pl, sizeof(pl), "%zu", i);
		ok = publish_ok(S[i % NSEND], R, 1, "offer", pl, NULL, 0, why, sizeof(why));
	}
	reportf("mailbox.holds_1024", ok, "publish #%zu: %s", i, why);
	if (!ok)
		return;
	{
		json_t *o = msg_obj(S[0], R, 1, "offer", "1025th");
		char *body = dump(o);
		struct http_resp rs;

		if (publish_raw(S[0], body, strlen(body), &rs, why, sizeof(why)) == 0) {
			bool e = is_error(&rs, 429, "mailbox_full", why, sizeof(why));

			report("mailbox.1025th_429_mailbox_full", e, why);
			http_resp_free(&rs);
		} else {
			report("mailbox.1025th_429_mailbox_full", false, why);
		}
		free(body);
		json_decref(o);
		o = msg_obj(S[NSEND], R, 1, "offer", "newcomer");
		body = dump(o);
		if (publish_raw(S[NSEND], body, strlen(body), &rs, why, sizeof(why)) == 0) {
			bool e = is_error(&rs, 429, "mailbox_full", why, sizeof(why));

			report("mailbox.full_for_new_sender_too", e, why);
			http_resp_free(&rs);
		} else {
			report("mailbox.full_for_new_sender_too", false, why);
		}
		free(body);
		json_decref(o);
	}
	/* Everything is still there, in order, 256 at a time. */
	for (page = 0; page < 8; page++) {
		if (!poll_ok(R, cursor, 0, &p, why, sizeof(why))) {
			report("mailbox.nothing_dropped", false, why);
			return;
		}
		if (p.n == 0) {
			polled_free(&p);
			break;
		}
		if (p.n > POLL_MAX)
			order = false;
		for (i = 0; i < p.n; i++) {
			const char *s = mstr(json_array_get(p.msgs, i), "payload");

			if (seen + i < MAILBOX_MAX && atoi(s) != (int)(seen + i))
				order = false;
		}
		seen += p.n;
		snprintf(cursor, sizeof(cursor), "%s", p.cursor);
		polled_free(&p);
		if (page == 0) {
			/* Nothing acknowledged yet: still full. */
			continue;
		}
		if (page == 1) {
			ok = publish_ok(S[1], R, 1, "offer", "after-ack", NULL, 0, why, sizeof(why));
			report("mailbox.space_after_ack", ok, why);
		}
	}
	reportf("mailbox.nothing_dropped", seen >= MAILBOX_MAX && order,
		"read %zu messages back, %s", seen, order ? "in order" : "out of order");

	/* Full, then a sender moves to a higher epoch: its older messages are
	 * deleted first (rule 2), so the new one fits (rule 3). */
	{
		char R2[PEER_ID_MAX + 1];
		json_t *all;

		fresh_peer(R2);
		ok = true;
		for (i = 0; i < MAILBOX_MAX && ok; i++) {
			snprintf(pl, sizeof(pl), "%zu", i);
			ok = publish_ok(S[i % NSEND], R2, 1, "offer", pl, NULL, 0, why, sizeof(why));
		}
		if (!ok) {
			reportf("mailbox.full_higher_epoch_purges_then_queues", false,
				"refill #%zu: %s", i, why);
			return;
		}
		ok = publish_ok(S[0], R2, 2, "offer", "epoch-2", NULL, 0, why, sizeof(why));
		report("mailbox.full_higher_epoch_purges_then_queues", ok, why);
		all = drain(R2, why, sizeof(why));
		if (all) {
			size_t n = json_array_size(all), f0 = count_from(all, S[0]);

			reportf("mailbox.full_higher_epoch_purged_count",
				n == MAILBOX_MAX - MAILBOX_MAX / NSEND + (ok ? 1 : 0) && f0 == (ok ? 1u : 0u),
				"%zu messages left, %zu from the sender that moved to epoch 2", n, f0);
			json_decref(all);
		} else {
			report("mailbox.full_higher_epoch_purged_count", false, why);
		}
	}

	/* The cap holds under concurrency: 1000 queued, then 48 publishes at
	 * once from 8 senders: exactly 24 fit, the rest are mailbox_full. */
	{
		enum { NPAR = 48, PRE = MAILBOX_MAX - 24 };
		char R3[PEER_ID_MAX + 1];
		const char *from[NPAR];
		int64_t ep[NPAR];
		struct par_result res[NPAR];
		size_t acc = 0, full = 0, other = 0;
		json_t *all;

		fresh_peer(R3);
		ok = true;
		for (i = 0; i < PRE && ok; i++) {
			snprintf(pl, sizeof(pl), "%zu", i);
			ok = publish_ok(S[i % NSEND], R3, 1, "offer", pl, NULL, 0, why, sizeof(why));
		}
		if (!ok) {
			reportf("mailbox.cap_holds_under_concurrency", false, "prefill #%zu: %s", i, why);
			return;
		}
		for (i = 0; i < NPAR; i++) {
			from[i] = S[i % NSEND];
			ep[i] = 1;
		}
		par_publish(NPAR, from, R3, ep, res);
		for (i = 0; i < NPAR; i++) {
			if (res[i].status == 202)
				acc++;
			else if (res[i].status == 429 && strcmp(res[i].code, "mailbox_full") == 0)
				full++;
			else
				other++;
		}
		all = drain(R3, why, sizeof(why));
		reportf("mailbox.cap_holds_under_concurrency",
			acc == MAILBOX_MAX - PRE && full == NPAR - acc && other == 0 && all &&
			json_array_size(all) == MAILBOX_MAX,
			"%zu accepted (want %d), %zu mailbox_full, %zu other; %zu queued (want %d)",
			acc, MAILBOX_MAX - PRE, full, other, all ? json_array_size(all) : 0,
			MAILBOX_MAX);
		json_decref(all);
	}
}

static void g_ttl(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], why[WHY];
	struct polled p;
	int64_t t0;

	if (G.ttl <= 0) {
		skip("ttl", "no --ttl given");
		return;
	}
	fresh_peer(A);
	fresh_peer(B);
	t0 = http_now_ms();
	if (!publish_ok(A, B, 1, "offer", "short-lived", NULL, 0, why, sizeof(why))) {
		report("ttl.setup_publish", false, why);
		return;
	}
	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		reportf("ttl.present_at_first", p.n == 1, "%zu messages", p.n);
		polled_free(&p);
	} else {
		report("ttl.present_at_first", false, why);
	}
	if (G.ttl >= 2) {
		sleep_ms(t0 + (G.ttl - 1) * 1000L - http_now_ms());
		if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
			reportf("ttl.present_before_expiry", p.n == 1, "%zu messages after %d s",
				p.n, G.ttl - 1);
			polled_free(&p);
		} else {
			report("ttl.present_before_expiry", false, why);
		}
	}
	sleep_ms(t0 + (G.ttl + 1) * 1000L - http_now_ms());
	if (poll_ok(B, NULL, 0, &p, why, sizeof(why))) {
		reportf("ttl.gone_after_ttl_plus_1s", p.n == 0, "%zu messages after %d s", p.n,
			G.ttl + 1);
		polled_free(&p);
	} else {
		report("ttl.gone_after_ttl_plus_1s", false, why);
	}
}

static void g_turn(void)
{
	char P[PEER_ID_MAX + 1], why[WHY], user[256], pass[256], want_user[256];
	struct req r = { .method = "GET", .path = "/v1/turn" };
	json_t *j, *u, *pw, *ttl, *realm;
	struct http_resp rs;
	long long expiry = 0;
	int64_t now;
	int consumed = 0;

	fresh_peer(P);
	r.as = P;
	now = (int64_t)time(NULL);
	j = want_json(&r, 200, &rs, why, sizeof(why));
	report("turn.200", j != NULL, why);
	if (!j)
		return;
	u = json_object_get(j, "username");
	pw = json_object_get(j, "password");
	ttl = json_object_get(j, "ttl");
	realm = json_object_get(j, "realm");
	reportf("turn.shape", json_is_string(u) && json_is_string(pw) && json_is_integer(ttl) &&
		json_integer_value(ttl) > 0 && json_is_string(realm),
		"want username, password strings, ttl > 0, realm: %s", ans(&rs));
	if (json_is_string(u) && sscanf(json_string_value(u), "%lld:%n", &expiry, &consumed) == 1 &&
	    consumed > 0) {
		snprintf(want_user, sizeof(want_user), "%lld:%s", expiry, P);
		reportf("turn.username_expiry_colon_peer",
			strcmp(json_string_value(u), want_user) == 0, "username \"%s\", peer %s",
			json_string_value(u), P);
		if (json_is_integer(ttl)) {
			long long d = expiry - (now + json_integer_value(ttl));

			reportf("turn.expiry_is_now_plus_ttl", d >= -5 && d <= 5,
				"expiry %lld is %lld s from now + ttl", expiry, d);
		}
		turn_credential(&G.keys, P, expiry, user, sizeof(user), pass, sizeof(pass));
		reportf("turn.password_matches_local_hmac",
			json_is_string(pw) && strcmp(json_string_value(pw), pass) == 0,
			"server \"%s\", local \"%s\" (username \"%s\")",
			json_is_string(pw) ? json_string_value(pw) : "?", pass, user);
	} else {
		reportf("turn.username_expiry_colon_peer", false, "username: %s", ans(&rs));
	}
	reportf("turn.realm", json_is_string(realm) && strcmp(json_string_value(realm), G.realm) == 0,
		"want realm \"%s\": %s", G.realm, ans(&rs));
	json_decref(j);
	http_resp_free(&rs);
}

static bool hostport_list(json_t *a, bool nonempty)
{
	size_t i;

	if (!json_is_array(a) || (nonempty && json_array_size(a) == 0))
		return false;
	for (i = 0; i < json_array_size(a); i++) {
		const char *s = json_string_value(json_array_get(a, i));
		const char *c;
		long port;

		if (!s || !(c = strrchr(s, ':')) || c == s)
			return false;
		port = strtol(c + 1, NULL, 10);
		if (port < 1 || port > 65535 || strspn(c + 1, "0123456789") != strlen(c + 1))
			return false;
	}
	return true;
}

static void g_coordinators(void)
{
	char P[PEER_ID_MAX + 1], why[WHY], self[HTTPC_HOST_MAX + 64];
	struct req r = { .method = "GET", .path = "/v1/coordinators" };
	struct http_resp rs;
	json_t *j, *list;
	size_t i;
	bool shape = true, found = false;

	fresh_peer(P);
	r.as = P;
	r.base = next_base();
	snprintf(self, sizeof(self), "http://%s%s%s:%s", strchr(r.base->host, ':') ? "[" : "",
		 r.base->host, strchr(r.base->host, ':') ? "]" : "", r.base->port);
	j = want_json(&r, 200, &rs, why, sizeof(why));
	report("coordinators.200", j != NULL, why);
	if (!j)
		return;
	list = json_object_get(j, "coordinators");
	if (!json_is_array(list) || json_array_size(list) == 0) {
		reportf("coordinators.shape", false, "no non-empty \"coordinators\" array: %s",
			ans(&rs));
		goto out;
	}
	for (i = 0; i < json_array_size(list); i++) {
		json_t *c = json_array_get(list, i);
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *url = json_string_value(json_object_get(c, "url"));
		json_t *age = json_object_get(c, "age_ms");

		if (!id || !id_valid(id, strlen(id)) || !url || strncmp(url, "http://", 7) != 0 ||
		    !hostport_list(json_object_get(c, "stun"), true) ||
		    !hostport_list(json_object_get(c, "turn_udp"), true) ||
		    !hostport_list(json_object_get(c, "turn_tcp"), true) ||
		    !hostport_list(json_object_get(c, "turn_tls"), false) ||
		    !json_is_integer(age) || json_integer_value(age) < 0)
			shape = false;
		if (url) {
			size_t ul = strlen(url);

			while (ul > 0 && url[ul - 1] == '/')
				ul--;
			if (ul == strlen(self) && strncmp(url, self, ul) == 0)
				found = true;
		}
	}
	reportf("coordinators.shape", shape,
		"entries need id, url, stun/turn_udp/turn_tcp (non-empty) and turn_tls lists "
		"of host:port, age_ms: %s", ans(&rs));
	reportf("coordinators.lists_this_node", found, "no entry with url %s: %s", self,
		ans(&rs));
out:
	json_decref(j);
	http_resp_free(&rs);
}

static void g_errors(void)
{
	char P[PEER_ID_MAX + 1];

	fresh_peer(P);
	/* "Every error answer is {"error","message"}", also when the request
	 * head is refused as too large (400 or 431 both fit). */
	{
		static char big[16 * 1024 + 16];
		const struct http_url *base = next_base();
		const char *hdrs[1] = { big };
		struct http_req rq = { .method = "GET", .host = base->host, .port = base->port,
				       .headers = hdrs, .nheaders = 1, .timeout_ms = DEFAULT_TIMEOUT_MS };
		char path[HTTPC_PATH_MAX + 16], why[WHY], err[512];
		struct http_resp rs;

		snprintf(path, sizeof(path), "%s/v1/health", base->prefix);
		rq.path_query = path;
		memcpy(big, "X-Padding: ", 11);
		memset(big + 11, 'a', 16 * 1024);
		big[11 + 16 * 1024] = 0;
		if (http_do(&rq, &rs, err, sizeof(err)) == 0) {
			bool ok = is_error(&rs, rs.status == 431 ? 431 : 400, NULL, why, sizeof(why));

			report("errors.oversized_request_head_json_error", ok, why);
			http_resp_free(&rs);
		} else {
			reportf("errors.oversized_request_head_json_error", false, "%s", err);
		}
	}
	{
		struct req r = { .method = "GET", .path = "/v1/nope", .as = P };

		expect_err("errors.unknown_v1_path_404", &r, 404, "not_found");
		r.method = "POST";
		r.body = "{}";
		r.body_len = 2;
		expect_err("errors.unknown_v1_path_post_404", &r, 404, "not_found");
	}
	{
		struct req r = { .method = "GET", .path = "/nope" };

		expect_err("errors.unknown_root_path_404", &r, 404, "not_found");
		r.path = "/v2/poll";
		expect_err("errors.unknown_version_404", &r, 404, "not_found");
	}
	{
		struct req r = { .method = "GET", .path = "/v1/publish", .as = P };

		expect_err("errors.get_publish_405", &r, 405, "method_not_allowed");
		r.method = "PUT";
		r.body = "{}";
		r.body_len = 2;
		expect_err("errors.put_publish_405", &r, 405, "method_not_allowed");
		r.method = "POST";
		r.path = "/v1/poll";
		expect_err("errors.post_poll_405", &r, 405, "method_not_allowed");
		r.path = "/v1/turn";
		expect_err("errors.post_turn_405", &r, 405, "method_not_allowed");
		r.path = "/v1/coordinators";
		expect_err("errors.post_coordinators_405", &r, 405, "method_not_allowed");
		r.path = "/v1/health";
		r.as = NULL;
		expect_err("errors.post_health_405", &r, 405, "method_not_allowed");
	}
}

static void g_ratelimit(void)
{
	char A[PEER_ID_MAX + 1], B[PEER_ID_MAX + 1], C[PEER_ID_MAX + 1], why[WHY], pl[32];
	struct http_resp rs;
	int i, accepted = 0, retry = -1, queued_ok = 0;
	bool got429 = false;

	fresh_peer(A);
	fresh_peer(B);
	fresh_peer(C);
	/* Server under test: --publish-rate 5 --publish-burst 5. */
	for (i = 1; i <= 6; i++) {
		json_t *o;
		char *body;

		snprintf(pl, sizeof(pl), "burst-%d", i);
		o = msg_obj(A, B, 1, "offer", pl);
		body = dump(o);
		if (publish_raw(A, body, strlen(body), &rs, why, sizeof(why))) {
			report("ratelimit.burst_of_5_accepted", false, why);
			free(body);
			json_decref(o);
			return;
		}
		if (i <= 5) {
			if (rs.status == 202)
				accepted++;
			else
				seterr(why, sizeof(why), "publish %d: %s", i, ans(&rs));
		} else {
			char v[32];

			got429 = is_error(&rs, 429, "rate_limited", why, sizeof(why));
			report("ratelimit.6th_429_rate_limited", got429, why);
			if (http_resp_header(&rs, "Retry-After", v, sizeof(v)) &&
			    strspn(v, "0123456789") == strlen(v) && *v)
				retry = atoi(v);
			reportf("ratelimit.retry_after_header", retry >= 0,
				"want Retry-After: <seconds>, head: %s", rs.head);
			if (i == 6 && rs.status == 202)
				queued_ok++;
		}
		http_resp_free(&rs);
		free(body);
		json_decref(o);
		if (i == 5) {
			reportf("ratelimit.burst_of_5_accepted", accepted == 5, "%d of 5 accepted: %s",
				accepted, why);
		}
	}
	{
		bool ok = publish_ok(C, B, 1, "offer", "other-peer", NULL, 0, why, sizeof(why));

		report("ratelimit.per_peer", ok, why);
	}
	if (got429) {
		json_t *o = msg_obj(A, B, 1, "offer", "after-wait");
		char *body = dump(o);

		sleep_ms(1000L * (retry > 0 ? (retry > 5 ? 5 : retry) : 1) + 100);
		if (publish_raw(A, body, strlen(body), &rs, why, sizeof(why)) == 0) {
			reportf("ratelimit.recovers_after_retry_after", rs.status == 202, "got %s",
				ans(&rs));
			http_resp_free(&rs);
		} else {
			report("ratelimit.recovers_after_retry_after", false, why);
		}
		free(body);
		json_decref(o);
	}
	{
		json_t *all = drain(B, why, sizeof(why));
		size_t n;

		if (all) {
			n = count_from(all, A);
			reportf("ratelimit.refused_publish_not_queued",
				n == (size_t)(5 + (got429 ? 1 : 0) + queued_ok),
				"%zu messages from A queued", n);
			json_decref(all);
		} else {
			report("ratelimit.refused_publish_not_queued", false, why);
		}
	}
}

/* Against a coordinator whose mailbox backend cannot answer (e.g. --redis
 * pointing at a closed port): /v1/ready is 503 with the reason, while
 * /v1/health still says the process serves. */
static void g_notready(void)
{
	struct req r = { .method = "GET", .path = "/v1/ready" };
	struct http_resp rs;
	char why[WHY];
	json_t *j;

	expect_err("notready.ready_503", &r, 503, NULL); /* the code is not fixed */
	if (send_req(&r, &rs, why, sizeof(why)) == 0) {
		j = json_loadb(rs.body, rs.body_len, 0, NULL);
		reportf("notready.ready_503_gives_reason",
			rs.status == 503 && json_is_string(json_object_get(j, "message")) &&
			*json_string_value(json_object_get(j, "message")),
			"want a non-empty reason: %s", ans(&rs));
		json_decref(j);
		http_resp_free(&rs);
	} else {
		report("notready.ready_503_gives_reason", false, why);
	}
	r.path = "/v1/health";
	j = want_json(&r, 200, NULL, why, sizeof(why));
	report("notready.health_still_200", j != NULL, why);
	json_decref(j);
}

/* ---- main --------------------------------------------------------- */

struct group {
	const char *name;
	void (*fn)(void);
	bool only; /* not part of the full suite: needs a specially started server */
};

static const struct group groups[] = {
	{ "health", g_health, false },
	{ "metrics", g_metrics, false },
	{ "auth", g_auth, false },
	{ "publish", g_publish, false },
	{ "epoch", g_epoch, false },
	{ "poll", g_poll, false },
	{ "longpoll", g_longpoll, false },
	{ "mailbox", g_mailbox, false },
	{ "turn", g_turn, false },
	{ "coordinators", g_coordinators, false },
	{ "errors", g_errors, false },
	{ "ttl", g_ttl, false },
	{ "ratelimit", g_ratelimit, true },
	{ "notready", g_notready, true },
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: conformance --url http://127.0.0.1:PORT --secret-file F\n"
		"                   [--url2 URL] [--ttl S] [--realm NAME] [--only G[,G...]] [-v]\n"
		"\n"
		"Checks a running coordinator against CONTRACT section 2.\n"
		"  --url2 URL   a second coordinator sharing the mailbox; requests alternate\n"
		"  --ttl S      the server's --message-ttl; enables the ttl checks\n"
		"  --realm R    the expected TURN realm (default mesh)\n"
		"  --only LIST  run only these groups; 'ratelimit' and 'notready' run only\n"
		"               when named: ratelimit needs a server started with\n"
		"               --publish-rate 5 --publish-burst 5, notready one whose\n"
		"               mailbox backend is unreachable (--redis to a closed port)\n"
		"  -v           log every request and answer on stderr\n"
		"groups:");
	for (i = 0; i < NGROUPS; i++)
		fprintf(f, " %s", groups[i].name);
	fprintf(f, "\n");
}

static bool selected(const char *only, const struct group *g)
{
	const char *p = only;
	size_t l = strlen(g->name);

	if (!only)
		return !g->only;
	while (p && *p) {
		size_t n = strcspn(p, ",");

		if (n == l && strncmp(p, g->name, l) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "url2", required_argument, NULL, '2' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "ttl", required_argument, NULL, 't' },
		{ "realm", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *url2 = NULL, *secret = NULL, *only = NULL;
	char err[512];
	uint8_t raw[32], rid[4];
	size_t i;
	int c;

	G.realm = "mesh";
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case '2':
			url2 = optarg;
			break;
		case 's':
			secret = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || end == optarg || v < 1 || v > 3600) {
				fprintf(stderr, "conformance: --ttl: want 1..3600 seconds, got %s\n",
					optarg);
				return 2;
			}
			G.ttl = (int)v;
			break;
		}
		case 'r':
			G.realm = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		case 'v':
			G.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "conformance: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (!url || !secret) {
		fprintf(stderr, "conformance: --url and --secret-file are required\n");
		return 2;
	}
	if (http_url_parse(url, &G.url[0], err, sizeof(err))) {
		fprintf(stderr, "conformance: --url: %s\n", err);
		return 2;
	}
	G.nurl = 1;
	if (url2) {
		if (http_url_parse(url2, &G.url[1], err, sizeof(err))) {
			fprintf(stderr, "conformance: --url2: %s\n", err);
			return 2;
		}
		G.nurl = 2;
	}
	if (only) {
		/* Every listed name must be a group. */
		const char *p = only;

		while (*p) {
			size_t n = strcspn(p, ",");
			bool known = false;

			for (i = 0; i < NGROUPS; i++)
				if (strlen(groups[i].name) == n && strncmp(p, groups[i].name, n) == 0)
					known = true;
			if (!known) {
				fprintf(stderr, "conformance: --only: unknown group %.*s\n", (int)n, p);
				return 2;
			}
			p += n;
			if (*p == ',')
				p++;
		}
	}
	if (keys_load(secret, &G.keys, err, sizeof(err))) {
		fprintf(stderr, "conformance: --secret-file %s: %s\n", secret, err);
		return 2;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(rid, sizeof(rid)) != 1 ||
	    keys_derive(raw, sizeof(raw), &G.wrong)) {
		fprintf(stderr, "conformance: cannot make random keys\n");
		return 2;
	}
	hex_encode(rid, sizeof(rid), G.run);
	printf("# conformance run %s against %s%s%s\n", G.run, url, url2 ? " and " : "",
	       url2 ? url2 : "");

	if (!(only && strcmp(only, "notready") == 0))
		wait_ready();
	for (i = 0; i < NGROUPS; i++)
		if (selected(only, &groups[i]))
			groups[i].fn();

	printf("%d passed, %d failed\n", G.passed, G.failed);
	return G.failed ? 1 : 0;
}
