/* A tiny blocking HTTP/1.1 client for the test tools (meshreq and the
 * conformance program): one request per connection (Connection: close),
 * every wait bounded by a timeout, every answer parsed with explicit
 * bounds. Also builds the signed MESH-HMAC-SHA256 Authorization value
 * through signaling/auth.h. It must not grow retries, redirects, TLS or
 * any policy: callers decide what an answer means. */
#ifndef MESH_TESTS_HTTPC_H
#define MESH_TESTS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signaling/auth.h"
#include "signaling/keys.h"

/* Upper bound of an answer we accept: 256 messages of 16384 bytes, each
 * possibly escaped six-fold by JSON, plus slack. */
#define HTTPC_MAX_RESPONSE (32u * 1024u * 1024u)
#define HTTPC_MAX_HEADERS 16384u
#define HTTPC_HOST_MAX 256
#define HTTPC_PATH_MAX 4096

struct http_url {
	char host[HTTPC_HOST_MAX]; /* without IPv6 brackets */
	char port[8];
	char path[HTTPC_PATH_MAX]; /* path and query, "/" when absent */
	char prefix[HTTPC_PATH_MAX]; /* path without a trailing '/', "" for "/" */
};

/* Parses "http://host[:port][/path[?query]]"; port defaults to 80.
 * Returns 0 or -1 with a reason in err. */
int http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen);

struct http_req {
	const char *method;
	const char *host;
	const char *port;
	const char *path_query;     /* sent verbatim on the request line */
	const char *const *headers; /* complete "Name: value" lines, no CRLF */
	size_t nheaders;
	const void *body;           /* NULL: no body and no Content-Length */
	size_t body_len;
	int timeout_ms;             /* for connect, each send and each receive */
	bool conn_close;            /* send "Connection: close" (the connection
				     * is closed after one answer either way) */
	bool chunked;               /* send the body with Transfer-Encoding:
				     * chunked instead of Content-Length */
};

struct http_resp {
	int status;
	char *head;       /* status line and headers, NUL-terminated */
	size_t head_len;
	char *body;       /* NUL-terminated (the NUL is not counted) */
	size_t body_len;
};

/* An in-flight exchange: request sent, answer not yet read. Lets a test
 * park a long poll, do something else, then time the answer. */
struct http_conn {
	int fd;
	int timeout_ms;
};

/* Connects and sends the whole request. On a send error (the server may
 * answer early, e.g. 413, and close) the connection stays usable for
 * http_recv. Returns 0 or -1 with a reason in err. */
int http_send(const struct http_req *rq, struct http_conn *c, char *err, size_t errlen);

/* Reads and parses one answer (Content-Length, chunked or until close),
 * then closes the connection. Returns 0 or -1 with a reason in err. */
int http_recv(struct http_conn *c, struct http_resp *rs, char *err, size_t errlen);

/* Closes an exchange without reading it. */
void http_abort(struct http_conn *c);

/* http_send then http_recv. */
int http_do(const struct http_req *rq, struct http_resp *rs, char *err, size_t errlen);

void http_resp_free(struct http_resp *rs);

/* Copies the first header named name (case-insensitive) into out,
 * trimmed. Returns true when present (out may be truncated to cap-1). */
bool http_resp_header(const struct http_resp *rs, const char *name, char *out, size_t cap);

/* Authorization value "MESH-HMAC-SHA256 peer=..,ts=..,nonce=..,sig=..".
 * nonce: 32 hex to use verbatim, or NULL for a fresh random one.
 * Returns the length (< cap) or -1. */
int http_auth_value(char *out, size_t cap, const uint8_t signal_key[KEY_LEN],
		    const char *peer, int64_t ts, const char *nonce,
		    const char *method, const char *path_query,
		    const void *body, size_t body_len);

/* A fresh random 32-hex nonce (OpenSSL RAND_bytes). */
void http_random_nonce(char out[NONCE_HEX_LEN + 1]);

/* Monotonic milliseconds. */
int64_t http_now_ms(void);

#endif
