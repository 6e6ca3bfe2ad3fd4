/* Peer table parser and validator (CONTRACT section 5): reads --peers
 * (a file or inline JSON), checks every rule, and keeps the table with its
 * canonical form and digest. Owns only the parsed table; must not open
 * sockets or log: the caller prints the one-line error and exits 2. */
#include "client/peers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
/* Not <re.h>: its re_json.h clashes with jansson.h. */
#include <re_types.h>
#include <re_mem.h>

#define LOOPBACK_NET  0x7f000000u /* 127.0.0.0/8 */
#define LOOPBACK_HOST 0x7f000001u /* 127.0.0.1, where local apps listen */
#define VIP_PREFIX_MIN 8
#define VIP_PREFIX_MAX 30         /* /31 and /32 leave no usable VIP */

struct peer {
	char id[PEERS_ID_MAX + 1];
	uint16_t ports[PEERS_PORTS_MAX]; /* identity plan: port per slot */
	size_t nports;                   /* as listed, before the length check */
	uint32_t vip;                    /* peer-VIP plan: host part */
	size_t pos;                      /* position in the input, for messages */
};

struct allow {
	uint16_t port;
	bool udp;
};

struct peer_table {
	enum peers_plan plan;
	struct peer *peerv;      /* sorted by id */
	size_t peerc;
	size_t nports;           /* identity plan: ports per peer */
	uint32_t vip_net;        /* peer-VIP plan: network, host byte order */
	unsigned vip_prefix;     /* its prefix length */
	struct allow *allowv;    /* sorted by port */
	size_t allowc;
	size_t self;             /* index of --id */
	char *canon;             /* canonical serialisation, NUL-terminated */
	char digest[PEERS_DIGEST_HEX + 1];
};

static void table_destructor(void *arg)
{
	struct peer_table *t = arg;

	mem_deref(t->peerv);
	mem_deref(t->allowv);
	mem_deref(t->canon);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return EINVAL;
}

/* A printable, bounded copy of untrusted text for an error message. */
static const char *safe(const char *s, char *buf, size_t n)
{
	size_t i, j = 0;

	for (i = 0; s[i] && j + 4 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[j++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
		if (i >= 40) {
			memcpy(buf + j, "...", 3);
			j += 3;
			break;
		}
	}
	buf[j] = '\0';
	return buf;
}

bool peers_id_valid(const char *id)
{
	size_t n;

	if (!id)
		return false;
	for (n = 0; id[n]; n++) {
		unsigned char c = (unsigned char)id[n];

		if (n >= PEERS_ID_MAX)
			return false;
		/* Explicit ranges: isalnum() follows the locale. */
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '-')
			return false;
	}
	return n > 0;
}

/* Parses "a.b.c.d/p" strictly: decimal octets without leading zeros. */
static bool parse_cidr(const char *s, uint32_t *addr, unsigned *prefix)
{
	uint32_t a = 0;
	unsigned v;
	int part;

	for (part = 0; part < 5; part++) {
		const char *start = s;

		if (*s < '0' || *s > '9')
			return false;
		v = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (unsigned)(*s - '0');
			if (v > 255)
				return false;
			s++;
		}
		if (s - start > 1 && *start == '0')
			return false;
		if (part < 3) {
			if (*s++ != '.')
				return false;
			a = (a << 8) | v;
		}
		else if (part == 3) {
			if (*s++ != '/')
				return false;
			a = (a << 8) | v;
		}
		else {
			if (*s != '\0')
				return false;
			*addr = a;
			*prefix = v;
			return true;
		}
	}
	return false;
}

static int get_port(json_t *v, long long *out)
{
	if (!json_is_integer(v))
		return EINVAL;
	*out = json_integer_value(v);
	return 0;
}

static int parse_vip_net(struct peer_table *t, json_t *v, char *err, size_t errlen)
{
	char buf[64];
	uint32_t a, mask;
	unsigned p;

	if (!json_is_string(v) || !parse_cidr(json_string_value(v), &a, &p))
		return fail(err, errlen, "--peers: \"vip_net\" must be a string "
			    "like \"127.50.0.0/24\"");
	safe(json_string_value(v), buf, sizeof(buf));
	if (p < VIP_PREFIX_MIN || p > VIP_PREFIX_MAX)
		return fail(err, errlen, "--peers: \"vip_net\" %s: the prefix "
			    "must be /%d to /%d", buf, VIP_PREFIX_MIN,
			    VIP_PREFIX_MAX);
	if ((a & 0xff000000u) != LOOPBACK_NET)
		return fail(err, errlen, "--peers: \"vip_net\" %s is not inside "
			    "127.0.0.0/8 (the VIPs are loopback addresses)", buf);
	mask = 0xffffffffu << (32 - p);
	if (a & ~mask)
		return fail(err, errlen, "--peers: \"vip_net\" %s has host bits "
			    "set (the network is %u.%u.%u.%u/%u)", buf,
			    (a & mask) >> 24, ((a & mask) >> 16) & 0xff,
			    ((a & mask) >> 8) & 0xff, (a & mask) & 0xff, p);
	t->vip_net = a;
	t->vip_prefix = p;
	return 0;
}

static int cmp_allow(const void *a, const void *b)
{
	const struct allow *x = a, *y = b;

	return (int)x->port - (int)y->port;
}

static int parse_allow(struct peer_table *t, json_t *v, char *err, size_t errlen)
{
	char buf[64];
	size_t i, n;

	if (!v)
		return fail(err, errlen, "--peers: \"allow\" is missing (the "
			    "peer-VIP plan forwards only the ports it lists)");
	if (!json_is_array(v))
		return fail(err, errlen, "--peers: \"allow\" must be an array of "
			    "{\"port\":N,\"udp\":true|false}");
	n = json_array_size(v);
	if (n == 0)
		return fail(err, errlen, "--peers: \"allow\" is empty: nothing "
			    "would be forwarded");
	if (n > PEERS_ALLOW_MAX)
		return fail(err, errlen, "--peers: \"allow\" lists %zu ports (at "
			    "most %d)", n, PEERS_ALLOW_MAX);

	t->allowv = mem_zalloc(n * sizeof(*t->allowv), NULL);
	if (!t->allowv)
		return ENOMEM;
	t->allowc = n;

	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i), *port = NULL, *udp = NULL;
		const char *key;
		json_t *val;
		long long pv;

		if (!json_is_object(e))
			return fail(err, errlen, "--peers: allow[%zu] must be an "
				    "object like {\"port\":5432}", i);
		json_object_foreach(e, key, val) {
			if (!strcmp(key, "port"))
				port = val;
			else if (!strcmp(key, "udp"))
				udp = val;
			else
				return fail(err, errlen, "--peers: allow[%zu]: "
					    "unknown field \"%s\" (known: port, "
					    "udp)", i, safe(key, buf, sizeof(buf)));
		}
		if (!port)
			return fail(err, errlen, "--peers: allow[%zu] has no "
				    "\"port\"", i);
		if (get_port(port, &pv))
			return fail(err, errlen, "--peers: allow[%zu]: \"port\" "
				    "must be an integer", i);
		if (pv < 1 || pv > 65535)
			return fail(err, errlen, "--peers: allow[%zu]: port %lld "
				    "is outside 1..65535", i, pv);
		if (udp && !json_is_boolean(udp))
			return fail(err, errlen, "--peers: allow[%zu]: \"udp\" "
				    "must be true or false", i);
		t->allowv[i].port = (uint16_t)pv;
		t->allowv[i].udp = udp && json_is_true(udp);
	}

	qsort(t->allowv, n, sizeof(*t->allowv), cmp_allow);
	for (i = 1; i < n; i++) {
		if (t->allowv[i].port == t->allowv[i - 1].port)
			return fail(err, errlen, "--peers: \"allow\" lists port %u "
				    "twice", t->allowv[i].port);
	}
	return 0;
}

static int parse_peer(struct peer_table *t, json_t *e, size_t pos,
		      struct peer *p, char *err, size_t errlen)
{
	json_t *id = NULL, *ports = NULL, *vip = NULL, *val;
	const char *key, *s;
	char buf[64];
	size_t i, j, n;

	p->pos = pos;
	if (!json_is_object(e))
		return fail(err, errlen, "--peers: peers[%zu] must be an object "
			    "like {\"id\":\"w1\",...}", pos);
	id = json_object_get(e, "id");
	if (!id)
		return fail(err, errlen, "--peers: peers[%zu] has no \"id\"", pos);
	if (!json_is_string(id))
		return fail(err, errlen, "--peers: peers[%zu]: \"id\" must be a "
			    "string", pos);
	s = json_string_value(id);
	if (!s[0])
		return fail(err, errlen, "--peers: peers[%zu] has an empty id",
			    pos);
	if (!peers_id_valid(s))
		return fail(err, errlen, "--peers: peers[%zu]: id \"%s\" is "
			    "invalid (want 1 to 64 of A-Z a-z 0-9 . _ -)", pos,
			    safe(s, buf, sizeof(buf)));
	memcpy(p->id, s, strlen(s) + 1);

	json_object_foreach(e, key, val) {
		if (!strcmp(key, "id"))
			continue;
		if (!strcmp(key, "ports")) {
			if (t->plan == PEERS_PLAN_VIP)
				return fail(err, errlen, "--peers: peer \"%s\": "
					    "\"ports\" belongs to the identity-port "
					    "plan, but \"vip_net\" selects the "
					    "peer-VIP plan", p->id);
			ports = val;
		}
		else if (!strcmp(key, "vip")) {
			if (t->plan == PEERS_PLAN_IDENTITY)
				return fail(err, errlen, "--peers: peer \"%s\": "
					    "\"vip\" needs a top-level \"vip_net\" "
					    "(peer-VIP plan)", p->id);
			vip = val;
		}
		else {
			return fail(err, errlen, "--peers: peer \"%s\": unknown "
				    "field \"%s\" (known: id, %s)", p->id,
				    safe(key, buf, sizeof(buf)),
				    t->plan == PEERS_PLAN_VIP ? "vip" : "ports");
		}
	}

	if (t->plan == PEERS_PLAN_VIP) {
		long long v;
		uint32_t max = (1u << (32 - t->vip_prefix)) - 2;

		if (!vip)
			return fail(err, errlen, "--peers: peer \"%s\" has no "
				    "\"vip\"", p->id);
		if (!json_is_integer(vip))
			return fail(err, errlen, "--peers: peer \"%s\": \"vip\" "
				    "must be an integer", p->id);
		v = json_integer_value(vip);
		if (v < 1 || v > (long long)max)
			return fail(err, errlen, "--peers: peer \"%s\": vip %lld "
				    "is out of range for /%u (1..%u)", p->id, v,
				    t->vip_prefix, max);
		if ((t->vip_net | (uint32_t)v) == LOOPBACK_HOST)
			return fail(err, errlen, "--peers: peer \"%s\": vip %lld "
				    "is 127.0.0.1, the address local apps use",
				    p->id, v);
		p->vip = (uint32_t)v;
		return 0;
	}

	if (!ports)
		return fail(err, errlen, "--peers: peer \"%s\" has no \"ports\"",
			    p->id);
	if (!json_is_array(ports))
		return fail(err, errlen, "--peers: peer \"%s\": \"ports\" must be "
			    "an array of port numbers", p->id);
	n = json_array_size(ports);
	if (n == 0)
		return fail(err, errlen, "--peers: peer \"%s\" has an empty port "
			    "list", p->id);
	if (n > PEERS_PORTS_MAX)
		return fail(err, errlen, "--peers: peer \"%s\" lists %zu ports (at "
			    "most %d)", p->id, n, PEERS_PORTS_MAX);
	for (i = 0; i < n; i++) {
		long long v;

		if (get_port(json_array_get(ports, i), &v))
			return fail(err, errlen, "--peers: peer \"%s\": ports[%zu] "
				    "must be an integer", p->id, i);
		if (v < 1 || v > 65535)
			return fail(err, errlen, "--peers: peer \"%s\": port %lld "
				    "is outside 1..65535", p->id, v);
		p->ports[i] = (uint16_t)v;
		for (j = 0; j < i; j++) {
			if (p->ports[j] == p->ports[i])
				return fail(err, errlen, "--peers: peer \"%s\" "
					    "lists port %u twice", p->id,
					    p->ports[i]);
		}
	}
	p->nports = n;
	return 0;
}

static int cmp_peer_id(const void *a, const void *b)
{
	const struct peer *x = a, *y = b;

	return strcmp(x->id, y->id);
}

struct port_owner {
	uint16_t port;
	uint32_t peer;
};

static int cmp_owner(const void *a, const void *b)
{
	const struct port_owner *x = a, *y = b;

	if (x->port != y->port)
		return (int)x->port - (int)y->port;
	return (int)x->peer - (int)y->peer;
}

/* Cross-peer rules, on the table sorted by id. */
static int check_table(struct peer_table *t, char *err, size_t errlen)
{
	struct port_owner *own;
	size_t i, j, n;

	for (i = 1; i < t->peerc; i++) {
		if (!strcmp(t->peerv[i].id, t->peerv[i - 1].id))
			return fail(err, errlen, "--peers: peer id \"%s\" is "
				    "listed twice", t->peerv[i].id);
	}

	if (t->plan == PEERS_PLAN_VIP) {
		for (i = 1; i < t->peerc; i++) {
			for (j = 0; j < i; j++) {
				if (t->peerv[j].vip == t->peerv[i].vip)
					return fail(err, errlen, "--peers: vip %u "
						    "is used by both \"%s\" and "
						    "\"%s\"", t->peerv[i].vip,
						    t->peerv[j].id, t->peerv[i].id);
			}
		}
		return 0;
	}

	/* Identity plan: one length for all, in input order for the message. */
	{
		const struct peer *first = NULL;

		for (i = 0; i < t->peerc; i++) {
			if (!first || t->peerv[i].pos < first->pos)
				first = &t->peerv[i];
		}
		for (i = 0; i < t->peerc; i++) {
			if (t->peerv[i].nports != first->nports)
				return fail(err, errlen, "--peers: peer \"%s\" has "
					    "%zu ports but \"%s\" has %zu (every "
					    "peer needs one port per slot)",
					    t->peerv[i].id, t->peerv[i].nports,
					    first->id, first->nports);
		}
		t->nports = first->nports;
	}

	n = t->peerc * t->nports;
	own = mem_zalloc(n * sizeof(*own), NULL);
	if (!own)
		return ENOMEM;
	for (i = 0; i < t->peerc; i++) {
		for (j = 0; j < t->nports; j++) {
			own[i * t->nports + j].port = t->peerv[i].ports[j];
			own[i * t->nports + j].peer = (uint32_t)i;
		}
	}
	qsort(own, n, sizeof(*own), cmp_owner);
	for (i = 1; i < n; i++) {
		if (own[i].port == own[i - 1].port) {
			int rc = fail(err, errlen, "--peers: port %u is listed by "
				      "both \"%s\" and \"%s\"", own[i].port,
				      t->peerv[own[i - 1].peer].id,
				      t->peerv[own[i].peer].id);
			mem_deref(own);
			return rc;
		}
	}
	mem_deref(own);
	return 0;
}

/* docs/forwarding.md "Digest": compact JSON, keys sorted, peers sorted by
 * id, allow sorted by port with "udp" always present: what
 * `jq -cjS` prints for the normalised table. */
static int make_canonical(struct peer_table *t)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t cap, off = 0, i, j;
	char *s;

	cap = 128 + t->allowc * 40 +
	      t->peerc * (32 + PEERS_ID_MAX + t->nports * 6);
	s = mem_zalloc(cap, NULL);
	if (!s)
		return ENOMEM;

#define PUT(...) off += (size_t)snprintf(s + off, cap - off, __VA_ARGS__)
	PUT("{");
	if (t->plan == PEERS_PLAN_VIP) {
		PUT("\"allow\":[");
		for (i = 0; i < t->allowc; i++)
			PUT("%s{\"port\":%u,\"udp\":%s}", i ? "," : "",
			    t->allowv[i].port, t->allowv[i].udp ? "true" : "false");
		PUT("],");
	}
	PUT("\"peers\":[");
	for (i = 0; i < t->peerc; i++) {
		PUT("%s{\"id\":\"%s\",", i ? "," : "", t->peerv[i].id);
		if (t->plan == PEERS_PLAN_VIP) {
			PUT("\"vip\":%u}", t->peerv[i].vip);
			continue;
		}
		PUT("\"ports\":[");
		for (j = 0; j < t->nports; j++)
			PUT("%s%u", j ? "," : "", t->peerv[i].ports[j]);
		PUT("]}");
	}
	PUT("]");
	if (t->plan == PEERS_PLAN_VIP)
		PUT(",\"vip_net\":\"%u.%u.%u.%u/%u\"", t->vip_net >> 24,
		    (t->vip_net >> 16) & 0xff, (t->vip_net >> 8) & 0xff,
		    t->vip_net & 0xff, t->vip_prefix);
	PUT("}");
#undef PUT
	if (off >= cap) {
		mem_deref(s);
		return EOVERFLOW;
	}
	t->canon = s;

	if (!EVP_Digest(s, off, md, &mdlen, EVP_sha256(), NULL) || mdlen < 6)
		return EIO;
	for (i = 0; i < PEERS_DIGEST_HEX / 2; i++)
		snprintf(t->digest + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int parse_root(struct peer_table *t, json_t *root, const char *self_id,
		      char *err, size_t errlen)
{
	json_t *peers = NULL, *vip_net = NULL, *allow = NULL, *val;
	const char *key;
	char buf[64];
	size_t i, n;
	int rc;

	if (!json_is_object(root))
		return fail(err, errlen, "--peers: the table must be a JSON "
			    "object like {\"peers\":[...]}");
	json_object_foreach(root, key, val) {
		if (!strcmp(key, "peers"))
			peers = val;
		else if (!strcmp(key, "vip_net"))
			vip_net = val;
		else if (!strcmp(key, "allow"))
			allow = val;
		else
			return fail(err, errlen, "--peers: unknown top-level field "
				    "\"%s\" (known: peers, vip_net, allow)",
				    safe(key, buf, sizeof(buf)));
	}
	t->plan = vip_net ? PEERS_PLAN_VIP : PEERS_PLAN_IDENTITY;
	if (allow && !vip_net)
		return fail(err, errlen, "--peers: \"allow\" needs \"vip_net\" "
			    "(peer-VIP plan)");
	if (!peers)
		return fail(err, errlen, "--peers: \"peers\" is missing");
	if (!json_is_array(peers))
		return fail(err, errlen, "--peers: \"peers\" must be an array");
	n = json_array_size(peers);
	if (n < 2)
		return fail(err, errlen, "--peers: the table lists %zu peer%s; at "
			    "least two are needed", n, n == 1 ? "" : "s");
	if (n > PEERS_MAX)
		return fail(err, errlen, "--peers: the table lists %zu peers (at "
			    "most %d)", n, PEERS_MAX);

	if (t->plan == PEERS_PLAN_VIP) {
		rc = parse_vip_net(t, vip_net, err, errlen);
		if (rc)
			return rc;
		rc = parse_allow(t, allow, err, errlen);
		if (rc)
			return rc;
	}

	t->peerv = mem_zalloc(n * sizeof(*t->peerv), NULL);
	if (!t->peerv)
		return ENOMEM;
	t->peerc = n;
	for (i = 0; i < n; i++) {
		rc = parse_peer(t, json_array_get(peers, i), i, &t->peerv[i],
				err, errlen);
		if (rc)
			return rc;
	}
	qsort(t->peerv, n, sizeof(*t->peerv), cmp_peer_id);
	rc = check_table(t, err, errlen);
	if (rc)
		return rc;

	if (self_id) {
		int k;

		if (!peers_id_valid(self_id))
			return fail(err, errlen, "--id: \"%s\" is invalid (want 1 "
				    "to 64 of A-Z a-z 0-9 . _ -)",
				    safe(self_id, buf, sizeof(buf)));
		k = peers_find(t, self_id);
		if (k < 0)
			return fail(err, errlen, "--id: \"%s\" is not in the peer "
				    "table", self_id);
		t->self = (size_t)k;
	}
	return make_canonical(t);
}

int peers_parse(struct peer_table **tp, const char *json, size_t len,
		const char *self_id, char *err, size_t errlen)
{
	struct peer_table *t = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!tp || !json)
		return EINVAL;
	if (len > PEERS_TEXT_MAX)
		return fail(err, errlen, "--peers: the table is larger than "
			    "%d bytes", PEERS_TEXT_MAX);

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = fail(err, errlen, "--peers: invalid JSON at line %d column "
			  "%d: %s", jerr.line, jerr.column, jerr.text);
		goto out;
	}
	t = mem_zalloc(sizeof(*t), table_destructor);
	if (!t) {
		rc = ENOMEM;
		goto out;
	}
	rc = parse_root(t, root, self_id, err, errlen);
	if (rc == ENOMEM && err && errlen && !err[0])
		fail(err, errlen, "--peers: out of memory");

 out:
	json_decref(root);
	if (rc)
		mem_deref(t);
	else
		*tp = t;
	return rc;
}

static int read_file(const char *path, char **bufp, size_t *lenp,
		     char *err, size_t errlen)
{
	char pbuf[64];
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = errno;
		fail(err, errlen, "--peers: cannot open %s: %s",
		     safe(path, pbuf, sizeof(pbuf)), strerror(rc));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail(err, errlen, "--peers: %s is not a regular file "
			  "(give a file or inline JSON starting with '{')",
			  safe(path, pbuf, sizeof(pbuf)));
		goto out;
	}
	if (st.st_size > PEERS_TEXT_MAX) {
		rc = fail(err, errlen, "--peers: %s is larger than %d bytes",
			  safe(path, pbuf, sizeof(pbuf)), PEERS_TEXT_MAX);
		goto out;
	}
	/* One byte more than allowed, to notice a file that grew. */
	buf = mem_alloc(PEERS_TEXT_MAX + 1, NULL);
	if (!buf) {
		rc = ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, PEERS_TEXT_MAX + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = errno;
			fail(err, errlen, "--peers: cannot read %s: %s",
			     safe(path, pbuf, sizeof(pbuf)), strerror(rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > PEERS_TEXT_MAX) {
			rc = fail(err, errlen, "--peers: %s is larger than %d "
				  "bytes", safe(path, pbuf, sizeof(pbuf)),
				  PEERS_TEXT_MAX);
			goto out;
		}
	}

 out:
	close(fd);
	if (rc) {
		mem_deref(buf);
	}
	else {
		*bufp = buf;
		*lenp = len;
	}
	return rc;
}

int peers_load(struct peer_table **tp, const char *arg, const char *self_id,
	       char *err, size_t errlen)
{
	const char *p;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!tp)
		return EINVAL;
	if (!arg || !arg[0])
		return fail(err, errlen, "--peers: missing value (a file or "
			    "inline JSON)");

	for (p = arg; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	if (*p == '{') {
		len = strnlen(arg, (size_t)PEERS_TEXT_MAX + 1);
		if (len > PEERS_TEXT_MAX)
			return fail(err, errlen, "--peers: inline JSON is larger "
				    "than %d bytes", PEERS_TEXT_MAX);
		return peers_parse(tp, arg, len, self_id, err, errlen);
	}

	rc = read_file(arg, &buf, &len, err, errlen);
	if (rc)
		return rc;
	rc = peers_parse(tp, buf, len, self_id, err, errlen);
	mem_deref(buf);
	return rc;
}

enum peers_plan peers_plan(const struct peer_table *t)
{
	return t->plan;
}

size_t peers_count(const struct peer_table *t)
{
	return t->peerc;
}

const char *peers_id(const struct peer_table *t, size_t i)
{
	return i < t->peerc ? t->peerv[i].id : NULL;
}

int peers_find(const struct peer_table *t, const char *id)
{
	size_t lo = 0, hi = t->peerc;

	if (!id)
		return -1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, t->peerv[mid].id);

		if (c == 0)
			return (int)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

size_t peers_self(const struct peer_table *t)
{
	return t->self;
}

size_t peers_nports(const struct peer_table *t)
{
	return t->plan == PEERS_PLAN_IDENTITY ? t->nports : 0;
}

uint16_t peers_port(const struct peer_table *t, size_t i, size_t slot)
{
	if (t->plan != PEERS_PLAN_IDENTITY || i >= t->peerc || slot >= t->nports)
		return 0;
	return t->peerv[i].ports[slot];
}

uint32_t peers_vip_addr(const struct peer_table *t, size_t i)
{
	if (t->plan != PEERS_PLAN_VIP || i >= t->peerc)
		return 0;
	return t->vip_net | t->peerv[i].vip;
}

uint32_t peers_vip_net(const struct peer_table *t, unsigned *prefix)
{
	if (prefix)
		*prefix = t->vip_prefix;
	return t->vip_net;
}

size_t peers_nallow(const struct peer_table *t)
{
	return t->allowc;
}

uint16_t peers_allow_port(const struct peer_table *t, size_t k)
{
	return k < t->allowc ? t->allowv[k].port : 0;
}

bool peers_allow_udp(const struct peer_table *t, size_t k)
{
	return k < t->allowc && t->allowv[k].udp;
}

int peers_allow_find(const struct peer_table *t, uint16_t port)
{
	size_t k;

	for (k = 0; k < t->allowc; k++) {
		if (t->allowv[k].port == port)
			return (int)k;
	}
	return -1;
}

const char *peers_canonical(const struct peer_table *t)
{
	return t->canon;
}

const char *peers_digest(const struct peer_table *t)
{
	return t->digest;
}
