/* The signaling client's HTTP/1.1 transport: keep-alive connection pools
 * on libre's TCP, one deadline per request, and the bounded response
 * parser (pure, fuzzed by tests/client/signaling/fuzz_sig.c). It owns
 * bytes on the wire only: it must not know any endpoint, sign anything,
 * retry beyond one resend on a stale kept-alive connection, or parse JSON
 * (sigclient.c does all of that). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/sig_http.h"

/* --- Parser -------------------------------------------------------------- */

void shttp_parser_init(struct shttp_parser *p, size_t body_max, bool no_body)
{
	p->body_max = body_max;
	p->no_body = no_body;
	p->state = SHTTP_P_HEAD;
	p->head_len = 0;
	p->head[0] = '\0';
	p->status = 0;
	p->minor = 0;
	p->keep_alive = false;
	p->nhdrs = 0;
	p->left = 0;
	p->line_len = 0;
	p->body = NULL;
	p->body_len = 0;
	p->body_cap = 0;
}

void shttp_parser_free(struct shttp_parser *p)
{
	free(p->body);
	p->body = NULL;
	p->body_len = p->body_cap = 0;
}

static int body_append(struct shttp_parser *p, const uint8_t *d, size_t n)
{
	if (n > p->body_max - p->body_len)
		return -EMSGSIZE;
	if (p->body_len + n + 1 > p->body_cap) {
		size_t cap = p->body_cap ? p->body_cap : 1024;
		while (cap < p->body_len + n + 1)
			cap *= 2;
		if (cap > p->body_max + 1)
			cap = p->body_max + 1;
		uint8_t *nb = realloc(p->body, cap);
		if (!nb)
			return -ENOMEM;
		p->body = nb;
		p->body_cap = cap;
	}
	memcpy(p->body + p->body_len, d, n);
	p->body_len += n;
	p->body[p->body_len] = '\0';
	return 0;
}

/* RFC 9110 5.6.2: token characters. */
static bool tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool hdr_is(const struct shttp_hdr *h, const char *name)
{
	size_t n = strlen(name);
	return h->nlen == n && !strncasecmp(h->name, name, n);
}

static bool val_is(const struct shttp_hdr *h, const char *v)
{
	size_t n = strlen(v);
	return h->vlen == n && !strncasecmp(h->val, v, n);
}

/* True when the comma-separated token list of h holds tok. */
static bool val_has_token(const struct shttp_hdr *h, const char *tok)
{
	size_t n = strlen(tok), i = 0;

	while (i < h->vlen) {
		while (i < h->vlen && (h->val[i] == ' ' || h->val[i] == '\t' || h->val[i] == ','))
			i++;
		size_t s = i;
		while (i < h->vlen && h->val[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (h->val[e - 1] == ' ' || h->val[e - 1] == '\t'))
			e--;
		if (e - s == n && !strncasecmp(h->val + s, tok, n))
			return true;
	}
	return false;
}

/* head[0..head_len) ends in CRLF CRLF. */
static int parse_head(struct shttp_parser *p)
{
	const char *s = p->head, *end = p->head + p->head_len;
	bool have_cl = false, have_te = false;
	uint64_t cl = 0;

	/* "HTTP/1.x SSS[ reason]" CRLF */
	if (p->head_len < 14 || memcmp(s, "HTTP/1.", 7) || !isdigit((unsigned char)s[7]) ||
	    s[8] != ' ' || !isdigit((unsigned char)s[9]) ||
	    !isdigit((unsigned char)s[10]) || !isdigit((unsigned char)s[11]))
		return -EBADMSG;
	p->minor = s[7] - '0';
	p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (p->status < 100 || p->status > 599)
		return -EBADMSG;
	s += 12;
	if (*s == ' ') {
		while (s < end && *s != '\r') {
			unsigned char c = (unsigned char)*s;
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -EBADMSG;
			s++;
		}
	}
	if (s + 1 >= end || s[0] != '\r' || s[1] != '\n')
		return -EBADMSG;
	s += 2;

	p->nhdrs = 0;
	while (s < end) {
		if (s[0] == '\r') {
			if (s + 2 != end || s[1] != '\n')
				return -EBADMSG;
			break;
		}
		const char *name = s;
		while (s < end && tchar((unsigned char)*s))
			s++;
		if (s == name || s >= end || *s != ':')
			return -EBADMSG; /* also obs-fold: a line starting with SP/HT */
		size_t nlen = (size_t)(s - name);
		s++;
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		const char *val = s;
		while (s < end && *s != '\r') {
			unsigned char c = (unsigned char)*s;
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -EBADMSG;
			s++;
		}
		if (s + 1 >= end || s[1] != '\n')
			return -EBADMSG;
		const char *ve = s;
		while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (p->nhdrs >= SHTTP_HEADERS_MAX)
			return -EMSGSIZE;
		struct shttp_hdr *h = &p->hdrs[p->nhdrs++];
		h->name = name;
		h->nlen = nlen;
		h->val = val;
		h->vlen = (size_t)(ve - val);
		s += 2;

		if (hdr_is(h, "Content-Length")) {
			uint64_t v = 0;
			if (h->vlen == 0 || h->vlen > 19)
				return -EBADMSG;
			for (size_t i = 0; i < h->vlen; i++) {
				if (!isdigit((unsigned char)h->val[i]))
					return -EBADMSG;
				v = v * 10 + (uint64_t)(h->val[i] - '0');
			}
			if (have_cl && v != cl)
				return -EBADMSG;
			have_cl = true;
			cl = v;
		} else if (hdr_is(h, "Transfer-Encoding")) {
			/* Only "chunked", once: we ask for no other coding. */
			if (have_te || !val_is(h, "chunked"))
				return -EBADMSG;
			have_te = true;
		}
	}

	p->keep_alive = p->minor >= 1;
	for (size_t i = 0; i < p->nhdrs; i++) {
		if (!hdr_is(&p->hdrs[i], "Connection"))
			continue;
		if (val_has_token(&p->hdrs[i], "close"))
			p->keep_alive = false;
		else if (p->minor == 0 && val_has_token(&p->hdrs[i], "keep-alive"))
			p->keep_alive = true;
	}

	if (p->status >= 100 && p->status < 200)
		return 0; /* interim; the caller starts over */
	if (p->no_body || p->status == 204 || p->status == 304) {
		p->state = SHTTP_P_DONE;
		return 0;
	}
	if (have_te && have_cl)
		return -EBADMSG; /* RFC 9112 6.3: a smuggling shape; refuse it */
	if (have_te) {
		p->state = SHTTP_P_CHUNK_SIZE;
	} else if (have_cl) {
		if (cl > p->body_max)
			return -EMSGSIZE;
		p->left = cl;
		p->state = cl ? SHTTP_P_BODY_LEN : SHTTP_P_DONE;
	} else {
		p->state = SHTTP_P_BODY_EOF;
		p->keep_alive = false;
	}
	/* An empty body still gets its NUL. */
	return body_append(p, (const uint8_t *)"", 0);
}

/* Accumulates one CRLF-terminated line into p->line. Returns 1 when the
 * line is complete (without CRLF in p->line, NUL-terminated), 0 for more,
 * or a negative errno. */
static int line_take(struct shttp_parser *p, const uint8_t *d, size_t len,
		     size_t *i)
{
	while (*i < len) {
		char c = (char)d[(*i)++];
		if (c == '\n') {
			if (p->line_len == 0 || p->line[p->line_len - 1] != '\r')
				return -EBADMSG;
			p->line[--p->line_len] = '\0';
			return 1;
		}
		if (p->line_len >= SHTTP_CHUNK_LINE_MAX)
			return -EMSGSIZE;
		p->line[p->line_len++] = c;
	}
	return 0;
}

static int chunk_size(struct shttp_parser *p)
{
	uint64_t v = 0;
	size_t i = 0, nd = 0;

	while (isxdigit((unsigned char)p->line[i])) {
		if (++nd > 15)
			return -EMSGSIZE;
		int c = tolower((unsigned char)p->line[i]);
		v = v * 16 + (uint64_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
		i++;
	}
	if (nd == 0)
		return -EBADMSG;
	while (p->line[i] == ' ' || p->line[i] == '\t')
		i++;
	if (p->line[i] != '\0' && p->line[i] != ';')
		return -EBADMSG;
	for (; p->line[i]; i++) {
		unsigned char c = (unsigned char)p->line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EBADMSG;
	}
	if (v > p->body_max - p->body_len)
		return -EMSGSIZE;
	p->left = v;
	return 0;
}

int shttp_parse(struct shttp_parser *p, const uint8_t *d, size_t len,
		size_t *used)
{
	size_t i = 0;
	int rc;

	if (used)
		*used = 0;
	while (p->state != SHTTP_P_DONE && i < len) {
		switch (p->state) {
		case SHTTP_P_HEAD: {
			size_t old = p->head_len;
			size_t n = len - i;
			if (n > SHTTP_HEAD_MAX - old)
				n = SHTTP_HEAD_MAX - old;
			memcpy(p->head + old, d + i, n);
			p->head_len = old + n;
			p->head[p->head_len] = '\0';
			size_t from = old >= 3 ? old - 3 : 0;
			const char *hit = NULL;
			for (size_t k = from; k + 4 <= p->head_len; k++) {
				if (!memcmp(p->head + k, "\r\n\r\n", 4)) {
					hit = p->head + k;
					break;
				}
			}
			if (!hit) {
				if (p->head_len >= SHTTP_HEAD_MAX)
					return -EMSGSIZE;
				i += n;
				break;
			}
			size_t hend = (size_t)(hit - p->head) + 4;
			i += hend - old;
			p->head_len = hend;
			p->head[hend] = '\0';
			rc = parse_head(p);
			if (rc < 0)
				return rc;
			if (p->status < 200) {
				if (p->status == 101)
					return -EBADMSG;
				p->head_len = 0; /* skip the interim answer */
				p->nhdrs = 0;
			}
			break;
		}
		case SHTTP_P_BODY_LEN:
		case SHTTP_P_CHUNK_DATA: {
			size_t n = len - i;
			if (n > p->left)
				n = (size_t)p->left;
			rc = body_append(p, d + i, n);
			if (rc < 0)
				return rc;
			i += n;
			p->left -= n;
			if (p->left == 0)
				p->state = p->state == SHTTP_P_BODY_LEN ?
					SHTTP_P_DONE : SHTTP_P_CHUNK_CRLF;
			break;
		}
		case SHTTP_P_CHUNK_SIZE:
			rc = line_take(p, d, len, &i);
			if (rc <= 0)
				return rc < 0 ? rc : SHTTP_MORE;
			p->line_len = 0;
			rc = chunk_size(p);
			if (rc < 0)
				return rc;
			p->state = p->left ? SHTTP_P_CHUNK_DATA : SHTTP_P_TRAILER;
			break;
		case SHTTP_P_CHUNK_CRLF:
			rc = line_take(p, d, len, &i);
			if (rc <= 0)
				return rc < 0 ? rc : SHTTP_MORE;
			if (p->line[0] != '\0')
				return -EBADMSG;
			p->line_len = 0;
			p->state = SHTTP_P_CHUNK_SIZE;
			break;
		case SHTTP_P_TRAILER:
			rc = line_take(p, d, len, &i);
			if (rc <= 0)
				return rc < 0 ? rc : SHTTP_MORE;
			if (p->line[0] == '\0')
				p->state = SHTTP_P_DONE;
			p->line_len = 0;
			break;
		case SHTTP_P_BODY_EOF:
			rc = body_append(p, d + i, len - i);
			if (rc < 0)
				return rc;
			i = len;
			break;
		case SHTTP_P_DONE:
			break;
		}
	}
	if (used)
		*used = i;
	return p->state == SHTTP_P_DONE ? SHTTP_DONE : SHTTP_MORE;
}

int shttp_parse_eof(struct shttp_parser *p)
{
	if (p->state == SHTTP_P_BODY_EOF) {
		p->state = SHTTP_P_DONE;
		return SHTTP_DONE;
	}
	return p->state == SHTTP_P_DONE ? SHTTP_DONE : -EBADMSG;
}

const struct shttp_hdr *shttp_header(const struct shttp_parser *p,
				     const char *name)
{
	for (size_t i = 0; i < p->nhdrs; i++) {
		if (hdr_is(&p->hdrs[i], name))
			return &p->hdrs[i];
	}
	return NULL;
}

/* --- URLs ---------------------------------------------------------------- */

int shttp_url_parse(const char *url, struct shttp_url *u)
{
	const char *s, *hs, *he, *ps;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (!url)
		return EINVAL;
	if (!strncasecmp(url, "https://", 8))
		return ENOTSUP;
	if (strncasecmp(url, "http://", 7))
		return EINVAL;
	s = url + 7;
	if (*s == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (!he)
			return EINVAL;
		s = he + 1;
	} else {
		hs = s;
		while (*s && *s != ':' && *s != '/')
			s++;
		he = s;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= sizeof(u->host))
		return EINVAL;
	for (const char *c = hs; c < he; c++) {
		if (!isalnum((unsigned char)*c) && !strchr(".-_:", *c))
			return EINVAL; /* no userinfo, no percent-encoding */
	}
	memcpy(u->host, hs, n);
	u->port = 80;
	if (*s == ':') {
		unsigned long v = 0;
		s++;
		if (!isdigit((unsigned char)*s))
			return EINVAL;
		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (unsigned long)(*s - '0');
			if (v > 65535)
				return EINVAL;
			s++;
		}
		if (v == 0)
			return EINVAL;
		u->port = (uint16_t)v;
	}
	if (*s && *s != '/')
		return EINVAL;
	ps = s;
	n = strlen(ps);
	while (n && ps[n - 1] == '/')
		n--;
	if (n >= sizeof(u->prefix) - 64)
		return EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)ps[i];
		if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%')
			return EINVAL;
	}
	memcpy(u->prefix, ps, n);
	if (strchr(u->host, ':'))
		snprintf(u->hostport, sizeof(u->hostport), "[%s]:%u", u->host, u->port);
	else
		snprintf(u->hostport, sizeof(u->hostport), "%s:%u", u->host, u->port);
	return 0;
}

/* --- Pools and requests -------------------------------------------------- */

struct shttp_pool {
	struct sa addr;          /* the coordinator's HTTP address */
	char host[SHTTP_HOST_MAX + 8]; /* Host header */
	unsigned max_conns;      /* open connections at most */
	unsigned nconns;         /* open now (busy and idle) */
	uint32_t idle_ms;        /* an idle kept-alive connection lives this long */
	struct list conns;       /* every connection */
	struct list waitq;       /* requests waiting for a connection */
	bool closing;            /* in the destructor: start nothing */
};

struct shttp_conn {
	struct le le;            /* in pool->conns */
	struct shttp_pool *pool;
	struct tcp_conn *tc;
	struct tmr tmr;          /* connect timeout, then idle timeout */
	struct shttp_req *req;   /* the request it carries, or NULL when idle */
	bool estab;              /* TCP connected */
	bool used;               /* has carried a request before this one */
	bool got_bytes;          /* the current request saw answer bytes */
};

struct shttp_req {
	struct le le;            /* in pool->waitq while waiting */
	struct shttp_pool *pool;
	struct shttp_conn *conn; /* while assigned */
	struct shttp_req **reqp; /* cleared before the handler runs */
	struct mbuf *mb;         /* the whole request */
	struct tmr tmr;          /* the deadline (or an async failure) */
	shttp_resp_h *h;
	void *arg;
	uint32_t connect_ms;
	bool retried;            /* resent once after a stale keep-alive */
	bool fresh_conn;         /* the resend wants a new connection */
	bool has_body;           /* the request carries a body */
	int err;                 /* for an async failure */
	struct shttp_parser p;
};

static void pool_kick(struct shttp_pool *pool);
static void conn_idle(struct shttp_conn *c);

static void conn_destructor(void *arg)
{
	struct shttp_conn *c = arg;

	tmr_cancel(&c->tmr);
	list_unlink(&c->le);
	c->tc = mem_deref(c->tc);
	if (c->req)
		c->req->conn = NULL;
	if (c->pool) {
		c->pool->nconns--;
		pool_kick(c->pool);
	}
}

static void req_destructor(void *arg)
{
	struct shttp_req *r = arg;

	tmr_cancel(&r->tmr);
	list_unlink(&r->le);
	if (r->conn) {
		struct shttp_conn *c = r->conn;
		/* Mid-exchange: the connection cannot carry another request. */
		c->req = NULL;
		r->conn = NULL;
		mem_deref(c);
	}
	mem_deref(r->mb);
	shttp_parser_free(&r->p);
}

static void pool_destructor(void *arg)
{
	struct shttp_pool *pool = arg;
	struct le *le;

	pool->closing = true;
	while ((le = list_head(&pool->waitq))) {
		struct shttp_req *r = le->data;
		list_unlink(&r->le);
		r->pool = NULL;
	}
	while ((le = list_head(&pool->conns))) {
		struct shttp_conn *c = le->data;
		list_unlink(&c->le);
		c->pool = NULL;
		if (c->req) {
			c->req->pool = NULL;
			c->req->conn = NULL;
			c->req = NULL;
		}
		mem_deref(c);
	}
}

int shttp_pool_alloc(struct shttp_pool **pp, const struct sa *addr,
		     const char *host_hdr, unsigned max_conns, uint32_t idle_ms)
{
	struct shttp_pool *pool;
	int err = 0;

	if (!pp || !addr || !host_hdr || !max_conns)
		return EINVAL;
	pool = mem_zalloc(sizeof(*pool), pool_destructor);
	if (!pool)
		return ENOMEM;
	pool->addr = *addr;
	if (strlen(host_hdr) >= sizeof(pool->host)) {
		err = EINVAL;
		goto out;
	}
	strcpy(pool->host, host_hdr);
	pool->max_conns = max_conns;
	pool->idle_ms = idle_ms;
	list_init(&pool->conns);
	list_init(&pool->waitq);
 out:
	if (err)
		mem_deref(pool);
	else
		*pp = pool;
	return err;
}

/* Ends a request: hands its connection back (kept alive) or closes it,
 * lets waiting requests go, then calls the handler and frees it. */
static void req_complete(struct shttp_req *r, int err, bool reuse)
{
	struct shttp_conn *c = r->conn;
	struct shttp_pool *pool = r->pool;
	struct shttp_resp resp;

	tmr_cancel(&r->tmr);
	if (c) {
		c->req = NULL;
		r->conn = NULL;
		if (!err && reuse && c->pool && c->pool->idle_ms) {
			c->used = true;
			c->got_bytes = false;
			conn_idle(c);
		} else {
			mem_deref(c);
		}
	}
	if (pool)
		pool_kick(pool);

	if (r->reqp) {
		*r->reqp = NULL;
		r->reqp = NULL;
	}
	if (r->h) {
		if (err) {
			r->h(err, NULL, r->arg);
		} else {
			resp.status = r->p.status;
			resp.p = &r->p;
			resp.body = r->p.body ? (const char *)r->p.body : "";
			resp.body_len = r->p.body_len;
			r->h(0, &resp, r->arg);
		}
	}
	mem_deref(r);
}

static void idle_timeout(void *arg)
{
	struct shttp_conn *c = arg;

	mem_deref(c);
}

static void idle_recv(struct mbuf *mb, void *arg)
{
	struct shttp_conn *c = arg;

	(void)mb;
	mem_deref(c); /* nobody asked: a protocol error, drop it */
}

static void idle_close(int err, void *arg)
{
	struct shttp_conn *c = arg;

	(void)err;
	mem_deref(c);
}

static void conn_idle(struct shttp_conn *c)
{
	tcp_set_handlers(c->tc, NULL, idle_recv, idle_close, c);
	tmr_start(&c->tmr, c->pool->idle_ms, idle_timeout, c);
}

static void req_fail_tmr(void *arg)
{
	struct shttp_req *r = arg;

	req_complete(r, r->err ? r->err : ETIMEDOUT, false);
}

static void req_fail_async(struct shttp_req *r, int err)
{
	r->err = err;
	tmr_start(&r->tmr, 0, req_fail_tmr, r);
}

static void conn_send(struct shttp_conn *c)
{
	struct shttp_req *r = c->req;
	int err;

	r->mb->pos = 0;
	err = tcp_send(c->tc, r->mb);
	if (err)
		req_fail_async(r, err); /* never call back from inside a call */
}

static void conn_estab(void *arg)
{
	struct shttp_conn *c = arg;

	c->estab = true;
	tmr_cancel(&c->tmr);
	if (c->req)
		conn_send(c);
	else if (c->pool)
		conn_idle(c);
}

static void conn_recv(struct mbuf *mb, void *arg)
{
	struct shttp_conn *c = arg;
	struct shttp_req *r = c->req;
	size_t used = 0, left = mbuf_get_left(mb);
	int rc;

	if (!r) {
		mem_deref(c);
		return;
	}
	c->got_bytes = true;
	rc = shttp_parse(&r->p, mbuf_buf(mb), left, &used);
	if (rc < 0) {
		req_complete(r, -rc, false);
		return;
	}
	/* Reuse the connection only when the answer ended exactly here and
	 * came after our whole request: an error answer to a request with
	 * a body may come early (413), with body bytes still queued. */
	if (rc == SHTTP_DONE)
		req_complete(r, 0, r->p.keep_alive && used == left &&
			     !(r->has_body && r->p.status >= 400));
}

static void conn_close(int err, void *arg)
{
	struct shttp_conn *c = arg;
	struct shttp_req *r = c->req;

	if (!r) {
		mem_deref(c);
		return;
	}
	if (!c->got_bytes && c->used && !r->retried && r->pool) {
		/* The server closed a kept-alive connection as we reused it:
		 * resend once on a new one. */
		struct shttp_pool *pool = r->pool;
		c->req = NULL;
		r->conn = NULL;
		r->retried = true;
		r->fresh_conn = true;
		list_prepend(&pool->waitq, &r->le, r);
		mem_deref(c); /* kicks the pool */
		return;
	}
	if (c->got_bytes && shttp_parse_eof(&r->p) == SHTTP_DONE) {
		req_complete(r, 0, false);
		return;
	}
	req_complete(r, err ? err : ECONNRESET, false);
}

static void conn_connect_timeout(void *arg)
{
	struct shttp_conn *c = arg;
	struct shttp_req *r = c->req;

	if (r)
		req_complete(r, ETIMEDOUT, false);
	else
		mem_deref(c);
}

static int conn_new(struct shttp_pool *pool, struct shttp_conn **cp)
{
	struct shttp_conn *c;
	int err;

	c = mem_zalloc(sizeof(*c), conn_destructor);
	if (!c)
		return ENOMEM;
	tmr_init(&c->tmr);
	err = tcp_connect(&c->tc, &pool->addr, conn_estab, conn_recv,
			  conn_close, c);
	if (err)
		goto out;
	c->pool = pool;
	pool->nconns++;
	list_append(&pool->conns, &c->le, c);
 out:
	if (err)
		mem_deref(c);
	else
		*cp = c;
	return err;
}

static struct shttp_conn *idle_conn(struct shttp_pool *pool)
{
	for (struct le *le = list_head(&pool->conns); le; le = le->next) {
		struct shttp_conn *c = le->data;
		if (!c->req && c->estab)
			return c;
	}
	return NULL;
}

static void pool_kick(struct shttp_pool *pool)
{
	struct le *le;

	if (pool->closing)
		return;
	while ((le = list_head(&pool->waitq))) {
		struct shttp_req *r = le->data;
		struct shttp_conn *c = r->fresh_conn ? NULL : idle_conn(pool);
		int err;

		if (!c) {
			if (pool->nconns >= pool->max_conns) {
				/* A fresh connection is due but idle ones
				 * fill the pool: close one of them. */
				struct shttp_conn *ic = idle_conn(pool);
				if (!ic)
					return;
				list_unlink(&ic->le);
				ic->pool = NULL;
				pool->nconns--;
				mem_deref(ic);
			}
			err = conn_new(pool, &c);
			if (err) {
				list_unlink(&r->le);
				req_fail_async(r, err);
				continue;
			}
			tmr_start(&c->tmr, r->connect_ms, conn_connect_timeout, c);
		}
		list_unlink(&r->le);
		r->fresh_conn = false;
		c->req = r;
		c->got_bytes = false;
		r->conn = c;
		if (c->estab) {
			tmr_cancel(&c->tmr);
			tcp_set_handlers(c->tc, conn_estab, conn_recv, conn_close, c);
			conn_send(c);
		}
	}
}

void shttp_pool_flush_idle(struct shttp_pool *pool)
{
	struct shttp_conn *c;

	if (!pool)
		return;
	while ((c = idle_conn(pool)))
		mem_deref(c);
}

static void req_deadline(void *arg)
{
	struct shttp_req *r = arg;

	req_complete(r, ETIMEDOUT, false);
}

int shttp_request(struct shttp_req **reqp, struct shttp_pool *pool,
		  const struct shttp_spec *spec, shttp_resp_h *h, void *arg)
{
	struct shttp_req *r;
	int err;

	if (!reqp || !pool || !spec || !spec->method || !spec->path ||
	    spec->path[0] != '/' || strlen(spec->path) >= SHTTP_PATH_MAX ||
	    !spec->timeout_ms)
		return EINVAL;

	r = mem_zalloc(sizeof(*r), req_destructor);
	if (!r)
		return ENOMEM;
	tmr_init(&r->tmr);
	shttp_parser_init(&r->p, spec->body_max, !strcmp(spec->method, "HEAD"));
	r->pool = pool;
	r->h = h;
	r->arg = arg;
	r->connect_ms = spec->connect_ms ? spec->connect_ms : spec->timeout_ms;
	r->has_body = spec->body && spec->body_len;
	r->mb = mbuf_alloc(512 + spec->body_len);
	if (!r->mb) {
		err = ENOMEM;
		goto out;
	}
	err = mbuf_printf(r->mb, "%s %s HTTP/1.1\r\nHost: %s\r\n%s",
			  spec->method, spec->path, pool->host,
			  spec->headers ? spec->headers : "");
	if (!err && (spec->body || !strcmp(spec->method, "POST")))
		err = mbuf_printf(r->mb, "Content-Length: %zu\r\n", spec->body_len);
	if (!err)
		err = mbuf_write_str(r->mb, "\r\n");
	if (!err && spec->body && spec->body_len)
		err = mbuf_write_mem(r->mb, spec->body, spec->body_len);
	if (err)
		goto out;
	tmr_start(&r->tmr, spec->timeout_ms, req_deadline, r);
	list_append(&pool->waitq, &r->le, r);
	r->reqp = reqp;
	*reqp = r;
	pool_kick(pool);
 out:
	if (err)
		mem_deref(r);
	return err;
}
