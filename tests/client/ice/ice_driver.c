/* ice-driver: one ICE session (client/ice.c) in one process, for the netlab
 * scenarios in tests/client/ice/t-ice.sh. It computes its TURN REST
 * credential from the cluster secret (signaling/auth.h), swaps ICE
 * descriptions with its peer through files in a shared folder (the real
 * signaling comes later), and once a pair is selected sends "ping N"
 * datagrams over the path and answers the peer's with "pong N". It prints
 * one line per event (gathered, connected, datagrams ok, failed, pair) for
 * the script to check. Test code only: it owns no production logic. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <re.h>

#include "client/ice.h"
#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/keys.h"

static struct {
	const char *id, *peer, *dir, *secret, *coord;
	unsigned stun_port, tls_port, pings, timeout_s;
	bool relay_only, no_relay, hold;
	struct ice_session *s;
	char desc_path[512], peer_path[512], ok_path[512], peer_ok_path[512];
	bool remote_set, connected, dgram_ok, peer_ok;
	unsigned seq, pongs, pings_rx;
	uint64_t t0;
	struct tmr tmr_poll, tmr_ping, tmr_deadline;
	int rc;
} d = {
	.stun_port = 3478,
	.tls_port = 5349,
	.pings = 5,
	.timeout_s = 30,
	.rc = 1,
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void print_pairs(void)
{
	struct ice_pair_info pi[64];
	size_t n = ice_session_pairs(d.s, pi, 64);

	for (size_t i = 0; i < n && i < 64; i++)
		printf("pair %s %-11s %-9s local=%s remote=%s checks=%u rtt=%u%s%s\n",
		       pi[i].selected ? "*" : "-", pi[i].state,
		       ice_path_type_name(pi[i].type), pi[i].local,
		       pi[i].remote, pi[i].checks, pi[i].rtt_ms,
		       pi[i].error[0] ? " error=" : "", pi[i].error);
	if (ice_session_gather_errors(d.s)[0])
		printf("gather-errors %s\n", ice_session_gather_errors(d.s));
	fflush(stdout);
}

static void finish(int rc)
{
	d.rc = rc;
	re_cancel();
}

/* --- Description exchange through files --------------------------------- */

static int write_file(const char *path, const char *text)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return errno;
	fputs(text, f);
	if (fclose(f))
		return errno;
	return rename(tmp, path) ? errno : 0;
}

static void poll_timeout(void *arg)
{
	char buf[16384 + 1];
	size_t n;
	FILE *f;
	(void)arg;

	if (!d.remote_set) {
		f = fopen(d.peer_path, "r");
		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			int err = ice_session_set_remote(d.s, buf, n);

			if (err) {
				printf("remote-description-refused err=%d\n", err);
				fflush(stdout);
				finish(1);
				return;
			}
			d.remote_set = true;
		}
	}
	if (d.dgram_ok && !d.peer_ok && access(d.peer_ok_path, F_OK) == 0) {
		d.peer_ok = true;
		if (!d.hold) {
			print_pairs();
			finish(0);
			return;
		}
	}
	tmr_start(&d.tmr_poll, 20, poll_timeout, NULL);
}

/* --- Datagrams ------------------------------------------------------------ */

static void dgram_send(const char *text)
{
	struct mesh_path *p = ice_session_path(d.s);

	(void)p->send(p, (const uint8_t *)text, strlen(text));
}

static void check_dgram_ok(void)
{
	if (d.dgram_ok || d.pongs < d.pings || d.pings_rx < d.pings)
		return;
	d.dgram_ok = true;
	printf("datagrams ok pings_sent=%u pongs=%u pings_received=%u\n",
	       d.seq, d.pongs, d.pings_rx);
	fflush(stdout);
	(void)write_file(d.ok_path, "ok\n");
}

static void dgram_recv(const uint8_t *data, size_t len, void *arg)
{
	char buf[64], out[64];
	unsigned n;
	(void)arg;

	if (len == 0 || len >= sizeof(buf))
		return;
	memcpy(buf, data, len);
	buf[len] = '\0';
	if (sscanf(buf, "ping %u", &n) == 1) {
		d.pings_rx++;
		snprintf(out, sizeof(out), "pong %u", n);
		dgram_send(out);
	}
	else if (sscanf(buf, "pong %u", &n) == 1) {
		d.pongs++;
	}
	check_dgram_ok();
}

static void ping_timeout(void *arg)
{
	char out[64];
	(void)arg;

	if (ice_session_state(d.s) != ICE_ST_CONNECTED)
		return;
	snprintf(out, sizeof(out), "ping %u", ++d.seq);
	dgram_send(out);
	tmr_start(&d.tmr_ping, d.dgram_ok ? 1000 : 100, ping_timeout, NULL);
}

/* --- ICE handlers ---------------------------------------------------------- */

static void on_gathered(struct ice_session *s, void *arg)
{
	const char *desc = ice_session_local_desc(s);
	struct ice_times t;
	int err;
	(void)arg;

	ice_session_times(s, &t);
	printf("gathered ms=%llu desc_bytes=%zu\n",
	       (unsigned long long)t.gathered_ms, strlen(desc));
	fflush(stdout);
	err = write_file(d.desc_path, desc);
	if (err) {
		printf("cannot write %s: %s\n", d.desc_path, strerror(err));
		finish(1);
	}
}

static void on_connected(struct ice_session *s, void *arg)
{
	struct mesh_path *p = ice_session_path(s);
	struct ice_times t;
	(void)arg;

	ice_session_times(s, &t);
	printf("connected type=%s local=%s remote=%s rtt=%u connect_ms=%llu "
	       "checks_ms=%llu role=%s\n",
	       ice_path_type_name(ice_session_path_type(s)),
	       ice_session_local_cand(s), ice_session_remote_cand(s),
	       ice_session_rtt_ms(s), (unsigned long long)t.connected_ms,
	       (unsigned long long)(t.connected_ms - t.checks_ms),
	       ice_session_controlling(s) ? "controlling" : "controlled");
	fflush(stdout);
	print_pairs();
	d.connected = true;
	p->recv = dgram_recv;
	p->recv_arg = NULL;
	tmr_start(&d.tmr_ping, 0, ping_timeout, NULL);
}

static void on_failed(struct ice_session *s, int err, const char *reason,
		      void *arg)
{
	(void)arg;
	printf("failed at_ms=%llu err=%d reason=%s\n",
	       (unsigned long long)now_ms(), err, reason);
	fflush(stdout);
	(void)s;
	print_pairs();
	finish(d.hold && d.dgram_ok ? 3 : 1);
}

static void deadline(void *arg)
{
	(void)arg;
	printf("timeout after %u s in state %s\n", d.timeout_s,
	       ice_state_name(ice_session_state(d.s)));
	print_pairs();
	finish(d.hold && d.dgram_ok ? 0 : 1);
}

/* --- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: ice-driver --id ID --peer ID --dir DIR --secret-file F\n"
		"                  --coordinator IP [--stun-port N] [--tls-port N]\n"
		"                  [--relay-only|--no-relay] [--pings N] [--hold]\n"
		"                  [--timeout S] [--log-level L]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"id", required_argument, NULL, 'i'},
		{"peer", required_argument, NULL, 'p'},
		{"dir", required_argument, NULL, 'd'},
		{"secret-file", required_argument, NULL, 's'},
		{"coordinator", required_argument, NULL, 'c'},
		{"stun-port", required_argument, NULL, 'u'},
		{"tls-port", required_argument, NULL, 'T'},
		{"relay-only", no_argument, NULL, 'R'},
		{"no-relay", no_argument, NULL, 'N'},
		{"pings", required_argument, NULL, 'n'},
		{"hold", no_argument, NULL, 'H'},
		{"timeout", required_argument, NULL, 't'},
		{"log-level", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	struct ice_server srv[4];
	char addr[4][64], user[128], pass[64], errbuf[160];
	struct mesh_keys keys;
	struct ice_config cfg = {0};
	struct ice_handlers h = {on_gathered, on_connected, on_failed};
	int c, err;

	log_set_level("info");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': d.id = optarg; break;
		case 'p': d.peer = optarg; break;
		case 'd': d.dir = optarg; break;
		case 's': d.secret = optarg; break;
		case 'c': d.coord = optarg; break;
		case 'u': d.stun_port = (unsigned)atoi(optarg); break;
		case 'T': d.tls_port = (unsigned)atoi(optarg); break;
		case 'R': d.relay_only = true; break;
		case 'N': d.no_relay = true; break;
		case 'n': d.pings = (unsigned)atoi(optarg); break;
		case 'H': d.hold = true; break;
		case 't': d.timeout_s = (unsigned)atoi(optarg); break;
		case 'l':
			if (log_set_level(optarg))
				usage();
			break;
		default: usage();
		}
	}
	if (!d.id || !d.peer || !d.dir || !d.secret || !d.coord ||
	    !id_valid(d.id, strlen(d.id)) || !id_valid(d.peer, strlen(d.peer)))
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	err = keys_load(d.secret, &keys, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "ice-driver: %s\n", errbuf);
		return 2;
	}
	turn_credential(&keys, d.id, (int64_t)time(NULL) + 3600, user,
			sizeof(user), pass, sizeof(pass));

	snprintf(addr[0], sizeof(addr[0]), "%s:%u", d.coord, d.stun_port);
	snprintf(addr[1], sizeof(addr[1]), "%s:%u", d.coord, d.tls_port);
	srv[0] = (struct ice_server){ICE_SRV_STUN, addr[0], NULL, NULL};
	srv[1] = (struct ice_server){ICE_SRV_TURN_UDP, addr[0], user, pass};
	srv[2] = (struct ice_server){ICE_SRV_TURN_TCP, addr[0], user, pass};
	srv[3] = (struct ice_server){ICE_SRV_TURN_TLS, addr[1], user, pass};

	snprintf(d.desc_path, sizeof(d.desc_path), "%s/%s.desc", d.dir, d.id);
	snprintf(d.peer_path, sizeof(d.peer_path), "%s/%s.desc", d.dir, d.peer);
	snprintf(d.ok_path, sizeof(d.ok_path), "%s/%s.ok", d.dir, d.id);
	snprintf(d.peer_ok_path, sizeof(d.peer_ok_path), "%s/%s.ok", d.dir, d.peer);

	err = libre_init();
	if (err) {
		fprintf(stderr, "ice-driver: libre_init: %s\n", strerror(err));
		return 1;
	}
	/* CONTRACT section 4: the lexically smaller id controls. */
	cfg.controlling = strcmp(d.id, d.peer) < 0;
	cfg.name = d.peer;
	cfg.servers = srv;
	cfg.n_servers = 4;
	cfg.relay_only = d.relay_only;
	cfg.no_relay = d.no_relay;
	err = ice_session_alloc(&d.s, &cfg, &h, NULL);
	if (err) {
		fprintf(stderr, "ice-driver: ice_session_alloc: %s\n",
			strerror(err));
		libre_close();
		return 1;
	}
	printf("start id=%s peer=%s role=%s\n", d.id, d.peer,
	       cfg.controlling ? "controlling" : "controlled");
	tmr_init(&d.tmr_poll);
	tmr_init(&d.tmr_ping);
	tmr_init(&d.tmr_deadline);
	tmr_start(&d.tmr_poll, 20, poll_timeout, NULL);
	tmr_start(&d.tmr_deadline, (uint64_t)d.timeout_s * 1000, deadline, NULL);

	(void)re_main(NULL);

	tmr_cancel(&d.tmr_poll);
	tmr_cancel(&d.tmr_ping);
	tmr_cancel(&d.tmr_deadline);
	d.s = mem_deref(d.s);
	libre_close();
	printf("exit rc=%d\n", d.rc);
	return d.rc;
}
