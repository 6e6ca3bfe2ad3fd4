/* Pure parsing and derivation for ha/: redis:// URLs, "h:p,h:p" Sentinel
 * lists, and the Redis/Sentinel passwords derived from the root secret.
 * No I/O except reading the secret file; must not log the secret or the
 * passwords. */
#include "ha/ha_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "signaling/auth.h"
#include "signaling/keys.h"

/* A secret line longer than this is not a secret file (as keys.c). */
#define SECRET_FILE_MAX 4096

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '.';
}

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	if (len == 0 || len > 10)
		return -1;
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* "host[:port]" or "[v6][:port]" in s[0..len). def_port 0: port required. */
static int parse_hostport(const char *s, size_t len, uint16_t def_port, struct ha_addr *out,
			  char *err, size_t errlen)
{
	const char *host = s, *rest;
	size_t hlen;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close) {
			snprintf(err, errlen, "unclosed '[' in '%.*s'", (int)len, s);
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		for (size_t i = 0; i < hlen; i++)
			if (!v6_char(host[i])) {
				snprintf(err, errlen, "bad IPv6 address in '%.*s'", (int)len, s);
				return -1;
			}
		rest = close + 1;
	} else {
		const char *colon = memchr(s, ':', len);
		hlen = colon ? (size_t)(colon - s) : len;
		for (size_t i = 0; i < hlen; i++)
			if (!host_char(s[i])) {
				snprintf(err, errlen, "bad host in '%.*s'", (int)len, s);
				return -1;
			}
		rest = s + hlen;
	}
	if (hlen == 0 || hlen >= HA_HOST_MAX) {
		snprintf(err, errlen, "missing or too long host in '%.*s'", (int)len, s);
		return -1;
	}
	size_t rlen = len - (size_t)(rest - s);
	unsigned long port = def_port;
	if (rlen) {
		if (rest[0] != ':' || parse_uint(rest + 1, rlen - 1, 65535, &port) || port == 0) {
			snprintf(err, errlen, "bad port in '%.*s' (want 1..65535)", (int)len, s);
			return -1;
		}
	} else if (!def_port) {
		snprintf(err, errlen, "missing port in '%.*s' (want host:port)", (int)len, s);
		return -1;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = (uint16_t)port;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..len) into out (cap bytes with the NUL). */
static int pct_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0' || c == '\r' || c == '\n' || n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

int ha_parse_redis_url(const char *url, struct ha_redis_url *out, char *err, size_t errlen)
{
	static const char scheme[] = "redis://";
	memset(out, 0, sizeof(*out));
	if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen, "must start with redis:// (rediss:// is not supported)");
		return -1;
	}
	const char *p = url + sizeof(scheme) - 1;
	const char *end = p + strlen(p);
	const char *slash = memchr(p, '/', (size_t)(end - p));
	const char *auth_end = NULL;
	/* The last '@' before the path ends the credentials. */
	for (const char *q = p; q < (slash ? slash : end); q++)
		if (*q == '@')
			auth_end = q;
	if (auth_end) {
		const char *colon = memchr(p, ':', (size_t)(auth_end - p));
		if (!colon) {
			snprintf(err, errlen, "credentials must be :password@ or default:password@");
			return -1;
		}
		size_t ulen = (size_t)(colon - p);
		if (ulen && !(ulen == 7 && memcmp(p, "default", 7) == 0)) {
			snprintf(err, errlen, "only the default user is supported (redis://:password@host)");
			return -1;
		}
		if (pct_decode(colon + 1, (size_t)(auth_end - colon - 1), out->password,
			       sizeof(out->password))) {
			snprintf(err, errlen, "bad or too long password");
			return -1;
		}
		p = auth_end + 1;
	}
	const char *hp_end = slash ? slash : end;
	if (parse_hostport(p, (size_t)(hp_end - p), 6379, &out->addr, err, errlen))
		return -1;
	if (slash && slash + 1 < end) {
		unsigned long db;
		if (parse_uint(slash + 1, (size_t)(end - slash - 1), 65535, &db)) {
			snprintf(err, errlen, "bad database number '%s' (want 0..65535)", slash + 1);
			return -1;
		}
		out->db = (unsigned)db;
	}
	return 0;
}

int ha_parse_hostports(const char *list, struct ha_addr *out, size_t cap, size_t *n, char *err,
		       size_t errlen)
{
	*n = 0;
	if (!list || !*list) {
		snprintf(err, errlen, "empty list (want host:port[,host:port...])");
		return -1;
	}
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (*n == cap) {
			snprintf(err, errlen, "more than %zu entries", cap);
			return -1;
		}
		if (parse_hostport(p, len, 0, &out[*n], err, errlen))
			return -1;
		for (size_t i = 0; i < *n; i++)
			if (strcmp(out[i].host, out[*n].host) == 0 && out[i].port == out[*n].port) {
				snprintf(err, errlen, "%s:%u listed twice", out[i].host, out[i].port);
				return -1;
			}
		(*n)++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int ha_derive_password(const char *secret_file, const char *info, char out[65], char *err,
		       size_t errlen)
{
	char text[SECRET_FILE_MAX + 1];
	uint8_t root[ROOT_SECRET_MAX], key[32];
	int rc = 0;
	out[0] = '\0';
	if (!secret_file) {
		snprintf(err, errlen, "no secret file to derive the Redis password from");
		return EINVAL;
	}
	int fd = open(secret_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = errno;
		snprintf(err, errlen, "secret file %s: %s", secret_file, strerror(rc));
		return rc;
	}
	ssize_t got = read(fd, text, sizeof(text));
	if (got < 0)
		rc = errno;
	close(fd);
	if (rc || got > SECRET_FILE_MAX) {
		snprintf(err, errlen, "secret file %s: %s", secret_file,
			 rc ? strerror(rc) : "too long");
		rc = rc ? rc : EINVAL;
		goto out;
	}
	size_t len = (size_t)got;
	if (len && text[len - 1] == '\n')
		len--;
	if (len && text[len - 1] == '\r')
		len--;
	long n = secret_decode(text, len, root, sizeof(root));
	if (n < ROOT_SECRET_MIN) {
		snprintf(err, errlen, "secret file %s: not a valid root secret", secret_file);
		rc = EINVAL;
		goto out;
	}
	rc = hkdf_sha256(NULL, 0, root, (size_t)n, (const uint8_t *)info, strlen(info), key,
			 sizeof(key));
	if (rc) {
		snprintf(err, errlen, "HKDF failed");
		goto out;
	}
	hex_encode(key, sizeof(key), out);
out:
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}
