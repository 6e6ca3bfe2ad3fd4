/* Cluster mode glue (ha.h): parses --redis/--ha/--sentinel, derives the
 * Redis and Sentinel passwords, follows the master (fixed with --redis,
 * Sentinel majority with --ha), owns the master's data and subscriber
 * connections, and runs the periodic work: ROLE check, sweep and stats,
 * registry refresh. Decides when the mailbox is usable: only with a
 * master that answers, says ROLE master and (with --ha) a majority of
 * Sentinels names. It must not touch mailbox rules (scripts.c) or serve
 * HTTP (the broker calls in through ha.h). */
#include "ha/ha.h"
#include "ha/ha_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/log.h"
#include "signaling/auth.h"
#include "signaling/mailbox.h"
#include "signaling/replay.h"

#define TICK_MS 250
/* A little under HA_SWEEP_MS: one coordinator of the cluster sweeps per
 * period, the others read the counters. */
#define SWEEP_LOCK_MS "1800"
/* CONTRACT section 2: "A pair's epoch is forgotten after one hour". */
#define PAIR_IDLE_DEFAULT_S 3600

struct ha {
	struct event_base *base;
	bool ha_mode;
	struct ha_redis_url url;      /* --redis (password/db also with --ha) */
	char password[HA_PASSWORD_MAX];
	char sentinel_password[HA_PASSWORD_MAX];
	char master_name[128];
	struct ha_addr sentinels[HA_SENTINELS_MAX];
	size_t nsentinels;
	unsigned pair_idle_s;
	unsigned message_ttl_s;

	struct sentinel_set *ss;
	struct rconn *data;           /* commands and scripts */
	struct rconn *sub;            /* the wake channel */
	bool master_known;
	char master_host[HA_HOST_MAX];
	uint16_t master_port;
	bool ever_master;             /* for counting failovers */
	char no_master_why[160];

	struct ha_counters ctr;
	char gen[17];

	struct mailbox *mb;
	struct replay *rp;
	struct registry *reg;

	struct event *tick;
	int64_t last_role_ms, last_sweep_ms, last_reg_ms;
	bool role_inflight, sweep_inflight;
	int64_t last_suspect_log_ms;
};

struct rconn *ha_data(struct ha *ha)
{
	return ha->data;
}

struct ha_counters *ha_ctr(struct ha *ha)
{
	return &ha->ctr;
}

const char *ha_gen_candidate(struct ha *ha)
{
	return ha->gen;
}

bool ha_usable(struct ha *ha, char *why, size_t len)
{
	if (ha->ha_mode && !ha->master_known) {
		if (why)
			snprintf(why, len, "no Redis master: %s", ha->no_master_why);
		return false;
	}
	if (!rconn_ready(ha->data)) {
		if (why)
			rconn_state_text(ha->data, why, len);
		return false;
	}
	if (!rconn_ready(ha->sub)) {
		if (why)
			rconn_state_text(ha->sub, why, len);
		return false;
	}
	return true;
}

static void set_master(struct ha *ha, const char *host, uint16_t port, const char *why)
{
	if (ha->master_known && strcmp(ha->master_host, host) == 0 && ha->master_port == port)
		return;
	if (ha->ever_master && (strcmp(ha->master_host, host) != 0 || ha->master_port != port))
		ha->ctr.failovers++;
	if (ha->ever_master)
		log_info("ha", "redis master %s:%u -> %s:%u (%s)", ha->master_host, ha->master_port,
			 host, port, why);
	else
		log_info("ha", "redis master %s:%u (%s)", host, port, why);
	snprintf(ha->master_host, sizeof(ha->master_host), "%s", host);
	ha->master_port = port;
	ha->master_known = true;
	ha->ever_master = true;
	rconn_set_target(ha->data, host, port, ha->password, ha->url.db);
	rconn_set_target(ha->sub, host, port, ha->password, ha->url.db);
}

static void on_round(void *arg, const char *host, uint16_t port, unsigned agree,
		     unsigned answered, unsigned total)
{
	struct ha *ha = arg;
	char why[96];
	if (host) {
		snprintf(why, sizeof(why), "%u of %u sentinels agree", agree, total);
		set_master(ha, host, port, why);
		return;
	}
	snprintf(ha->no_master_why, sizeof(ha->no_master_why),
		 "no majority of the %u sentinels names one (%u answered, best agreement %u)",
		 total, answered, agree);
	if (ha->master_known) {
		log_warn("ha", "redis master %s:%u dropped: %s; mailbox unavailable until they agree",
			 ha->master_host, ha->master_port, ha->no_master_why);
		ha->master_known = false;
		rconn_set_target(ha->data, NULL, 0, NULL, 0);
		rconn_set_target(ha->sub, NULL, 0, NULL, 0);
	}
}

void ha_master_suspect(struct ha *ha, const redisReply *r)
{
	int64_t now = ha_now_ms();
	bool log = now - ha->last_suspect_log_ms > 2000;
	if (log)
		ha->last_suspect_log_ms = now;
	if (r && (ha_reply_is_error(r, "READONLY") || ha_reply_is_error(r, "MASTERDOWN"))) {
		/* A replica now: reconnect (the handshake's ROLE check keeps
		 * us off it) and ask the Sentinels where the master went. */
		if (log)
			log_warn("ha", "redis %s:%u: %.120s", ha->master_host, ha->master_port, r->str);
		rconn_kick(ha->data, "the server is a replica now");
	} else if (r && log) {
		log_warn("ha", "redis %s:%u: %.120s", ha->master_host, ha->master_port,
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	sentinel_query_now(ha->ss);
}

/* ---- connection events --------------------------------------------------- */

static void data_up(void *arg)
{
	struct ha *ha = arg;
	/* Refresh what depends on the master at once: the registry entry
	 * (a returning node shows up within one round trip) and the stats. */
	ha->last_reg_ms = 0;
	ha->last_sweep_ms = 0;
}

static void data_down(void *arg, const char *why)
{
	struct ha *ha = arg;
	ha->role_inflight = false;
	ha->sweep_inflight = false;
	/* The subscriber to the same server may be half-open (a partition
	 * gives no RST): start it over too; it wakes every watcher when it
	 * is back, for the notifications it may have missed. */
	rconn_kick(ha->sub, "the data connection went down");
	sentinel_query_now(ha->ss);
}

static void sub_up(void *arg)
{
	struct ha *ha = arg;
	mailbox_redis_wake_all(ha->mb);
}

static void sub_message(void *arg, const char *data, size_t len)
{
	struct ha *ha = arg;
	ha->ctr.wakes_received++;
	mailbox_redis_wake(ha->mb, data, len);
}

/* ---- periodic work -------------------------------------------------------- */

static void role_reply(redisReply *r, void *arg)
{
	struct ha *ha = arg;
	ha->role_inflight = false;
	if (!r)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		ha->ctr.err_protocol++;
		return;
	}
	if (strcmp(r->element[0]->str, "master") != 0) {
		log_warn("ha", "redis %s:%u is no longer a master (role %.20s)", ha->master_host,
			 ha->master_port, r->element[0]->str);
		rconn_kick(ha->data, "not a master any more");
		sentinel_query_now(ha->ss);
	}
}

static bool dec_ok(const redisReply *r, uint64_t *out)
{
	if (!r || r->type != REDIS_REPLY_STRING || r->len < 1 || r->len > 20)
		return false;
	bool neg = r->str[0] == '-';
	uint64_t v = 0;
	for (size_t i = neg ? 1 : 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	}
	/* Counters drifting below zero (a wiped stats hash) read as 0. */
	*out = neg ? 0 : v;
	return true;
}

static void sweep_reply(redisReply *r, void *arg)
{
	struct ha *ha = arg;
	ha->sweep_inflight = false;
	if (!r)
		return;
	uint64_t queued;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !dec_ok(r->element[0], &queued) ||
	    r->element[1]->type != REDIS_REPLY_INTEGER || r->element[1]->integer < 0) {
		if (r->type == REDIS_REPLY_ERROR)
			ha_master_suspect(ha, r);
		else
			ha->ctr.err_protocol++;
		return;
	}
	mailbox_redis_sweep_stats(ha->mb, queued, (uint64_t)r->element[1]->integer);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ha *ha = arg;
	if (!rconn_ready(ha->data))
		return;
	int64_t now = ha_now_ms();
	if (!ha->role_inflight && now - ha->last_role_ms >= HA_ROLE_CHECK_MS) {
		ha->last_role_ms = now;
		ha->role_inflight = true;
		const char *argv[] = { "ROLE" };
		size_t lens[] = { 4 };
		rconn_cmd(ha->data, role_reply, ha, 1, argv, lens);
	}
	if (!ha->sweep_inflight && now - ha->last_sweep_ms >= HA_SWEEP_MS) {
		ha->last_sweep_ms = now;
		ha->sweep_inflight = true;
		char ttl[24];
		int lt = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ha->message_ttl_s * 1000);
		const char *argv[] = { HA_PREFIX, ttl, SWEEP_LOCK_MS };
		size_t lens[] = { strlen(HA_PREFIX), (size_t)lt, strlen(SWEEP_LOCK_MS) };
		rconn_script(ha->data, HA_SCRIPT_SWEEP, sweep_reply, ha, 0, 3, argv, lens);
	}
	if (ha->ha_mode && now - ha->last_reg_ms >= HA_REGISTRY_PERIOD_MS) {
		ha->last_reg_ms = now;
		registry_refresh(ha->reg);
	}
}

/* ---- construction ----------------------------------------------------------- */

void ha_free(struct ha *ha)
{
	if (!ha)
		return;
	/* Connections first: they orphan every pending request, so no reply
	 * can reach the mailbox, replay store or registry freed below. */
	sentinel_free(ha->ss);
	rconn_free(ha->data);
	rconn_free(ha->sub);
	if (ha->tick)
		event_free(ha->tick);
	registry_free(ha->reg);
	mailbox_redis_destroy(ha->mb);
	replay_redis_destroy(ha->rp);
	free(ha);
}

int ha_new(struct ha **out, struct event_base *base, const struct ha_config *cfg,
	   struct mailbox **mailbox, struct replay **replay, char *err, size_t errlen)
{
	char why[200];
	int rc = EINVAL;
	*out = NULL;
	struct ha *ha = calloc(1, sizeof(*ha));
	if (!ha) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	ha->base = base;
	ha->ha_mode = cfg->ha;
	ha->pair_idle_s = cfg->pair_idle_s ? cfg->pair_idle_s : PAIR_IDLE_DEFAULT_S;
	ha->message_ttl_s = cfg->message_ttl_s;
	snprintf(ha->master_name, sizeof(ha->master_name), "%s",
		 cfg->sentinel_master && *cfg->sentinel_master ? cfg->sentinel_master : "mesh");
	snprintf(ha->no_master_why, sizeof(ha->no_master_why), "sentinels not asked yet");

	if (!cfg->ha && !cfg->redis_url) {
		snprintf(err, errlen, "--redis: required unless --ha is given");
		goto fail;
	}
	if (cfg->redis_url && ha_parse_redis_url(cfg->redis_url, &ha->url, why, sizeof(why))) {
		snprintf(err, errlen, "--redis: %s", why);
		goto fail;
	}
	if (cfg->ha) {
		if (!cfg->sentinels || !*cfg->sentinels) {
			snprintf(err, errlen, "--sentinel: required with --ha");
			goto fail;
		}
		if (ha_parse_hostports(cfg->sentinels, ha->sentinels, HA_SENTINELS_MAX,
				       &ha->nsentinels, why, sizeof(why))) {
			snprintf(err, errlen, "--sentinel: %s", why);
			goto fail;
		}
		for (const char *p = ha->master_name; *p; p++)
			if (*p <= ' ' || *p > '~') {
				snprintf(err, errlen, "--sentinel-master: printable, no spaces");
				goto fail;
			}
	}
	if (cfg->message_ttl_s == 0) {
		snprintf(err, errlen, "--message-ttl: must be at least 1");
		goto fail;
	}
	if (ha->url.password[0]) {
		snprintf(ha->password, sizeof(ha->password), "%s", ha->url.password);
	} else if (cfg->secret_file) {
		if ((rc = ha_derive_password(cfg->secret_file, HA_INFO_REDIS, ha->password, why,
					     sizeof(why)))) {
			snprintf(err, errlen, "--secret-file: %s", why);
			goto fail;
		}
	}
	if (cfg->ha && cfg->secret_file &&
	    (rc = ha_derive_password(cfg->secret_file, HA_INFO_SENTINEL, ha->sentinel_password, why,
				     sizeof(why)))) {
		snprintf(err, errlen, "--secret-file: %s", why);
		goto fail;
	}
	rc = EINVAL;

	uint64_t g;
	if (getrandom(&g, sizeof(g), 0) != sizeof(g)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	snprintf(ha->gen, sizeof(ha->gen), "%016" PRIx64, g);

	ha->reg = registry_new(ha, &cfg->self, cfg->ha, why, sizeof(why));
	if (!ha->reg) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	struct mailbox_redis_config mc = {
		.message_ttl_s = cfg->message_ttl_s,
		.pair_idle_s = ha->pair_idle_s,
		.wait_replicas = cfg->ha,
	};
	ha->mb = mailbox_redis_new(base, ha, &mc);
	ha->rp = replay_redis_new(base, ha);
	struct rconn_config dc = {
		.name = "redis", .kind = RCONN_DATA, .ctr = &ha->ctr,
		.on_up = data_up, .on_down = data_down, .arg = ha,
	};
	struct rconn_config sc = {
		.name = "redis-sub", .kind = RCONN_SUB, .channel = HA_WAKE_CHANNEL, .ctr = &ha->ctr,
		.on_up = sub_up, .on_message = sub_message, .arg = ha,
	};
	ha->data = rconn_new(base, &dc);
	ha->sub = rconn_new(base, &sc);
	ha->tick = event_new(base, -1, EV_PERSIST, tick_cb, ha);
	struct timeval tv = { 0, TICK_MS * 1000 };
	if (!ha->mb || !ha->rp || !ha->data || !ha->sub || !ha->tick || event_add(ha->tick, &tv)) {
		snprintf(err, errlen, "out of memory");
		rc = ENOMEM;
		goto fail;
	}
	if (cfg->ha) {
		struct sentinel_config sc2 = {
			.addrs = ha->sentinels, .n = ha->nsentinels, .master_name = ha->master_name,
			.password = ha->sentinel_password, .ctr = &ha->ctr, .on_round = on_round,
			.arg = ha,
		};
		ha->ss = sentinel_new(base, &sc2);
		if (!ha->ss) {
			snprintf(err, errlen, "out of memory");
			rc = ENOMEM;
			goto fail;
		}
		log_info("ha", "HA mode: %zu sentinel(s), master name %s, node %s", ha->nsentinels,
			 ha->master_name, cfg->self.node_id);
	} else {
		set_master(ha, ha->url.addr.host, ha->url.addr.port, "--redis");
	}
	*mailbox = ha->mb;
	*replay = ha->rp;
	*out = ha;
	return 0;
fail:
	ha_free(ha);
	return rc;
}

/* ---- what the broker shows ------------------------------------------------- */

void ha_coordinators_json(struct ha *ha, struct evbuffer *out)
{
	registry_json(ha->reg, out);
}

void ha_metrics(struct ha *ha, struct evbuffer *out)
{
	const struct ha_counters *c = &ha->ctr;
	evbuffer_add_printf(out,
		"# HELP mesh_redis_up Whether the Redis mailbox backend is usable (master known, "
		"connected, ROLE master).\n# TYPE mesh_redis_up gauge\nmesh_redis_up %d\n",
		ha_usable(ha, NULL, 0) ? 1 : 0);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_master The Redis master in use (value 1).\n"
		"# TYPE mesh_redis_master gauge\n");
	if (ha->master_known)
		evbuffer_add_printf(out, "mesh_redis_master{addr=\"%s:%u\"} 1\n", ha->master_host,
				    ha->master_port);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_round_trips_total Redis replies received.\n"
		"# TYPE mesh_redis_round_trips_total counter\nmesh_redis_round_trips_total %" PRIu64 "\n"
		"# HELP mesh_redis_round_trip_seconds_total Sum of their round-trip times.\n"
		"# TYPE mesh_redis_round_trip_seconds_total counter\n"
		"mesh_redis_round_trip_seconds_total %.6f\n",
		c->round_trips, (double)c->rtt_us_sum / 1e6);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_errors_total Redis errors by kind.\n"
		"# TYPE mesh_redis_errors_total counter\n"
		"mesh_redis_errors_total{kind=\"connect\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"timeout\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"disconnect\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"reply\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"protocol\"} %" PRIu64 "\n",
		c->err_connect, c->err_timeout, c->err_disconnect, c->err_reply, c->err_protocol);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_failovers_total Master changes this coordinator followed.\n"
		"# TYPE mesh_redis_failovers_total counter\nmesh_redis_failovers_total %" PRIu64 "\n"
		"# HELP mesh_redis_unreplicated_total Writes no replica confirmed in time (answered 503).\n"
		"# TYPE mesh_redis_unreplicated_total counter\nmesh_redis_unreplicated_total %" PRIu64 "\n"
		"# HELP mesh_redis_noscript_total EVALSHA answered NOSCRIPT and was resent as EVAL.\n"
		"# TYPE mesh_redis_noscript_total counter\nmesh_redis_noscript_total %" PRIu64 "\n"
		"# HELP mesh_redis_wakes_total Wake notifications received on the subscriber.\n"
		"# TYPE mesh_redis_wakes_total counter\nmesh_redis_wakes_total %" PRIu64 "\n"
		"# HELP mesh_redis_duplicate_publishes_total Identical publishes (retries) answered "
		"with the queued message's id.\n"
		"# TYPE mesh_redis_duplicate_publishes_total counter\n"
		"mesh_redis_duplicate_publishes_total %" PRIu64 "\n",
		c->failovers, c->unreplicated, c->noscript, c->wakes_received, c->duplicates);
	if (ha->ha_mode) {
		evbuffer_add_printf(out,
			"# HELP mesh_redis_sentinel_rounds_total Sentinel query rounds.\n"
			"# TYPE mesh_redis_sentinel_rounds_total counter\n"
			"mesh_redis_sentinel_rounds_total %" PRIu64 "\n"
			"# HELP mesh_redis_sentinel_no_majority_total Rounds in which no majority named a master.\n"
			"# TYPE mesh_redis_sentinel_no_majority_total counter\n"
			"mesh_redis_sentinel_no_majority_total %" PRIu64 "\n"
			"# HELP mesh_redis_switch_master_total +switch-master notifications seen.\n"
			"# TYPE mesh_redis_switch_master_total counter\n"
			"mesh_redis_switch_master_total %" PRIu64 "\n",
			c->sentinel_rounds, c->sentinel_no_majority, c->switch_messages);
		sentinel_metrics(ha->ss, out);
	}
	evbuffer_add_printf(out,
		"# HELP mesh_coordinators_live Coordinators in /v1/coordinators.\n"
		"# TYPE mesh_coordinators_live gauge\nmesh_coordinators_live %zu\n",
		registry_live(ha->reg));
}
