/* ICE candidates and the ICE description: priorities and foundations of
 * local candidates (RFC 8445 5.1.1.3, 5.1.2), the text form the two peers
 * exchange (docs/ice.md, lines after RFC 8839's SDP attribute grammar) and
 * its strict parser. Pure bookkeeping: no sockets, no timers, and it never
 * trusts a byte of the peer's description without a bound. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "client/ice_int.h"
#include "common/log.h"

/* RFC 8445 5.1.2.2: recommended type preferences. */
enum {
	ICE_TYPEPREF_HOST  = 126,
	ICE_TYPEPREF_PRFLX = 110,
	ICE_TYPEPREF_SRFLX = 100,
	ICE_TYPEPREF_RELAY = 0,
};

/* RFC 8839 5.1: ufrag/pwd/foundation are made of ice-char. */
static bool ice_char(int c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '/';
}

static bool ice_chars(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!ice_char(p[i]))
			return false;
	}
	return true;
}

/* RFC 8445 5.1.2.1: priority = 2^24 * type preference
 * + 2^8 * local preference + (256 - component ID); one component. */
uint32_t ice_prio(enum ice_ctype type, uint16_t lpref)
{
	uint32_t tp;

	switch (type) {
	case ICE_CT_HOST:  tp = ICE_TYPEPREF_HOST;  break;
	case ICE_CT_PRFLX: tp = ICE_TYPEPREF_PRFLX; break;
	case ICE_CT_SRFLX: tp = ICE_TYPEPREF_SRFLX; break;
	default:           tp = ICE_TYPEPREF_RELAY; break;
	}
	return (tp << 24) | ((uint32_t)lpref << 8) | (256 - 1);
}

/* RFC 8445 5.1.1.3: candidates share a foundation when they have the same
 * type, base IP, server IP and transport. A hash of exactly those. */
static void make_fnd(char fnd[ICE_FND_MAX + 1], enum ice_ctype type,
		     const struct sa *base_ip, const struct sa *server,
		     enum ice_tr tr)
{
	char a[64] = "", b[64] = "", key[160];
	uint32_t h = 2166136261u; /* FNV-1a */

	if (base_ip && sa_isset(base_ip, SA_ADDR))
		(void)sa_ntop(base_ip, a, sizeof(a));
	if (server && sa_isset(server, SA_ADDR))
		(void)sa_ntop(server, b, sizeof(b));
	snprintf(key, sizeof(key), "%d|%s|%s|%d", (int)type, a, b, (int)tr);
	for (const char *p = key; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 16777619u;
	}
	snprintf(fnd, ICE_FND_MAX + 1, "%x", h);
}

static void cand_destructor(void *arg)
{
	struct ice_candidate *c = arg;

	list_unlink(&c->le);
}

static bool prio_sort(struct le *le1, struct le *le2, void *arg)
{
	const struct ice_candidate *c1 = le1->data, *c2 = le2->data;
	(void)arg;
	return c1->prio >= c2->prio;
}

int ice_lcand_add(struct ice_candidate **cp, struct ice_session *s,
		  enum ice_ctype type, struct ice_base *base,
		  const struct sa *addr, const struct sa *rel,
		  const struct sa *server)
{
	struct ice_candidate *c;
	struct le *le;
	int err = 0;

	if (!s || !base || !addr)
		return EINVAL;

	/* RFC 8445 5.1.3: a server-reflexive candidate equal to its base or
	 * to another candidate is redundant. */
	for (le = s->lcands.head; le; le = le->next) {
		const struct ice_candidate *o = le->data;

		if (o->type == type && sa_cmp(&o->addr, addr, SA_ALL))
			return EALREADY;
		if (type == ICE_CT_SRFLX && sa_cmp(&o->addr, addr, SA_ALL))
			return EALREADY;
	}
	if (list_count(&s->lcands) >= ICE_MAX_LCANDS)
		return EOVERFLOW;

	c = mem_zalloc(sizeof(*c), cand_destructor);
	if (!c)
		return ENOMEM;
	c->type = type;
	c->tr = ice_base_tr(base);
	c->addr = *addr;
	if (rel)
		c->rel = *rel;
	c->base = base;
	c->prio = ice_prio(type, base->lpref);
	make_fnd(c->fnd, type, type == ICE_CT_RELAY ? addr : &base->laddr,
		 server, c->tr);

	list_append(&s->lcands, &c->le, c);
	list_sort(&s->lcands, prio_sort, NULL);
	if (cp)
		*cp = c;
	return err;
}

/* Addresses a candidate may carry: unicast, not "this host", not link-local
 * (RFC 8445 5.1.1.1 leaves those out), not loopback unless a test says so. */
bool ice_addr_usable(const struct sa *sa, bool allow_loopback)
{
	if (!sa || !sa_isset(sa, SA_ALL) || sa_port(sa) == 0)
		return false;
	if (sa_is_any(sa) || sa_is_linklocal(sa))
		return false;

	if (sa_af(sa) == AF_INET) {
		uint32_t a = sa_in(sa);

		if ((a >> 24) == 0 || (a >> 28) == 0xe || a == 0xffffffffu)
			return false; /* 0/8, multicast 224/4, broadcast */
		if ((a >> 24) == 127)
			return allow_loopback;
		return true;
	}
	if (sa_af(sa) == AF_INET6) {
		uint8_t a[16];

		sa_in6(sa, a);
		if (a[0] == 0xff)
			return false; /* multicast */
		if (sa_is_loopback(sa))
			return allow_loopback;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a))
			return false;
		return true;
	}
	return false;
}

const char *ice_ctype_name(enum ice_ctype t)
{
	switch (t) {
	case ICE_CT_HOST:  return "host";
	case ICE_CT_SRFLX: return "srflx";
	case ICE_CT_PRFLX: return "prflx";
	case ICE_CT_RELAY: return "relay";
	}
	return "?";
}

const char *ice_tr_name(enum ice_tr tr)
{
	switch (tr) {
	case ICE_TR_UDP: return "udp";
	case ICE_TR_TCP: return "tcp";
	case ICE_TR_TLS: return "tls";
	default:         return "";
	}
}

/* "ip:port", "[ip6]:port", "-" when unset. */
const char *ice_sa_fmt(const struct sa *sa, char *buf, size_t sz)
{
	char ip[48];

	if (!sa || !sa_isset(sa, SA_ADDR) || sa_ntop(sa, ip, sizeof(ip))) {
		snprintf(buf, sz, "-");
		return buf;
	}
	if (sa_af(sa) == AF_INET6)
		snprintf(buf, sz, "[%s]:%u", ip, sa_port(sa));
	else
		snprintf(buf, sz, "%s:%u", ip, sa_port(sa));
	return buf;
}

/* "host 198.18.1.10:40000", "relay-tcp 198.18.0.10:49200". */
int ice_cand_str(char *buf, size_t sz, enum ice_ctype type, enum ice_tr tr,
		 const struct sa *addr)
{
	char a[ICE_SA_STRLEN];

	ice_sa_fmt(addr, a, sizeof(a));
	if (type == ICE_CT_RELAY && tr != ICE_TR_NONE)
		return snprintf(buf, sz, "relay-%s %s", ice_tr_name(tr), a);
	return snprintf(buf, sz, "%s %s", ice_ctype_name(type), a);
}

/* --- Encoding ----------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t n, cap;
	bool overflow;
};

static void sb_add(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->n) {
		b->overflow = true;
		return;
	}
	b->n += (size_t)n;
}

/* The local description into s->ldesc (docs/ice.md). */
int ice_desc_encode(struct ice_session *s)
{
	struct sbuf b = {0};
	struct le *le;

	b.cap = ICE_DESC_MAX;
	b.p = mem_zalloc(b.cap, NULL);
	if (!b.p)
		return ENOMEM;

	sb_add(&b, "mesh-ice:1\nice-ufrag:%s\nice-pwd:%s\n", s->lufrag, s->lpwd);
	for (le = s->lcands.head; le; le = le->next) {
		const struct ice_candidate *c = le->data;
		char ip[64], rip[64];

		if (c->type == ICE_CT_PRFLX)
			continue; /* learnt from checks, never advertised */
		if (sa_ntop(&c->addr, ip, sizeof(ip)))
			continue;
		sb_add(&b, "candidate:%s 1 udp %u %s %u typ %s", c->fnd,
		       c->prio, ip, sa_port(&c->addr), ice_ctype_name(c->type));
		if (sa_isset(&c->rel, SA_ALL) && !sa_ntop(&c->rel, rip, sizeof(rip)))
			sb_add(&b, " raddr %s rport %u", rip, sa_port(&c->rel));
		if (c->type == ICE_CT_RELAY)
			sb_add(&b, " x-turn %s", ice_tr_name(c->tr));
		sb_add(&b, "\n");
	}
	sb_add(&b, "end-of-candidates\n");
	if (b.overflow) {
		mem_deref(b.p);
		return EOVERFLOW;
	}
	mem_deref(s->ldesc);
	s->ldesc = b.p;
	return 0;
}

/* --- Parsing ------------------------------------------------------------ */

struct rcand {
	enum ice_ctype type;
	enum ice_tr tr;
	struct sa addr, rel;
	uint32_t prio;
	char fnd[ICE_FND_MAX + 1];
};

struct rdesc {
	char ufrag[ICE_UFRAG_MAX + 1];
	char pwd[ICE_PWD_MAX + 1];
	struct rcand c[ICE_MAX_RCANDS];
	size_t n;
};

/* Unsigned decimal, no sign, no leading garbage, at most max. */
static bool parse_uint(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

static bool parse_addr(const struct pl *ip, const struct pl *port,
		       struct sa *sa)
{
	char buf[64];
	uint64_t pt;

	if (ip->l == 0 || ip->l >= sizeof(buf))
		return false;
	if (!parse_uint(port->p, port->l, 65535, &pt) || pt == 0)
		return false;
	memcpy(buf, ip->p, ip->l);
	buf[ip->l] = '\0';
	return sa_set_str(sa, buf, (uint16_t)pt) == 0;
}

enum { MAX_TOKENS = 24 };

/* candidate:<fnd> <compid> <transport> <prio> <ip> <port> typ <type>
 *           [raddr <ip>] [rport <port>] [<ext-name> <ext-value>]*   */
static int parse_candidate(struct rcand *c, const char *p, size_t n,
			   bool allow_loopback)
{
	struct pl tok[MAX_TOKENS];
	size_t nt = 0, i = 0;
	uint64_t v;
	struct pl raddr = PL_INIT, rport = PL_INIT;

	while (i < n) {
		size_t st;

		while (i < n && p[i] == ' ')
			i++;
		if (i >= n)
			break;
		st = i;
		while (i < n && p[i] != ' ')
			i++;
		if (nt == MAX_TOKENS)
			return EBADMSG;
		tok[nt].p = p + st;
		tok[nt].l = i - st;
		nt++;
	}
	if (nt < 8 || (nt - 8) % 2)
		return EBADMSG;

	memset(c, 0, sizeof(*c));
	if (tok[0].l > ICE_FND_MAX || !ice_chars(tok[0].p, tok[0].l))
		return EBADMSG;
	memcpy(c->fnd, tok[0].p, tok[0].l);
	if (!parse_uint(tok[1].p, tok[1].l, 256, &v) || v != 1)
		return EBADMSG; /* one component */
	if (pl_strcasecmp(&tok[2], "udp"))
		return EBADMSG;
	/* RFC 8445 5.1.2: a positive integer between 1 and 2^31 - 1. */
	if (!parse_uint(tok[3].p, tok[3].l, 0x7fffffff, &v) || v == 0)
		return EBADMSG;
	c->prio = (uint32_t)v;
	if (!parse_addr(&tok[4], &tok[5], &c->addr))
		return EBADMSG;
	if (!ice_addr_usable(&c->addr, allow_loopback))
		return EADDRNOTAVAIL;
	if (pl_strcmp(&tok[6], "typ"))
		return EBADMSG;
	if (!pl_strcmp(&tok[7], "host"))
		c->type = ICE_CT_HOST;
	else if (!pl_strcmp(&tok[7], "srflx"))
		c->type = ICE_CT_SRFLX;
	else if (!pl_strcmp(&tok[7], "prflx"))
		c->type = ICE_CT_PRFLX;
	else if (!pl_strcmp(&tok[7], "relay"))
		c->type = ICE_CT_RELAY;
	else
		return EBADMSG;

	for (i = 8; i + 1 < nt; i += 2) {
		if (!pl_strcmp(&tok[i], "raddr"))
			raddr = tok[i + 1];
		else if (!pl_strcmp(&tok[i], "rport"))
			rport = tok[i + 1];
		else if (!pl_strcmp(&tok[i], "x-turn")) {
			if (!pl_strcmp(&tok[i + 1], "udp"))
				c->tr = ICE_TR_UDP;
			else if (!pl_strcmp(&tok[i + 1], "tcp"))
				c->tr = ICE_TR_TCP;
			else if (!pl_strcmp(&tok[i + 1], "tls"))
				c->tr = ICE_TR_TLS;
			else
				return EBADMSG;
		}
		/* other extension attributes (RFC 8839 5.1) are ignored */
	}
	if (raddr.l && rport.l) {
		/* informational only (RFC 8445 5.1.3): checked, not used */
		if (!parse_addr(&raddr, &rport, &c->rel))
			sa_init(&c->rel, AF_UNSPEC);
	}
	if (c->type == ICE_CT_RELAY && c->tr == ICE_TR_NONE)
		c->tr = ICE_TR_UDP;
	if (c->type != ICE_CT_RELAY)
		c->tr = ICE_TR_NONE;
	return 0;
}

static int parse_desc(struct rdesc *d, const char *p, size_t len,
		      bool allow_loopback, const char **why)
{
	size_t i = 0, lineno = 0;
	bool got_ver = false, got_end = false;
	size_t skipped = 0;

	memset(d, 0, sizeof(*d));
	*why = "";
	if (!p || len == 0 || len > ICE_DESC_MAX) {
		*why = "empty or too long";
		return EBADMSG;
	}

	while (i < len) {
		size_t st = i, n;
		const char *l;

		while (i < len && p[i] != '\n')
			i++;
		n = i - st;
		l = p + st;
		if (i < len)
			i++; /* the newline */
		if (n && l[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (n > 512) {
			*why = "line too long";
			return EBADMSG;
		}
		if (memchr(l, '\0', n)) {
			*why = "NUL byte";
			return EBADMSG;
		}
		if (got_end) {
			*why = "text after end-of-candidates";
			return EBADMSG;
		}
		lineno++;

		if (lineno == 1) {
			if (n != 10 || memcmp(l, "mesh-ice:1", 10)) {
				*why = "not a mesh-ice:1 description";
				return EBADMSG;
			}
			got_ver = true;
		}
		else if (n > 10 && !memcmp(l, "ice-ufrag:", 10)) {
			size_t m = n - 10;

			/* RFC 8839 5.4: 4..256 ice-chars; we take up to 32. */
			if (m < 4 || m > ICE_UFRAG_MAX || !ice_chars(l + 10, m) ||
			    d->ufrag[0]) {
				*why = "bad ice-ufrag";
				return EBADMSG;
			}
			memcpy(d->ufrag, l + 10, m);
			d->ufrag[m] = '\0';
		}
		else if (n > 8 && !memcmp(l, "ice-pwd:", 8)) {
			size_t m = n - 8;

			/* RFC 8839 5.4: 22..256 ice-chars; we take up to 64. */
			if (m < 22 || m > ICE_PWD_MAX || !ice_chars(l + 8, m) ||
			    d->pwd[0]) {
				*why = "bad ice-pwd";
				return EBADMSG;
			}
			memcpy(d->pwd, l + 8, m);
			d->pwd[m] = '\0';
		}
		else if (n > 10 && !memcmp(l, "candidate:", 10)) {
			struct rcand c;
			int err;

			err = parse_candidate(&c, l + 10, n - 10,
					      allow_loopback);
			if (err == EADDRNOTAVAIL) {
				skipped++; /* well-formed, unusable address */
				continue;
			}
			if (err) {
				*why = "bad candidate line";
				return EBADMSG;
			}
			if (d->n == ICE_MAX_RCANDS) {
				*why = "too many candidates";
				return EBADMSG;
			}
			d->c[d->n++] = c;
		}
		else if (n == 17 && !memcmp(l, "end-of-candidates", 17)) {
			got_end = true;
		}
		else if (n > 2 && l[0] == 'x' && l[1] == '-') {
			/* extension line: ignored */
		}
		else {
			*why = "unknown line";
			return EBADMSG;
		}
	}
	if (!got_ver || !got_end || !d->ufrag[0] || !d->pwd[0]) {
		*why = "incomplete (version, ufrag, pwd and end-of-candidates are required)";
		return EBADMSG;
	}
	(void)skipped;
	return 0;
}

/* Takes the peer's description: credentials and candidates. */
int ice_desc_apply(struct ice_session *s, const char *p, size_t len)
{
	struct rdesc *d;
	const char *why;
	int err;

	d = mem_zalloc(sizeof(*d), NULL);
	if (!d)
		return ENOMEM;
	err = parse_desc(d, p, len, s->allow_loopback, &why);
	if (err) {
		log_warn("ice", "%s: remote description refused: %s", s->name,
			 why);
		goto out;
	}
	str_ncpy(s->rufrag, d->ufrag, sizeof(s->rufrag));
	str_ncpy(s->rpwd, d->pwd, sizeof(s->rpwd));

	for (size_t i = 0; i < d->n; i++) {
		const struct rcand *rc = &d->c[i];
		struct ice_candidate *c = NULL;
		struct le *le;

		/* RFC 8445 5.1.3-style redundancy: one per address, keep the
		 * higher priority. */
		for (le = s->rcands.head; le; le = le->next) {
			struct ice_candidate *o = le->data;

			if (sa_cmp(&o->addr, &rc->addr, SA_ALL)) {
				c = o;
				break;
			}
		}
		if (c) {
			if (rc->prio <= c->prio)
				continue;
		}
		else {
			c = mem_zalloc(sizeof(*c), cand_destructor);
			if (!c) {
				err = ENOMEM;
				goto out;
			}
			list_append(&s->rcands, &c->le, c);
		}
		c->type = rc->type;
		c->tr = rc->tr;
		c->addr = rc->addr;
		c->rel = rc->rel;
		c->prio = rc->prio;
		str_ncpy(c->fnd, rc->fnd, sizeof(c->fnd));
	}
	list_sort(&s->rcands, prio_sort, NULL);

 out:
	mem_deref(d);
	return err;
}

/* A remote peer-reflexive candidate learnt from a check (RFC 8445
 * 7.3.1.3), owned by s->rcands. EOVERFLOW when the bound is reached. */
int ice_rcand_prflx_alloc(struct ice_candidate **cp, struct ice_session *s,
			  const struct sa *src, uint32_t prio)
{
	struct ice_candidate *c;
	int err = 0;

	if (!cp || !s || !src)
		return EINVAL;
	if (s->n_prflx >= ICE_MAX_PRFLX)
		return EOVERFLOW;
	c = mem_zalloc(sizeof(*c), cand_destructor);
	if (!c) {
		err = ENOMEM;
		goto out;
	}
	c->type = ICE_CT_PRFLX;
	c->addr = *src;
	c->prio = prio ? prio : ice_prio(ICE_CT_PRFLX, 0);
	/* RFC 8445 7.3.1.3: any value unique among the remote candidates. */
	snprintf(c->fnd, sizeof(c->fnd), "prflx%u", s->n_prflx);
	s->n_prflx++;
	list_append(&s->rcands, &c->le, c);
	list_sort(&s->rcands, prio_sort, NULL);

 out:
	if (!err)
		*cp = c;
	return err;
}
