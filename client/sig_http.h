/* A small HTTP/1.1 client for the signaling client, on libre's TCP and
 * timers: keep-alive connection pools per coordinator, one deadline per
 * request, and a response parser that is a pure function over bytes (so it
 * can be fuzzed) with explicit bounds on the head, the header count and
 * the body. libre 1.1's own http_request() has fixed 30 s connect and
 * 60 s receive timeouts, no body bound below 512 KiB and no way to cancel
 * a connect early, which a failover measured in seconds cannot use.
 * Plain http:// only; no redirects, no retries beyond one transparent
 * resend on a kept-alive connection the server had already closed. */
#ifndef MESH_CLIENT_SIG_HTTP_H
#define MESH_CLIENT_SIG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libre's single headers, not re.h: re.h pulls in re_json.h, whose enum
 * clashes with jansson's (sigclient.c uses both). */
#include <re_types.h>
#include <re_fmt.h>
#include <re_mem.h>
#include <re_mbuf.h>
#include <re_list.h>
#include <re_sa.h>
#include <re_tmr.h>
#include <re_tcp.h>
#include <re_sys.h>

enum {
	SHTTP_HEAD_MAX    = 16384, /* status line and headers */
	SHTTP_HEADERS_MAX = 48,    /* header lines in one answer */
	SHTTP_CHUNK_LINE_MAX = 256, /* a chunk-size line with extensions */
	SHTTP_HOST_MAX    = 256,
	SHTTP_PATH_MAX    = 1024,
};

/* --- The response parser (pure: no I/O, no clocks) ----------------------- */

struct shttp_hdr {
	const char *name; /* into the parser's head buffer, not NUL-terminated */
	size_t nlen;
	const char *val;  /* trimmed */
	size_t vlen;
};

enum shttp_pstate {
	SHTTP_P_HEAD = 0,
	SHTTP_P_BODY_LEN,    /* Content-Length */
	SHTTP_P_CHUNK_SIZE,
	SHTTP_P_CHUNK_DATA,
	SHTTP_P_CHUNK_CRLF,
	SHTTP_P_TRAILER,
	SHTTP_P_BODY_EOF,    /* delimited by the connection's end */
	SHTTP_P_DONE,
};

struct shttp_parser {
	size_t body_max;       /* a larger body is EMSGSIZE */
	bool no_body;          /* answer to HEAD */
	enum shttp_pstate state;
	char head[SHTTP_HEAD_MAX + 1];
	size_t head_len;
	int status;            /* 100..599 */
	int minor;             /* HTTP/1.<minor> */
	bool keep_alive;       /* the connection may carry another request */
	struct shttp_hdr hdrs[SHTTP_HEADERS_MAX];
	size_t nhdrs;
	uint64_t left;         /* bytes left in the body or current chunk */
	char line[SHTTP_CHUNK_LINE_MAX + 1];
	size_t line_len;
	uint8_t *body;         /* malloc'd, NUL-terminated (not counted) */
	size_t body_len, body_cap;
};

/* Returns of shttp_parse(): */
#define SHTTP_MORE 0 /* give it more bytes */
#define SHTTP_DONE 1 /* one complete answer; *used says how much was read */

void shttp_parser_init(struct shttp_parser *p, size_t body_max, bool no_body);
void shttp_parser_free(struct shttp_parser *p); /* frees the body */

/* Feeds len bytes. Returns SHTTP_MORE (all consumed), SHTTP_DONE (*used
 * bytes consumed; the rest belongs to nobody) or a negative errno:
 * -EBADMSG for a malformed answer, -EMSGSIZE when a bound is exceeded,
 * -ENOMEM. After DONE or an error the parser must be re-initialised. */
int shttp_parse(struct shttp_parser *p, const uint8_t *data, size_t len,
		size_t *used);
/* The connection ended: SHTTP_DONE when the body was delimited by the
 * end, else -EBADMSG (a truncated answer). */
int shttp_parse_eof(struct shttp_parser *p);

/* First header with this name (case-insensitive), or NULL. */
const struct shttp_hdr *shttp_header(const struct shttp_parser *p,
				     const char *name);

/* --- URLs ---------------------------------------------------------------- */

struct shttp_url {
	char host[SHTTP_HOST_MAX];   /* without IPv6 brackets */
	uint16_t port;               /* 80 when absent */
	char prefix[SHTTP_PATH_MAX]; /* path without a trailing '/', "" for none */
	char hostport[SHTTP_HOST_MAX + 8]; /* the Host header value */
};

/* "http://host[:port][/prefix]"; no query, fragment or userinfo.
 * Returns 0 or EINVAL (ENOTSUP for https). */
int shttp_url_parse(const char *url, struct shttp_url *u);

/* --- Requests ------------------------------------------------------------ */

struct shttp_pool;
struct shttp_req;

struct shttp_spec {
	const char *method;      /* "GET", "POST" */
	const char *path;        /* path and query exactly as sent */
	const char *headers;     /* extra lines, each ending in CRLF, or NULL */
	const void *body;        /* NULL: none */
	size_t body_len;
	uint32_t timeout_ms;     /* whole exchange, from the call */
	uint32_t connect_ms;     /* a new connection must be up within this */
	size_t body_max;         /* bound of the answer's body */
};

struct shttp_resp {
	int status;
	const struct shttp_parser *p; /* headers: shttp_header(resp->p, ..) */
	const char *body;        /* NUL-terminated */
	size_t body_len;
};

/* err 0: resp is an answer (any status). Otherwise resp is NULL and err
 * says why: ETIMEDOUT, ECONNREFUSED, ECONNRESET, EBADMSG, EMSGSIZE... The
 * handler may free the pool and anything else; the request is gone. */
typedef void (shttp_resp_h)(int err, const struct shttp_resp *resp,
			    void *arg);

/* Connections to one address; at most max_conns at a time (requests
 * beyond wait in line), idle ones kept for idle_ms. Free with mem_deref:
 * pending requests end without their handler being called. */
int shttp_pool_alloc(struct shttp_pool **pp, const struct sa *addr,
		     const char *host_hdr, unsigned max_conns,
		     uint32_t idle_ms);

/* Starts a request. *reqp holds it until the handler runs (it is then
 * cleared first); mem_deref(*reqp) cancels without calling the handler. */
int shttp_request(struct shttp_req **reqp, struct shttp_pool *pool,
		  const struct shttp_spec *spec, shttp_resp_h *h, void *arg);

/* Drops every idle kept-alive connection (a coordinator stopped
 * answering: its idle connections are suspect too). */
void shttp_pool_flush_idle(struct shttp_pool *pool);

#endif
