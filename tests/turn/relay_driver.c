/* relay_driver: runs the embedded relay alone, without the coordinator,
 * for debugging relay/. Takes the turn key (CONTRACT section 3, as hex)
 * from a file, prints "ready" on stdout once relay_ready(), then the
 * allocation count whenever it changes, until SIGTERM/SIGINT. It must not
 * grow features of its own: it only calls relay/relay.h. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "relay/relay.h"

#define MAX_ALLOW 16

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int parse_u16(const char *s, int zero_ok, uint16_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < (zero_ok ? 0 : 1) || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: relay_driver --turn-key-file F [--listen IP] [--public-ip IP]\n"
		"       [--stun-port N] [--tls-port N] [--tls-cert F --tls-key F]\n"
		"       [--relay-ports A-B] [--realm R] [--allow-peer RANGE]...\n"
		"       [--user-quota N] [--total-quota N] [--log-level L]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "turn-key-file", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "public-ip", required_argument, NULL, 'p' },
		{ "stun-port", required_argument, NULL, 'u' },
		{ "tls-port", required_argument, NULL, 't' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "relay-ports", required_argument, NULL, 'r' },
		{ "realm", required_argument, NULL, 'R' },
		{ "allow-peer", required_argument, NULL, 'a' },
		{ "user-quota", required_argument, NULL, 'q' },
		{ "total-quota", required_argument, NULL, 'Q' },
		{ "log-level", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	const char *allow[MAX_ALLOW + 1] = { NULL };
	struct relay_config cfg = {
		.listen_ip = "127.0.0.1", .stun_port = 3478, .tls_port = 5349,
		.relay_min = 49152, .relay_max = 65535, .realm = "mesh",
	};
	const char *key_file = NULL;
	char key[256];
	FILE *kf;
	struct sigaction sa;
	char err[256];
	size_t nallow = 0;
	uint64_t last = UINT64_MAX;
	bool announced = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned a, b;

		switch (c) {
		case 's': key_file = optarg; break;
		case 'l': cfg.listen_ip = optarg; break;
		case 'p': cfg.public_ip = optarg; break;
		case 'c': cfg.tls_cert = optarg; break;
		case 'k': cfg.tls_key = optarg; break;
		case 'R': cfg.realm = optarg; break;
		case 'u':
			if (parse_u16(optarg, 0, &cfg.stun_port) != 0)
				goto bad;
			break;
		case 't':
			if (parse_u16(optarg, 1, &cfg.tls_port) != 0)
				goto bad;
			break;
		case 'r':
			if (sscanf(optarg, "%u-%u", &a, &b) != 2 || a > 65535 || b > 65535)
				goto bad;
			cfg.relay_min = (uint16_t)a;
			cfg.relay_max = (uint16_t)b;
			break;
		case 'a':
			if (nallow == MAX_ALLOW)
				goto bad;
			allow[nallow++] = optarg;
			break;
		case 'q': cfg.user_quota = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'Q': cfg.total_quota = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'L':
			if (log_set_level(optarg) != 0)
				goto bad;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!key_file || optind != argc) {
		usage();
		return 2;
	}
	kf = fopen(key_file, "r");
	if (!kf || !fgets(key, sizeof(key), kf)) {
		fprintf(stderr, "relay_driver: cannot read %s\n", key_file);
		return 1;
	}
	fclose(kf);
	key[strcspn(key, "\r\n")] = '\0';
	cfg.auth_secret = key;
	cfg.allow_peers = nallow ? allow : NULL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	rc = relay_start(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "relay_driver: %s\n", err);
		return 1;
	}
	while (!g_stop) {
		struct timespec ts = { 0, 100 * 1000000L };
		uint64_t n;

		nanosleep(&ts, NULL);
		if (relay_ready() && !announced) {
			printf("ready\n");
			fflush(stdout);
			announced = true;
		}
		n = relay_allocations();
		if (announced && n != last) {
			printf("allocations %" PRIu64 "\n", n);
			fflush(stdout);
			last = n;
		}
	}
	/* coturn has no orderly shutdown (docs/relay.md): exit with its
	 * threads still running, like the coordinator does. */
	return 0;
bad:
	fprintf(stderr, "relay_driver: bad option value: %s\n", optarg ? optarg : "(none)");
	usage();
	return 2;
}
