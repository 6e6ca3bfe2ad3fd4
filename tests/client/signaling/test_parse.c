/* The pure parts of the signaling client: the HTTP response parser (whole
 * and split at every byte), URLs, the poll / coordinators / TURN / error
 * answer parsers, the publish body, the message checks and the duplicate
 * filters. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/sig_http.h"
#include "client/sig_priv.h"
#include "signaling/auth.h"
#include "signaling/keys.h"
#include "tests/client/signaling/sigtest.h"

/* Parses all of s in one call; returns the status or a negative errno. */
static int parse_all(struct shttp_parser *p, const char *s, size_t len,
		     size_t body_max, bool eof)
{
	size_t used = 0;
	int rc;

	shttp_parser_init(p, body_max, false);
	rc = shttp_parse(p, (const uint8_t *)s, len, &used);
	if (rc == SHTTP_MORE && eof)
		rc = shttp_parse_eof(p);
	if (rc < 0)
		return rc;
	return rc == SHTTP_DONE ? p->status : 0;
}

void t_http_parser(void)
{
	struct shttp_parser p;
	const struct shttp_hdr *h;
	char big[SHTTP_HEAD_MAX + 100];

	static const char ok[] =
		"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
		"Content-Length: 30\r\n\r\n{\"id\":\"ab-1\",\"epoch\":17640000}";
	CHECK(parse_all(&p, ok, strlen(ok), 1000, false) == 202);
	CHECK(p.body_len == 30 && !strcmp((char *)p.body, "{\"id\":\"ab-1\",\"epoch\":17640000}"));
	CHECK(p.keep_alive);
	h = shttp_header(&p, "content-type");
	CHECK(h && h->vlen == 16 && !memcmp(h->val, "application/json", 16));
	shttp_parser_free(&p);

	static const char chunked[] =
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
	CHECK(parse_all(&p, chunked, strlen(chunked), 1000, false) == 200);
	CHECK(p.body_len == 11 && !strcmp((char *)p.body, "hello world"));
	CHECK(!p.keep_alive);
	shttp_parser_free(&p);

	static const char eofbody[] = "HTTP/1.0 503 Service Unavailable\r\nRetry-After: 3\r\n\r\nbusy";
	CHECK(parse_all(&p, eofbody, strlen(eofbody), 1000, true) == 503);
	CHECK(p.body_len == 4 && !p.keep_alive);
	h = shttp_header(&p, "Retry-After");
	CHECK(h && h->vlen == 1 && h->val[0] == '3');
	shttp_parser_free(&p);

	static const char interim[] =
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n";
	CHECK(parse_all(&p, interim, strlen(interim), 1000, false) == 204);
	CHECK(p.body_len == 0);
	shttp_parser_free(&p);

	/* Bounds and malformed answers. */
	static const char toobig[] = "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n";
	CHECK(parse_all(&p, toobig, strlen(toobig), 1000, false) == -EMSGSIZE);
	shttp_parser_free(&p);
	static const char bigchunk[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n";
	CHECK(parse_all(&p, bigchunk, strlen(bigchunk), 1000, false) == -EMSGSIZE);
	shttp_parser_free(&p);
	static const char eofbig[] = "HTTP/1.1 200 OK\r\n\r\n0123456789";
	CHECK(parse_all(&p, eofbig, strlen(eofbig), 5, false) == -EMSGSIZE);
	shttp_parser_free(&p);
	static const char *bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
		"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
		"HTTP/1.1 101 Switching\r\n\r\n",
		"HTTP/1.1 200 OK\nX: y\n\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_all(&p, bad[i], strlen(bad[i]), 1000, true);
		CHECKF(rc < 0, "case %zu gave %d", i, rc);
		shttp_parser_free(&p);
	}
	/* A truncated body is an error at the end of the connection. */
	static const char trunc[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	CHECK(parse_all(&p, trunc, strlen(trunc), 1000, true) == -EBADMSG);
	shttp_parser_free(&p);
	/* The head bound. */
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', sizeof(big) - 20);
	CHECK(parse_all(&p, big, sizeof(big), 1000, false) == -EMSGSIZE);
	shttp_parser_free(&p);
	/* Too many headers. */
	char many[4096] = "HTTP/1.1 200 OK\r\n";
	for (int i = 0; i < SHTTP_HEADERS_MAX + 1; i++)
		strcat(many, "A: b\r\n");
	strcat(many, "\r\n");
	CHECK(parse_all(&p, many, strlen(many), 1000, false) == -EMSGSIZE);
	shttp_parser_free(&p);
	/* Bytes after a complete answer are not consumed. */
	static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
	size_t used = 0;
	shttp_parser_init(&p, 100, false);
	CHECK(shttp_parse(&p, (const uint8_t *)two, strlen(two), &used) == SHTTP_DONE);
	CHECK(used == strlen(two) - 8);
	shttp_parser_free(&p);
}

/* Every answer above split in two at every position, and fed byte by
 * byte, parses to the same result. */
void t_http_parser_split(void)
{
	static const char *cases[] = {
		"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nabcde",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;e\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}",
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *s = cases[c];
		size_t len = strlen(s);
		struct shttp_parser ref;
		CHECK(parse_all(&ref, s, len, 1000, false) > 0);
		for (size_t cut = 0; cut <= len; cut++) {
			struct shttp_parser p;
			size_t u1 = 0, u2 = 0;
			shttp_parser_init(&p, 1000, false);
			int rc = shttp_parse(&p, (const uint8_t *)s, cut, &u1);
			if (rc == SHTTP_MORE)
				rc = shttp_parse(&p, (const uint8_t *)s + cut, len - cut, &u2);
			CHECKF(rc == SHTTP_DONE && p.status == ref.status &&
			       p.body_len == ref.body_len &&
			       !memcmp(p.body, ref.body, ref.body_len),
			       "case %zu cut %zu", c, cut);
			shttp_parser_free(&p);
		}
		struct shttp_parser p;
		int rc = SHTTP_MORE;
		shttp_parser_init(&p, 1000, false);
		for (size_t i = 0; i < len && rc == SHTTP_MORE; i++)
			rc = shttp_parse(&p, (const uint8_t *)s + i, 1, NULL);
		CHECK(rc == SHTTP_DONE && p.body_len == ref.body_len);
		shttp_parser_free(&p);
		shttp_parser_free(&ref);
	}
}

void t_http_url(void)
{
	struct shttp_url u;

	CHECK(shttp_url_parse("http://127.0.0.1:7000", &u) == 0);
	CHECK(!strcmp(u.host, "127.0.0.1") && u.port == 7000 && !u.prefix[0]);
	CHECK(!strcmp(u.hostport, "127.0.0.1:7000"));
	CHECK(shttp_url_parse("http://[::1]:7001/mesh/", &u) == 0);
	CHECK(!strcmp(u.host, "::1") && u.port == 7001 && !strcmp(u.prefix, "/mesh"));
	CHECK(!strcmp(u.hostport, "[::1]:7001"));
	CHECK(shttp_url_parse("http://coord.example", &u) == 0 && u.port == 80);
	CHECK(shttp_url_parse("https://x:1", &u) == ENOTSUP);
	CHECK(shttp_url_parse("ftp://x", &u) == EINVAL);
	CHECK(shttp_url_parse("http://", &u) == EINVAL);
	CHECK(shttp_url_parse("http://x:0", &u) == EINVAL);
	CHECK(shttp_url_parse("http://x:65536", &u) == EINVAL);
	CHECK(shttp_url_parse("http://u@x:1", &u) == EINVAL);
	CHECK(shttp_url_parse("http://x:1/a?b", &u) == EINVAL);
	CHECK(shttp_url_parse("http://x:1x", &u) == EINVAL);
}

static const char PSIG[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

void t_poll_parse(void)
{
	struct sig_poll *p = calloc(1, sizeof(*p));
	char body[4096];

	snprintf(body, sizeof(body),
		 "{\"messages\":[{\"id\":\"0a1b-7\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":17,"
		 "\"kind\":\"offer\",\"payload\":\"p\\\"q\",\"psig\":\"%s\",\"age_ms\":12},"
		 /* bad ones: each skipped, counted */
		 "{\"id\":\"0a1b-8\",\"from\":\"w 1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-9\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":0,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-10\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":9007199254740992,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-11\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"Offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-12\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"a\\u0000\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-13\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"ABC\"},"
		 "{\"id\":\"0a1b 14\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "{\"id\":\"0a1b-15\",\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1.5,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"%s\"},"
		 "7],\"cursor\":\"0a1b-15\"}",
		 PSIG, PSIG, PSIG, PSIG, PSIG, PSIG, PSIG, PSIG);
	CHECK(sig_parse_poll(body, strlen(body), p) == 0);
	CHECK(p->n == 1 && p->malformed == 9);
	CHECK(!strcmp(p->cursor, "0a1b-15"));
	CHECK(!strcmp(p->msgs[0].id, "0a1b-7") && p->msgs[0].epoch == 17);
	CHECK(p->msgs[0].payload_len == 3 && !strcmp(p->msgs[0].payload, "p\"q"));
	CHECK(p->msgs[0].age_ms == 12);
	sig_poll_free(p);

	static const char *bad[] = {
		"", "[]", "{\"messages\":[]}", "{\"cursor\":\"\"}",
		"{\"messages\":{},\"cursor\":\"\"}",
		"{\"messages\":[],\"cursor\":\"a b\"}",
		"{\"messages\":[],\"cursor\":\"x\",\"cursor\":\"y\"}",
		"{\"messages\":[],\"cursor\":7}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(sig_parse_poll(bad[i], strlen(bad[i]), p) == EBADMSG, "%s", bad[i]);
	CHECK(sig_parse_poll("{\"messages\":[],\"cursor\":\"\"}", 27, p) == 0 && p->n == 0);
	sig_poll_free(p);
	/* More than 256 messages is not an answer the contract allows. */
	size_t cap = 300 * 8 + 64;
	char *many = malloc(cap);
	strcpy(many, "{\"messages\":[");
	for (int i = 0; i < 257; i++)
		strcat(many, i ? ",{}" : "{}");
	strcat(many, "],\"cursor\":\"\"}");
	CHECK(sig_parse_poll(many, strlen(many), p) == EBADMSG);
	free(many);
	free(p);
}

void t_list_turn_error_parse(void)
{
	struct sig_coord_info v[4];
	size_t n = 0;
	static const char list[] =
		"{\"coordinators\":[{\"id\":\"c0\",\"url\":\"http://127.0.0.1:7000\","
		"\"stun\":[\"127.0.0.1:3478\"],\"turn_udp\":[\"127.0.0.1:3478\"],"
		"\"turn_tcp\":[\"127.0.0.1:3478\"],\"turn_tls\":[\"[::1]:5349\"],\"age_ms\":800},"
		"{\"id\":\"bad id\",\"url\":\"http://127.0.0.1:7001\"},"
		"{\"id\":\"c2\",\"url\":\"https://127.0.0.1:7002\"},"
		"{\"id\":\"c3\",\"url\":\"http://127.0.0.1:7003\",\"stun\":[\"nope\"]},"
		"{\"id\":\"c4\",\"url\":\"http://127.0.0.1:7004\"}]}";
	CHECK(sig_parse_coordinators(list, strlen(list), v, 4, &n) == 0);
	CHECK(n == 2);
	CHECK(!strcmp(v[0].id, "c0") && v[0].nsrv[SIG_SRV_STUN] == 1 &&
	      !strcmp(v[0].srv[SIG_SRV_TURN_TLS][0], "[::1]:5349"));
	CHECK(!strcmp(v[1].id, "c4") && v[1].nsrv[SIG_SRV_STUN] == 0);
	CHECK(sig_parse_coordinators("{\"coordinators\":{}}", 19, v, 4, &n) == EBADMSG);
	CHECK(sig_parse_coordinators("nope", 4, v, 4, &n) == EBADMSG);

	struct sig_turn t;
	static const char turn[] = "{\"username\":\"1795807231:w1\",\"password\":\"Abu8+z680=\",\"ttl\":3600,\"realm\":\"mesh\"}";
	CHECK(sig_parse_turn(turn, strlen(turn), &t) == 0);
	CHECK(!strcmp(t.user, "1795807231:w1") && !strcmp(t.pass, "Abu8+z680=") && t.ttl == 3600);
	static const char *badturn[] = {
		"{\"username\":\"u\",\"password\":\"p\",\"ttl\":0}",
		"{\"username\":\"u\",\"password\":\"p\",\"ttl\":86401}",
		"{\"username\":\"u u\",\"password\":\"p\",\"ttl\":60}",
		"{\"username\":\"u\",\"ttl\":60}",
	};
	for (size_t i = 0; i < sizeof(badturn) / sizeof(badturn[0]); i++)
		CHECK(sig_parse_turn(badturn[i], strlen(badturn[i]), &t) == EBADMSG);

	char code[32];
	uint64_t cur = 1;
	static const char e1[] = "{\"error\":\"stale_epoch\",\"message\":\"x\",\"current\":1764000000123}";
	CHECK(sig_parse_error(e1, strlen(e1), code, sizeof(code), &cur) == 0);
	CHECK(!strcmp(code, "stale_epoch") && cur == UINT64_C(1764000000123));
	static const char e2[] = "{\"error\":\"rate_limited\",\"message\":\"x\"}";
	CHECK(sig_parse_error(e2, strlen(e2), code, sizeof(code), &cur) == 0 && cur == 0);
	CHECK(sig_parse_error("{}", 2, code, sizeof(code), &cur) == EBADMSG);
}

static struct mesh_keys test_keys(void)
{
	static const uint8_t root[32] = "parse-test-root-secret-32-bytes";
	struct mesh_keys k;

	(void)keys_derive(root, sizeof(root), &k);
	return k;
}

void t_publish_build(void)
{
	struct mesh_keys k = test_keys();
	char *body = NULL, psig[SIG_HEX_LEN + 1];
	size_t len = 0;
	char *big = malloc(PAYLOAD_MAX + 2);

	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 17, "x\"y", 3) == 0);
	CHECK(body && len == strlen(body));
	json_error_t je;
	json_t *o = json_loadb(body, len, 0, &je);
	CHECK(o && json_object_size(o) == 6);
	psig_compute(k.e2e, "w1", "w2", 17, "offer", "x\"y", 3, psig);
	CHECK(!strcmp(json_string_value(json_object_get(o, "psig")), psig));
	CHECK(json_integer_value(json_object_get(o, "epoch")) == 17);
	CHECK(!strcmp(json_string_value(json_object_get(o, "payload")), "x\"y"));
	/* Field order as in the contract's example. */
	CHECK(!strncmp(body, "{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":17,\"kind\":\"offer\",\"payload\"", 56));
	json_decref(o);
	free(body);
	body = NULL;
	memset(big, 'a', PAYLOAD_MAX + 1);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 1, big, PAYLOAD_MAX) == 0);
	free(body);
	body = NULL;
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 1, big, PAYLOAD_MAX + 1) == EMSGSIZE);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 0, "", 0) == EINVAL);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", UINT64_C(1) << 53, "", 0) == EINVAL);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "Offer", 1, "", 0) == EINVAL);
	CHECK(sig_build_publish(&body, &len, &k, "w 1", "w2", "offer", 1, "", 0) == EINVAL);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 1, "a\0b", 3) == EINVAL);
	CHECK(sig_build_publish(&body, &len, &k, "w1", "w2", "offer", 1, "\xc3\x28", 2) == EINVAL);
	CHECK(body == NULL);
	free(big);
}

static bool known(const char *id, void *arg)
{
	(void)arg;
	return !strcmp(id, "w1") || !strcmp(id, "w2");
}

void t_msg_check(void)
{
	struct mesh_keys k = test_keys(), other;
	char psig[SIG_HEX_LEN + 1];
	struct sig_msg m = { .id = "a-1", .from = "w1", .to = "w2", .kind = "offer",
			     .epoch = 5, .payload = "hello", .payload_len = 5, .psig = psig };

	psig_compute(k.e2e, "w1", "w2", 5, "offer", "hello", 5, psig);
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_OK);
	CHECK(sig_msg_check(&k, "w3", &m, known, NULL) == SIG_DROP_TO);
	m.from = "w9";
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_FROM);
	m.from = "w2";
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_FROM); /* ourselves */
	m.from = "w1";
	/* Any change the coordinator could make breaks the psig. */
	m.epoch = 6;
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_PSIG);
	m.epoch = 5;
	m.kind = "answer";
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_PSIG);
	m.kind = "offer";
	m.payload = "hellO";
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_PSIG);
	m.payload = "hello";
	/* A psig made with another cluster's key. */
	static const uint8_t root2[32] = "another-cluster-root-secret-32b";
	(void)keys_derive(root2, sizeof(root2), &other);
	psig_compute(other.e2e, "w1", "w2", 5, "offer", "hello", 5, psig);
	CHECK(sig_msg_check(&k, "w2", &m, known, NULL) == SIG_DROP_PSIG);
}

void t_dedupe(void)
{
	struct sig_seen *s = calloc(1, sizeof(*s));
	struct sig_recent *r = calloc(1, sizeof(*r));
	char id[32];

	CHECK(!sig_seen_add(s, "g-1"));
	CHECK(sig_seen_add(s, "g-1"));
	CHECK(!sig_seen_add(s, "h-1")); /* another generation */
	for (int i = 2; i < SIG_SEEN_MAX + 2; i++) {
		snprintf(id, sizeof(id), "g-%d", i);
		CHECK(!sig_seen_add(s, id));
	}
	/* Bounded: the oldest fell out. */
	CHECK(!sig_seen_add(s, "g-1"));
	CHECK(sig_seen_add(s, "g-400"));

	CHECK(!sig_recent_add(r, PSIG, 1000, 10000));
	CHECK(sig_recent_add(r, PSIG, 5000, 10000));
	CHECK(!sig_recent_add(r, PSIG, 12000, 10000)); /* window passed */
	free(s);
	free(r);
}
