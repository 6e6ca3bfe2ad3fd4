/* libFuzzer target: the parsers of Redis and Sentinel answers
 * (ha/reply_parse.c, #included so its static split_words is reached too;
 * no hiredis, no loop, nothing to stub). The first input byte picks the
 * parser, the rest is its input (any other first byte: the whole input
 * goes to every parser):
 *   w  split_words, byte 2 % 8 = the most words    p  a publish answer
 *   s  a stream id      e  a stored entry          c  an ack cursor
 *   d  parse_dec/is_hex, byte 2 % 25 = max_len, byte 3 picks the max
 *   r  a registry entry "<id>\n<json>"             t  a registry time
 *   h  a Sentinel master host, and the same bytes as its port
 *   m  a +switch-master message
 * Every parser gets an exact-size heap copy, so ASan catches a read past
 * the length. Checks, against a small reference written here: split_words
 * returns only words inside the input that join back into it; every
 * decimal, hex and stream id is accepted exactly when the reference
 * accepts it, a stream id as seq = ms * 1024 + n with n < 1024 that
 * prints back to the same seq; a publish answer has the kind and values
 * the reference reads; an entry's fields keep their rules (peer id, epoch
 * 1..2^53-1, [a-z]{1,16}, 64 lower hex) and are the header's bytes, its
 * payload is the input after the first '\n' (<= 16384 bytes); a registry
 * entry has exactly its six members in bounds and survives a dump and
 * parse again; Sentinel hosts and ports keep their charset and range;
 * a +switch-master message yields bounded, space-free words that parse
 * again the same. abort() on any violation. */
#include "ha/reply_parse.c"

#include <ctype.h>
#include <inttypes.h>

/* ---- the reference -------------------------------------------------------- */

/* 1..max_len decimal digits (max_len <= 24), value <= max. */
static bool ref_dec(const char *s, size_t len, size_t max_len, uint64_t max, uint64_t *out)
{
	if (len < 1 || len > max_len)
		return false;
	unsigned __int128 v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool ref_hex(const char *s, size_t len, size_t min, size_t max)
{
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0')
			return false;
	return true;
}

static bool ref_stream_id(const char *s, size_t len, uint64_t *ms, uint64_t *n)
{
	size_t k = 0;
	while (k < len && s[k] != '-')
		k++;
	return len <= 41 && k < len && ref_dec(s, k, 20, (UINT64_MAX - 1024) / 1024, ms) &&
	       ref_dec(s + k + 1, len - k - 1, 4, 1023, n);
}

/* Words of s split at every ' ' (empty ones included), at most 16. */
struct ref_words {
	size_t n;
	const char *w[16];
	size_t wl[16];
	bool clean; /* no empty word */
	bool many;  /* more than 16 */
};

static void ref_split(const char *s, size_t len, struct ref_words *rw)
{
	memset(rw, 0, sizeof(*rw));
	rw->clean = true;
	if (len == 0)
		return;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ')
			continue;
		if (i == start)
			rw->clean = false;
		if (rw->n == 16) {
			rw->many = true;
			return;
		}
		rw->w[rw->n] = s + start;
		rw->wl[rw->n] = i - start;
		rw->n++;
		start = i + 1;
	}
}

static bool ref_is(const char *w, size_t wl, const char *lit)
{
	return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

static bool ref_peer(const char *s, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static bool ref_kind(const char *s, size_t len)
{
	if (len < 1 || len > 16)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]))
			return false;
	return true;
}

/* What strtoul/strtoull followed by "*end == '\0'" accept in the C
 * locale: ^\s*[+-]?[0-9]+$ on the C string, as the digits' value, negated
 * mod 2^64 after a '-' (UINT64_MAX when it overflows); or the empty C
 * string, as 0 (no conversion leaves end at the start). */
static bool ref_strtou(const char *s, uint64_t *out)
{
	if (!*s) {
		*out = 0;
		return true;
	}
	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	bool neg = *s == '-';
	if (*s == '+' || *s == '-')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	unsigned __int128 v = 0;
	bool over = false;
	for (; isdigit((unsigned char)*s); s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > UINT64_MAX) {
			over = true;
			v = UINT64_MAX;
		}
	}
	if (*s)
		return false;
	*out = over ? UINT64_MAX : neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	return true;
}

static bool inside(const char *p, size_t pl, const char *s, size_t len)
{
	return p >= s && pl <= len && (size_t)(p - s) <= len - pl;
}

static char *cstr(const char *s, size_t len)
{
	char *c = malloc(len + 1);
	if (!c)
		abort();
	memcpy(c, s, len);
	c[len] = '\0';
	return c;
}

/* ---- one parser each -------------------------------------------------------- */

static void check_words(const char *s, size_t len, int max)
{
	/* Exactly max slots, so a write past them is caught. */
	const char **w = malloc(sizeof(*w) * (size_t)(max ? max : 1));
	size_t *wl = malloc(sizeof(*wl) * (size_t)(max ? max : 1));
	if (!w || !wl)
		abort();
	int n = split_words(s, len, w, wl, max);
	struct ref_words rw;
	ref_split(s, len, &rw);
	bool ok = rw.clean && !rw.many && rw.n <= (size_t)max;
	if (ok != (n >= 0) || (ok && (size_t)n != rw.n))
		abort();
	const char *p = s;
	for (int i = 0; i < n; i++) {
		/* Inside the input, no space, and back to back with one space
		 * between: the words are the input. */
		if (w[i] != p || wl[i] < 1 || !inside(w[i], wl[i], s, len) ||
		    memchr(w[i], ' ', wl[i]))
			abort();
		p = w[i] + wl[i];
		if (i + 1 < n ? (size_t)(p - s) >= len || *p != ' ' : p != s + len)
			abort();
		p++;
	}
	if (n == 0 && len != 0)
		abort();
	free(w);
	free(wl);
}

static void check_dec(const char *s, size_t len, size_t max_len, uint64_t max)
{
	uint64_t v = 0xa5a5a5a5a5a5a5a5u, r;
	bool ok = rp_parse_dec(s, len, max_len, max, &v);
	if (ok != ref_dec(s, len, max_len, max, &r) || (ok && v != r) ||
	    (!ok && v != 0xa5a5a5a5a5a5a5a5u) || ok != rp_parse_dec(s, len, max_len, max, NULL))
		abort();
	size_t lo = max_len % 17, hi = max_len;
	if (rp_is_hex(s, len, lo, hi) != ref_hex(s, len, lo, hi))
		abort();
}

static void check_stream_id(const char *s, size_t len)
{
	uint64_t ms, seq, rms, rn;
	bool ok = rp_stream_id_seq(s, len, &ms, &seq);
	if (ok != ref_stream_id(s, len, &rms, &rn))
		abort();
	if (!ok)
		return;
	if (ms != rms || seq / 1024 != ms || seq % 1024 != rn || rn >= 1024)
		abort();
	/* Printed back without leading zeros, it is no longer and reads the same. */
	char buf[64];
	int l = snprintf(buf, sizeof(buf), "%" PRIu64 "-%" PRIu64, seq / 1024, seq % 1024);
	uint64_t ms2, seq2;
	if (l < 3 || (size_t)l > len || !rp_stream_id_seq(buf, (size_t)l, &ms2, &seq2) ||
	    ms2 != ms || seq2 != seq)
		abort();
}

static void check_publish(const char *s, size_t len)
{
	struct rp_pub p;
	rp_publish_reply(s, len, &p);
	struct ref_words rw;
	ref_split(s, len, &rw);
	bool words = rw.n >= 1 && rw.clean && !rw.many && rw.n <= 5;
	if (p.words != words || p.first_replay != (words && ref_is(rw.w[0], rw.wl[0], "replay")))
		abort();

	enum rp_pub_kind want = RP_PUB_BAD;
	uint64_t ms = 0, n = 0, a = 0, b = 0;
	const char **w = rw.w;
	size_t *wl = rw.wl;
	if (words) {
		if (rw.n == 5 && ref_is(w[0], wl[0], "ok") && ref_hex(w[1], wl[1], 1, 16) &&
		    ref_stream_id(w[2], wl[2], &ms, &n) && ref_dec(w[3], wl[3], 7, 1000000, &a) &&
		    ref_dec(w[4], wl[4], 7, 1000000, &b))
			want = RP_PUB_OK;
		else if (rw.n == 2 && ref_is(w[0], wl[0], "stale") &&
			 ref_dec(w[1], wl[1], 16, EPOCH_MAX, &a))
			want = RP_PUB_STALE;
		else if (rw.n == 2 && ref_is(w[0], wl[0], "full") &&
			 ref_dec(w[1], wl[1], 7, 1000000, &b))
			want = RP_PUB_FULL;
		else if (rw.n == 1 && ref_is(w[0], wl[0], "replay"))
			want = RP_PUB_REPLAY;
		else if (rw.n == 3 && ref_is(w[0], wl[0], "busy") &&
			 ref_dec(w[1], wl[1], 7, 1000000, &a) && ref_dec(w[2], wl[2], 7, 1000000, &b))
			want = RP_PUB_BUSY;
	}
	if (p.kind != want)
		abort();
	switch (want) {
	case RP_PUB_OK:
		if (p.gen != w[1] || p.gen_len != wl[1] || !inside(p.gen, p.gen_len, s, len) ||
		    p.ms != ms || p.seq != ms * 1024 + n || p.purged != a || p.expired != b)
			abort();
		break;
	case RP_PUB_STALE:
		if (p.epoch != a || p.epoch > EPOCH_MAX)
			abort();
		break;
	case RP_PUB_FULL:
		if (p.expired != b)
			abort();
		break;
	case RP_PUB_BUSY:
		if (p.purged != a || p.expired != b)
			abort();
		break;
	case RP_PUB_REPLAY:
	case RP_PUB_BAD:
		break;
	}
}

static void check_entry(const char *s, size_t len)
{
	struct mb_message o;
	memset(&o, 0xa5, sizeof(o));
	bool ok = rp_parse_entry(s, len, &o);

	/* The reference: a header line of exactly four space-separated
	 * fields, then at most PAYLOAD_MAX bytes. */
	const char *nl = memchr(s, '\n', len);
	bool want = false;
	struct ref_words rw = { 0 };
	uint64_t epoch = 0;
	if (nl && len - (size_t)(nl + 1 - s) <= 16384) {
		ref_split(s, (size_t)(nl - s), &rw);
		want = !rw.many && rw.n == 4 && ref_peer(rw.w[0], rw.wl[0]) &&
		       ref_dec(rw.w[1], rw.wl[1], 16, EPOCH_MAX, &epoch) && epoch != 0 &&
		       ref_kind(rw.w[2], rw.wl[2]) && ref_hex(rw.w[3], rw.wl[3], 64, 64);
	}
	if (ok != want)
		abort();
	if (!ok)
		return;
	if (!memchr(o.from, '\0', sizeof(o.from)) || !memchr(o.kind, '\0', sizeof(o.kind)) ||
	    !memchr(o.psig, '\0', sizeof(o.psig)))
		abort();
	if (strlen(o.from) != rw.wl[0] || memcmp(o.from, rw.w[0], rw.wl[0]) ||
	    strlen(o.kind) != rw.wl[2] || memcmp(o.kind, rw.w[2], rw.wl[2]) ||
	    strlen(o.psig) != 64 || memcmp(o.psig, rw.w[3], 64) || o.epoch != epoch)
		abort();
	/* The payload is the input after the first '\n', nothing else. */
	if (o.payload != nl + 1 || o.payload_len > PAYLOAD_MAX ||
	    !inside(o.payload, o.payload_len, s, len) || o.payload + o.payload_len != s + len)
		abort();
}

static void check_cursor(const char *s, size_t len)
{
	char *c = cstr(s, len);
	char *gen = malloc(17); /* exactly gen[17] */
	if (!gen)
		abort();
	uint64_t seq = 0, rseq = 0;
	int rc = rp_split_cursor(c, gen, &seq);
	const char *dash = strchr(c, '-');
	bool want = dash && ref_hex(c, (size_t)(dash - c), 1, 16) &&
		    ref_dec(dash + 1, strlen(dash + 1), 20, UINT64_MAX, &rseq);
	if ((rc == 0) != want || (rc != 0 && rc != -1))
		abort();
	if (want && (seq != rseq || strlen(gen) != (size_t)(dash - c) ||
		     memcmp(gen, c, (size_t)(dash - c)) != 0))
		abort();
	free(gen);
	free(c);
}

static bool ref_endpoints(json_t *obj, const char *key)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a) || json_array_size(a) > 8)
		return false;
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 300 ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return false;
	}
	return true;
}

static void check_registry_entry(const char *s, size_t len)
{
	const char *nl = memchr(s, '\n', len);
	size_t il = nl ? (size_t)(nl - s) : 0;
	char *id = cstr(s, il); /* may hold a NUL: the parser sees a C string */
	const char *text = nl ? nl + 1 : s;
	size_t tl = len - (size_t)(text - s);
	json_t *obj = rp_registry_entry(id, text, tl);
	if (obj) {
		json_t *jid = json_object_get(obj, "id"), *url = json_object_get(obj, "url");
		if (tl > 4096 || !json_is_object(obj) || json_object_size(obj) != 6 ||
		    !json_is_string(jid) || strcmp(json_string_value(jid), id) != 0 ||
		    !json_is_string(url) || json_string_length(url) < 1 ||
		    json_string_length(url) > 300 || !ref_endpoints(obj, "stun") ||
		    !ref_endpoints(obj, "turn_udp") || !ref_endpoints(obj, "turn_tcp") ||
		    !ref_endpoints(obj, "turn_tls"))
			abort();
		/* What we keep and serve parses again to the same entry. */
		char *dump = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!dump)
			abort();
		json_t *again = rp_registry_entry(id, dump, strlen(dump));
		if (!again || !json_equal(obj, again))
			abort();
		json_decref(again);
		free(dump);
		json_decref(obj);
	}
	free(id);
}

static void check_registry_ms(const char *s, size_t len)
{
	char *c = cstr(s, len);
	uint64_t v = 0, r = 0;
	bool ok = rp_registry_ms(c, len, &v);
	/* 1..16 decimal digits and nothing else; the value is theirs. */
	bool want = len >= 1 && len <= 16;
	for (size_t i = 0; want && i < len; i++) {
		want = s[i] >= '0' && s[i] <= '9';
		r = r * 10 + (uint64_t)(s[i] - '0');
	}
	if (ok != want || (ok && v != r))
		abort();
	free(c);
}

static void check_sentinel(const char *s, size_t len)
{
	bool ok = rp_sentinel_host(s, len), want = len >= 1 && len < HA_HOST_MAX;
	for (size_t i = 0; want && i < len; i++)
		want = isalnum((unsigned char)s[i]) || (s[i] && strchr(".-:_", s[i]));
	if (ok != want)
		abort();
	/* The caller only passes ports of 1..5 bytes. */
	if (len < 1 || len > 5)
		return;
	char *c = cstr(s, len);
	uint16_t port = 0;
	uint64_t r = 0;
	ok = rp_sentinel_port(c, &port);
	want = ref_strtou(c, &r) && r >= 1 && r <= 65535;
	if (ok != want || (ok && (port != r || port == 0)))
		abort();
	free(c);
}

static bool no_space(const char *w, size_t cap)
{
	size_t l = strnlen(w, cap);
	if (l < 1 || l >= cap)
		return false;
	for (size_t i = 0; i < l; i++)
		if (isspace((unsigned char)w[i]))
			return false;
	return true;
}

static void check_switch(const char *s, size_t len)
{
	struct rp_switch sw;
	memset(&sw, 0xa5, sizeof(sw));
	if (!rp_switch_master(s, len, &sw))
		return;
	if (len >= 512 || !no_space(sw.name, sizeof(sw.name)) || !no_space(sw.oip, sizeof(sw.oip)) ||
	    !no_space(sw.nip, sizeof(sw.nip)))
		abort();
	/* Each word is in the input, and written out again it reads the same. */
	char *c = cstr(s, len);
	if (!strstr(c, sw.name) || !strstr(c, sw.oip) || !strstr(c, sw.nip))
		abort();
	char buf[700];
	int l = snprintf(buf, sizeof(buf), "%s %s %u %s %u", sw.name, sw.oip, sw.oport, sw.nip,
			 sw.nport);
	struct rp_switch again;
	if (l < 0 || (size_t)l >= sizeof(buf))
		abort();
	if ((size_t)l < 512 &&
	    (!rp_switch_master(buf, (size_t)l, &again) || strcmp(again.name, sw.name) ||
	     strcmp(again.oip, sw.oip) || strcmp(again.nip, sw.nip) || again.oport != sw.oport ||
	     again.nport != sw.nport))
		abort();
	free(c);
}

/* ---- the entry point ----------------------------------------------------------- */

static const uint64_t dec_max[] = { 0, 1023, 1000000, EPOCH_MAX, INT64_MAX,
				    (UINT64_MAX - 1024) / 1024, UINT64_MAX };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t skip = 1;
	int wmax = 5;
	size_t max_len = 20;
	uint64_t max = UINT64_MAX;
	if (data[0] == 'w' && size >= 2) {
		wmax = data[1] % 8;
		skip = 2;
	}
	if (data[0] == 'd' && size >= 3) {
		max_len = data[1] % 25;
		max = dec_max[data[2] % (sizeof(dec_max) / sizeof(dec_max[0]))];
		skip = 3;
	}
	if (!strchr("wpsecdrthm", data[0]) || data[0] == '\0')
		skip = 0;
	size_t len = size - skip;
	char *s = malloc(len ? len : 1); /* exact size: no terminator to lean on */
	if (!s)
		abort();
	memcpy(s, data + skip, len);

	switch (skip ? data[0] : 0) {
	case 'w': check_words(s, len, wmax); break;
	case 'p': check_publish(s, len); break;
	case 's': check_stream_id(s, len); break;
	case 'e': check_entry(s, len); break;
	case 'c': check_cursor(s, len); break;
	case 'd': check_dec(s, len, max_len, max); break;
	case 'r': check_registry_entry(s, len); break;
	case 't': check_registry_ms(s, len); break;
	case 'h': check_sentinel(s, len); break;
	case 'm': check_switch(s, len); break;
	default:
		check_words(s, len, 5);
		check_publish(s, len);
		check_stream_id(s, len);
		check_entry(s, len);
		check_cursor(s, len);
		check_dec(s, len, 20, UINT64_MAX);
		check_registry_entry(s, len);
		check_registry_ms(s, len);
		check_sentinel(s, len);
		check_switch(s, len);
		break;
	}
	free(s);
	return 0;
}
