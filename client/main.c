/* mesh-client, the program: parses options, loads the secret and the peer
 * table, sizes the descriptor budget, and starts the forwarder, the admin
 * API, the signaling client and the link manager on libre's main loop;
 * SIGTERM/SIGINT shut it down cleanly (peers told, QUIC closed) and exit
 * 0. Owns process lifetime only; must not implement link, ICE, QUIC or
 * forwarding behaviour itself (link.c and the modules do). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <re.h>

#include "client/admin.h"
#include "client/forward.h"
#include "client/link.h"
#include "client/options.h"
#include "client/peers.h"
#include "client/sigclient.h"
#include "client/status.h"
#include "common/log.h"
#include "signaling/keys.h"

/* Descriptors beyond the forwarder's listeners: forwarded TCP connections
 * (two each: the local app's and ours is one, the accepted one another),
 * ICE sockets (a host socket per interface and a TURN TCP/TLS connection
 * per coordinator, per peer), a QUIC pacing timerfd per connection (two
 * while an old one drains), signaling connections and the admin API. */
#define FD_PER_PEER   18
#define FD_CONNS      4096
#define FD_BASE       256
/* SIGTERM: how long the bye messages and CONNECTION_CLOSEs get to leave
 * before the loop stops regardless. */
#define SHUTDOWN_MAX_MS 3000

static struct {
	struct client_opts opt;
	struct mesh_keys keys;
	struct peer_table *peers;
	struct forward *fwd;
	struct admin *admin;
	struct sigclient *sig;
	struct linkmgr *lm;
	int sigpipe[2];
	bool stopping;
	struct tmr tmr_stop;
} app = { .sigpipe = { -1, -1 } };

static void on_signal(int sig)
{
	int e = errno;
	unsigned char b = (unsigned char)sig;

	if (write(app.sigpipe[1], &b, 1) < 0) {
		/* The pipe is full: a signal is already pending. */
	}
	errno = e;
}

static void stop_now(void *arg)
{
	(void)arg;
	re_cancel();
}

static void shutdown_done(void *arg)
{
	(void)arg;
	log_info("main", "links closed; exiting");
	re_cancel();
}

static void sig_readable(int flags, void *arg)
{
	unsigned char b[16];
	ssize_t n = read(app.sigpipe[0], b, sizeof(b));

	(void)flags;
	(void)arg;
	if (n <= 0)
		return;
	if (app.stopping) {
		log_warn("main", "signal %d again: stopping at once", b[n - 1]);
		re_cancel();
		return;
	}
	app.stopping = true;
	log_info("main", "signal %d: telling peers and closing links", b[n - 1]);
	tmr_start(&app.tmr_stop, SHUTDOWN_MAX_MS, stop_now, NULL);
	if (app.lm)
		linkmgr_shutdown(app.lm, shutdown_done, NULL);
	else
		re_cancel();
}

static int signals_init(void)
{
	struct sigaction sa;
	int err;

	if (pipe2(app.sigpipe, O_NONBLOCK | O_CLOEXEC))
		return errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	err = fd_listen(app.sigpipe[0], FD_READ, sig_readable, NULL);
	return err;
}

/* libre refuses descriptors at or above its table size, and the kernel at
 * RLIMIT_NOFILE: raise both to what the table needs. */
static int fd_budget(void)
{
	size_t need = forward_fd_estimate(app.peers) + FD_BASE + FD_CONNS +
		FD_PER_PEER * peers_count(app.peers);
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return errno;
	if (rl.rlim_cur < need) {
		rlim_t want = need;
		if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
			want = rl.rlim_max;
			log_warn("main", "the table needs %zu descriptors, the hard limit is %llu: "
				 "connections beyond it will be refused", need,
				 (unsigned long long)rl.rlim_max);
		}
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			log_warn("main", "cannot raise RLIMIT_NOFILE to %llu: %s",
				 (unsigned long long)want, strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &rl))
			return errno;
	}
	need = rl.rlim_cur > (rlim_t)(1 << 20) ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
	return fd_setsize((int)need);
}

int main(int argc, char **argv)
{
	char err[512] = "";
	int e, rc = 1;

	if (argc > 1 && !strcmp(argv[1], "status"))
		return status_main(argc, argv);

	switch (client_opts_parse(&app.opt, argc, argv)) {
	case OPTS_OK: break;
	case OPTS_EXIT_OK: return 0;
	default: return 2;
	}
	if ((e = keys_load(app.opt.secret_file, &app.keys, err, sizeof(err)))) {
		fprintf(stderr, "mesh-client: --secret-file: %s\n", err);
		return 2;
	}
	if ((e = peers_load(&app.peers, app.opt.peers, app.opt.id, err,
			    sizeof(err)))) {
		fprintf(stderr, "mesh-client: %s\n", err);
		return 2;
	}

	if ((e = libre_init())) {
		fprintf(stderr, "mesh-client: libre_init: %s\n", strerror(e));
		goto out;
	}
	if ((e = fd_budget())) {
		log_error("main", "cannot size the descriptor table: %s", strerror(e));
		goto out;
	}
	if ((e = signals_init())) {
		log_error("main", "cannot install signal handlers: %s", strerror(e));
		goto out;
	}

	log_info("main", "mesh-client %s starting as %s", MESH_VERSION, app.opt.id);
	log_info("peers", "%zu peers, %s plan, digest %s",
		 peers_count(app.peers),
		 peers_plan(app.peers) == PEERS_PLAN_VIP ? "peer-VIP" : "identity-port",
		 peers_digest(app.peers));
	if (app.opt.relay_only)
		log_warn("main", "--relay-only: only relayed paths will be used");
	if (app.opt.no_relay)
		log_warn("main", "--no-relay: relayed paths will never be used");

	if ((e = forward_alloc(&app.fwd, app.peers, NULL, err, sizeof(err)))) {
		log_error("main", "%s", err);
		goto out;
	}
	if (app.opt.admin_port) {
		struct admin_config ac = {
			.ip = app.opt.admin_ip,
			.port = app.opt.admin_port,
			.self_id = app.opt.id,
			.peers = app.peers,
			.relay_only = app.opt.relay_only,
			.no_relay = app.opt.no_relay,
		};
		if ((e = admin_alloc(&app.admin, &ac, err, sizeof(err)))) {
			log_error("main", "%s", err);
			goto out;
		}
	}

	struct linkmgr_config lc = {
		.self_id = app.opt.id,
		.peers = app.peers,
		.fwd = app.fwd,
		.relay_only = app.opt.relay_only,
		.no_relay = app.opt.no_relay,
	};
	if ((e = linkmgr_alloc(&app.lm, &lc, err, sizeof(err)))) {
		log_error("main", "%s", err);
		goto out;
	}

	struct sigclient_config scc = {
		.self_id = app.opt.id,
		.keys = &app.keys,
		.coordinators = app.opt.coordinator,
	};
	struct sigclient_handlers sch = {
		.peer_known = linkmgr_sig_peer_known,
		.message = linkmgr_sig_message,
		.servers = linkmgr_sig_servers,
	};
	if ((e = sigclient_alloc(&app.sig, &scc, &sch, app.lm, err,
				 sizeof(err)))) {
		fprintf(stderr, "mesh-client: %s\n", err);
		rc = 2;
		goto out;
	}
	linkmgr_start(app.lm, app.sig);
	admin_set_sources(app.admin, app.lm, app.sig);

	e = re_main(NULL);
	rc = 0;
	log_info("main", "stopped");
out:
	tmr_cancel(&app.tmr_stop);
	app.lm = mem_deref(app.lm);
	app.sig = mem_deref(app.sig);
	app.admin = mem_deref(app.admin);
	app.fwd = mem_deref(app.fwd);
	app.peers = mem_deref(app.peers);
	if (app.sigpipe[0] >= 0) {
		fd_close(app.sigpipe[0]);
		close(app.sigpipe[0]);
		close(app.sigpipe[1]);
	}
	libre_close();
	return rc;
}
