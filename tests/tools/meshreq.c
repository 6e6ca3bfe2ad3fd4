/* meshreq: a small signing HTTP client for tests and operators. Sends one
 * request to a coordinator, signed per CONTRACT section 2 unless told
 * otherwise, prints the answer's body on stdout and "HTTP <status>" on
 * stderr. Exit 0 for 2xx, 1 for any other status, 2 for usage or
 * connection errors. It must not retry, follow redirects or interpret
 * bodies: it is a probe, so it shows what the server said. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "signaling/auth.h"
#include "signaling/keys.h"
#include "tests/tools/httpc.h"

#define MAX_HEADERS 32
#define MAX_BODY (16u * 1024u * 1024u)

static const char usage_text[] =
	"usage: meshreq --secret-file F --peer ID [options] METHOD URL [BODY|@file|-]\n"
	"\n"
	"Sends one signed request (CONTRACT section 2) and prints the response\n"
	"body on stdout and \"HTTP <status>\" on stderr.\n"
	"Exit status: 0 for 2xx, 1 for other statuses, 2 for usage or connection errors.\n"
	"\n"
	"  --secret-file F   cluster root secret (env MESH_SECRET_FILE)\n"
	"  --peer ID         peer id to sign as (env MESH_PEER)\n"
	"  --ts-offset S     add S seconds (may be negative) to the signed ts\n"
	"  --nonce HEX       use this nonce instead of a random one (replay tests)\n"
	"  --header 'K: V'   add a request header (repeatable); a body gets\n"
	"                    Content-Type: application/json unless one is given\n"
	"  --raw-auth VALUE  send VALUE as the Authorization header, unsigned\n"
	"  --no-auth         send no Authorization header\n"
	"  --timeout S       seconds for connect, send and the whole answer (default 35)\n"
	"  -i, --include     also print the response head on stderr\n"
	"  -h, --help        this text\n"
	"\n"
	"BODY is literal text, @file reads a file, - reads standard input.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "meshreq: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try --help)\n");
	return 2;
}

/* Reads all of f into a malloc'd buffer, at most MAX_BODY bytes. */
static char *read_stream(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *p = malloc(cap), *np;

	if (!p)
		return NULL;
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_BODY) {
				free(p);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			np = realloc(p, cap);
			if (!np) {
				free(p);
				return NULL;
			}
			p = np;
		}
		r = fread(p + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				free(p);
				return NULL;
			}
			break;
		}
	}
	*len = n;
	return p;
}

static bool nonce_ok(const char *s)
{
	size_t i;

	if (strlen(s) != NONCE_HEX_LEN)
		return false;
	for (i = 0; i < NONCE_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	enum { OPT_SECRET = 256, OPT_PEER, OPT_TSOFF, OPT_NONCE, OPT_HEADER,
	       OPT_RAWAUTH, OPT_NOAUTH, OPT_TIMEOUT };
	static const struct option longopts[] = {
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "peer", required_argument, NULL, OPT_PEER },
		{ "ts-offset", required_argument, NULL, OPT_TSOFF },
		{ "nonce", required_argument, NULL, OPT_NONCE },
		{ "header", required_argument, NULL, OPT_HEADER },
		{ "raw-auth", required_argument, NULL, OPT_RAWAUTH },
		{ "no-auth", no_argument, NULL, OPT_NOAUTH },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "include", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *secret_file = getenv("MESH_SECRET_FILE");
	const char *peer = getenv("MESH_PEER");
	const char *nonce = NULL, *raw_auth = NULL, *method, *url, *bodyarg = NULL;
	const char *headers[MAX_HEADERS + 2];
	size_t nheaders = 0, body_len = 0, i;
	long long ts_offset = 0;
	double timeout_s = 35;
	bool no_auth = false, include = false, have_ctype = false;
	char *body = NULL, *end, authhdr[AUTH_HEADER_MAX + 64], kerr[256], err[512];
	static char auth_line[AUTH_HEADER_MAX + 128];
	struct mesh_keys keys;
	struct http_url u;
	struct http_req rq;
	struct http_resp rs;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+ih", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SECRET:
			secret_file = optarg;
			break;
		case OPT_PEER:
			peer = optarg;
			break;
		case OPT_TSOFF:
			errno = 0;
			ts_offset = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end)
				return usage_error("--ts-offset: not an integer: %s", optarg);
			break;
		case OPT_NONCE:
			if (!nonce_ok(optarg))
				return usage_error("--nonce: want 32 lower-case hex digits, got %s", optarg);
			nonce = optarg;
			break;
		case OPT_HEADER:
			if (nheaders >= MAX_HEADERS)
				return usage_error("--header: more than %s headers", "32");
			if (!strchr(optarg, ':') || strpbrk(optarg, "\r\n"))
				return usage_error("--header: want 'Name: value', got %s", optarg);
			if (strncasecmp(optarg, "Content-Type:", 13) == 0)
				have_ctype = true;
			headers[nheaders++] = optarg;
			break;
		case OPT_RAWAUTH:
			if (strpbrk(optarg, "\r\n"))
				return usage_error("--raw-auth: %s", "contains CR or LF");
			raw_auth = optarg;
			break;
		case OPT_NOAUTH:
			no_auth = true;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			timeout_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(timeout_s > 0 && timeout_s <= 3600))
				return usage_error("--timeout: want seconds in (0, 3600], got %s", optarg);
			break;
		case 'i':
			include = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage_error("%s", "bad option");
		}
	}
	if (argc - optind < 2 || argc - optind > 3)
		return usage_error("%s", "want METHOD URL [BODY|@file|-]");
	method = argv[optind];
	url = argv[optind + 1];
	if (argc - optind == 3)
		bodyarg = argv[optind + 2];
	for (i = 0; method[i]; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return usage_error("METHOD must be upper-case letters: %s", method);
	if (i == 0)
		return usage_error("%s", "empty METHOD");
	if (raw_auth && no_auth)
		return usage_error("%s", "--raw-auth and --no-auth exclude each other");
	if (!raw_auth && !no_auth) {
		if (!secret_file)
			return usage_error("%s", "--secret-file is required for a signed request");
		if (!peer)
			return usage_error("%s", "--peer is required for a signed request");
		if (!id_valid(peer, strlen(peer)))
			return usage_error("--peer: not a valid id: %s", peer);
	}
	if (http_url_parse(url, &u, err, sizeof(err)))
		return usage_error("%s", err);

	if (bodyarg) {
		if (strcmp(bodyarg, "-") == 0) {
			body = read_stream(stdin, &body_len);
			if (!body) {
				fprintf(stderr, "meshreq: reading standard input: %s\n", strerror(errno));
				return 2;
			}
		} else if (bodyarg[0] == '@') {
			FILE *f = fopen(bodyarg + 1, "rb");

			if (!f) {
				fprintf(stderr, "meshreq: %s: %s\n", bodyarg + 1, strerror(errno));
				return 2;
			}
			body = read_stream(f, &body_len);
			fclose(f);
			if (!body) {
				fprintf(stderr, "meshreq: reading %s: %s\n", bodyarg + 1, strerror(errno));
				return 2;
			}
		} else {
			body_len = strlen(bodyarg);
			body = malloc(body_len + 1);
			if (!body) {
				fprintf(stderr, "meshreq: out of memory\n");
				return 2;
			}
			memcpy(body, bodyarg, body_len + 1);
		}
		if (!have_ctype)
			headers[nheaders++] = "Content-Type: application/json";
	}

	if (raw_auth) {
		snprintf(auth_line, sizeof(auth_line), "Authorization: %s", raw_auth);
		headers[nheaders++] = auth_line;
	} else if (!no_auth) {
		if (keys_load(secret_file, &keys, kerr, sizeof(kerr))) {
			fprintf(stderr, "meshreq: --secret-file %s: %s\n", secret_file, kerr);
			free(body);
			return 2;
		}
		if (http_auth_value(authhdr, sizeof(authhdr), keys.signal, peer,
				    (int64_t)time(NULL) + ts_offset, nonce, method, u.path,
				    body, body_len) < 0) {
			fprintf(stderr, "meshreq: cannot build the Authorization header\n");
			free(body);
			return 2;
		}
		snprintf(auth_line, sizeof(auth_line), "Authorization: %s", authhdr);
		headers[nheaders++] = auth_line;
	}

	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.host = u.host;
	rq.port = u.port;
	rq.path_query = u.path;
	rq.headers = headers;
	rq.nheaders = nheaders;
	rq.body = body;
	rq.body_len = body_len;
	rq.timeout_ms = (int)(timeout_s * 1000);

	if (http_do(&rq, &rs, err, sizeof(err))) {
		fprintf(stderr, "meshreq: %s %s: %s\n", method, url, err);
		free(body);
		return 2;
	}
	free(body);
	if (include)
		fprintf(stderr, "%s\n\n", rs.head);
	fwrite(rs.body, 1, rs.body_len, stdout);
	if (rs.body_len && rs.body[rs.body_len - 1] != '\n' && isatty(1))
		fputc('\n', stdout);
	fflush(stdout);
	fprintf(stderr, "HTTP %d\n", rs.status);
	rc = rs.status >= 200 && rs.status < 300 ? 0 : 1;
	http_resp_free(&rs);
	return rc;
}
