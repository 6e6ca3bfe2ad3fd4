/* The signaling client's pure parts (sig_priv.h): the bounded parsers of
 * the coordinators' answers (poll, coordinators, TURN, errors), the
 * publish body builder with its psig, the checks every polled message
 * passes, and the duplicate filters. No I/O, no clocks, no state beyond
 * what callers pass in: tests and the fuzz harness use them directly. It
 * must not trust a byte of an answer without a bound. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/sig_http.h"
#include "client/sig_priv.h"
#include "signaling/auth.h"
#include "signaling/wire.h"

bool sig_id_ok(const char *s, size_t len)
{
	if (!s || len == 0 || len >= MSG_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool hex64_ok(const char *s, size_t len)
{
	if (len != SIG_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* A string member without embedded NULs, 1..max bytes (0..max if
 * may_be_empty). */
static const char *jstr(json_t *o, const char *key, size_t max,
			bool may_be_empty, size_t *lenp)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return NULL;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > max || strlen(s) != n || (!n && !may_be_empty))
		return NULL;
	if (lenp)
		*lenp = n;
	return s;
}

enum sig_verdict sig_msg_check(const struct mesh_keys *keys, const char *self,
			       const struct sig_msg *m,
			       bool (*known)(const char *id, void *arg),
			       void *arg)
{
	if (strcmp(m->to, self))
		return SIG_DROP_TO;
	if (!strcmp(m->from, self) || !known || !known(m->from, arg))
		return SIG_DROP_FROM;
	if (!psig_ok(keys->e2e, m->from, m->to, m->epoch, m->kind, m->payload,
		     m->payload_len, m->psig))
		return SIG_DROP_PSIG;
	return SIG_OK;
}

static bool parse_msg(json_t *o, struct sig_msg *m)
{
	size_t n;
	json_t *v;

	if (!json_is_object(o))
		return false;
	memset(m, 0, sizeof(*m));
	m->id = jstr(o, "id", MSG_ID_MAX - 1, false, &n);
	if (!m->id || !sig_id_ok(m->id, n))
		return false;
	m->from = jstr(o, "from", PEER_ID_MAX, false, &n);
	if (!m->from || !id_valid(m->from, n))
		return false;
	m->to = jstr(o, "to", PEER_ID_MAX, false, &n);
	if (!m->to || !id_valid(m->to, n))
		return false;
	m->kind = jstr(o, "kind", KIND_MAX, false, &n);
	if (!m->kind || !kind_valid(m->kind, n))
		return false;
	m->payload = jstr(o, "payload", PAYLOAD_MAX, true, &m->payload_len);
	if (!m->payload)
		return false;
	m->psig = jstr(o, "psig", SIG_HEX_LEN, false, &n);
	if (!m->psig || !hex64_ok(m->psig, n))
		return false;
	v = json_object_get(o, "epoch");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    (uint64_t)json_integer_value(v) > EPOCH_MAX)
		return false;
	m->epoch = (uint64_t)json_integer_value(v);
	v = json_object_get(o, "age_ms");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return false;
		m->age_ms = (uint64_t)json_integer_value(v);
	}
	return true;
}

int sig_parse_poll(const char *body, size_t len, struct sig_poll *out)
{
	json_error_t je;
	json_t *doc, *msgs;
	const char *cur;
	size_t n, i;

	out->n = out->malformed = 0;
	out->cursor[0] = '\0';
	out->doc = NULL;
	/* JSON_ALLOW_NUL: one message with "\u0000" in a field must cost only
	 * that message (parse_msg refuses it), not the whole answer, which
	 * would come back the same on every poll and wedge the mailbox. */
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!doc)
		return EBADMSG;
	if (!json_is_object(doc))
		goto bad;
	msgs = json_object_get(doc, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) > POLL_BATCH_MAX)
		goto bad;
	cur = jstr(doc, "cursor", MSG_ID_MAX - 1, true, &n);
	if (!cur || (n && !sig_id_ok(cur, n)))
		goto bad;
	memcpy(out->cursor, cur, n + 1);
	for (i = 0; i < json_array_size(msgs); i++) {
		if (parse_msg(json_array_get(msgs, i), &out->msgs[out->n]))
			out->n++;
		else
			out->malformed++;
	}
	out->doc = doc;
	return 0;
 bad:
	json_decref(doc);
	return EBADMSG;
}

void sig_poll_free(struct sig_poll *p)
{
	if (p->doc)
		json_decref((json_t *)p->doc);
	p->doc = NULL;
	p->n = 0;
}

static bool addr_ok(const char *s, size_t n)
{
	struct sa sa;

	return n > 0 && n < SIG_ADDR_MAX && !sa_decode(&sa, s, n) &&
		sa_port(&sa) != 0;
}

static const char *const srv_keys[SIG_SRV_KINDS] = {
	"stun", "turn_udp", "turn_tcp", "turn_tls",
};

int sig_parse_coordinators(const char *body, size_t len,
			   struct sig_coord_info *v, size_t max, size_t *np)
{
	json_error_t je;
	json_t *doc, *arr;
	size_t n = 0;

	*np = 0;
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return EBADMSG;
	arr = json_is_object(doc) ? json_object_get(doc, "coordinators") : NULL;
	if (!json_is_array(arr)) {
		json_decref(doc);
		return EBADMSG;
	}
	for (size_t i = 0; i < json_array_size(arr) && i < SIG_LIST_MAX && n < max; i++) {
		json_t *o = json_array_get(arr, i);
		struct sig_coord_info *ci = &v[n];
		struct shttp_url u;
		const char *id, *url;
		size_t idn, urln;
		bool ok = true;

		if (!json_is_object(o))
			continue;
		id = jstr(o, "id", PEER_ID_MAX, false, &idn);
		url = jstr(o, "url", SIG_URL_MAX - 1, false, &urln);
		if (!id || !id_valid(id, idn) || !url || shttp_url_parse(url, &u))
			continue;
		memset(ci, 0, sizeof(*ci));
		memcpy(ci->id, id, idn + 1);
		memcpy(ci->url, url, urln + 1);
		for (int k = 0; k < SIG_SRV_KINDS && ok; k++) {
			json_t *a = json_object_get(o, srv_keys[k]);
			if (!a)
				continue;
			if (!json_is_array(a)) {
				ok = false;
				break;
			}
			for (size_t j = 0; j < json_array_size(a); j++) {
				json_t *s = json_array_get(a, j);
				const char *str = json_string_value(s);
				size_t sl = json_string_length(s);
				if (!json_is_string(s) || !addr_ok(str, sl) || strlen(str) != sl) {
					ok = false;
					break;
				}
				if (ci->nsrv[k] < SIG_SRV_MAX)
					memcpy(ci->srv[k][ci->nsrv[k]++], str, sl + 1);
			}
		}
		if (ok)
			n++;
	}
	json_decref(doc);
	*np = n;
	return 0;
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	}
	return true;
}

int sig_parse_turn(const char *body, size_t len, struct sig_turn *t)
{
	json_error_t je;
	json_t *doc, *ttl;
	const char *u, *p;
	size_t un, pn;
	int err = EBADMSG;

	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc || !json_is_object(doc))
		goto out;
	u = jstr(doc, "username", SIG_TURN_STR_MAX - 1, false, &un);
	p = jstr(doc, "password", SIG_TURN_STR_MAX - 1, false, &pn);
	ttl = json_object_get(doc, "ttl");
	if (!u || !p || !printable(u, un) || !printable(p, pn) ||
	    !json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
	    json_integer_value(ttl) > 86400)
		goto out;
	memcpy(t->user, u, un + 1);
	memcpy(t->pass, p, pn + 1);
	t->ttl = (uint32_t)json_integer_value(ttl);
	err = 0;
 out:
	json_decref(doc);
	return err;
}

int sig_parse_error(const char *body, size_t len, char *code, size_t cap,
		    uint64_t *current)
{
	json_error_t je;
	json_t *doc, *cur;
	const char *c;
	size_t n;
	int err = EBADMSG;

	*current = 0;
	if (cap)
		code[0] = '\0';
	doc = json_loadb(body, len, 0, &je);
	if (!doc || !json_is_object(doc))
		goto out;
	c = jstr(doc, "error", 64, false, &n);
	if (!c || n >= cap)
		goto out;
	memcpy(code, c, n + 1);
	cur = json_object_get(doc, "current");
	if (json_is_integer(cur) && json_integer_value(cur) > 0 &&
	    (uint64_t)json_integer_value(cur) <= EPOCH_MAX)
		*current = (uint64_t)json_integer_value(cur);
	err = 0;
 out:
	json_decref(doc);
	return err;
}

int sig_build_publish(char **bodyp, size_t *lenp, const struct mesh_keys *keys,
		      const char *from, const char *to, const char *kind,
		      uint64_t epoch, const char *payload, size_t payload_len)
{
	char psig[SIG_HEX_LEN + 1];
	json_t *o = NULL, *pl;
	char *s;
	int err = 0;

	if (!from || !to || !kind || (!payload && payload_len) ||
	    !id_valid(from, strlen(from)) || !id_valid(to, strlen(to)) ||
	    !kind_valid(kind, strlen(kind)) || epoch < 1 || epoch > EPOCH_MAX)
		return EINVAL;
	if (payload_len > PAYLOAD_MAX)
		return EMSGSIZE;
	if (payload && memchr(payload, '\0', payload_len))
		return EINVAL;
	psig_compute(keys->e2e, from, to, epoch, kind, payload ? payload : "",
		     payload_len, psig);
	pl = json_stringn(payload ? payload : "", payload_len); /* checks UTF-8 */
	if (!pl)
		return EINVAL;
	o = json_object();
	if (!o || json_object_set_new(o, "from", json_string(from)) ||
	    json_object_set_new(o, "to", json_string(to)) ||
	    json_object_set_new(o, "epoch", json_integer((json_int_t)epoch)) ||
	    json_object_set_new(o, "kind", json_string(kind)) ||
	    json_object_set_new(o, "payload", pl) ||
	    json_object_set_new(o, "psig", json_string(psig))) {
		err = ENOMEM;
		goto out;
	}
	s = json_dumps(o, JSON_COMPACT);
	if (!s) {
		err = ENOMEM;
		goto out;
	}
	if (strlen(s) > PUBLISH_BODY_MAX) {
		free(s);
		err = EMSGSIZE;
		goto out;
	}
	*lenp = strlen(s);
	*bodyp = s;
 out:
	json_decref(o);
	return err;
}

bool sig_seen_add(struct sig_seen *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->ids[i], id))
			return true;
	}
	snprintf(s->ids[s->next], sizeof(s->ids[0]), "%s", id);
	s->next = (s->next + 1) % SIG_SEEN_MAX;
	if (s->n < SIG_SEEN_MAX)
		s->n++;
	return false;
}

bool sig_recent_add(struct sig_recent *r, const char *psig, uint64_t now,
		    uint64_t window)
{
	for (size_t i = 0; i < SIG_RECENT_MAX; i++) {
		if (r->e[i].psig[0] && now - r->e[i].at <= window &&
		    !strcmp(r->e[i].psig, psig))
			return true;
	}
	snprintf(r->e[r->next].psig, sizeof(r->e[0].psig), "%s", psig);
	r->e[r->next].at = now;
	r->next = (r->next + 1) % SIG_RECENT_MAX;
	return false;
}
