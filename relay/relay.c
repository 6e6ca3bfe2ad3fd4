/* The embedded relay: turns struct relay_config into coturn's command
 * line and runs coturn's main() on its own thread; owns the private temp
 * dir (self-signed pair, pid file), the peer deny list, and the rule that
 * a coturn that stops takes the process down with a logged reason.
 * It must not read any coturn config file, let coturn daemonize, drop
 * privileges or open its telnet CLI, and it must not be started twice
 * (coturn keeps its state in globals). */
#include "relay/relay.h"
#include "relay/relay_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/thread.h>
#include <openssl/crypto.h>

#include "common/log.h"

/* Peers a relay must never reach unless the operator allows them: the
 * machine itself, private and shared networks, link-local (which holds
 * cloud metadata services: 169.254.169.254, fd00:ec2::254), multicast and
 * reserved space. 198.18.0.0/15 (RFC 2544 benchmarking, our test
 * networks) is deliberately absent. */
static const char *const deny_ranges[] = {
	"0.0.0.0/8",       /* RFC 1122 "this network" (reaches the host itself) */
	"10.0.0.0/8",      /* RFC 1918 */
	"100.64.0.0/10",   /* RFC 6598 carrier-grade NAT */
	"127.0.0.0/8",     /* RFC 1122 loopback */
	"169.254.0.0/16",  /* RFC 3927 link-local, cloud metadata */
	"172.16.0.0/12",   /* RFC 1918 */
	"192.168.0.0/16",  /* RFC 1918 */
	"224.0.0.0/4",     /* RFC 5771 multicast */
	"240.0.0.0/4",     /* RFC 1112 reserved, and broadcast */
	"::1/128",         /* RFC 4291 loopback */
	"fc00::/7",        /* RFC 4193 unique local, incl. fd00:ec2::254 */
	"fe80::/10",       /* RFC 4291 link-local */
	"ff00::/8",        /* RFC 4291 multicast */
	"::ffff:0:0/96",   /* RFC 4291 IPv4-mapped: the IPv4 ranges above in disguise */
};

/* An inclusive address range; lo/hi in network order. */
struct range {
	int family;
	uint8_t lo[16], hi[16];
};

static atomic_bool g_started;
static bool atexit_done;
static pthread_mutex_t g_tmp_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_tmpdir[PATH_MAX];
static char **g_argv;
static int g_argc;

/* ---------------------------------------------------------------- */
/* Fatal paths */

void relay_tmpdir_remove(void)
{
	static const char *const files[] = { "key.pem", "cert.pem", "turnserver.pid" };
	char path[PATH_MAX + 32];

	pthread_mutex_lock(&g_tmp_lock);
	if (g_tmpdir[0]) {
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", g_tmpdir, files[i]);
			if (unlink(path) != 0 && errno != ENOENT)
				log_warn("relay", "cannot remove %s: %s", path, strerror(errno));
		}
		if (rmdir(g_tmpdir) != 0 && errno != ENOENT)
			log_warn("relay", "cannot remove %s: %s", g_tmpdir, strerror(errno));
		g_tmpdir[0] = '\0';
	}
	pthread_mutex_unlock(&g_tmp_lock);
}

_Noreturn void relay_die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("relay", "%s; the relay cannot continue, exiting", msg);
	relay_tmpdir_remove();
	_exit(1);
}

/* Every exit() inside coturn lands here (relay/coturn_prelude.h). */
_Noreturn void relay_coturn_exit(int status);
_Noreturn void relay_coturn_exit(int status)
{
	relay_die("coturn stopped (exit status %d, reason logged above)", status);
}

/* ---------------------------------------------------------------- */
/* Addresses and ranges */

static int parse_ip(const char *s, int *family, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool is_unspecified(int family, const uint8_t a[16])
{
	for (size_t i = 0; i < addr_len(family); i++)
		if (a[i])
			return false;
	return true;
}

/* coturn compares IPv6 range bounds byte by byte (addr_less_eq() in
 * ns_turn_ioaddr.c), which is exact for CIDR blocks only; IPv4 bounds
 * are compared as numbers. */
static bool range_contains(const struct range *r, int family, const uint8_t a[16])
{
	if (r->family != family)
		return false;
	if (family == AF_INET)
		return memcmp(r->lo, a, 4) <= 0 && memcmp(a, r->hi, 4) <= 0;
	for (size_t i = 0; i < 16; i++)
		if (a[i] < r->lo[i] || a[i] > r->hi[i])
			return false;
	return true;
}

/* Parses "ADDR", "ADDR/LEN" (host bits are cleared) or, for IPv4,
 * "ADDR-ADDR". Returns 0 or -1 with a reason in err. */
static int parse_range(const char *s, struct range *r, char *err, size_t errlen)
{
	char buf[128], *sep;
	int fam2;

	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "peer range too long: %.40s...", s);
		return -1;
	}
	strcpy(buf, s);
	memset(r, 0, sizeof(*r));
	if ((sep = strchr(buf, '/')) != NULL) {
		char *end;
		long bits;
		size_t nbits;

		*sep++ = '\0';
		if (parse_ip(buf, &r->family, r->lo) != 0)
			goto bad;
		nbits = addr_len(r->family) * 8;
		errno = 0;
		bits = strtol(sep, &end, 10);
		if (errno || end == sep || *end || bits < 0 || (size_t)bits > nbits)
			goto bad;
		memcpy(r->hi, r->lo, 16);
		for (size_t i = (size_t)bits; i < nbits; i++) {
			r->lo[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
			r->hi[i / 8] |= (uint8_t)(0x80u >> (i % 8));
		}
		return 0;
	}
	if ((sep = strchr(buf, '-')) != NULL) {
		*sep++ = '\0';
		if (parse_ip(buf, &r->family, r->lo) != 0 ||
		    parse_ip(sep, &fam2, r->hi) != 0 || fam2 != r->family)
			goto bad;
		if (r->family != AF_INET && memcmp(r->lo, r->hi, 16) != 0) {
			snprintf(err, errlen, "IPv6 peer range %s: write IPv6 ranges as ADDR/LEN", s);
			return -1;
		}
		if (memcmp(r->lo, r->hi, addr_len(r->family)) > 0) {
			snprintf(err, errlen, "peer range %s: start above end", s);
			return -1;
		}
		return 0;
	}
	if (parse_ip(buf, &r->family, r->lo) != 0)
		goto bad;
	memcpy(r->hi, r->lo, 16);
	return 0;
bad:
	snprintf(err, errlen, "bad peer range %s (want ADDR, ADDR/LEN or A.B.C.D-E.F.G.H)", s);
	return -1;
}

/* coturn's range syntax: "LO-HI". */
static int range_to_coturn(const struct range *r, char *out, size_t outlen)
{
	char lo[INET6_ADDRSTRLEN], hi[INET6_ADDRSTRLEN];

	if (!inet_ntop(r->family, r->lo, lo, sizeof(lo)) ||
	    !inet_ntop(r->family, r->hi, hi, sizeof(hi)))
		return -1;
	if ((size_t)snprintf(out, outlen, "%s-%s", lo, hi) >= outlen)
		return -1;
	return 0;
}

/* True when r reaches what coturn's own loopback test refuses before it
 * looks at allowed-peer-ip (ioa_addr_is_loopback(): 127/8 and ::1). */
static bool range_has_loopback(const struct range *r)
{
	static const uint8_t v4lo[16] = { 127, 0, 0, 0 }, v4hi[16] = { 127, 255, 255, 255 };
	static const uint8_t v6lo[16] = { [15] = 1 };

	if (r->family == AF_INET)
		return memcmp(r->lo, v4hi, 4) <= 0 && memcmp(r->hi, v4lo, 4) >= 0;
	return range_contains(r, AF_INET6, v6lo);
}

/* ---------------------------------------------------------------- */
/* coturn's argv */

static int argv_add(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int argv_add(char *err, size_t errlen, const char *fmt, ...)
{
	char **nv;
	char *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	nv = realloc(g_argv, sizeof(*g_argv) * (size_t)(g_argc + 2));
	if (!nv) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	g_argv = nv;
	g_argv[g_argc++] = s;
	g_argv[g_argc] = NULL;
	return 0;
}

/* Binds (and releases) the port the way coturn will, so a port in use
 * is a clear error from relay_start() instead of an exit from coturn. */
static int port_check(int family, const uint8_t ip[16], uint16_t port, int type,
		      char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1, rc = 0;
	char host[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, ip, 4);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, ip, 16);
		sl = sizeof(*sin6);
	}
	fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = errno;
		snprintf(err, errlen, "socket: %s", strerror(rc));
		return rc;
	}
	/* coturn sets SO_REUSEADDR on TCP listeners: do the same so a
	 * TIME_WAIT leftover is not taken for a conflict. IPv6 sockets are
	 * checked for IPv6 alone (coturn binds each family apart). */
	if ((type == SOCK_STREAM &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
	    (family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
		rc = errno;
		snprintf(err, errlen, "setsockopt: %s", strerror(rc));
	} else if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
		rc = errno;
		inet_ntop(family, ip, host, sizeof(host));
		snprintf(err, errlen, "cannot bind %s %s port %u: %s",
			 type == SOCK_STREAM ? "TCP" : "UDP", host, port, strerror(rc));
	}
	close(fd);
	return rc;
}

/* The STUN (UDP, TCP) and TLS (TCP) ports on the listen address. With a
 * wildcard listen address coturn binds every local address of both
 * families, so both wildcards are checked (IPv6 only where the host has
 * it). coturn itself would retry a taken port forever, never ready. */
static int ports_check(const struct relay_config *cfg, int lfam, const uint8_t lip[16],
		       char *err, size_t errlen)
{
	static const uint8_t any[16];
	int fams[2] = { lfam, 0 };
	int rc;

	if (is_unspecified(lfam, lip)) {
		fams[0] = AF_INET;
		fams[1] = AF_INET6;
	}
	for (int i = 0; i < 2 && fams[i]; i++) {
		const uint8_t *ip = is_unspecified(lfam, lip) ? any : lip;

		if ((rc = port_check(fams[i], ip, cfg->stun_port, SOCK_DGRAM, err, errlen)) != 0 ||
		    (rc = port_check(fams[i], ip, cfg->stun_port, SOCK_STREAM, err, errlen)) != 0 ||
		    (cfg->tls_port &&
		     (rc = port_check(fams[i], ip, cfg->tls_port, SOCK_STREAM, err, errlen)) != 0)) {
			/* No IPv6 on this host: nothing for coturn to bind. */
			if (i == 1 && (rc == EAFNOSUPPORT || rc == EADDRNOTAVAIL))
				return 0;
			return rc;
		}
	}
	return 0;
}

/* A private directory for the generated pair and coturn's pid file. */
static int make_tmpdir(char *err, size_t errlen)
{
	const char *base = getenv("TMPDIR");
	char tmpl[PATH_MAX];

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/mesh-relay-XXXXXX", base) >= sizeof(tmpl)) {
		snprintf(err, errlen, "TMPDIR too long");
		return ENAMETOOLONG;
	}
	if (!mkdtemp(tmpl)) { /* mode 0700 */
		int e = errno;

		snprintf(err, errlen, "cannot create a temp dir in %s: %s", base, strerror(e));
		return e;
	}
	pthread_mutex_lock(&g_tmp_lock);
	strcpy(g_tmpdir, tmpl);
	pthread_mutex_unlock(&g_tmp_lock);
	return 0;
}

static int abs_path(const char *in, char *out, const char *what, char *err, size_t errlen)
{
	if (!realpath(in, out)) {
		int e = errno;

		snprintf(err, errlen, "%s %s: %s", what, in, strerror(e));
		return e;
	}
	return 0;
}

/* Builds coturn's argv from cfg. Every option is documented in
 * docs/relay.md. */
static int build_argv(const struct relay_config *cfg, int lfam, const uint8_t lip[16],
		      const char *cert, const char *key, char *err, size_t errlen)
{
	bool lunspec = is_unspecified(lfam, lip);
	bool allow_loopback = false;
	char range[2 * INET6_ADDRSTRLEN + 2];
	struct range r;
	int rc = 0;

#define ADD(...) do { if ((rc = argv_add(err, errlen, __VA_ARGS__)) != 0) return rc; } while (0)
	/* argv[0] must not contain "turnadmin" (coturn's admin mode). */
	ADD("turnserver");
	ADD("-n");                 /* no config file: /etc/turnserver.conf is never read */
	ADD("--no-cli");           /* no telnet CLI */
	ADD("--no-dtls");
	ADD("--no-rfc5780");       /* no alternate ports (port+1) */
	ADD("--no-software-attribute");
	ADD("--no-stdout-log");    /* the log goes to relay_coturn_log() anyway */
	ADD("--simple-log");
	ADD("--no-dynamic-ip-list"); /* no database to read lists from */
	ADD("--no-dynamic-realms");
	ADD("--no-auth-pings");
	ADD("--no-tcp-relay");     /* RFC 6062 TCP relaying: the mesh relays UDP only */
	ADD("--pidfile=%s/turnserver.pid", g_tmpdir);
	if (log_get_level() >= LOG_LVL_DEBUG)
		ADD("--verbose");

	/* 0.0.0.0 or ::: no --listening-ip, so coturn listens on every local
	 * address (a socket each, answers leave from the address asked) and
	 * relays from the non-loopback ones. */
	if (!lunspec) {
		ADD("--listening-ip=%s", cfg->listen_ip);
		ADD("--relay-ip=%s", cfg->listen_ip);
	}
	if (cfg->public_ip && cfg->public_ip[0]) {
		uint8_t pip[16];
		int pfam;

		if (parse_ip(cfg->public_ip, &pfam, pip) != 0) {
			snprintf(err, errlen, "public ip %s is not a numeric address", cfg->public_ip);
			return EINVAL;
		}
		if (!is_unspecified(pfam, pip) &&
		    (pfam != lfam || memcmp(pip, lip, addr_len(lfam)) != 0))
			ADD("--external-ip=%s", cfg->public_ip);
	}
	ADD("--listening-port=%u", cfg->stun_port);
	if (cfg->tls_port) {
		ADD("--tls-listening-port=%u", cfg->tls_port);
		ADD("--cert=%s", cert);
		ADD("--pkey=%s", key);
	} else {
		ADD("--no-tls");
	}
	ADD("--min-port=%u", cfg->relay_min);
	ADD("--max-port=%u", cfg->relay_max);
	ADD("--realm=%s", cfg->realm);
	ADD("--use-auth-secret");
	ADD("--static-auth-secret=%s", cfg->auth_secret);
	ADD("--fingerprint");
	if (cfg->user_quota)
		ADD("--user-quota=%u", cfg->user_quota);
	if (cfg->total_quota)
		ADD("--total-quota=%u", cfg->total_quota);
	ADD("--no-multicast-peers");

	for (size_t i = 0; i < sizeof(deny_ranges) / sizeof(deny_ranges[0]); i++) {
		if (parse_range(deny_ranges[i], &r, err, errlen) != 0 ||
		    range_to_coturn(&r, range, sizeof(range)) != 0) {
			snprintf(err, errlen, "internal: bad deny range %s", deny_ranges[i]);
			return EINVAL;
		}
		ADD("--denied-peer-ip=%s", range);
	}
	for (size_t i = 0; cfg->allow_peers && cfg->allow_peers[i]; i++) {
		if (parse_range(cfg->allow_peers[i], &r, err, errlen) != 0)
			return EINVAL;
		if (range_to_coturn(&r, range, sizeof(range)) != 0) {
			snprintf(err, errlen, "peer range %s: cannot format", cfg->allow_peers[i]);
			return EINVAL;
		}
		ADD("--allowed-peer-ip=%s", range);
		if (range_has_loopback(&r))
			allow_loopback = true;
	}
	/* coturn refuses loopback peers before it reads allowed-peer-ip.
	 * Lift that test only when an allowed range needs it: the
	 * denied-peer-ip entries for 127/8 and ::1 still refuse the rest. */
	if (allow_loopback)
		ADD("--allow-loopback-peers");
#undef ADD
	return 0;
}

static void *coturn_thread(void *arg)
{
	int rc;

	(void)arg;
	rc = coturn_main(g_argc, g_argv);
	relay_die("coturn's main loop returned %d", rc);
}

int relay_thread_start(void *(*fn)(void *), char *err, size_t errlen)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	rc = pthread_attr_init(&attr);
	if (rc == 0)
		rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (rc == 0) {
		pthread_sigmask(SIG_BLOCK, &all, &old);
		rc = pthread_create(&t, &attr, fn, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	if (rc)
		snprintf(err, errlen, "cannot start a relay thread: %s", strerror(rc));
	return rc;
}

static int check_config(const struct relay_config *cfg, char *err, size_t errlen)
{
	if (!cfg->listen_ip || !cfg->realm || !cfg->realm[0] ||
	    !cfg->auth_secret || !cfg->auth_secret[0]) {
		snprintf(err, errlen, "relay config needs listen_ip, realm and auth_secret");
		return EINVAL;
	}
	for (const char *p = cfg->realm; *p; p++) {
		if (*p <= ' ' || *p == '"' || *p == 0x7f) {
			snprintf(err, errlen, "realm must be printable without spaces or quotes");
			return EINVAL;
		}
	}
	/* coturn copies the realm into STUN_MAX_REALM_SIZE (127) bytes. */
	if (strlen(cfg->realm) > 127) {
		snprintf(err, errlen, "realm longer than 127 bytes");
		return EINVAL;
	}
	for (const char *p = cfg->auth_secret; *p; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			snprintf(err, errlen, "auth secret must be printable without spaces");
			return EINVAL;
		}
	}
	if (!cfg->stun_port) {
		snprintf(err, errlen, "stun port must be 1..65535");
		return EINVAL;
	}
	if (cfg->tls_port == cfg->stun_port) {
		snprintf(err, errlen, "tls port and stun port must differ");
		return EINVAL;
	}
	if (!cfg->relay_min || cfg->relay_min > cfg->relay_max) {
		snprintf(err, errlen, "relay ports %u-%u: want 1 <= A <= B <= 65535",
			 cfg->relay_min, cfg->relay_max);
		return EINVAL;
	}
	if ((cfg->stun_port >= cfg->relay_min && cfg->stun_port <= cfg->relay_max) ||
	    (cfg->tls_port && cfg->tls_port >= cfg->relay_min && cfg->tls_port <= cfg->relay_max)) {
		snprintf(err, errlen, "relay ports %u-%u overlap the stun or tls port",
			 cfg->relay_min, cfg->relay_max);
		return EINVAL;
	}
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		snprintf(err, errlen, "give both a TLS certificate and its key, or neither");
		return EINVAL;
	}
	return 0;
}

int relay_start(const struct relay_config *cfg, char *err, size_t errlen)
{
	char cert[PATH_MAX + 16], key[PATH_MAX + 16];
	struct sockaddr_storage probe;
	socklen_t probelen;
	uint8_t lip[16];
	int lfam, rc;
	bool expected = false;

	if (!cfg) {
		snprintf(err, errlen, "no relay config");
		return EINVAL;
	}
	rc = check_config(cfg, err, errlen);
	if (rc)
		return rc;
	if (parse_ip(cfg->listen_ip, &lfam, lip) != 0) {
		snprintf(err, errlen, "listen address %s is not a numeric address", cfg->listen_ip);
		return EINVAL;
	}
	if (!atomic_compare_exchange_strong(&g_started, &expected, true)) {
		snprintf(err, errlen, "the relay is already running (coturn runs once per process)");
		return EALREADY;
	}

	/* Free ports, before anything is written. */
	rc = ports_check(cfg, lfam, lip, err, errlen);
	if (rc)
		goto fail;

	/* OpenSSL must not free its state at exit under coturn's running
	 * threads; this only takes effect if nothing initialised OpenSSL
	 * before (otherwise the caller's choice stands). */
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) != 1)
		log_warn("relay", "OpenSSL initialisation failed; TLS may not work");
	/* Locking for libevent before any coturn base exists, from this
	 * thread rather than racing from coturn's. */
	if (evthread_use_pthreads() != 0) {
		snprintf(err, errlen, "libevent: cannot enable pthreads locking");
		rc = ENOSYS;
		goto fail;
	}

	rc = make_tmpdir(err, errlen);
	if (rc)
		goto fail;
	if (!atexit_done && atexit(relay_tmpdir_remove) != 0) {
		snprintf(err, errlen, "atexit failed");
		rc = ENOMEM;
		goto fail;
	}
	atexit_done = true;
	if (cfg->tls_port && cfg->tls_cert) {
		if ((rc = abs_path(cfg->tls_cert, cert, "TLS certificate", err, errlen)) != 0 ||
		    (rc = abs_path(cfg->tls_key, key, "TLS key", err, errlen)) != 0 ||
		    (rc = relay_cert_check(cert, key, err, errlen)) != 0)
			goto fail;
	} else if (cfg->tls_port) {
		rc = relay_cert_generate(g_tmpdir, err, errlen);
		if (rc)
			goto fail;
		snprintf(cert, sizeof(cert), "%s/cert.pem", g_tmpdir);
		snprintf(key, sizeof(key), "%s/key.pem", g_tmpdir);
		log_info("relay", "TURN over TLS uses a self-signed certificate generated at start");
	} else {
		cert[0] = key[0] = '\0';
	}

	rc = build_argv(cfg, lfam, lip, cert, key, err, errlen);
	if (rc)
		goto fail;

	/* The probe asks the listener itself, or loopback when coturn
	 * listens on every address. */
	memset(&probe, 0, sizeof(probe));
	if (is_unspecified(lfam, lip)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&probe;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(cfg->stun_port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		probelen = sizeof(*sin);
	} else if (lfam == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&probe;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(cfg->stun_port);
		memcpy(&sin->sin_addr, lip, 4);
		probelen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&probe;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(cfg->stun_port);
		memcpy(&sin6->sin6_addr, lip, 16);
		probelen = sizeof(*sin6);
	}

	log_info("relay", "starting coturn: stun %s:%u, tls %s, relay ports %u-%u, realm %s",
		 cfg->listen_ip, cfg->stun_port, cfg->tls_port ? "on" : "off",
		 cfg->relay_min, cfg->relay_max, cfg->realm);
	rc = relay_thread_start(coturn_thread, err, errlen);
	if (rc)
		goto fail;
	/* From here coturn runs: a failure must not leave it half alive. */
	rc = relay_probe_start(&probe, probelen, err, errlen);
	if (rc)
		relay_die("%s", err);
	return 0;

fail:
	relay_tmpdir_remove();
	atomic_store(&g_started, false);
	return rc;
}

bool relay_ready(void)
{
	return relay_probe_ready();
}

uint64_t relay_allocations(void)
{
	/* Before coturn's startup is known to be complete its realm may not
	 * exist yet, and there are no allocations anyway. */
	if (!relay_probe_started())
		return 0;
	return relay_glue_allocations();
}
