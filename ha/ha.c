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
#include <pthread.h>
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
/* Worker threads that may each get their own instance (ha_bind_thread). */
#define HA_THREADS_MAX 16

/* One instance per event loop: the one ha_new makes (the owner, on the
 * coordinator's main loop) and one per broker worker thread that
 * ha_bind_thread saw. Each has its own connections, Sentinel set,
 * registry cache, mailbox and replay front; they share only Redis. */
struct ha {
	struct event_base *base;
	struct ha *owner;             /* the instance ha_new made (itself for it) */
	int index;                    /* 0 for the owner, 1.. for worker threads */
	bool stopped;                 /* its thread ended (read under owner->mu) */
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

	/* This node, kept for the instances of other threads. */
	struct ha_node_info self;
	char s_node[PEER_ID_MAX + 1], s_url[320], s_stun[96], s_udp[96], s_tcp[96], s_tls[96];
	bool has_tls;

	/* Its figures as of its last tick, read by any thread under owner->mu. */
	struct ha_counters snap_ctr;
	struct mb_stats snap_st;
	size_t snap_replay;
	bool snap_usable;
	char snap_master[HA_HOST_MAX + 8];

	/* Owner only. */
	pthread_mutex_t mu;           /* the snapshots and the instance list */
	bool mu_ok;
	struct ha *clones[HA_THREADS_MAX];
	size_t nclones;
	pthread_key_t key;            /* frees a thread's instance when it exits */
	bool key_ok;
};

/* The instance of the calling thread, per owner (one owner per process in
 * the coordinator; tests make several, which never bind threads). */
static __thread struct ha *tl_owner, *tl_inst;

static struct ha *current(struct ha *owner)
{
	return tl_owner == owner && tl_inst ? tl_inst : owner;
}

bool ha_is_threaded(struct ha *ha)
{
	struct ha *o = ha->owner;
	pthread_mutex_lock(&o->mu);
	bool t = o->nclones > 0;
	pthread_mutex_unlock(&o->mu);
	return t;
}

struct mailbox *ha_thread_mailbox(struct ha *ha)
{
	return current(ha->owner)->mb;
}

struct replay *ha_thread_replay(struct ha *ha)
{
	return current(ha->owner)->rp;
}

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
	enum log_level lvl = ha->index ? LOG_LVL_DEBUG : LOG_LVL_INFO;
	if (ha->ever_master)
		log_msg(lvl, "ha", "redis master %s:%u -> %s:%u (%s)", ha->master_host,
			ha->master_port, host, port, why);
	else
		log_msg(lvl, "ha", "redis master %s:%u (%s)", host, port, why);
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
		log_msg(ha->index ? LOG_LVL_DEBUG : LOG_LVL_WARN, "ha",
			"redis master %s:%u dropped: %s; mailbox unavailable until they agree",
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
	mailbox_redis_remark(ha->mb);
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

static void snapshot(struct ha *ha)
{
	struct ha *o = ha->owner;
	struct mb_stats st;
	mailbox_redis_own_stats(ha->mb, &st);
	size_t rs = replay_redis_own_size(ha->rp);
	bool usable = ha_usable(ha, NULL, 0);
	pthread_mutex_lock(&o->mu);
	ha->snap_ctr = ha->ctr;
	ha->snap_st = st;
	ha->snap_replay = rs;
	ha->snap_usable = usable;
	if (ha->master_known)
		snprintf(ha->snap_master, sizeof(ha->snap_master), "%s:%u", ha->master_host,
			 ha->master_port);
	else
		ha->snap_master[0] = '\0';
	pthread_mutex_unlock(&o->mu);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ha *ha = arg;
	snapshot(ha);
	if (!rconn_ready(ha->data))
		return;
	int64_t now = ha_now_ms();
	mailbox_redis_tick(ha->mb);
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

/* Releases everything that lives on the instance's loop. Connections
 * first: they orphan every pending request, so no reply can reach the
 * mailbox, replay store or registry any more. */
static void instance_stop(struct ha *ha, bool answer)
{
	if (answer && !ha->stopped) {
		/* Answer every pending request (UNAVAILABLE) while the broker
		 * that asked is still there: queued ones, then those on the
		 * wire (closing the connection calls their callbacks). */
		mailbox_redis_quiesce(ha->mb);
		replay_redis_quiesce(ha->rp);
		rconn_close(ha->data);
		rconn_close(ha->sub);
	}
	sentinel_free(ha->ss);
	ha->ss = NULL;
	rconn_free(ha->data);
	rconn_free(ha->sub);
	ha->data = ha->sub = NULL;
	if (ha->tick)
		event_free(ha->tick);
	ha->tick = NULL;
	mailbox_redis_stop(ha->mb);
	replay_redis_stop(ha->rp);
	if (ha->owner && ha->owner->mu_ok) {
		pthread_mutex_lock(&ha->owner->mu);
		ha->stopped = true;
		pthread_mutex_unlock(&ha->owner->mu);
	}
}

static void instance_free(struct ha *ha)
{
	if (!ha)
		return;
	instance_stop(ha, false);
	registry_free(ha->reg);
	mailbox_redis_destroy(ha->mb);
	replay_redis_destroy(ha->rp);
	if (ha->key_ok)
		pthread_key_delete(ha->key);
	if (ha->mu_ok)
		pthread_mutex_destroy(&ha->mu);
	free(ha);
}

/* Builds an instance's parts on base from its settings (already filled). */
static int instance_start(struct ha *ha, struct event_base *base, char *err, size_t errlen)
{
	char why[200], name[32];
	ha->base = base;
	ha->self = (struct ha_node_info){
		.node_id = ha->s_node, .advertise_url = ha->s_url, .stun = ha->s_stun,
		.turn_udp = ha->s_udp, .turn_tcp = ha->s_tcp, .turn_tls = ha->has_tls ? ha->s_tls : NULL,
	};
	ha->reg = registry_new(ha, &ha->self, ha->ha_mode, why, sizeof(why));
	if (!ha->reg) {
		snprintf(err, errlen, "%s", why);
		return EINVAL;
	}
	struct mailbox_redis_config mc = {
		.message_ttl_s = ha->message_ttl_s,
		.pair_idle_s = ha->pair_idle_s,
		.wait_replicas = ha->ha_mode,
	};
	ha->mb = mailbox_redis_new(base, ha, &mc);
	ha->rp = replay_redis_new(base, ha);
	if (ha->index)
		snprintf(name, sizeof(name), "redis[%d]", ha->index);
	else
		snprintf(name, sizeof(name), "redis");
	struct rconn_config dc = {
		.name = name, .kind = RCONN_DATA, .ctr = &ha->ctr,
		.on_up = data_up, .on_down = data_down, .arg = ha,
	};
	ha->data = rconn_new(base, &dc);
	snprintf(name + strlen(name), sizeof(name) - strlen(name), "-sub");
	struct rconn_config sc = {
		.name = name, .kind = RCONN_SUB, .channel = HA_WAKE_CHANNEL, .ctr = &ha->ctr,
		.on_up = sub_up, .on_message = sub_message, .arg = ha,
	};
	ha->sub = rconn_new(base, &sc);
	ha->tick = event_new(base, -1, EV_PERSIST, tick_cb, ha);
	struct timeval tv = { 0, TICK_MS * 1000 };
	if (!ha->mb || !ha->rp || !ha->data || !ha->sub || !ha->tick || event_add(ha->tick, &tv)) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	if (ha->ha_mode) {
		struct sentinel_config sc2 = {
			.addrs = ha->sentinels, .n = ha->nsentinels, .master_name = ha->master_name,
			.password = ha->sentinel_password, .ctr = &ha->ctr, .on_round = on_round,
			.arg = ha,
		};
		ha->ss = sentinel_new(base, &sc2);
		if (!ha->ss) {
			snprintf(err, errlen, "out of memory");
			return ENOMEM;
		}
	} else {
		set_master(ha, ha->url.addr.host, ha->url.addr.port, "--redis");
	}
	return 0;
}

/* A worker thread ended: its loop is stopped but not freed yet, so the
 * instance's events and connections go now. Its memory stays until
 * ha_free: the broker still unwatches its polls when it closes that
 * thread's connections, after the thread is gone. */
static void thread_exit(void *arg)
{
	struct ha *ha = arg;
	if (tl_inst == ha)
		tl_owner = tl_inst = NULL;
	instance_stop(ha, true);
}

void ha_shutdown(struct ha *ha)
{
	if (ha)
		instance_stop(ha, true);
}

int ha_bind_thread(struct ha *owner, struct event_base *base)
{
	char err[200];
	if (!owner || base == owner->base) {
		tl_owner = owner;
		tl_inst = owner;
		return 0;
	}
	struct ha *ha = malloc(sizeof(*ha));
	if (!ha)
		return ENOMEM;
	/* The settings of the owner; none of its connections or state. */
	memcpy(ha, owner, sizeof(*ha));
	ha->ss = NULL;
	ha->data = ha->sub = NULL;
	ha->mb = NULL;
	ha->rp = NULL;
	ha->reg = NULL;
	ha->tick = NULL;
	ha->master_known = ha->ever_master = false;
	memset(&ha->ctr, 0, sizeof(ha->ctr));
	ha->last_role_ms = ha->last_sweep_ms = ha->last_reg_ms = 0;
	ha->role_inflight = ha->sweep_inflight = false;
	ha->mu_ok = ha->key_ok = false;
	ha->nclones = 0;
	pthread_mutex_lock(&owner->mu);
	bool room = owner->nclones < HA_THREADS_MAX;
	if (room) {
		ha->index = (int)owner->nclones + 1;
		owner->clones[owner->nclones++] = ha;
	}
	pthread_mutex_unlock(&owner->mu);
	if (!room) {
		free(ha);
		log_error("ha", "more than %d HTTP threads: the others use the main loop's Redis "
				"connection through the owner's instance", HA_THREADS_MAX);
		return ENOSPC;
	}
	int rc = instance_start(ha, base, err, sizeof(err));
	if (rc == 0 && owner->key_ok)
		rc = pthread_setspecific(owner->key, ha);
	if (rc) {
		log_error("ha", "HTTP thread %d: %s", ha->index, err);
		pthread_mutex_lock(&owner->mu);
		for (size_t i = 0; i < owner->nclones; i++)
			if (owner->clones[i] == ha)
				owner->clones[i] = owner->clones[--owner->nclones];
		pthread_mutex_unlock(&owner->mu);
		instance_free(ha);
		return rc;
	}
	tl_owner = owner;
	tl_inst = ha;
	log_debug("ha", "HTTP thread %d has its own Redis connections", ha->index);
	return 0;
}

void ha_free(struct ha *ha)
{
	if (!ha)
		return;
	/* Threads still bound (never stopped) lose their instances here;
	 * normally each went with its thread (thread_exit). */
	if (ha->mu_ok) {
		pthread_mutex_lock(&ha->mu);
		size_t n = ha->nclones;
		struct ha *left[HA_THREADS_MAX];
		memcpy(left, ha->clones, n * sizeof(left[0]));
		ha->nclones = 0;
		pthread_mutex_unlock(&ha->mu);
		for (size_t i = 0; i < n; i++)
			instance_free(left[i]);
	}
	if (tl_owner == ha)
		tl_owner = tl_inst = NULL;
	instance_free(ha);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
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
	ha->owner = ha;
	ha->base = base;
	if (pthread_mutex_init(&ha->mu, NULL) != 0) {
		free(ha);
		snprintf(err, errlen, "cannot create a mutex");
		return ENOMEM;
	}
	ha->mu_ok = true;
	if (pthread_key_create(&ha->key, thread_exit) == 0)
		ha->key_ok = true;
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
	copy_str(ha->s_node, sizeof(ha->s_node), cfg->self.node_id);
	copy_str(ha->s_url, sizeof(ha->s_url), cfg->self.advertise_url);
	copy_str(ha->s_stun, sizeof(ha->s_stun), cfg->self.stun);
	copy_str(ha->s_udp, sizeof(ha->s_udp), cfg->self.turn_udp);
	copy_str(ha->s_tcp, sizeof(ha->s_tcp), cfg->self.turn_tcp);
	copy_str(ha->s_tls, sizeof(ha->s_tls), cfg->self.turn_tls);
	ha->has_tls = cfg->self.turn_tls != NULL;
	if (!cfg->self.node_id || strlen(cfg->self.node_id) >= sizeof(ha->s_node) ||
	    (cfg->self.advertise_url && strlen(cfg->self.advertise_url) >= sizeof(ha->s_url))) {
		snprintf(err, errlen, "--node-id/--advertise-url: missing or too long");
		goto fail;
	}

	uint64_t g;
	if (getrandom(&g, sizeof(g), 0) != sizeof(g)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	snprintf(ha->gen, sizeof(ha->gen), "%016" PRIx64, g);
	/* The scripts' SHA1s, before any other thread could ask. */
	for (int i = 0; i < HA_SCRIPT_COUNT; i++)
		ha_script(i);

	if ((rc = instance_start(ha, base, err, errlen)))
		goto fail;
	if (cfg->ha)
		log_info("ha", "HA mode: %zu sentinel(s), master name %s, node %s", ha->nsentinels,
			 ha->master_name, cfg->self.node_id);
	*mailbox = ha->mb;
	*replay = ha->rp;
	*out = ha;
	return 0;
fail:
	ha_free(ha);
	return rc;
}

void ha_sum_stats(struct ha *ha, struct mb_stats *out, size_t *replay_size)
{
	struct ha *o = ha->owner;
	memset(out, 0, sizeof(*out));
	size_t rs = 0;
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i <= o->nclones; i++) {
		const struct ha *h = i ? o->clones[i - 1] : o;
		out->expired_total += h->snap_st.expired_total;
		out->purged_total += h->snap_st.purged_total;
		if (h->snap_st.queued_messages > out->queued_messages)
			out->queued_messages = h->snap_st.queued_messages;
		rs += h->snap_replay;
	}
	pthread_mutex_unlock(&o->mu);
	if (replay_size)
		*replay_size = rs;
}

/* ---- what the broker shows ------------------------------------------------- */

void ha_coordinators_json(struct ha *ha, struct evbuffer *out)
{
	registry_json(current(ha)->reg, out);
}

void ha_metrics(struct ha *owner, struct evbuffer *out)
{
	struct ha *ha = current(owner);
	snapshot(ha); /* this thread's own figures are current */
	/* Counters summed over this node's instances (one per HTTP thread),
	 * the others' as of their last tick. */
	struct ha_counters c;
	memset(&c, 0, sizeof(c));
	bool up = true;
	char master[HA_HOST_MAX + 8] = "";
	uint64_t failovers = 0, switches = 0;
	size_t n = 0;
	pthread_mutex_lock(&owner->mu);
	for (size_t i = 0; i <= owner->nclones; i++) {
		const struct ha *h = i ? owner->clones[i - 1] : owner;
		if (!h->stopped)
			n++;
		const struct ha_counters *x = &h->snap_ctr;
		uint64_t *dst = (uint64_t *)&c;
		const uint64_t *src = (const uint64_t *)x;
		for (size_t k = 0; k < sizeof(c) / sizeof(uint64_t); k++)
			dst[k] += src[k];
		/* Every instance follows the same master changes and sees the
		 * same notifications: those count once. */
		failovers = x->failovers > failovers ? x->failovers : failovers;
		switches = x->switch_messages > switches ? x->switch_messages : switches;
		up = up && (h->stopped || h->snap_usable);
		if (!master[0])
			snprintf(master, sizeof(master), "%s", h->snap_master);
	}
	pthread_mutex_unlock(&owner->mu);
	c.failovers = failovers;
	c.switch_messages = switches;
	evbuffer_add_printf(out,
		"# HELP mesh_redis_up Whether the Redis mailbox backend is usable (master known, "
		"connected, ROLE master) on every HTTP thread.\n"
		"# TYPE mesh_redis_up gauge\nmesh_redis_up %d\n", up ? 1 : 0);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_master The Redis master in use (value 1).\n"
		"# TYPE mesh_redis_master gauge\n");
	if (master[0])
		evbuffer_add_printf(out, "mesh_redis_master{addr=\"%s\"} 1\n", master);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_connections Redis instances of this coordinator (one per HTTP thread).\n"
		"# TYPE mesh_redis_connections gauge\nmesh_redis_connections %zu\n", n);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_round_trips_total Redis replies received.\n"
		"# TYPE mesh_redis_round_trips_total counter\nmesh_redis_round_trips_total %" PRIu64 "\n"
		"# HELP mesh_redis_round_trip_seconds_total Sum of their round-trip times.\n"
		"# TYPE mesh_redis_round_trip_seconds_total counter\n"
		"mesh_redis_round_trip_seconds_total %.6f\n",
		c.round_trips, (double)c.rtt_us_sum / 1e6);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_errors_total Redis errors by kind.\n"
		"# TYPE mesh_redis_errors_total counter\n"
		"mesh_redis_errors_total{kind=\"connect\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"timeout\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"disconnect\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"reply\"} %" PRIu64 "\n"
		"mesh_redis_errors_total{kind=\"protocol\"} %" PRIu64 "\n",
		c.err_connect, c.err_timeout, c.err_disconnect, c.err_reply, c.err_protocol);
	evbuffer_add_printf(out,
		"# HELP mesh_redis_failovers_total Master changes this coordinator followed.\n"
		"# TYPE mesh_redis_failovers_total counter\nmesh_redis_failovers_total %" PRIu64 "\n"
		"# HELP mesh_redis_unreplicated_total Writes no replica confirmed in time (answered 503).\n"
		"# TYPE mesh_redis_unreplicated_total counter\nmesh_redis_unreplicated_total %" PRIu64 "\n"
		"# HELP mesh_redis_noscript_total EVALSHA answered NOSCRIPT and was resent as EVAL.\n"
		"# TYPE mesh_redis_noscript_total counter\nmesh_redis_noscript_total %" PRIu64 "\n"
		"# HELP mesh_redis_wakes_total Wake notifications received on the subscribers.\n"
		"# TYPE mesh_redis_wakes_total counter\nmesh_redis_wakes_total %" PRIu64 "\n",
		c.failovers, c.unreplicated, c.noscript, c.wakes_received);
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
			c.sentinel_rounds, c.sentinel_no_majority, c.switch_messages);
		sentinel_metrics(ha->ss, out);
	}
	evbuffer_add_printf(out,
		"# HELP mesh_coordinators_live Coordinators in /v1/coordinators.\n"
		"# TYPE mesh_coordinators_live gauge\nmesh_coordinators_live %zu\n",
		registry_live(ha->reg));
}
