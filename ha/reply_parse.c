/* The parsers of Redis and Sentinel answers (reply_parse.h), moved out of
 * mailbox_redis.c, registry.c and sentinel.c unchanged so a fuzz target
 * reaches them. Bytes and lengths in, values out: nothing here sees a
 * hiredis reply, a connection, a counter or a log. */
#include "ha/reply_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/auth.h"
#include "signaling/wire.h"

bool rp_is_hex(const char *s, size_t len, size_t min, size_t max)
{
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool rp_parse_dec(const char *s, size_t len, size_t max_len, uint64_t max, uint64_t *out)
{
	if (len == 0 || len > max_len)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t nv = v * 10 + (uint64_t)(s[i] - '0');
		if (nv / 10 != v)
			return false;
		v = nv;
	}
	if (v > max)
		return false;
	if (out)
		*out = v;
	return true;
}

bool rp_stream_id_seq(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
	if (len > 41)
		return false;
	const char *dash = memchr(s, '-', len);
	uint64_t n;
	if (!dash ||
	    !rp_parse_dec(s, (size_t)(dash - s), 20, (UINT64_MAX - RP_SEQ_PER_MS) / RP_SEQ_PER_MS, ms) ||
	    !rp_parse_dec(dash + 1, (size_t)(s + len - dash - 1), 4, RP_SEQ_PER_MS - 1, &n))
		return false;
	*seq = *ms * RP_SEQ_PER_MS + n;
	return true;
}

/* Splits "w1 w2 ..." (single spaces, no empty words) into at most max
 * words; returns how many, or -1 when malformed or longer. */
static int split_words(const char *s, size_t len, const char *w[], size_t wl[], int max)
{
	int n = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != ' ')
			j++;
		if (j == i || n == max)
			return -1;
		w[n] = s + i;
		wl[n] = j - i;
		n++;
		if (j == len)
			break;
		i = j + 1;
		if (i == len)
			return -1; /* trailing space */
	}
	return n;
}

static bool word_is(const char *w, size_t wl, const char *lit)
{
	return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

/* A count the script reported (purged, expired). */
static bool word_count(const char *w, size_t wl, uint64_t *out)
{
	return rp_parse_dec(w, wl, 7, 1000000, out);
}

void rp_publish_reply(const char *s, size_t len, struct rp_pub *out)
{
	const char *w[5];
	size_t wl[5];
	uint64_t a, b;

	memset(out, 0, sizeof(*out));
	out->kind = RP_PUB_BAD;
	int n = split_words(s, len, w, wl, 5);
	if (n < 1)
		return;
	out->words = true;
	out->first_replay = word_is(w[0], wl[0], "replay");
	if (n == 5 && word_is(w[0], wl[0], "ok")) {
		uint64_t ms, seq;
		if (!rp_is_hex(w[1], wl[1], 1, 16) || !rp_stream_id_seq(w[2], wl[2], &ms, &seq) ||
		    !word_count(w[3], wl[3], &a) || !word_count(w[4], wl[4], &b))
			return;
		out->kind = RP_PUB_OK;
		out->gen = w[1];
		out->gen_len = wl[1];
		out->ms = ms;
		out->seq = seq;
		out->purged = a;
		out->expired = b;
		return;
	}
	if (n == 2 && word_is(w[0], wl[0], "stale")) {
		if (!rp_parse_dec(w[1], wl[1], 16, EPOCH_MAX, &a))
			return;
		out->kind = RP_PUB_STALE;
		out->epoch = a;
		return;
	}
	if (n == 2 && word_is(w[0], wl[0], "full") && word_count(w[1], wl[1], &a)) {
		out->kind = RP_PUB_FULL;
		out->expired = a;
		return;
	}
	if (n == 1 && word_is(w[0], wl[0], "replay")) {
		out->kind = RP_PUB_REPLAY;
		return;
	}
	if (n == 3 && word_is(w[0], wl[0], "busy") && word_count(w[1], wl[1], &a) &&
	    word_count(w[2], wl[2], &b)) {
		out->kind = RP_PUB_BUSY;
		out->purged = a;
		out->expired = b;
		return;
	}
}

bool rp_parse_entry(const char *s, size_t len, struct mb_message *o)
{
	const char *end = s + len;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl || (size_t)(end - nl - 1) > PAYLOAD_MAX)
		return false;
	const char *f[4];
	size_t fl[4];
	const char *p = s;
	for (int i = 0; i < 4; i++) {
		const char *stop = i < 3 ? memchr(p, ' ', (size_t)(nl - p)) : nl;
		if (!stop)
			return false;
		f[i] = p;
		fl[i] = (size_t)(stop - p);
		p = stop + 1;
	}
	if (!id_valid(f[0], fl[0]) || !rp_parse_dec(f[1], fl[1], 16, EPOCH_MAX, &o->epoch) ||
	    o->epoch == 0 || !kind_valid(f[2], fl[2]) || !rp_is_hex(f[3], fl[3], SIG_HEX_LEN, SIG_HEX_LEN))
		return false;
	memcpy(o->from, f[0], fl[0]);
	o->from[fl[0]] = '\0';
	memcpy(o->kind, f[2], fl[2]);
	o->kind[fl[2]] = '\0';
	memcpy(o->psig, f[3], fl[3]);
	o->psig[fl[3]] = '\0';
	o->payload = nl + 1;
	o->payload_len = (size_t)(end - nl - 1);
	return true;
}

int rp_split_cursor(const char *cursor, char gen[17], uint64_t *seq)
{
	const char *dash = strchr(cursor, '-');
	if (!dash || dash == cursor || dash - cursor > 16 || !dash[1] || strlen(dash + 1) > 20)
		return -1;
	if (!rp_is_hex(cursor, (size_t)(dash - cursor), 1, 16))
		return -1;
	if (!rp_parse_dec(dash + 1, strlen(dash + 1), 20, UINT64_MAX, seq))
		return -1;
	memcpy(gen, cursor, (size_t)(dash - cursor));
	gen[dash - cursor] = '\0';
	return 0;
}

static bool endpoints_ok(json_t *obj, const char *key)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a) || json_array_size(a) > 8)
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > RP_ENDPOINT_MAX)
			return false;
	}
	return true;
}

json_t *rp_registry_entry(const char *id, const char *text, size_t len)
{
	if (len > RP_ENTRY_JSON_MAX)
		return NULL;
	json_error_t e;
	json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
	if (!json_is_object(obj))
		goto bad;
	json_t *jid = json_object_get(obj, "id"), *url = json_object_get(obj, "url");
	if (!json_is_string(jid) || strcmp(json_string_value(jid), id) != 0 ||
	    !json_is_string(url) || json_string_length(url) == 0 ||
	    json_string_length(url) > RP_ENDPOINT_MAX)
		goto bad;
	if (!endpoints_ok(obj, "stun") || !endpoints_ok(obj, "turn_udp") ||
	    !endpoints_ok(obj, "turn_tcp") || !endpoints_ok(obj, "turn_tls"))
		goto bad;
	if (json_object_size(obj) != 6)
		goto bad;
	return obj;
bad:
	json_decref(obj);
	return NULL;
}

bool rp_registry_ms(const char *s, size_t len, uint64_t *out)
{
	/* Digits only (no sign, space or NUL): a corrupt score must not
	 * read as a time far ahead and keep an entry listed. */
	return rp_parse_dec(s, len, 16, UINT64_MAX, out);
}

bool rp_sentinel_host(const char *s, size_t len)
{
	if (len == 0 || len >= HA_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '_'))
			return false;
	}
	return true;
}

bool rp_sentinel_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* The widths below are the fields' sizes minus one. */
_Static_assert(sizeof(((struct rp_switch *)0)->name) == 128 && HA_HOST_MAX == 256,
	       "rp_switch_master's sscanf widths");

bool rp_switch_master(const char *data, size_t len, struct rp_switch *out)
{
	char buf[512];
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, data, len);
	buf[len] = '\0';
	return sscanf(buf, "%127s %255s %u %255s %u", out->name, out->oip, &out->oport, out->nip,
		      &out->nport) == 5;
}
