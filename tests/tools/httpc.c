/* A tiny blocking HTTP/1.1 client for the test tools: non-blocking
 * sockets driven by poll() so that every wait has a deadline, and a
 * response parser that never reads past what it has received. It must
 * not interpret answers (status codes, JSON): that is the callers' job. */
#include "tests/tools/httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, ncap;
	char *np;

	if (extra > SIZE_MAX - b->len - 1)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 4096;
	while (ncap < need)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np)
		return -1;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen)
{
	const char *p, *hs, *he, *ps;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7) != 0) {
		seterr(err, errlen, "URL must start with http://: %s", url);
		return -1;
	}
	p = url + 7;
	if (*p == '[') {
		hs = p + 1;
		he = strchr(hs, ']');
		if (!he) {
			seterr(err, errlen, "unterminated IPv6 address in %s", url);
			return -1;
		}
		p = he + 1;
	} else {
		hs = p;
		he = hs + strcspn(hs, ":/?");
		p = he;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= sizeof(u->host)) {
		seterr(err, errlen, "bad host in %s", url);
		return -1;
	}
	memcpy(u->host, hs, n);
	if (*p == ':') {
		char *end;
		unsigned long port;

		p++;
		if (*p < '0' || *p > '9') {
			seterr(err, errlen, "bad port in %s", url);
			return -1;
		}
		errno = 0;
		port = strtoul(p, &end, 10);
		if (errno || port == 0 || port > 65535 ||
		    (*end && *end != '/' && *end != '?')) {
			seterr(err, errlen, "bad port in %s", url);
			return -1;
		}
		snprintf(u->port, sizeof(u->port), "%lu", port);
		p = end;
	} else {
		snprintf(u->port, sizeof(u->port), "80");
	}
	if (*p && *p != '/' && *p != '?') {
		seterr(err, errlen, "bad URL %s", url);
		return -1;
	}
	ps = p;
	n = strlen(ps);
	if (n + 2 >= sizeof(u->path)) {
		seterr(err, errlen, "URL path too long");
		return -1;
	}
	if (*ps == '?')
		snprintf(u->path, sizeof(u->path), "/%s", ps);
	else if (*ps == 0)
		snprintf(u->path, sizeof(u->path), "/");
	else
		snprintf(u->path, sizeof(u->path), "%s", ps);
	/* The prefix is the path without query and trailing slashes, so that
	 * prefix + "/v1/poll" works for "http://h:p" and "http://h:p/". */
	n = strcspn(u->path, "?");
	while (n > 0 && u->path[n - 1] == '/')
		n--;
	memcpy(u->prefix, u->path, n);
	u->prefix[n] = 0;
	return 0;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - http_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (r > 0)
			return 0;
		if (r == 0)
			continue;
		if (errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *host, const char *port, int64_t deadline,
		      char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	int fd = -1, r, soerr = 0;

	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		seterr(err, errlen, "resolve %s: %s", host, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			soerr = r ? -r : soerr;
		} else {
			soerr = errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		seterr(err, errlen, "connect %s:%s: %s", host, port,
		       strerror(soerr ? soerr : ECONNREFUSED));
	return fd;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
	ssize_t w;
	int r;

	while (len > 0) {
		w = send(fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r = wait_fd(fd, POLLOUT, deadline);
			if (r)
				return r;
			continue;
		}
		return w < 0 ? -errno : -EIO;
	}
	return 0;
}

int http_send(const struct http_req *rq, struct http_conn *c, char *err, size_t errlen)
{
	struct buf h = { 0 };
	int64_t deadline = http_now_ms() + rq->timeout_ms;
	bool v6 = strchr(rq->host, ':') != NULL;
	size_t i;
	int r, n;

	c->fd = -1;
	c->timeout_ms = rq->timeout_ms;
	for (i = 0; i < rq->nheaders; i++) {
		if (strpbrk(rq->headers[i], "\r\n")) {
			seterr(err, errlen, "header contains CR or LF");
			return -1;
		}
	}
	/* Head: request line, Host, Connection, caller's headers, length. */
	for (;;) {
		size_t room = h.cap ? h.cap - h.len : 0;

		if (h.cap == 0) {
			if (buf_reserve(&h, 1024))
				goto nomem;
			continue;
		}
		n = snprintf(h.p + h.len, room, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
			     "%sUser-Agent: mesh-tests/1\r\n",
			     rq->method, rq->path_query, v6 ? "[" : "", rq->host,
			     v6 ? "]" : "", rq->port,
			     rq->conn_close ? "Connection: close\r\n" : "");
		if (n < 0)
			goto nomem;
		if ((size_t)n < room) {
			h.len += (size_t)n;
			break;
		}
		if (buf_reserve(&h, (size_t)n + 1))
			goto nomem;
	}
	for (i = 0; i < rq->nheaders; i++) {
		size_t l = strlen(rq->headers[i]);

		if (buf_reserve(&h, l + 2))
			goto nomem;
		memcpy(h.p + h.len, rq->headers[i], l);
		memcpy(h.p + h.len + l, "\r\n", 2);
		h.len += l + 2;
	}
	if (buf_reserve(&h, 64))
		goto nomem;
	if (rq->body && rq->chunked)
		h.len += (size_t)snprintf(h.p + h.len, 64, "Transfer-Encoding: chunked\r\n");
	else if (rq->body)
		h.len += (size_t)snprintf(h.p + h.len, 64, "Content-Length: %zu\r\n",
					  rq->body_len);
	memcpy(h.p + h.len, "\r\n", 2);
	h.len += 2;

	c->fd = connect_to(rq->host, rq->port, deadline, err, errlen);
	if (c->fd < 0) {
		free(h.p);
		return -1;
	}
	r = send_all(c->fd, h.p, h.len, deadline);
	if (r == 0 && rq->body && rq->chunked) {
		/* Chunks of at most 8 KiB, then the last-chunk line. */
		const char *bp = rq->body;
		size_t left = rq->body_len;
		char line[32];

		while (r == 0 && left > 0) {
			size_t cn = left < 8192 ? left : 8192;
			int ll = snprintf(line, sizeof(line), "%zx\r\n", cn);

			r = send_all(c->fd, line, (size_t)ll, deadline);
			if (r == 0)
				r = send_all(c->fd, bp, cn, deadline);
			if (r == 0)
				r = send_all(c->fd, "\r\n", 2, deadline);
			bp += cn;
			left -= cn;
		}
		if (r == 0)
			r = send_all(c->fd, "0\r\n\r\n", 5, deadline);
	} else if (r == 0 && rq->body && rq->body_len) {
		r = send_all(c->fd, rq->body, rq->body_len, deadline);
	}
	free(h.p);
	if (r == -ETIMEDOUT) {
		seterr(err, errlen, "send timed out");
		http_abort(c);
		return -1;
	}
	/* Other send errors (EPIPE, ECONNRESET) are left for http_recv: the
	 * server may have answered before reading everything. */
	return 0;
nomem:
	free(h.p);
	seterr(err, errlen, "out of memory");
	return -1;
}

void http_abort(struct http_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void http_resp_free(struct http_resp *rs)
{
	free(rs->head);
	free(rs->body);
	memset(rs, 0, sizeof(*rs));
}

/* Reads more bytes into b. Returns bytes read, 0 at EOF, or -errno. */
static ssize_t read_more(int fd, struct buf *b, int64_t deadline)
{
	ssize_t n;
	int r;

	if (b->len >= HTTPC_MAX_RESPONSE + HTTPC_MAX_HEADERS)
		return -EMSGSIZE;
	if (buf_reserve(b, 65536))
		return -ENOMEM;
	for (;;) {
		n = recv(fd, b->p + b->len, b->cap - b->len - 1, 0);
		if (n >= 0) {
			b->len += (size_t)n;
			b->p[b->len] = 0;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_fd(fd, POLLIN, deadline);
		if (r)
			return r;
	}
}

/* Finds the end of the head ("\r\n\r\n") within b[0..len). */
static const char *find_head_end(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i + 3 < len; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return p + i;
	return NULL;
}

/* Looks a header up inside a NUL-terminated head block. */
static bool head_header(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *line = strstr(head, "\r\n");

	while (line && line[2]) {
		const char *s = line + 2, *e = strstr(s, "\r\n");
		const char *v;
		size_t vl;

		if (!e)
			e = s + strlen(s);
		if ((size_t)(e - s) > nl && strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
			v = s + nl + 1;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			vl = (size_t)(e - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (cap) {
				if (vl >= cap)
					vl = cap - 1;
				memcpy(out, v, vl);
				out[vl] = 0;
			}
			return true;
		}
		line = *e ? e : NULL;
	}
	return false;
}

bool http_resp_header(const struct http_resp *rs, const char *name, char *out, size_t cap)
{
	if (!rs->head)
		return false;
	return head_header(rs->head, name, out, cap);
}

/* Decodes a chunked body held in src[0..len). Returns 1 when complete
 * (body filled), 0 when more bytes are needed, -1 when malformed. */
static int dechunk(const char *src, size_t len, struct buf *body)
{
	size_t pos = 0;

	body->len = 0;
	for (;;) {
		const char *le;
		unsigned long long sz = 0;
		size_t i, digits = 0;

		le = memchr(src + pos, '\n', len - pos);
		if (!le)
			return 0;
		for (i = pos; src + i < le; i++) {
			char ch = src[i];
			int d;

			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				d = ch - 'a' + 10;
			else if (ch >= 'A' && ch <= 'F')
				d = ch - 'A' + 10;
			else
				break;
			if (++digits > 8)
				return -1;
			sz = sz * 16 + (unsigned)d;
		}
		if (digits == 0)
			return -1;
		pos = (size_t)(le - src) + 1;
		if (sz == 0) {
			/* Trailers end with an empty line. */
			for (;;) {
				le = memchr(src + pos, '\n', len - pos);
				if (!le)
					return 0;
				if (le == src + pos || (le == src + pos + 1 && src[pos] == '\r'))
					return 1;
				pos = (size_t)(le - src) + 1;
			}
		}
		if (sz > HTTPC_MAX_RESPONSE || body->len + sz > HTTPC_MAX_RESPONSE)
			return -1;
		if (len - pos < sz + 2)
			return 0;
		if (buf_reserve(body, (size_t)sz))
			return -1;
		memcpy(body->p + body->len, src + pos, (size_t)sz);
		body->len += (size_t)sz;
		body->p[body->len] = 0;
		pos += (size_t)sz;
		if (src[pos] == '\r')
			pos++;
		if (pos >= len)
			return 0;
		if (src[pos] != '\n')
			return -1;
		pos++;
	}
}

int http_recv(struct http_conn *c, struct http_resp *rs, char *err, size_t errlen)
{
	struct buf in = { 0 }, body = { 0 };
	int64_t deadline = http_now_ms() + c->timeout_ms;
	const char *he;
	size_t hlen, bstart;
	char val[64];
	bool chunked = false, has_len = false, eof = false;
	unsigned long long clen = 0;
	ssize_t n;
	int status, rc = -1;

	memset(rs, 0, sizeof(*rs));
	if (c->fd < 0) {
		seterr(err, errlen, "not connected");
		return -1;
	}
	for (;;) {
		/* Head, skipping any 1xx interim answers. */
		while (!(he = find_head_end(in.p ? in.p : "", in.len))) {
			if (in.len > HTTPC_MAX_HEADERS) {
				seterr(err, errlen, "response head over %u bytes", HTTPC_MAX_HEADERS);
				goto out;
			}
			n = read_more(c->fd, &in, deadline);
			if (n == 0) {
				seterr(err, errlen, in.len ? "connection closed inside the response head"
						  : "connection closed without a response");
				goto out;
			}
			if (n < 0) {
				seterr(err, errlen, "receive: %s", strerror((int)-n));
				goto out;
			}
		}
		hlen = (size_t)(he - in.p);
		if (hlen < 12 || strncmp(in.p, "HTTP/1.", 7) != 0 || in.p[8] != ' ' ||
		    in.p[9] < '1' || in.p[9] > '5' || in.p[10] < '0' || in.p[10] > '9' ||
		    in.p[11] < '0' || in.p[11] > '9' || (hlen > 12 && in.p[12] != ' ')) {
			seterr(err, errlen, "malformed status line");
			goto out;
		}
		status = (in.p[9] - '0') * 100 + (in.p[10] - '0') * 10 + (in.p[11] - '0');
		if (status >= 200)
			break;
		memmove(in.p, he + 4, in.len - hlen - 4);
		in.len -= hlen + 4;
		in.p[in.len] = 0;
	}
	rs->status = status;
	rs->head = malloc(hlen + 1);
	if (!rs->head) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	memcpy(rs->head, in.p, hlen);
	rs->head[hlen] = 0;
	rs->head_len = hlen;
	bstart = hlen + 4;

	if (head_header(rs->head, "Transfer-Encoding", val, sizeof(val)) &&
	    strcasestr(val, "chunked"))
		chunked = true;
	else if (head_header(rs->head, "Content-Length", val, sizeof(val))) {
		char *end;

		errno = 0;
		clen = strtoull(val, &end, 10);
		if (errno || end == val || *end || val[0] == '-' || clen > HTTPC_MAX_RESPONSE) {
			seterr(err, errlen, "bad Content-Length: %s", val);
			goto out;
		}
		has_len = true;
	}
	if (status == 204 || status == 304) {
		has_len = true;
		clen = 0;
		chunked = false;
	}

	for (;;) {
		size_t have = in.len - bstart;

		if (chunked) {
			int d = dechunk(in.p + bstart, have, &body);

			if (d < 0) {
				seterr(err, errlen, "malformed chunked body");
				goto out;
			}
			if (d > 0)
				break;
		} else if (has_len && have >= clen) {
			break;
		} else if (eof) {
			break;
		}
		if (eof) {
			seterr(err, errlen, "connection closed inside the body (%zu of %llu bytes)",
			       have, clen);
			goto out;
		}
		if (have > HTTPC_MAX_RESPONSE) {
			seterr(err, errlen, "response body over %u bytes", HTTPC_MAX_RESPONSE);
			goto out;
		}
		n = read_more(c->fd, &in, deadline);
		if (n == 0) {
			eof = true;
			if (chunked || has_len) {
				seterr(err, errlen, "connection closed inside the body (%zu bytes read)",
				       in.len - bstart);
				goto out;
			}
		} else if (n < 0) {
			seterr(err, errlen, "receive body: %s", strerror((int)-n));
			goto out;
		}
	}
	if (!chunked) {
		size_t blen = has_len ? (size_t)clen : in.len - bstart;

		if (buf_reserve(&body, blen))
			goto nomem;
		memcpy(body.p, in.p + bstart, blen);
		body.len = blen;
		body.p[blen] = 0;
	}
	if (!body.p && buf_reserve(&body, 0))
		goto nomem;
	body.p[body.len] = 0;
	rs->body = body.p;
	rs->body_len = body.len;
	body.p = NULL;
	rc = 0;
	goto out;
nomem:
	seterr(err, errlen, "out of memory");
out:
	free(in.p);
	free(body.p);
	http_abort(c);
	if (rc)
		http_resp_free(rs);
	return rc;
}

int http_do(const struct http_req *rq, struct http_resp *rs, char *err, size_t errlen)
{
	struct http_conn c;

	memset(rs, 0, sizeof(*rs));
	if (http_send(rq, &c, err, errlen))
		return -1;
	return http_recv(&c, rs, err, errlen);
}

void http_random_nonce(char out[NONCE_HEX_LEN + 1])
{
	uint8_t raw[NONCE_HEX_LEN / 2];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		/* Fall back to a weak source rather than failing a test tool. */
		size_t i;

		for (i = 0; i < sizeof(raw); i++)
			raw[i] = (uint8_t)(rand() ^ (http_now_ms() >> (i % 8)));
	}
	hex_encode(raw, sizeof(raw), out);
}

int http_auth_value(char *out, size_t cap, const uint8_t signal_key[KEY_LEN],
		    const char *peer, int64_t ts, const char *nonce,
		    const char *method, const char *path_query,
		    const void *body, size_t body_len)
{
	char fresh[NONCE_HEX_LEN + 1], sig[SIG_HEX_LEN + 1];
	int n;

	if (!nonce) {
		http_random_nonce(fresh);
		nonce = fresh;
	}
	auth_compute_sig(signal_key, method, path_query, ts, nonce, body ? body : "",
			 body ? body_len : 0, sig);
	n = snprintf(out, cap, "MESH-HMAC-SHA256 peer=%s,ts=%" PRId64 ",nonce=%s,sig=%s",
		     peer, ts, nonce, sig);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}
