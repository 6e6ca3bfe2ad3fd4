/* loadgen: the coordinator's signaling load generator (a program, not a
 * test). Many simulated peers do authenticated POST /v1/publish and
 * long-poll GET /v1/poll against one or more coordinators over HTTP/1.1
 * keep-alive connections (no pipelining, like wrk), and it prints
 * throughput, latency percentiles and a status breakdown, ending with one
 * machine-readable "RESULT ..." line.
 *
 * Owns: its own epoll loop per thread, a minimal bounds-checked HTTP/1.1
 * response parser, the request builders and the latency histograms.
 * Does not own any cryptography: signatures and psig come from
 * signaling/auth.h, keys from signaling/keys.h. Talks to loopback
 * addresses only and always stops by itself (duration + grace, with an
 * alarm() backstop). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/opts.h"
#include "signaling/auth.h"
#include "signaling/keys.h"

/* ---- limits and fixed choices ---------------------------------------- */

#define MAX_URLS 16
#define MAX_THREADS 64
#define MAX_CONNECTIONS 20000
#define MAX_PEERS 1000000
#define MAX_WAITERS 20000
#define MAX_PAYLOAD 16384      /* CONTRACT section 2: payload <= 16384 bytes */
#define HDR_MAX 8192           /* response header block we accept */
#define RBUF_INIT 4096
#define RBUF_MAX (8u << 20)    /* 256 messages * 16 KiB payloads, with room */
#define WBUF_CAP (MAX_PAYLOAD + 2048)
#define CURSOR_MAX 256         /* longest cursor we echo back */
#define PUB_FANOUT 4           /* targets per sender peer in publish mode */
#define POLL_WAIT_S 25         /* brief: GET /v1/poll?wait=25 */
#define REQ_TIMEOUT_NS (5ull * 1000000000ull)
#define POLL_TIMEOUT_NS ((POLL_WAIT_S + 5ull) * 1000000000ull)
#define RECONNECT_NS (10ull * 1000000ull)
#define HOUSEKEEP_NS (10ull * 1000000ull)
#define WAKE_GRACE_NS (1000ull * 1000000ull) /* wait for in-flight wakes */
#define WPUB_PER_THREAD 4      /* wake-mode publisher connections per thread */
#define WAKE_OWED_MAX 64       /* wake ticks kept owed before skipping */
#define WAKE_SENDER_RATE 50    /* wake publishes/s per simulated sender id */
#define HARD_DEADLINE_EXTRA_S 15 /* alarm() backstop past duration */

/* ---- small utilities ------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t unix_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

/* xoshiro256** (Blackman & Vigna), seeded from getrandom(): nonces only
 * need to be unique within the coordinator's 120 s replay window. */
struct rng { uint64_t s[4]; };

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return out;
}

static int rng_seed(struct rng *r)
{
	size_t got = 0;
	while (got < sizeof r->s) {
		ssize_t n = getrandom((char *)r->s + got, sizeof r->s - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
		r->s[0] = 1;
	return 0;
}

static const char HEX[] = "0123456789abcdef";
static const char HEXU[] = "0123456789ABCDEF";

static void nonce_fast(struct rng *r, char out[NONCE_HEX_LEN + 1])
{
	uint64_t a = rng_next(r), b = rng_next(r);
	for (int i = 0; i < 16; i++) {
		out[i] = HEX[(a >> (60 - 4 * i)) & 15];
		out[16 + i] = HEX[(b >> (60 - 4 * i)) & 15];
	}
	out[NONCE_HEX_LEN] = 0;
}

/* Appends to a bounded buffer; every writer checks the final length. */
struct sbuf { char *p; size_t len, cap; bool overflow; };

static void sb_mem(struct sbuf *b, const void *s, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_str(struct sbuf *b, const char *s) { sb_mem(b, s, strlen(s)); }

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	int i = (int)sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_mem(b, tmp + i, sizeof tmp - (size_t)i);
}

/* ---- latency histogram: log-linear, ~1.6% resolution, in ns ----------- */

#define HIST_SUB 64
#define HIST_BUCKETS (60 * HIST_SUB)

struct hist {
	uint64_t n, max, sum;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	unsigned m = (unsigned)(v >> (e - 6)) & (HIST_SUB - 1);
	unsigned idx = (e - 5) * HIST_SUB + m;
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static uint64_t hist_value(unsigned idx)
{
	if (idx < HIST_SUB)
		return idx;
	unsigned e = idx / HIST_SUB + 5, m = idx % HIST_SUB;
	uint64_t lo = ((uint64_t)(HIST_SUB + m)) << (e - 6);
	return lo + (((uint64_t)1 << (e - 6)) >> 1); /* bucket middle */
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->n += src->n;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

static double hist_pct_ms(const struct hist *h, double pct)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)((double)h->n * pct / 100.0);
	if (want >= h->n)
		want = h->n - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = hist_value(i);
			return (double)(v < h->max ? v : h->max) / 1e6;
		}
	}
	return (double)h->max / 1e6;
}

/* ---- options ------------------------------------------------------- */

enum mode { MODE_PUBLISH, MODE_WAKE, MODE_MIXED };

struct target {
	struct sockaddr_storage sa;
	socklen_t salen;
	char url[128];
	char hostport[80];  /* Host: header value */
};

static struct {
	char *url;
	char *secret_file;
	unsigned threads, connections, duration, peers, waiters, wake_rate;
	unsigned payload_bytes;
	enum mode mode;
	bool nonce_lib;  /* use auth_build_header()'s own nonce */
	bool psig_fixed; /* skip psig_compute() (server-only cost) */
} opt;

static struct target g_targets[MAX_URLS];
static unsigned g_ntargets;
static struct mesh_keys g_keys;
static char g_runid[9];        /* hex, in wake ids and payloads */
static uint64_t g_epoch_base;  /* unix microseconds at start */
static char g_filler[MAX_PAYLOAD + 1];

static int parse_uint(const char *val, unsigned lo, unsigned hi, unsigned *out,
		      char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || end == val || *end || val[0] == '-' || v < lo || v > hi) {
		snprintf(err, errlen, "must be an integer %u..%u", lo, hi);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

#define UINT_PARSER(name, lo, hi) \
	static int name(const char *val, void *dst, char *err, size_t errlen) \
	{ return parse_uint(val, lo, hi, dst, err, errlen); }

UINT_PARSER(parse_threads, 1, MAX_THREADS)
UINT_PARSER(parse_connections, 1, MAX_CONNECTIONS)
UINT_PARSER(parse_duration, 1, 3600)
UINT_PARSER(parse_peers, 2, MAX_PEERS)
UINT_PARSER(parse_waiters, 1, MAX_WAITERS)
UINT_PARSER(parse_rate, 1, 1000000)
UINT_PARSER(parse_payload, 0, 4096)

static int parse_mode(const char *val, void *dst, char *err, size_t errlen)
{
	enum mode *m = dst;
	if (!strcmp(val, "publish"))
		*m = MODE_PUBLISH;
	else if (!strcmp(val, "wake"))
		*m = MODE_WAKE;
	else if (!strcmp(val, "mixed"))
		*m = MODE_MIXED;
	else {
		snprintf(err, errlen, "must be publish, wake or mixed");
		return -1;
	}
	return 0;
}

static int parse_nonce(const char *val, void *dst, char *err, size_t errlen)
{
	bool *lib = dst;
	if (!strcmp(val, "fast"))
		*lib = false;
	else if (!strcmp(val, "lib"))
		*lib = true;
	else {
		snprintf(err, errlen, "must be fast or lib");
		return -1;
	}
	return 0;
}

static int parse_psig(const char *val, void *dst, char *err, size_t errlen)
{
	bool *fixed = dst;
	if (!strcmp(val, "real"))
		*fixed = false;
	else if (!strcmp(val, "fixed"))
		*fixed = true;
	else {
		snprintf(err, errlen, "must be real or fixed");
		return -1;
	}
	return 0;
}

/* "http://HOST:PORT[/]" with HOST a loopback literal or "localhost". */
static int parse_one_url(const char *u, size_t len, struct target *t,
			 char *err, size_t errlen)
{
	static const char pfx[] = "http://";
	char host[64], buf[128];
	if (len >= sizeof buf || len <= sizeof pfx - 1 ||
	    strncmp(u, pfx, sizeof pfx - 1)) {
		snprintf(err, errlen, "'%.*s' is not http://HOST:PORT", (int)(len > 100 ? 100 : len), u);
		return -1;
	}
	memcpy(buf, u, len);
	buf[len] = 0;
	if (buf[len - 1] == '/')
		buf[--len] = 0;
	char *h = buf + sizeof pfx - 1, *colon;
	if (*h == '[') {
		char *rb = strchr(h, ']');
		if (!rb || rb[1] != ':') {
			snprintf(err, errlen, "'%s': bad [IPv6]:PORT", buf);
			return -1;
		}
		colon = rb + 1;
		*rb = 0;
		h++;
	} else {
		colon = strrchr(h, ':');
		if (!colon) {
			snprintf(err, errlen, "'%s' has no port", buf);
			return -1;
		}
		*colon = 0;
	}
	if (strlen(h) >= sizeof host || strchr(colon + 1, '/')) {
		snprintf(err, errlen, "'%s' is not http://HOST:PORT", u);
		return -1;
	}
	strcpy(host, h);
	unsigned port;
	if (parse_uint(colon + 1, 1, 65535, &port, err, errlen) < 0)
		return -1;
	memset(t, 0, sizeof *t);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&t->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->sa;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
			snprintf(err, errlen, "'%s': only loopback addresses are allowed", host);
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		t->salen = sizeof *s4;
		snprintf(t->hostport, sizeof t->hostport, "%s:%u", host, port);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
			snprintf(err, errlen, "'%s': only loopback addresses are allowed", host);
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		t->salen = sizeof *s6;
		snprintf(t->hostport, sizeof t->hostport, "[%s]:%u", host, port);
	} else {
		snprintf(err, errlen, "'%s': host must be a loopback address", host);
		return -1;
	}
	snprintf(t->url, sizeof t->url, "http://%s", t->hostport);
	return 0;
}

static int parse_urls(const char *val, char *err, size_t errlen)
{
	g_ntargets = 0;
	const char *p = val;
	for (;;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (g_ntargets == MAX_URLS) {
			snprintf(err, errlen, "at most %d URLs", MAX_URLS);
			return -1;
		}
		if (parse_one_url(p, len, &g_targets[g_ntargets], err, errlen) < 0)
			return -1;
		g_ntargets++;
		if (!c)
			break;
		p = c + 1;
	}
	return 0;
}

/* ---- HTTP/1.1 response parsing (bounded) ----------------------------- */

enum { PARSE_MORE = 0, PARSE_DONE = 1, PARSE_ERR = -1 };

struct response {
	int status;
	bool close;            /* server said Connection: close */
	const char *body;      /* inside the connection's read buffer */
	size_t body_len;
	size_t consumed;       /* bytes of the buffer this response used */
};

static bool hdr_is(const char *line, size_t len, const char *name, const char **val,
		   size_t *vlen)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
		return false;
	const char *v = line + n + 1, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return true;
}

/* Walks a chunked body at buf[off..len). With copy false it only checks
 * (PARSE_MORE, PARSE_ERR, or PARSE_DONE with *blen and *end set); with
 * copy true, after a check returned PARSE_DONE, it dechunks in place.
 * Copying only after a complete check keeps a partial body re-parsable. */
static int chunked_walk(char *buf, size_t off, size_t len, bool copy,
			size_t *blen, size_t *end)
{
	size_t r = off, w = off;
	for (;;) {
		size_t i = r, size = 0, digits = 0;
		while (i < len && buf[i] != '\r' && buf[i] != ';') {
			char ch = buf[i];
			unsigned d;
			if (ch >= '0' && ch <= '9') d = (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f') d = (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F') d = (unsigned)(ch - 'A' + 10);
			else return PARSE_ERR;
			if (++digits > 7)
				return PARSE_ERR;
			size = size * 16 + d;
			i++;
		}
		while (i < len && buf[i] != '\r') /* chunk extensions: skipped */
			i++;
		if (i + 1 >= len)
			return len - r > 256 ? PARSE_ERR : PARSE_MORE;
		if (!digits || buf[i + 1] != '\n')
			return PARSE_ERR;
		i += 2;
		if (size == 0) {
			/* we expect no trailers: just the final CRLF */
			if (len - i < 2)
				return PARSE_MORE;
			if (buf[i] != '\r' || buf[i + 1] != '\n')
				return PARSE_ERR;
			*blen = w - off;
			*end = i + 2;
			return PARSE_DONE;
		}
		if (size > RBUF_MAX)
			return PARSE_ERR;
		if (len - i < size + 2)
			return PARSE_MORE;
		if (buf[i + size] != '\r' || buf[i + size + 1] != '\n')
			return PARSE_ERR;
		if (copy)
			memmove(buf + w, buf + i, size);
		w += size;
		r = i + size + 2;
	}
}

static int parse_response(char *buf, size_t len, struct response *rsp)
{
	char *hend = memmem(buf, len < HDR_MAX ? len : HDR_MAX, "\r\n\r\n", 4);
	if (!hend)
		return len >= HDR_MAX ? PARSE_ERR : PARSE_MORE;
	size_t hlen = (size_t)(hend - buf) + 4;
	/* "HTTP/1.x SSS" */
	if (hlen < 16 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' ||
	    buf[10] > '9' || buf[11] < '0' || buf[11] > '9' ||
	    (buf[12] != ' ' && buf[12] != '\r'))
		return PARSE_ERR;
	memset(rsp, 0, sizeof *rsp);
	rsp->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	rsp->close = buf[7] == '0';
	bool have_cl = false, chunked = false;
	size_t cl = 0;
	const char *line = memchr(buf, '\n', hlen);
	line = line ? line + 1 : buf + hlen;
	while (line < buf + hlen - 2) {
		const char *eol = memchr(line, '\r', (size_t)(buf + hlen - line));
		if (!eol || eol[1] != '\n')
			return PARSE_ERR;
		const char *v;
		size_t vl, ll = (size_t)(eol - line);
		if (hdr_is(line, ll, "content-length", &v, &vl)) {
			if (have_cl || !vl || vl > 9)
				return PARSE_ERR;
			cl = 0;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return PARSE_ERR;
				cl = cl * 10 + (size_t)(v[i] - '0');
			}
			have_cl = true;
		} else if (hdr_is(line, ll, "transfer-encoding", &v, &vl)) {
			if (vl == 7 && !strncasecmp(v, "chunked", 7))
				chunked = true;
			else
				return PARSE_ERR;
		} else if (hdr_is(line, ll, "connection", &v, &vl)) {
			if (vl == 5 && !strncasecmp(v, "close", 5))
				rsp->close = true;
			else if (vl == 10 && !strncasecmp(v, "keep-alive", 10))
				rsp->close = false;
		}
		line = eol + 2;
	}
	if (chunked) {
		size_t blen, end;
		int r = chunked_walk(buf, hlen, len, false, &blen, &end);
		if (r != PARSE_DONE)
			return r;
		chunked_walk(buf, hlen, len, true, &blen, &end);
		rsp->body = buf + hlen;
		rsp->body_len = blen;
		rsp->consumed = end;
		return PARSE_DONE;
	}
	if (!have_cl) {
		/* 1xx/204/304 carry no body; anything else must say its length */
		if (rsp->status == 204 || rsp->status == 304 || rsp->status < 200) {
			rsp->body = buf + hlen;
			rsp->consumed = hlen;
			return PARSE_DONE;
		}
		return PARSE_ERR;
	}
	if (cl > RBUF_MAX)
		return PARSE_ERR;
	if (len - hlen < cl)
		return PARSE_MORE;
	rsp->body = buf + hlen;
	rsp->body_len = cl;
	rsp->consumed = hlen + cl;
	return PARSE_DONE;
}

/* ---- statistics ---------------------------------------------------- */

static const char *const ERR_CODES[] = {
	"rate_limited", "mailbox_full", "stale_epoch", "bad_auth", "forbidden",
	"bad_request", "too_large", "not_found", "unavailable",
};
#define NERR (sizeof ERR_CODES / sizeof ERR_CODES[0])

struct counts {
	uint64_t status[600];        /* [0]: unparseable status */
	uint64_t err[NERR + 1];      /* [NERR]: other or missing code */
};

struct stats {
	struct counts pub;           /* throughput publishes */
	struct counts wake;          /* wake publishes and polls */
	uint64_t connect_err, io_err, parse_err, timeouts, closed_by_server;
	struct hist pub_lat;
	/* wake */
	uint64_t wake_sent, wake_recv, wake_unexpected, wake_foreign,
		 wake_skipped, wake_lost, polls, poll_empty, bad_poll_body;
	struct hist wake_lat;
	struct hist wpub_lat;
};

static void count_error_code(struct counts *c, const char *body, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, len, 0, &jerr);
	const char *code = j ? json_string_value(json_object_get(j, "error")) : NULL;
	size_t i = 0;
	if (code)
		for (; i < NERR && strcmp(code, ERR_CODES[i]); i++)
			;
	else
		i = NERR;
	c->err[i]++;
	json_decref(j);
}

static void count_status(struct counts *c, const struct response *rsp)
{
	c->status[rsp->status > 0 && rsp->status < 600 ? rsp->status : 0]++;
	if (rsp->status >= 400)
		count_error_code(c, rsp->body, rsp->body_len);
}

/* ---- connections and workers ------------------------------------------ */

enum conn_kind { CK_PUB, CK_WAITER, CK_WPUB };
enum conn_state { CS_DOWN, CS_CONNECTING, CS_IDLE, CS_BUSY };

struct peer {                 /* publish-mode sender, touched by one thread */
	uint64_t epoch;           /* last epoch used, strictly increasing */
	unsigned next_target;
};

struct waiter {
	char id[PEER_ID_MAX + 1];
	char cursor[CURSOR_MAX + 1];
	bool polling;             /* a poll is outstanding */
	bool expecting;           /* a wake message was sent and not seen yet */
	uint64_t expect_seq;
};

struct worker;

struct conn {
	struct worker *w;
	enum conn_kind kind;
	enum conn_state state;
	int fd;
	uint32_t ev;              /* registered epoll mask */
	const struct target *tg;
	uint64_t t_sent;          /* when the current request was written */
	uint64_t retry_at;        /* CS_DOWN: when to reconnect */
	char *wbuf;
	size_t wlen, woff;
	char *rbuf;
	size_t rlen, rcap;
	/* CK_PUB: sender peers p = first, first+stride, ... < npeers */
	unsigned first_peer, stride, cur_peer;
	/* CK_WAITER */
	struct waiter *wt;
};

struct worker {
	unsigned idx;
	pthread_t th;
	int epfd, tfd;
	struct rng rng;
	struct conn *conns;
	unsigned nconns;
	struct conn **wpubs;      /* idle-or-busy wake publishers */
	unsigned nwpubs;
	struct waiter *waiters;
	unsigned nwaiters, arm_cursor;
	unsigned nsenders, next_sender;
	uint64_t wake_seq;
	uint64_t wake_owed;       /* timer ticks not yet turned into publishes */
	uint64_t next_housekeep;
	_Atomic uint64_t done;    /* completed throughput publishes (progress) */
	struct stats st;
};

static struct peer *g_peers;
static struct worker *g_workers;
static _Atomic int g_phase;   /* 0 run, 1 drain (wake grace), 2 exit */
enum { PH_RUN = 0, PH_DRAIN = 1, PH_EXIT = 2 };

static void conn_fail(struct conn *c, uint64_t now);
static void conn_send_next(struct conn *c, uint64_t now);
static void wake_send_owed(struct worker *w, uint64_t now);

static void ep_set(struct conn *c, uint32_t ev)
{
	if (c->ev == ev)
		return;
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &e);
	c->ev = ev;
}

static void conn_close(struct conn *c, uint64_t now)
{
	if (c->fd >= 0) {
		epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = CS_DOWN;
	c->retry_at = now + RECONNECT_NS;
	c->rlen = 0;
	c->wlen = c->woff = 0;
	if (c->wt) {
		c->wt->polling = false;
		/* the server may still answer the lost poll's messages later */
	}
}

static void conn_fail(struct conn *c, uint64_t now)
{
	c->w->st.io_err++;
	conn_close(c, now);
}

static void conn_connect(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	int fd = socket(c->tg->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		w->st.connect_err++;
		c->retry_at = now + RECONNECT_NS;
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (const struct sockaddr *)&c->tg->sa, c->tg->salen) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		w->st.connect_err++;
		c->retry_at = now + RECONNECT_NS;
		return;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->ev = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
	c->t_sent = now;
	struct epoll_event e = {.events = c->ev, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		close(fd);
		c->fd = -1;
		c->state = CS_DOWN;
		w->st.connect_err++;
		c->retry_at = now + RECONNECT_NS;
	}
}

/* Writes what is pending; returns false when the connection failed. */
static bool conn_flush(struct conn *c, uint64_t now)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ep_set(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
			return true;
		}
		conn_fail(c, now);
		return false;
	}
	ep_set(c, EPOLLIN | EPOLLRDHUP);
	return true;
}

/* Authorization header value for one request. */
static bool sign(struct worker *w, char *out, size_t cap, const char *peer,
		 const char *method, const char *pathq, const void *body, size_t blen)
{
	int64_t ts = unix_s();
	if (opt.nonce_lib)
		return auth_build_header(out, cap, g_keys.signal, peer, ts, method,
					 pathq, body, blen) > 0;
	char nonce[NONCE_HEX_LEN + 1], sig[SIG_HEX_LEN + 1];
	nonce_fast(&w->rng, nonce);
	auth_compute_sig(g_keys.signal, method, pathq, ts, nonce, body, blen, sig);
	struct sbuf b = {out, 0, cap - 1, false};
	sb_str(&b, "MESH-HMAC-SHA256 peer=");
	sb_str(&b, peer);
	sb_str(&b, ",ts=");
	sb_u64(&b, (uint64_t)ts);
	sb_str(&b, ",nonce=");
	sb_mem(&b, nonce, NONCE_HEX_LEN);
	sb_str(&b, ",sig=");
	sb_mem(&b, sig, SIG_HEX_LEN);
	if (b.overflow)
		return false;
	out[b.len] = 0;
	return true;
}

/* Builds a complete POST /v1/publish into c->wbuf. */
static bool build_publish(struct conn *c, const char *from, const char *to,
			  uint64_t epoch, const char *kind, const char *payload,
			  size_t plen)
{
	struct worker *w = c->w;
	char body[MAX_PAYLOAD + 512], psig[SIG_HEX_LEN + 1], auth[AUTH_HEADER_MAX];
	if (opt.psig_fixed)
		memset(psig, 'a', SIG_HEX_LEN), psig[SIG_HEX_LEN] = 0;
	else
		psig_compute(g_keys.e2e, from, to, epoch, kind, payload, plen, psig);
	struct sbuf b = {body, 0, sizeof body, false};
	sb_str(&b, "{\"from\":\"");
	sb_str(&b, from);
	sb_str(&b, "\",\"to\":\"");
	sb_str(&b, to);
	sb_str(&b, "\",\"epoch\":");
	sb_u64(&b, epoch);
	sb_str(&b, ",\"kind\":\"");
	sb_str(&b, kind);
	sb_str(&b, "\",\"payload\":\"");
	sb_mem(&b, payload, plen); /* our payloads need no JSON escaping */
	sb_str(&b, "\",\"psig\":\"");
	sb_mem(&b, psig, SIG_HEX_LEN);
	sb_str(&b, "\"}");
	if (b.overflow || !sign(w, auth, sizeof auth, from, "POST", "/v1/publish",
				body, b.len))
		return false;
	struct sbuf r = {c->wbuf, 0, WBUF_CAP, false};
	sb_str(&r, "POST /v1/publish HTTP/1.1\r\nHost: ");
	sb_str(&r, c->tg->hostport);
	sb_str(&r, "\r\nContent-Type: application/json\r\nAuthorization: ");
	sb_str(&r, auth);
	sb_str(&r, "\r\nContent-Length: ");
	sb_u64(&r, b.len);
	sb_str(&r, "\r\n\r\n");
	sb_mem(&r, body, b.len);
	if (r.overflow)
		return false;
	c->wlen = r.len;
	c->woff = 0;
	return true;
}

static bool unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
	       ch == '~';
}

static bool build_poll(struct conn *c)
{
	struct waiter *wt = c->wt;
	char pathq[64 + 3 * CURSOR_MAX], auth[AUTH_HEADER_MAX];
	struct sbuf p = {pathq, 0, sizeof pathq - 1, false};
	sb_str(&p, "/v1/poll?wait=");
	sb_u64(&p, POLL_WAIT_S);
	if (wt->cursor[0]) {
		sb_str(&p, "&cursor=");
		for (const unsigned char *s = (const unsigned char *)wt->cursor; *s; s++) {
			if (unreserved(*s)) {
				sb_mem(&p, s, 1);
			} else {
				char e[3] = {'%', HEXU[*s >> 4], HEXU[*s & 15]};
				sb_mem(&p, e, 3);
			}
		}
	}
	if (p.overflow)
		return false;
	pathq[p.len] = 0;
	if (!sign(c->w, auth, sizeof auth, wt->id, "GET", pathq, "", 0))
		return false;
	struct sbuf r = {c->wbuf, 0, WBUF_CAP, false};
	sb_str(&r, "GET ");
	sb_str(&r, pathq);
	sb_str(&r, " HTTP/1.1\r\nHost: ");
	sb_str(&r, c->tg->hostport);
	sb_str(&r, "\r\nAuthorization: ");
	sb_str(&r, auth);
	sb_str(&r, "\r\n\r\n");
	if (r.overflow)
		return false;
	c->wlen = r.len;
	c->woff = 0;
	return true;
}

static void peer_id(char *out, size_t cap, unsigned p)
{
	snprintf(out, cap, "p%06u", p);
}

/* Sends the next request of an idle connection, if its kind has one now. */
static void conn_send_next(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	bool ok;
	if (c->state != CS_IDLE)
		return;
	switch (c->kind) {
	case CK_PUB: {
		if (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_RUN)
			return;
		unsigned p = c->cur_peer;
		c->cur_peer += c->stride;
		if (c->cur_peer >= opt.peers)
			c->cur_peer = c->first_peer;
		struct peer *pe = &g_peers[p];
		unsigned k = pe->next_target;
		pe->next_target = (k + 1) % PUB_FANOUT;
		unsigned to = (p + 1 + k) % opt.peers;
		if (to == p)
			to = (to + 1) % opt.peers;
		char from_id[16], to_id[16];
		peer_id(from_id, sizeof from_id, p);
		peer_id(to_id, sizeof to_id, to);
		/* CONTRACT epoch rule 2: a higher epoch purges the pair's older
		 * messages, so every recipient's mailbox stays <= PUB_FANOUT. */
		pe->epoch++;
		ok = build_publish(c, from_id, to_id, pe->epoch, "candidate",
				   g_filler, opt.payload_bytes);
		break;
	}
	case CK_WAITER:
		ok = build_poll(c);
		break;
	case CK_WPUB:
	default:
		return; /* driven by the wake timer */
	}
	if (!ok) {
		w->st.parse_err++;
		conn_close(c, now);
		return;
	}
	c->state = CS_BUSY;
	c->t_sent = mono_ns();
	if (conn_flush(c, now) && c->wt)
		c->wt->polling = true;
}

/* A poll answer: record wake latencies, remember the cursor. */
static void handle_poll_answer(struct conn *c, const struct response *rsp, uint64_t now)
{
	struct worker *w = c->w;
	struct waiter *wt = c->wt;
	w->st.polls++;
	json_error_t jerr;
	json_t *j = json_loadb(rsp->body, rsp->body_len, 0, &jerr);
	json_t *msgs = j ? json_object_get(j, "messages") : NULL;
	json_t *cur = j ? json_object_get(j, "cursor") : NULL;
	if (!json_is_array(msgs) || (cur && !json_is_string(cur) && !json_is_null(cur))) {
		w->st.bad_poll_body++;
		json_decref(j);
		return;
	}
	if (json_is_string(cur)) {
		const char *s = json_string_value(cur);
		size_t l = json_string_length(cur);
		if (l <= CURSOR_MAX) {
			memcpy(wt->cursor, s, l);
			wt->cursor[l] = 0;
		} else {
			w->st.bad_poll_body++;
		}
	}
	size_t n = json_array_size(msgs);
	if (!n)
		w->st.poll_empty++;
	size_t rl = strlen(g_runid);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(msgs, i);
		const char *pl = json_string_value(json_object_get(m, "payload"));
		if (!pl) {
			w->st.bad_poll_body++;
			continue;
		}
		/* payload: "<runid>.<worker>.<seq>.<t_ns>." then filler */
		if (strncmp(pl, g_runid, rl) || pl[rl] != '.') {
			w->st.wake_foreign++;
			continue;
		}
		char *e;
		errno = 0;
		unsigned long widx = strtoul(pl + rl + 1, &e, 10);
		uint64_t seq = 0, t = 0;
		bool ok = !errno && *e == '.' && widx == w->idx;
		if (ok) {
			seq = strtoull(e + 1, &e, 10);
			ok = !errno && *e == '.';
		}
		if (ok) {
			t = strtoull(e + 1, &e, 10);
			ok = !errno && *e == '.' && t <= now;
		}
		if (!ok || !wt->expecting || seq != wt->expect_seq) {
			w->st.wake_unexpected++;
			continue;
		}
		wt->expecting = false;
		w->st.wake_recv++;
		if (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_EXIT)
			hist_add(&w->st.wake_lat, now - t);
	}
	json_decref(j);
}

static void handle_response(struct conn *c, struct response *rsp, uint64_t now)
{
	struct worker *w = c->w;
	bool counting = atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_RUN;
	uint64_t lat = now > c->t_sent ? now - c->t_sent : 0;
	switch (c->kind) {
	case CK_PUB:
		if (counting) {
			count_status(&w->st.pub, rsp);
			hist_add(&w->st.pub_lat, lat);
			atomic_store_explicit(&w->done, w->st.pub_lat.n, memory_order_relaxed);
		}
		break;
	case CK_WPUB:
		count_status(&w->st.wake, rsp);
		hist_add(&w->st.wpub_lat, lat);
		break;
	case CK_WAITER:
		c->wt->polling = false;
		count_status(&w->st.wake, rsp);
		if (rsp->status == 200)
			handle_poll_answer(c, rsp, now);
		break;
	}
}

static void conn_readable(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= RBUF_MAX) {
				w->st.parse_err++;
				conn_close(c, now);
				return;
			}
			size_t ncap = c->rcap * 2;
			char *nb = realloc(c->rbuf, ncap);
			if (!nb) {
				conn_fail(c, now);
				return;
			}
			c->rbuf = nb;
			c->rcap = ncap;
		}
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			if (c->rlen < c->rcap)
				break; /* drained what the kernel had */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == 0)
			w->st.closed_by_server++;
		else
			w->st.io_err++;
		conn_close(c, now);
		return;
	}
	if (c->state != CS_BUSY) {
		/* nothing was asked: unsolicited bytes */
		w->st.parse_err++;
		conn_close(c, now);
		return;
	}
	struct response rsp;
	int r = parse_response(c->rbuf, c->rlen, &rsp);
	if (r == PARSE_MORE)
		return;
	if (r == PARSE_ERR || rsp.consumed != c->rlen) {
		/* malformed, or extra bytes although we never pipeline */
		w->st.parse_err++;
		conn_close(c, now);
		return;
	}
	/* a fresh clock: the batch's now lags by the events before this one */
	now = mono_ns();
	handle_response(c, &rsp, now);
	c->rlen = 0;
	c->state = CS_IDLE;
	if (rsp.close) {
		conn_close(c, now);
		c->retry_at = now; /* reconnect right away */
		return;
	}
	conn_send_next(c, now);
	if (c->kind != CK_PUB && w->wake_owed)
		wake_send_owed(w, now);
}

static void conn_event(struct conn *c, uint32_t ev, uint64_t now)
{
	if (c->state == CS_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err ||
		    (ev & (EPOLLERR | EPOLLHUP))) {
			c->w->st.connect_err++;
			conn_close(c, now);
			return;
		}
		if (!(ev & EPOLLOUT))
			return;
		c->state = CS_IDLE;
		ep_set(c, EPOLLIN | EPOLLRDHUP);
		conn_send_next(c, now);
		return;
	}
	if ((ev & EPOLLOUT) && c->woff < c->wlen) {
		if (!conn_flush(c, now))
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn_readable(c, now);
}

/* Wake publisher: each timer tick owes one publish to a waiter whose
 * poll is outstanding and who is not already expecting a message. Ticks
 * that find no idle publisher or waiting peer stay owed (up to
 * WAKE_OWED_MAX) and are paid when a publisher or waiter frees up. */
static void wake_send_owed(struct worker *w, uint64_t now)
{
	if (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_RUN) {
		w->wake_owed = 0;
		return;
	}
	while (w->wake_owed) {
		struct conn *pc = NULL;
		for (unsigned i = 0; i < w->nwpubs; i++)
			if (w->wpubs[i]->state == CS_IDLE) {
				pc = w->wpubs[i];
				break;
			}
		struct waiter *wt = NULL;
		for (unsigned i = 0; pc && i < w->nwaiters; i++) {
			unsigned k = (w->arm_cursor + i) % w->nwaiters;
			if (w->waiters[k].polling && !w->waiters[k].expecting) {
				wt = &w->waiters[k];
				w->arm_cursor = (k + 1) % w->nwaiters;
				break;
			}
		}
		if (!pc || !wt)
			return;
		w->wake_owed--;
		char from[PEER_ID_MAX + 1], payload[MAX_PAYLOAD + 96];
		snprintf(from, sizeof from, "s%s-%u-%u", g_runid, w->idx, w->next_sender);
		w->next_sender = (w->next_sender + 1) % w->nsenders;
		uint64_t seq = ++w->wake_seq, ts = mono_ns();
		struct sbuf b = {payload, 0, sizeof payload, false};
		sb_str(&b, g_runid);
		sb_str(&b, ".");
		sb_u64(&b, w->idx);
		sb_str(&b, ".");
		sb_u64(&b, seq);
		sb_str(&b, ".");
		sb_u64(&b, ts);
		sb_str(&b, ".");
		sb_mem(&b, g_filler, opt.payload_bytes);
		/* All wake messages of a pair share the run's epoch (rule 3:
		 * equal epochs queue), so no wake is ever purged. */
		if (b.overflow || !build_publish(pc, from, wt->id, g_epoch_base, "offer",
						 payload, b.len)) {
			w->st.parse_err++;
			continue;
		}
		wt->expecting = true;
		wt->expect_seq = seq;
		w->st.wake_sent++;
		pc->state = CS_BUSY;
		pc->t_sent = ts;
		conn_flush(pc, now);
	}
}

static void wake_tick(struct worker *w, uint64_t ticks, uint64_t now)
{
	w->wake_owed += ticks;
	if (w->wake_owed > WAKE_OWED_MAX) {
		w->st.wake_skipped += w->wake_owed - WAKE_OWED_MAX;
		w->wake_owed = WAKE_OWED_MAX;
	}
	wake_send_owed(w, now);
}

static void housekeep(struct worker *w, uint64_t now)
{
	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		switch (c->state) {
		case CS_DOWN:
			if (now >= c->retry_at)
				conn_connect(c, now);
			break;
		case CS_CONNECTING:
			if (now > c->t_sent && now - c->t_sent > REQ_TIMEOUT_NS) {
				w->st.connect_err++;
				conn_close(c, now);
			}
			break;
		case CS_BUSY:
			/* t_sent may be newer than this loop's now */
			if (now > c->t_sent &&
			    now - c->t_sent > (c->kind == CK_WAITER ? POLL_TIMEOUT_NS : REQ_TIMEOUT_NS)) {
				w->st.timeouts++;
				conn_close(c, now);
			}
			break;
		case CS_IDLE:
			conn_send_next(c, now);
			break;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	uint64_t now = mono_ns();
	for (unsigned i = 0; i < w->nconns; i++)
		conn_connect(&w->conns[i], now);
	w->next_housekeep = now + HOUSEKEEP_NS;
	while (atomic_load_explicit(&g_phase, memory_order_relaxed) != PH_EXIT) {
		int n = epoll_wait(w->epfd, evs, 256, 10);
		now = mono_ns();
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t ticks = 0;
				if (read(w->tfd, &ticks, sizeof ticks) == sizeof ticks)
					wake_tick(w, ticks, now);
				continue;
			}
			conn_event(evs[i].data.ptr, evs[i].events, now);
		}
		if (now >= w->next_housekeep) {
			housekeep(w, now);
			w->next_housekeep = now + HOUSEKEEP_NS;
		}
	}
	for (unsigned i = 0; i < w->nwaiters; i++)
		if (w->waiters[i].expecting)
			w->st.wake_lost++;
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].fd >= 0)
			close(w->conns[i].fd);
	return NULL;
}

/* ---- setup ---------------------------------------------------------- */

static struct conn *worker_add_conn(struct worker *w, enum conn_kind kind,
				    const struct target *tg)
{
	struct conn *c = &w->conns[w->nconns++];
	memset(c, 0, sizeof *c);
	c->w = w;
	c->kind = kind;
	c->fd = -1;
	c->tg = tg;
	c->state = CS_DOWN;
	c->wbuf = malloc(WBUF_CAP);
	c->rbuf = malloc(RBUF_INIT);
	c->rcap = RBUF_INIT;
	if (!c->wbuf || !c->rbuf) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	return c;
}

static bool do_publish(void) { return opt.mode != MODE_WAKE; }
static bool do_wake(void) { return opt.mode != MODE_PUBLISH; }

static int setup_workers(void)
{
	unsigned T = opt.threads;
	g_workers = calloc(T, sizeof *g_workers);
	g_peers = calloc(opt.peers, sizeof *g_peers);
	if (!g_workers || !g_peers)
		return -1;
	/* Start above any epoch an earlier run could have used for the same
	 * pair: unix microseconds grow far faster than 1 per publish. */
	for (unsigned p = 0; p < opt.peers; p++)
		g_peers[p].epoch = g_epoch_base;
	unsigned C = do_publish() ? opt.connections : 0;
	unsigned K = do_wake() ? opt.waiters : 0;
	for (unsigned t = 0; t < T; t++) {
		struct worker *w = &g_workers[t];
		w->idx = t;
		w->tfd = -1;
		if (rng_seed(&w->rng) < 0)
			return -1;
		unsigned mypub = C / T + (t < C % T), mywait = K / T + (t < K % T);
		unsigned mywpub = K ? WPUB_PER_THREAD : 0;
		w->conns = calloc(mypub + mywait + mywpub + 1, sizeof *w->conns);
		w->waiters = calloc(mywait + 1, sizeof *w->waiters);
		w->wpubs = calloc(mywpub + 1, sizeof *w->wpubs);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (!w->conns || !w->waiters || !w->wpubs || w->epfd < 0)
			return -1;
		/* throughput publishers: global connection index g = t + i*T owns
		 * sender peers g, g+C, g+2C, ... */
		for (unsigned i = 0; i < mypub; i++) {
			unsigned g = t + i * T;
			struct conn *c = worker_add_conn(w, CK_PUB, &g_targets[g % g_ntargets]);
			c->first_peer = c->cur_peer = g;
			c->stride = C;
		}
		for (unsigned i = 0; i < mywait; i++) {
			unsigned g = t + i * T;
			struct waiter *wt = &w->waiters[w->nwaiters++];
			snprintf(wt->id, sizeof wt->id, "w%s-%u", g_runid, g);
			struct conn *c = worker_add_conn(w, CK_WAITER, &g_targets[g % g_ntargets]);
			c->wt = wt;
		}
		for (unsigned i = 0; i < mywpub; i++) {
			/* publish through the "next" coordinator so that, with
			 * several URLs, wakes cross coordinators */
			unsigned g = t + i * T + 1;
			w->wpubs[w->nwpubs++] = worker_add_conn(w, CK_WPUB, &g_targets[g % g_ntargets]);
		}
		if (K) {
			uint64_t per_thread = opt.wake_rate / T + (t < opt.wake_rate % T);
			if (!per_thread)
				per_thread = 1;
			w->nsenders = (unsigned)(per_thread / WAKE_SENDER_RATE + 1);
			w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
			if (w->tfd < 0)
				return -1;
			uint64_t iv = 1000000000ull / per_thread;
			struct itimerspec its = {
				.it_interval = {(time_t)(iv / 1000000000ull), (long)(iv % 1000000000ull)},
				/* let connections and first polls settle before waking */
				.it_value = {0, 200000000},
			};
			struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
			if (timerfd_settime(w->tfd, 0, &its, NULL) < 0 ||
			    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &e) < 0)
				return -1;
		}
	}
	return 0;
}

static void workers_free(void)
{
	for (unsigned t = 0; g_workers && t < opt.threads; t++) {
		struct worker *w = &g_workers[t];
		for (unsigned i = 0; w->conns && i < w->nconns; i++) {
			free(w->conns[i].wbuf);
			free(w->conns[i].rbuf);
		}
		free(w->conns);
		free(w->waiters);
		free(w->wpubs);
		if (w->epfd > 0)
			close(w->epfd);
		if (w->tfd >= 0)
			close(w->tfd);
	}
	free(g_workers);
	free(g_peers);
	g_workers = NULL;
	g_peers = NULL;
}

/* ---- reporting ------------------------------------------------------ */

static void print_counts(const char *what, const struct counts *c)
{
	printf("  %s statuses:", what);
	bool any = false;
	for (unsigned s = 0; s < 600; s++)
		if (c->status[s]) {
			printf(" %u=%" PRIu64, s, c->status[s]);
			any = true;
		}
	if (!any)
		printf(" none");
	printf("\n");
	bool errs = false;
	for (unsigned i = 0; i <= NERR; i++)
		if (c->err[i]) {
			if (!errs)
				printf("  %s error codes:", what);
			errs = true;
			printf(" %s=%" PRIu64, i < NERR ? ERR_CODES[i] : "other", c->err[i]);
		}
	if (errs)
		printf("\n");
}

static uint64_t count_non2xx(const struct counts *c)
{
	uint64_t n = 0;
	for (unsigned s = 0; s < 600; s++)
		if (s < 200 || s >= 300)
			n += c->status[s];
	return n;
}

static void usage_exit(const char *name, const char *msg)
{
	fprintf(stderr, "loadgen: --%s: %s\n", name, msg);
	exit(2);
}

static double cpu_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* One-off cost of the client-side cryptography per publish, so a reader
 * can tell how much of the shared CPU the load generator itself used. */
static double crypto_cost_us(struct worker *w)
{
	char body[512], auth[AUTH_HEADER_MAX], psig[SIG_HEX_LEN + 1];
	memset(body, 'x', sizeof body);
	enum { N = 2000 };
	uint64_t t0 = mono_ns();
	for (int i = 0; i < N; i++) {
		psig_compute(g_keys.e2e, "p000001", "p000002", (uint64_t)i + 1, "candidate",
			     g_filler, opt.payload_bytes, psig);
		sign(w, auth, sizeof auth, "p000001", "POST", "/v1/publish", body,
		     200 + opt.payload_bytes);
	}
	return (double)(mono_ns() - t0) / N / 1000.0;
}

int main(int argc, char **argv)
{
	const struct opt table[] = {
		{"url", "URL[,URL...]", NULL, "coordinator base URLs (loopback only); connections round-robin across them", opt_parse_string, &opt.url, true},
		{"secret-file", "FILE", NULL, "cluster root secret (CONTRACT section 3)", opt_parse_string, &opt.secret_file, true},
		{"threads", "T", "2", "client threads, one epoll loop each", parse_threads, &opt.threads, false},
		{"connections", "C", "50", "keep-alive connections doing back-to-back publishes (publish, mixed)", parse_connections, &opt.connections, false},
		{"duration", "S", "10", "measured seconds", parse_duration, &opt.duration, false},
		{"peers", "N", "1000", "simulated sender peers (publish, mixed); each has 4 recipients", parse_peers, &opt.peers, false},
		{"mode", "M", "publish", "publish, wake or mixed", parse_mode, &opt.mode, false},
		{"waiters", "K", "100", "peers holding long-polls (wake, mixed)", parse_waiters, &opt.waiters, false},
		{"wake-rate", "R", "1000", "wake publishes per second to waiting peers (wake, mixed)", parse_rate, &opt.wake_rate, false},
		{"payload-bytes", "B", "64", "filler bytes in each payload", parse_payload, &opt.payload_bytes, false},
		{"nonce", "fast|lib", "fast", "fast: PRNG nonce + auth_compute_sig(); lib: auth_build_header()", parse_nonce, &opt.nonce_lib, false},
		{"psig", "real|fixed", "real", "real: psig_compute() per publish; fixed: constant psig (the coordinator does not check it)", parse_psig, &opt.psig_fixed, false},
	};
	enum opts_result r = opts_parse(table, sizeof table / sizeof table[0], argc, argv, 1,
					"loadgen",
					"--url URL --secret-file FILE [options]\n"
					"Signaling load generator: authenticated publish and long-poll load\n"
					"against coordinators on loopback; prints a final RESULT line.");
	if (r == OPTS_EXIT_OK)
		return 0;
	if (r != OPTS_OK)
		return 2;
	char err[256];
	if (parse_urls(opt.url, err, sizeof err) < 0)
		usage_exit("url", err);
	if (do_publish() && opt.peers < opt.connections)
		usage_exit("peers", "must be at least --connections (each connection owns its senders)");
	if (opt.connections < opt.threads && do_publish())
		usage_exit("connections", "must be at least --threads");
	if (do_wake() && opt.waiters < opt.threads)
		usage_exit("waiters", "must be at least --threads");
	if (keys_load(opt.secret_file, &g_keys, err, sizeof err) != 0) {
		fprintf(stderr, "loadgen: --secret-file: %s\n", err);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Backstop: whatever happens, the process ends. */
	alarm(opt.duration + HARD_DEADLINE_EXTRA_S);

	struct rng seed;
	if (rng_seed(&seed) < 0) {
		fprintf(stderr, "loadgen: getrandom: %s\n", strerror(errno));
		return 1;
	}
	snprintf(g_runid, sizeof g_runid, "%08" PRIx64, rng_next(&seed) & 0xffffffffu);
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	g_epoch_base = (uint64_t)rt.tv_sec * 1000000ull + (uint64_t)rt.tv_nsec / 1000;
	for (unsigned i = 0; i < MAX_PAYLOAD; i++)
		g_filler[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];

	if (setup_workers() < 0) {
		fprintf(stderr, "loadgen: setup failed: %s\n", strerror(errno));
		return 1;
	}
	double crypto_us = crypto_cost_us(&g_workers[0]);

	printf("loadgen: mode=%s threads=%u duration=%us urls=",
	       opt.mode == MODE_PUBLISH ? "publish" : opt.mode == MODE_WAKE ? "wake" : "mixed",
	       opt.threads, opt.duration);
	for (unsigned i = 0; i < g_ntargets; i++)
		printf("%s%s", i ? "," : "", g_targets[i].url);
	printf("\n");
	if (do_publish())
		printf("  publish: %u connections, %u sender peers x %d recipients, payload %u B, ~%.0f publishes/s per peer at 50k/s\n",
		       opt.connections, opt.peers, PUB_FANOUT, opt.payload_bytes,
		       50000.0 / opt.peers);
	if (do_wake())
		printf("  wake: %u long-polling peers (wait=%d), %u wake publishes/s over %u connections, run id %s\n",
		       opt.waiters, POLL_WAIT_S, opt.wake_rate, WPUB_PER_THREAD * opt.threads, g_runid);
	printf("  client signing cost: %.2f us per publish (nonce=%s, psig=%s)\n", crypto_us,
	       opt.nonce_lib ? "lib" : "fast", opt.psig_fixed ? "fixed" : "real");
	fflush(stdout);

	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t t0 = mono_ns();
	for (unsigned t = 0; t < opt.threads; t++)
		if (pthread_create(&g_workers[t].th, NULL, worker_main, &g_workers[t])) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			atomic_store(&g_phase, PH_EXIT);
			return 1;
		}
	uint64_t prev = 0;
	for (unsigned s = 1; s <= opt.duration; s++) {
		uint64_t until = t0 + (uint64_t)s * 1000000000ull;
		for (uint64_t now = mono_ns(); now < until; now = mono_ns()) {
			struct timespec ts = {(time_t)((until - now) / 1000000000ull),
					      (long)((until - now) % 1000000000ull)};
			nanosleep(&ts, NULL);
		}
		if (do_publish()) {
			uint64_t tot = 0;
			for (unsigned t = 0; t < opt.threads; t++)
				tot += atomic_load_explicit(&g_workers[t].done, memory_order_relaxed);
			printf("  %3us %9" PRIu64 " publishes answered/s\n", s, tot - prev);
			fflush(stdout);
			prev = tot;
		}
	}
	uint64_t t1 = mono_ns();
	if (do_wake()) {
		atomic_store(&g_phase, PH_DRAIN);
		struct timespec ts = {(time_t)(WAKE_GRACE_NS / 1000000000ull),
				      (long)(WAKE_GRACE_NS % 1000000000ull)};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	atomic_store(&g_phase, PH_EXIT);
	for (unsigned t = 0; t < opt.threads; t++)
		pthread_join(g_workers[t].th, NULL);
	getrusage(RUSAGE_SELF, &ru1);

	struct stats *tot = calloc(1, sizeof *tot);
	if (!tot)
		return 1;
	for (unsigned t = 0; t < opt.threads; t++) {
		struct stats *s = &g_workers[t].st;
		for (unsigned i = 0; i < 600; i++) {
			tot->pub.status[i] += s->pub.status[i];
			tot->wake.status[i] += s->wake.status[i];
		}
		for (unsigned i = 0; i <= NERR; i++) {
			tot->pub.err[i] += s->pub.err[i];
			tot->wake.err[i] += s->wake.err[i];
		}
		tot->connect_err += s->connect_err;
		tot->io_err += s->io_err;
		tot->parse_err += s->parse_err;
		tot->timeouts += s->timeouts;
		tot->closed_by_server += s->closed_by_server;
		tot->wake_sent += s->wake_sent;
		tot->wake_recv += s->wake_recv;
		tot->wake_unexpected += s->wake_unexpected;
		tot->wake_foreign += s->wake_foreign;
		tot->wake_skipped += s->wake_skipped;
		tot->wake_lost += s->wake_lost;
		tot->polls += s->polls;
		tot->poll_empty += s->poll_empty;
		tot->bad_poll_body += s->bad_poll_body;
		hist_merge(&tot->pub_lat, &s->pub_lat);
		hist_merge(&tot->wake_lat, &s->wake_lat);
		hist_merge(&tot->wpub_lat, &s->wpub_lat);
	}
	double secs = (double)(t1 - t0) / 1e9;
	double ucpu = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime);
	double scpu = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime);
	uint64_t transport = tot->connect_err + tot->io_err + tot->parse_err + tot->timeouts;

	printf("results over %.2f s:\n", secs);
	uint64_t ok202 = tot->pub.status[202], pub_errors = count_non2xx(&tot->pub);
	double pps = 0;
	if (do_publish()) {
		pps = (double)ok202 / secs;
		printf("  publish: %" PRIu64 " answered, %" PRIu64 " accepted (202) = %.1f publishes/s, %.1f answers/s\n",
		       tot->pub_lat.n, ok202, pps, (double)tot->pub_lat.n / secs);
		print_counts("publish", &tot->pub);
		printf("  publish latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
		       hist_pct_ms(&tot->pub_lat, 50), hist_pct_ms(&tot->pub_lat, 90),
		       hist_pct_ms(&tot->pub_lat, 99), hist_pct_ms(&tot->pub_lat, 99.9),
		       (double)tot->pub_lat.max / 1e6,
		       tot->pub_lat.n ? (double)tot->pub_lat.sum / (double)tot->pub_lat.n / 1e6 : 0.0);
	}
	uint64_t wake_errors = count_non2xx(&tot->wake);
	if (do_wake()) {
		printf("  wake: %" PRIu64 " sent, %" PRIu64 " received, %" PRIu64 " lost, %" PRIu64 " unexpected, %" PRIu64 " foreign, %" PRIu64 " ticks skipped (backlog of owed wakes full)\n",
		       tot->wake_sent, tot->wake_recv, tot->wake_lost, tot->wake_unexpected,
		       tot->wake_foreign, tot->wake_skipped);
		printf("  wake latency ms (publish sent -> poll answer received): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
		       hist_pct_ms(&tot->wake_lat, 50), hist_pct_ms(&tot->wake_lat, 90),
		       hist_pct_ms(&tot->wake_lat, 99), (double)tot->wake_lat.max / 1e6);
		printf("  wake publish latency ms: p50 %.3f  p99 %.3f; polls answered %" PRIu64 " (%" PRIu64 " empty, %" PRIu64 " bad bodies)\n",
		       hist_pct_ms(&tot->wpub_lat, 50), hist_pct_ms(&tot->wpub_lat, 99),
		       tot->polls, tot->poll_empty, tot->bad_poll_body);
		print_counts("wake", &tot->wake);
	}
	printf("  transport: connect errors %" PRIu64 ", io errors %" PRIu64 ", parse errors %" PRIu64 ", timeouts %" PRIu64 ", closed by server %" PRIu64 "\n",
	       tot->connect_err, tot->io_err, tot->parse_err, tot->timeouts, tot->closed_by_server);
	printf("  loadgen CPU: user %.2f s, sys %.2f s (%.0f%% of one core); signing %.2f us/publish\n",
	       ucpu, scpu, 100.0 * (ucpu + scpu) / secs, crypto_us);

	const char *mname = opt.mode == MODE_PUBLISH ? "publish" : opt.mode == MODE_WAKE ? "wake" : "mixed";
	printf("RESULT mode=%s", mname);
	if (do_publish())
		printf(" publishes_per_s=%.1f p50_ms=%.3f p99_ms=%.3f",
		       pps, hist_pct_ms(&tot->pub_lat, 50), hist_pct_ms(&tot->pub_lat, 99));
	if (do_wake())
		printf(" wakes=%" PRIu64 " wake_p50_ms=%.3f wake_p99_ms=%.3f wake_max_ms=%.3f wake_lost=%" PRIu64,
		       tot->wake_recv, hist_pct_ms(&tot->wake_lat, 50),
		       hist_pct_ms(&tot->wake_lat, 99), (double)tot->wake_lat.max / 1e6,
		       tot->wake_lost);
	printf(" errors=%" PRIu64 " transport_errors=%" PRIu64 " duration_s=%.2f threads=%u connections=%u client_cpu_pct=%.0f\n",
	       pub_errors + wake_errors, transport, secs, opt.threads,
	       do_publish() ? opt.connections : 0, 100.0 * (ucpu + scpu) / secs);
	fflush(stdout);
	bool any_ok = (do_publish() && ok202) || (do_wake() && tot->wake_recv);
	free(tot);
	workers_free(); /* opt.url/secret_file point into argv or environ */
	return any_ok ? 0 : 1;
}
