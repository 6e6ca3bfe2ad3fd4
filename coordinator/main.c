/* The coordinator program: parses options, loads keys, starts the
 * embedded TURN server and the signaling broker on one libevent loop,
 * and shuts down cleanly on SIGTERM/SIGINT. Owns process lifetime; must
 * not implement protocol behaviour itself (signaling/, relay/, ha/ do). */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/opts.h"
#include "coordinator/config.h"
#include "ha/ha.h"
#include "relay/relay.h"
#include "signaling/auth.h"
#include "signaling/broker.h"
#include "signaling/keys.h"
#include "signaling/mailbox.h"
#include "signaling/replay.h"

/* Descriptors kept for coturn's listeners, the probe, logs and Redis. */
#define FD_RESERVE 256

static const char USAGE[] = "[options]\n\n"
	"Runs STUN/TURN (embedded coturn), the signaling broker and its mailbox in one process.";

struct app {
	struct event_base *base;
	struct coord_config cfg;
	struct mesh_keys keys;
	struct mailbox *mailbox;
	struct replay *replay;
	struct ha *ha;
	struct broker *broker;
	struct event *sigterm, *sigint;
	char stun_ep[80], tls_ep[80], advertise[128], public_ip[INET6_ADDRSTRLEN];
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	log_info("main", "signal %d: shutting down", (int)sig);
	event_base_loopexit(app->base, NULL);
}

/* With a wildcard listen address and no --public-ip, the first
 * non-loopback IPv4 address stands in: coturn needs one to put in
 * relayed candidates. */
static void pick_public_ip(struct app *app)
{
	const char *listen = app->cfg.listen;
	if (app->cfg.public_ip) {
		snprintf(app->public_ip, sizeof(app->public_ip), "%s", app->cfg.public_ip);
		return;
	}
	if (strcmp(listen, "0.0.0.0") != 0 && strcmp(listen, "::") != 0) {
		snprintf(app->public_ip, sizeof(app->public_ip), "%s", listen);
		return;
	}
	snprintf(app->public_ip, sizeof(app->public_ip), "127.0.0.1");
	struct ifaddrs *ifs = NULL, *it;
	if (getifaddrs(&ifs) == 0) {
		for (it = ifs; it; it = it->ifa_next) {
			if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET)
				continue;
			struct in_addr a = ((struct sockaddr_in *)it->ifa_addr)->sin_addr;
			if ((ntohl(a.s_addr) >> 24) == 127)
				continue;
			inet_ntop(AF_INET, &a, app->public_ip, sizeof(app->public_ip));
			break;
		}
		freeifaddrs(ifs);
	}
	log_warn("main", "--listen %s without --public-ip: advertising %s; set --public-ip to the address clients reach",
		 listen, app->public_ip);
}

static void endpoint(char *out, size_t cap, const char *ip, unsigned port)
{
	if (strchr(ip, ':'))
		snprintf(out, cap, "[%s]:%u", ip, port);
	else
		snprintf(out, cap, "%s:%u", ip, port);
}

static int bind_mem_thread(void *arg, struct event_base *base)
{
	mailbox_mem_bind_thread(base);
	return 0;
}

static int bind_ha_thread(void *arg, struct event_base *base)
{
	return ha_bind_thread(arg, base);
}

static void ha_coordinators(void *arg, struct evbuffer *out)
{
	ha_coordinators_json(arg, out);
}

static void ha_extra_metrics(void *arg, struct evbuffer *out)
{
	ha_metrics(arg, out);
}

static void libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_ERR)
		log_error("libevent", "%s", msg);
	else if (severity == EVENT_LOG_WARN)
		log_warn("libevent", "%s", msg);
	else
		log_debug("libevent", "%s", msg);
}

/* Every connection, coturn and the process itself need descriptors: raise
 * the soft limit to the hard one, and keep --max-connections below it. */
static int fit_descriptors(struct coord_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return errno;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* coturn's listeners, relays and clients get the rest. */
	rlim_t reserve = FD_RESERVE + (rlim_t)cfg->turn_total_quota * 2;
	if (rl.rlim_cur < reserve + 64) {
		log_error("main", "only %llu file descriptors available; raise the limit (ulimit -n)",
			  (unsigned long long)rl.rlim_cur);
		return EMFILE;
	}
	if ((rlim_t)cfg->max_connections > rl.rlim_cur - reserve) {
		unsigned fit = (unsigned)(rl.rlim_cur - reserve);
		log_warn("main", "--max-connections %u does not fit %llu file descriptors: using %u",
			 cfg->max_connections, (unsigned long long)rl.rlim_cur, fit);
		cfg->max_connections = fit;
	}
	return 0;
}

static int run(struct app *app)
{
	struct coord_config *cfg = &app->cfg;
	char err[256] = "";
	int rc;

	if (fit_descriptors(cfg))
		return 1;

	if ((rc = keys_load(cfg->secret_file, &app->keys, err, sizeof(err)))) {
		fprintf(stderr, "coordinator: --secret-file: %s\n", err);
		return 2;
	}
	pick_public_ip(app);
	endpoint(app->stun_ep, sizeof(app->stun_ep), app->public_ip, cfg->stun_port);
	if (cfg->tls_port)
		endpoint(app->tls_ep, sizeof(app->tls_ep), app->public_ip, cfg->tls_port);
	if (cfg->advertise_url) {
		snprintf(app->advertise, sizeof(app->advertise), "%s", cfg->advertise_url);
	} else {
		char hp[80];
		endpoint(hp, sizeof(hp), app->public_ip, cfg->http_port);
		snprintf(app->advertise, sizeof(app->advertise), "http://%s", hp);
	}

	if (evthread_use_pthreads()) {
		log_error("main", "libevent threading support unavailable");
		return 1;
	}
	app->base = broker_event_base_new();
	if (!app->base) {
		log_error("main", "cannot create the event loop");
		return 1;
	}

	if (cfg->redis_url || cfg->ha) {
		struct ha_config hc = {
			.redis_url = cfg->redis_url,
			.ha = cfg->ha,
			.sentinels = cfg->sentinels,
			.sentinel_master = cfg->sentinel_master,
			.keys = &app->keys,
			.secret_file = cfg->secret_file,
			.pair_idle_s = PAIR_IDLE_S,
			.message_ttl_s = cfg->message_ttl_s,
			.self = {
				.node_id = cfg->node_id,
				.advertise_url = app->advertise,
				.stun = app->stun_ep,
				.turn_udp = app->stun_ep,
				.turn_tcp = app->stun_ep,
				.turn_tls = cfg->tls_port ? app->tls_ep : NULL,
			},
		};
		if ((rc = ha_new(&app->ha, app->base, &hc, &app->mailbox, &app->replay, err, sizeof(err)))) {
			log_error("main", "cluster mode: %s", err);
			return 1;
		}
	} else {
		struct mailbox_mem_config mc = {
			.message_ttl_s = cfg->message_ttl_s,
			.pair_idle_s = PAIR_IDLE_S,
			.max_bytes = (uint64_t)cfg->max_queued_mb << 20,
		};
		if ((rc = mailbox_mem_new(&app->mailbox, app->base, &mc)) ||
		    (rc = replay_mem_new(&app->replay, cfg->max_nonces))) {
			log_error("main", "cannot create the in-memory mailbox: %s", strerror(rc));
			return 1;
		}
	}

	struct relay_config rcfg = {
		.listen_ip = cfg->listen,
		.public_ip = app->public_ip,
		.stun_port = cfg->stun_port,
		.tls_port = cfg->tls_port,
		.tls_cert = cfg->tls_cert,
		.tls_key = cfg->tls_key,
		.relay_min = cfg->relay_min,
		.relay_max = cfg->relay_max,
		.realm = cfg->realm,
		.auth_secret = app->keys.turn_hex,
		.allow_peers = (const char *const *)cfg->relay_allow,
		.user_quota = cfg->turn_user_quota,
		.total_quota = cfg->turn_total_quota,
	};
	if ((rc = relay_start(&rcfg, err, sizeof(err)))) {
		log_error("main", "TURN: %s", err);
		return 1;
	}

	struct broker_config bc = {
		.keys = &app->keys,
		.mailbox = app->mailbox,
		.replay = app->replay,
		.realm = cfg->realm,
		.turn_ttl_s = TURN_CREDENTIAL_TTL_S,
		.publish_rate = cfg->publish_rate,
		.publish_burst = cfg->publish_burst,
		.max_connections = cfg->max_connections,
		.request_timeout_s = cfg->request_timeout_s,
		.idle_timeout_s = cfg->idle_timeout_s,
		/* auto: with Redis the mailbox work happens in Redis (on the
		 * three-node layout, on one of these hosts) and every loop
		 * holds its own connections and batches: one loop did 39k
		 * publishes/s where two did 33k on 2 cores (docs/ha.md). The
		 * memory mailbox does its work here and gains from two. */
		.threads = cfg->http_threads ? cfg->http_threads : (app->ha ? 1 : 2),
		.thread_init = app->ha ? bind_ha_thread : bind_mem_thread,
		.thread_init_arg = app->ha,
		.node_id = cfg->node_id,
		.advertise_url = app->advertise,
		.stun_endpoint = app->stun_ep,
		.turn_tls_endpoint = cfg->tls_port ? app->tls_ep : NULL,
		.turn_ready = relay_ready,
		.turn_allocations = relay_allocations,
		.coordinators_json = app->ha ? ha_coordinators : NULL,
		.extra_metrics = app->ha ? ha_extra_metrics : NULL,
		.hook_arg = app->ha,
	};
	if ((rc = broker_new(&app->broker, app->base, &bc))) {
		log_error("main", "cannot create the broker: %s", strerror(rc));
		return 1;
	}
	if ((rc = broker_listen(app->broker, cfg->listen, cfg->http_port, err, sizeof(err))) ||
	    (rc = broker_start(app->broker, err, sizeof(err)))) {
		log_error("main", "HTTP API: %s", err);
		return 1;
	}

	app->sigterm = evsignal_new(app->base, SIGTERM, on_signal, app);
	app->sigint = evsignal_new(app->base, SIGINT, on_signal, app);
	if (!app->sigterm || !app->sigint || evsignal_add(app->sigterm, NULL) || evsignal_add(app->sigint, NULL)) {
		log_error("main", "cannot install signal handlers");
		return 1;
	}

	log_info("main", "coordinator %s (%s) up: node %s, http %s:%u, stun/turn %s udp+tcp, turn tls %s, relay ports %u-%u, realm %s, mailbox %s, advertise %s",
		 MESH_VERSION, app->ha ? "cluster" : "standalone", cfg->node_id, cfg->listen,
		 (unsigned)cfg->http_port, app->stun_ep, cfg->tls_port ? app->tls_ep : "off",
		 (unsigned)cfg->relay_min, (unsigned)cfg->relay_max, cfg->realm,
		 app->mailbox->ops->name, app->advertise);

	if (event_base_dispatch(app->base) < 0) {
		log_error("main", "event loop failed");
		return 1;
	}
	log_info("main", "stopped");
	return 0;
}

static void app_free(struct app *app)
{
	if (app->sigterm)
		event_free(app->sigterm);
	if (app->sigint)
		event_free(app->sigint);
	/* Pending Redis operations are answered (as unavailable) while the
	 * broker can still take the answers. */
	if (app->ha)
		ha_shutdown(app->ha);
	broker_free(app->broker);
	if (app->ha) {
		ha_free(app->ha); /* owns its mailbox and replay store */
	} else {
		if (app->mailbox)
			app->mailbox->ops->free(app->mailbox);
		if (app->replay)
			app->replay->ops->free(app->replay);
	}
	if (app->base)
		event_base_free(app->base);
	coord_config_release(&app->cfg);
}

int main(int argc, char **argv)
{
	/* coturn's threads may still use OpenSSL while the process exits:
	 * OpenSSL must not tear itself down at exit underneath them. This
	 * only works before anything else touches OpenSSL. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	/* Before any thread writes to a socket: a write to a reset
	 * connection must be an error, not the end of the process. */
	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(libevent_log);
	struct app app;
	memset(&app, 0, sizeof(app));
	int rc = coord_config_parse(&app.cfg, argc, argv, USAGE);
	if (rc != OPTS_OK)
		return rc == OPTS_EXIT_OK ? 0 : 2;
	rc = run(&app);
	app_free(&app);
	return rc;
}
