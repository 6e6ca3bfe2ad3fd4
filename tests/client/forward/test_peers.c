/* Tests of the peer table (client/peers.c): both plans parse, every
 * validation rule of CONTRACT section 5 fails with one line naming the
 * problem, and the digest ignores key order, peer order and whitespace. */
#include "tests/client/forward/ftest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <re.h>

#include "client/peers.h"

#define ID2(a, b) "{\"peers\":[{\"id\":\"" a "\",\"ports\":[18000]}," \
	"{\"id\":\"" b "\",\"ports\":[18001]}]}"

static int load(struct peer_table **t, const char *json, const char *self,
		char *err, size_t errlen)
{
	return peers_parse(t, json, strlen(json), self, err, errlen);
}

/* The table must be refused with EINVAL and one line containing want. */
static int refused(const char *json, const char *self, const char *want)
{
	struct peer_table *t = NULL;
	char err[512];
	int r = load(&t, json, self, err, sizeof(err));

	if (r == 0) {
		fprintf(stderr, "  accepted: %s\n", json);
		mem_deref(t);
		return 1;
	}
	if (r != EINVAL || !strstr(err, want) || strchr(err, '\n') ||
	    strncmp(err, "--", 2)) {
		fprintf(stderr, "  rc %d, error \"%s\", want \"%s\"\n", r, err,
			want);
		return 1;
	}
	if (getenv("FWD_TEST_SHOW"))
		fprintf(stderr, "  %s\n", err);
	return 0;
}

static int accepted(const char *json, const char *self)
{
	struct peer_table *t = NULL;
	char err[512];

	if (load(&t, json, self, err, sizeof(err))) {
		fprintf(stderr, "  refused: %s: %s\n", json, err);
		return 1;
	}
	mem_deref(t);
	return 0;
}

static int t_identity_ok(void)
{
	struct peer_table *t = NULL;
	char err[256];
	int rc = 0;

	CHECK(load(&t, "{\"peers\":[{\"id\":\"w2\",\"ports\":[18001,18101]},"
		   "{\"id\":\"w1\",\"ports\":[18000,18100]}]}", "w2", err,
		   sizeof(err)) == 0);
	CHECK(peers_plan(t) == PEERS_PLAN_IDENTITY);
	CHECK(peers_count(t) == 2);
	CHECK(!strcmp(peers_id(t, 0), "w1"));
	CHECK(peers_self(t) == 1);
	CHECK(peers_find(t, "w1") == 0 && peers_find(t, "w3") == -1);
	CHECK(peers_nports(t) == 2);
	CHECK(peers_port(t, 0, 1) == 18100 && peers_port(t, 1, 0) == 18001);
	CHECK(peers_port(t, 1, 2) == 0);
	CHECK(peers_nallow(t) == 0);
	CHECK(strlen(peers_digest(t)) == PEERS_DIGEST_HEX);
 out:
	mem_deref(t);
	return rc;
}

static int t_vip_ok(void)
{
	struct peer_table *t = NULL;
	unsigned prefix = 0;
	char err[256];
	int rc = 0;

	CHECK(load(&t, "{\"vip_net\":\"127.50.0.0/24\",\"allow\":[{\"port\":8301,"
		   "\"udp\":true},{\"port\":5432}],\"peers\":[{\"id\":\"w1\","
		   "\"vip\":1},{\"id\":\"w2\",\"vip\":2}]}", "w1", err,
		   sizeof(err)) == 0);
	CHECK(peers_plan(t) == PEERS_PLAN_VIP);
	CHECK(peers_vip_addr(t, 0) == 0x7f320001 &&
	      peers_vip_addr(t, 1) == 0x7f320002);
	CHECK(peers_vip_net(t, &prefix) == 0x7f320000 && prefix == 24);
	CHECK(peers_nallow(t) == 2);
	CHECK(peers_allow_port(t, 0) == 5432 && !peers_allow_udp(t, 0));
	CHECK(peers_allow_port(t, 1) == 8301 && peers_allow_udp(t, 1));
	CHECK(peers_allow_find(t, 8301) == 1 && peers_allow_find(t, 1) == -1);
	CHECK(peers_nports(t) == 0);
	/* A /16 leaves room for VIPs above 255. */
	CHECK(accepted("{\"vip_net\":\"127.60.0.0/16\",\"allow\":[{\"port\":1}],"
		       "\"peers\":[{\"id\":\"a\",\"vip\":300},{\"id\":\"b\","
		       "\"vip\":65534}]}", "a") == 0);
 out:
	mem_deref(t);
	return rc;
}

/* The digest documented in docs/forwarding.md: computed by
 *   jq -cjS '.peers |= sort_by(.id) | if .allow then .allow |=
 *     (map(.udp //= false) | sort_by(.port)) else . end' | sha256sum */
#define IDENT_A "{\"peers\":[{\"id\":\"w1\",\"ports\":[18000,18100]}," \
	"{\"id\":\"w2\",\"ports\":[18001,18101]}]}"
#define IDENT_A_CANON IDENT_A
#define IDENT_A_DIGEST "aa2e5695b2ef"
#define VIP_A "{\"vip_net\":\"127.50.0.0/24\",\"allow\":[{\"port\":5432}," \
	"{\"port\":8301,\"udp\":true}],\"peers\":[{\"id\":\"w1\",\"vip\":1}," \
	"{\"id\":\"w2\",\"vip\":2}]}"
#define VIP_A_CANON "{\"allow\":[{\"port\":5432,\"udp\":false},{\"port\":" \
	"8301,\"udp\":true}],\"peers\":[{\"id\":\"w1\",\"vip\":1},{\"id\":" \
	"\"w2\",\"vip\":2}],\"vip_net\":\"127.50.0.0/24\"}"
#define VIP_A_DIGEST "1e932e601f0c"

static int t_digest_stable(void)
{
	struct peer_table *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
	char err[256];
	int rc = 0;

	CHECK(load(&a, IDENT_A, "w1", err, sizeof(err)) == 0);
	CHECK(!strcmp(peers_canonical(a), IDENT_A_CANON));
	CHECK(!strcmp(peers_digest(a), IDENT_A_DIGEST));
	/* Key order, peer order, whitespace and --id do not matter. */
	CHECK(load(&b, "\n {  \"peers\" : [ {\"ports\":[18001, 18101],"
		   "\"id\":\"w2\"},\n\t{\"id\":\"w1\",\"ports\":[18000,18100]}"
		   " ] }\n", "w2", err, sizeof(err)) == 0);
	CHECK(!strcmp(peers_digest(a), peers_digest(b)));
	/* Port order does: slot i is the same protocol on every peer. */
	CHECK(load(&c, "{\"peers\":[{\"id\":\"w1\",\"ports\":[18100,18000]},"
		   "{\"id\":\"w2\",\"ports\":[18101,18001]}]}", "w1", err,
		   sizeof(err)) == 0);
	CHECK(strcmp(peers_digest(a), peers_digest(c)) != 0);

	CHECK(load(&d, VIP_A, "w1", err, sizeof(err)) == 0);
	CHECK(!strcmp(peers_canonical(d), VIP_A_CANON));
	CHECK(!strcmp(peers_digest(d), VIP_A_DIGEST));
	/* Allow order, an explicit "udp":false, top-level key order. */
	CHECK(load(&e, "{\"peers\":[{\"vip\":2,\"id\":\"w2\"},{\"id\":\"w1\","
		   "\"vip\":1}],\"allow\":[{\"udp\":true,\"port\":8301},"
		   "{\"port\":5432,\"udp\":false}],\"vip_net\":\"127.50.0.0/24\"}",
		   "w2", err, sizeof(err)) == 0);
	CHECK(!strcmp(peers_digest(d), peers_digest(e)));
 out:
	mem_deref(a);
	mem_deref(b);
	mem_deref(c);
	mem_deref(d);
	mem_deref(e);
	return rc;
}

static int write_file(char *path, size_t pathlen, const char *data, size_t n)
{
	int fd;

	snprintf(path, pathlen, "/tmp/fwd-peers-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, data, n) != (ssize_t)n) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

static int t_file_and_inline(void)
{
	struct peer_table *a = NULL, *b = NULL, *c = NULL;
	char path[64] = "", err[256];
	int rc = 0;

	CHECK(write_file(path, sizeof(path), IDENT_A "\n",
			 strlen(IDENT_A) + 1) == 0);
	CHECK(peers_load(&a, path, "w1", err, sizeof(err)) == 0);
	CHECK(peers_load(&b, IDENT_A, "w1", err, sizeof(err)) == 0);
	CHECK(peers_load(&c, "\n  " IDENT_A, "w1", err, sizeof(err)) == 0);
	CHECK(!strcmp(peers_digest(a), peers_digest(b)));
	CHECK(!strcmp(peers_digest(a), peers_digest(c)));
 out:
	if (path[0])
		unlink(path);
	mem_deref(a);
	mem_deref(b);
	mem_deref(c);
	return rc;
}

static int t_fewer_than_two(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[18000]}]}", "w1",
		       "at least two") |
	       refused("{\"peers\":[]}", NULL, "at least two");
}

static int t_empty_id(void)
{
	return refused(ID2("", "w2"), "w2", "empty id");
}

static int t_duplicate_id(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[18000]},"
		       "{\"id\":\"w1\",\"ports\":[18001]}]}", "w1",
		       "peer id \"w1\" is listed twice");
}

static int t_invalid_id(void)
{
	return refused(ID2("w 1", "w2"), "w2", "is invalid") |
	       refused(ID2("w/1", "w2"), "w2", "is invalid") |
	       refused(ID2("\\u00e9", "w2"), "w2", "is invalid") |
	       refused(ID2("a123456789a123456789a123456789a123456789a123456789"
			   "a123456789abcde", "w2"), "w2", "is invalid") |
	       refused("{\"peers\":[{\"id\":7,\"ports\":[1]},{\"id\":\"w2\","
		       "\"ports\":[2]}]}", "w2", "must be a string") |
	       refused("{\"peers\":[{\"ports\":[1]},{\"id\":\"w2\","
		       "\"ports\":[2]}]}", "w2", "has no \"id\"") |
	       accepted(ID2("a123456789a123456789a123456789a123456789a123456789"
			    "a123456789abcd", "A.b_c-9"), "A.b_c-9");
}

static int t_self_missing(void)
{
	return refused(ID2("w1", "w2"), "w9",
		       "--id: \"w9\" is not in the peer table") |
	       refused(ID2("w1", "w2"), "w 9", "--id: \"w 9\" is invalid");
}

static int t_port_range(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[0]},{\"id\":\"w2\","
		       "\"ports\":[1]}]}", "w1", "port 0 is outside 1..65535") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[65536]},{\"id\":"
		       "\"w2\",\"ports\":[1]}]}", "w1",
		       "port 65536 is outside 1..65535") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[-5]},{\"id\":"
		       "\"w2\",\"ports\":[1]}]}", "w1", "outside 1..65535") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[\"18000\"]},"
		       "{\"id\":\"w2\",\"ports\":[1]}]}", "w1",
		       "must be an integer") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[1.5]},{\"id\":"
		       "\"w2\",\"ports\":[1]}]}", "w1", "must be an integer") |
	       accepted("{\"peers\":[{\"id\":\"w1\",\"ports\":[1]},{\"id\":"
			"\"w2\",\"ports\":[65535]}]}", "w1");
}

static int t_port_twice(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[18000,18100,"
		       "18000]},{\"id\":\"w2\",\"ports\":[1,2,3]}]}", "w1",
		       "peer \"w1\" lists port 18000 twice");
}

static int t_port_collision(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[18000,18100]},"
		       "{\"id\":\"w2\",\"ports\":[18001,18000]}]}", "w1",
		       "port 18000 is listed by both \"w1\" and \"w2\"");
}

static int t_port_lengths(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[18000,18100]},"
		       "{\"id\":\"w2\",\"ports\":[18001]}]}", "w1",
		       "one port per slot");
}

static int t_port_empty(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[]},{\"id\":\"w2\","
		       "\"ports\":[1]}]}", "w1", "empty port list") |
	       refused("{\"peers\":[{\"id\":\"w1\"},{\"id\":\"w2\","
		       "\"ports\":[1]}]}", "w1", "has no \"ports\"") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":1},{\"id\":\"w2\","
		       "\"ports\":[1]}]}", "w1", "must be an array");
}

#define VIP_T(net, v1, v2) "{\"vip_net\":\"" net "\",\"allow\":[{\"port\":" \
	"5432}],\"peers\":[{\"id\":\"w1\",\"vip\":" v1 "},{\"id\":\"w2\"," \
	"\"vip\":" v2 "}]}"

static int t_vip_range(void)
{
	return refused(VIP_T("127.50.0.0/24", "0", "2"), "w1",
		       "vip 0 is out of range for /24 (1..254)") |
	       refused(VIP_T("127.50.0.0/24", "1", "255"), "w1",
		       "vip 255 is out of range") |
	       refused(VIP_T("127.50.0.0/30", "1", "3"), "w1",
		       "out of range for /30 (1..2)") |
	       refused(VIP_T("127.50.0.0/24", "1", "\"2\""), "w1",
		       "\"vip\" must be an integer") |
	       refused("{\"vip_net\":\"127.50.0.0/24\",\"allow\":[{\"port\":1}],"
		       "\"peers\":[{\"id\":\"w1\",\"vip\":1},{\"id\":\"w2\"}]}",
		       "w1", "has no \"vip\"") |
	       accepted(VIP_T("127.50.0.0/24", "1", "254"), "w1");
}

static int t_vip_twice(void)
{
	return refused(VIP_T("127.50.0.0/24", "7", "7"), "w1",
		       "vip 7 is used by both \"w1\" and \"w2\"");
}

static int t_vip_net(void)
{
	return refused(VIP_T("198.18.50.0/24", "1", "2"), "w1",
		       "not inside 127.0.0.0/8") |
	       refused(VIP_T("127.50.0.1/24", "1", "2"), "w1",
		       "host bits set (the network is 127.50.0.0/24)") |
	       refused(VIP_T("127.50.0.0/31", "1", "2"), "w1",
		       "the prefix must be /8 to /30") |
	       refused(VIP_T("127.0.0.0/7", "1", "2"), "w1",
		       "the prefix must be /8 to /30") |
	       refused(VIP_T("127.50.0.0", "1", "2"), "w1",
		       "must be a string like") |
	       refused(VIP_T("127.050.0.0/24", "1", "2"), "w1",
		       "must be a string like") |
	       refused("{\"vip_net\":42,\"allow\":[{\"port\":1}],\"peers\":[{"
		       "\"id\":\"w1\",\"vip\":1},{\"id\":\"w2\",\"vip\":2}]}",
		       "w1", "must be a string like") |
	       refused(VIP_T("127.0.0.0/24", "1", "2"), "w1",
		       "vip 1 is 127.0.0.1, the address local apps use");
}

#define ALLOW_T(allow) "{\"vip_net\":\"127.50.0.0/24\"," allow "\"peers\":" \
	"[{\"id\":\"w1\",\"vip\":1},{\"id\":\"w2\",\"vip\":2}]}"

static int t_allow(void)
{
	return refused(ALLOW_T(""), "w1", "\"allow\" is missing") |
	       refused(ALLOW_T("\"allow\":[],"), "w1", "\"allow\" is empty") |
	       refused(ALLOW_T("\"allow\":{\"port\":1},"), "w1",
		       "must be an array") |
	       refused(ALLOW_T("\"allow\":[5432],"), "w1",
		       "allow[0] must be an object") |
	       refused(ALLOW_T("\"allow\":[{\"port\":0}],"), "w1",
		       "allow[0]: port 0 is outside 1..65535") |
	       refused(ALLOW_T("\"allow\":[{\"port\":1},{\"port\":70000}],"), "w1",
		       "allow[1]: port 70000 is outside") |
	       refused(ALLOW_T("\"allow\":[{\"udp\":true}],"), "w1",
		       "allow[0] has no \"port\"") |
	       refused(ALLOW_T("\"allow\":[{\"port\":1,\"udp\":\"yes\"}],"), "w1",
		       "\"udp\" must be true or false") |
	       refused(ALLOW_T("\"allow\":[{\"port\":1,\"tcp\":true}],"), "w1",
		       "allow[0]: unknown field \"tcp\"") |
	       refused(ALLOW_T("\"allow\":[{\"port\":5432},{\"port\":5432,"
			       "\"udp\":true}],"), "w1",
		       "\"allow\" lists port 5432 twice") |
	       refused("{\"allow\":[{\"port\":1}],\"peers\":[{\"id\":\"w1\","
		       "\"ports\":[1]},{\"id\":\"w2\",\"ports\":[2]}]}", "w1",
		       "\"allow\" needs \"vip_net\"");
}

static int t_unknown_field(void)
{
	return refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[1]},{\"id\":\"w2\","
		       "\"ports\":[2]}],\"peer\":[]}", "w1",
		       "unknown top-level field \"peer\"") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[1],\"port\":[3]},"
		       "{\"id\":\"w2\",\"ports\":[2]}]}", "w1",
		       "peer \"w1\": unknown field \"port\"") |
	       refused("{\"peers\":[{\"id\":\"w1\",\"ports\":[1],\"vip\":1},"
		       "{\"id\":\"w2\",\"ports\":[2]}]}", "w1",
		       "\"vip\" needs a top-level \"vip_net\"") |
	       refused("{\"vip_net\":\"127.50.0.0/24\",\"allow\":[{\"port\":1}],"
		       "\"peers\":[{\"id\":\"w1\",\"vip\":1,\"ports\":[1]},"
		       "{\"id\":\"w2\",\"vip\":2}]}", "w1",
		       "\"ports\" belongs to the identity-port plan");
}

static int t_too_large(void)
{
	size_t n = PEERS_TEXT_MAX + 16;
	char *big = malloc(n + 1);
	char path[64] = "";
	int rc = 0, r;
	struct peer_table *t = NULL;
	char err[256];

	CHECK(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n] = '\0';
	r = peers_load(&t, big, "w1", err, sizeof(err));
	CHECK(r == EINVAL && strstr(err, "inline JSON is larger than"));
	CHECK(write_file(path, sizeof(path), big, n) == 0);
	big[0] = ' ';
	r = peers_load(&t, path, "w1", err, sizeof(err));
	CHECK(r == EINVAL && strstr(err, "is larger than 1048576 bytes"));
 out:
	if (rc)
		fprintf(stderr, "  error: %s\n", err);
	if (path[0])
		unlink(path);
	free(big);
	mem_deref(t);
	return rc;
}

static int t_bad_json(void)
{
	return refused("{\"peers\":[", "w1", "invalid JSON at line 1") |
	       refused("{\"peers\":[],\"peers\":[]}", "w1", "duplicate") |
	       refused("[1,2]", "w1", "must be a JSON object") |
	       refused("{}", "w1", "\"peers\" is missing") |
	       refused("{\"peers\":{}}", "w1", "\"peers\" must be an array") |
	       refused("{\"peers\":[1,2]}", "w1", "peers[0] must be an object");
}

static int t_file_errors(void)
{
	struct peer_table *t = NULL;
	char err[256];
	int rc = 0;

	CHECK(peers_load(&t, "/nonexistent/peers.json", "w1", err,
			 sizeof(err)) == ENOENT);
	CHECK(strstr(err, "--peers: cannot open /nonexistent/peers.json"));
	CHECK(peers_load(&t, "/tmp", "w1", err, sizeof(err)) == EINVAL);
	CHECK(strstr(err, "not a regular file"));
	CHECK(peers_load(&t, "", "w1", err, sizeof(err)) == EINVAL);
	CHECK(strstr(err, "missing value"));
 out:
	if (rc)
		fprintf(stderr, "  error: %s\n", err);
	mem_deref(t);
	return rc;
}

const struct ftest ftest_peers[] = {
	{ "peers_identity_ok", t_identity_ok },
	{ "peers_vip_ok", t_vip_ok },
	{ "peers_digest_stable", t_digest_stable },
	{ "peers_file_and_inline", t_file_and_inline },
	{ "peers_fewer_than_two", t_fewer_than_two },
	{ "peers_empty_id", t_empty_id },
	{ "peers_duplicate_id", t_duplicate_id },
	{ "peers_invalid_id", t_invalid_id },
	{ "peers_self_missing", t_self_missing },
	{ "peers_port_range", t_port_range },
	{ "peers_port_twice", t_port_twice },
	{ "peers_port_collision", t_port_collision },
	{ "peers_port_lengths", t_port_lengths },
	{ "peers_port_empty", t_port_empty },
	{ "peers_vip_range", t_vip_range },
	{ "peers_vip_twice", t_vip_twice },
	{ "peers_vip_net", t_vip_net },
	{ "peers_allow", t_allow },
	{ "peers_unknown_field", t_unknown_field },
	{ "peers_too_large", t_too_large },
	{ "peers_bad_json", t_bad_json },
	{ "peers_file_errors", t_file_errors },
	{ NULL, NULL },
};
