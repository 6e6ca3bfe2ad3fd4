/* Internals of ha/ shared between its files: the managed Redis connection
 * (rconn), the Lua scripts, the Sentinel set, and the pieces ha.c wires
 * together (Redis mailbox, replay store, registry). Nothing outside ha/
 * and tests/ha/ includes this; the coordinator sees only ha.h. */
#ifndef MESH_HA_HA_PRIV_H
#define MESH_HA_HA_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;
struct evbuffer;
struct mailbox;
struct replay;

/* ---- limits and timings ----------------------------------------------- */

#define HA_HOST_MAX 256          /* host names and literals we accept */
#define HA_PASSWORD_MAX 128      /* AUTH passwords (ours are 64 hex) */
#define HA_PREFIX "mesh:"        /* every key and channel we touch */
#define HA_WAKE_CHANNEL HA_PREFIX "wake"
#define HA_SENTINELS_MAX 9

/* A command without an answer for this long means the connection is
 * dead (hiredis 0.14 has no timeouts of its own). WAIT answers within
 * HA_WAIT_MS, so this must stay well above it. */
#define HA_CMD_TIMEOUT_MS 2000
#define HA_CONNECT_TIMEOUT_MS 1000
/* Reconnect backoff: doubles from MIN to MAX. */
#define HA_BACKOFF_MIN_MS 100
#define HA_BACKOFF_MAX_MS 2000
/* TCP keepalive on every connection, so a pub/sub connection to a host
 * that vanished (no RST) is noticed in about IDLE + INTVL * CNT seconds. */
#define HA_KEEPIDLE_S 3
#define HA_KEEPINTVL_S 1
#define HA_KEEPCNT 3
/* With --ha a publish or an acknowledgement is answered only once at
 * least HA_WAIT_REPLICAS replica holds it, waiting at most HA_WAIT_MS
 * (Redis WAIT); otherwise the caller gets MB_UNAVAILABLE (503). */
#define HA_WAIT_REPLICAS 1
#define HA_WAIT_MS 250
/* A long poll marks its peer in Redis (P w:R, scripts.c) so publishes
 * wake only watched peers. The mark lives HA_MARK_TTL_MS and is renewed
 * every HA_MARK_REFRESH_MS while polls go on; TTL > REFRESH + the longest
 * poll wait (30 s) + a pass, so a running poll never loses its mark. */
#define HA_MARK_REFRESH_MS 30000
#define HA_MARK_TTL_MS 90000
#define HA_MARK_PASS_MS 1000     /* how often the marks are walked */
/* How often Sentinels are asked for the master when nothing happens. */
#define HA_SENTINEL_POLL_MS 1000
/* ROLE check of the master connection. */
#define HA_ROLE_CHECK_MS 1000
/* Sweep of expired messages and idle pairs, and the stats refresh. */
#define HA_SWEEP_MS 2000
/* Registry: refresh period and entry lifetime. An entry not refreshed for
 * HA_REGISTRY_TTL_MS is not listed: a dead node drops out within
 * TTL + PERIOD = 8 s, a new one appears within one PERIOD (the issue asks
 * for 10 s and 5 s). */
#define HA_REGISTRY_PERIOD_MS 2000
#define HA_REGISTRY_TTL_MS 6000
/* While refreshes fail (no master: a failover takes a few seconds), the
 * cached entries keep ageing locally and are served up to this age, so a
 * short outage does not empty the list and a node that died during one
 * is still gone within 10 s. */
#define HA_REGISTRY_SERVE_MS 9000
/* Registry entries older than this are deleted from Redis outright. */
#define HA_REGISTRY_FORGET_MS 3600000
/* Replay window: CONTRACT section 2 refuses ts more than 120 s away, so a
 * nonce must be remembered for 2 * 120 s. */
#define HA_NONCE_TTL_S 240

/* ---- counters (metrics) ------------------------------------------------- */

struct ha_counters {
	uint64_t round_trips;      /* replies received on any connection */
	uint64_t rtt_us_sum;       /* sum of their round-trip times */
	uint64_t err_connect;      /* connects that failed or timed out */
	uint64_t err_timeout;      /* connections dropped for a silent command */
	uint64_t err_reply;        /* error replies (READONLY, NOREPLICAS, ...) */
	uint64_t err_protocol;     /* replies of an unexpected type or shape */
	uint64_t err_disconnect;   /* connections lost */
	uint64_t noscript;         /* EVALSHA answered NOSCRIPT, resent as EVAL */
	uint64_t failovers;        /* master address changes after the first */
	uint64_t unreplicated;     /* WAIT saw fewer than HA_WAIT_REPLICAS */
	uint64_t wakes_received;   /* wake notifications on the subscriber */
	uint64_t sentinel_rounds;  /* Sentinel query rounds */
	uint64_t sentinel_no_majority; /* rounds without a majority answer */
	uint64_t switch_messages;  /* +switch-master notifications */
};

int64_t ha_now_ms(void);  /* monotonic */

/* ---- redis:// URLs and host:port lists (redis_url.c) -------------------- */

struct ha_addr {
	char host[HA_HOST_MAX];
	uint16_t port;
};

struct ha_redis_url {
	struct ha_addr addr;
	char password[HA_PASSWORD_MAX]; /* "" when the URL has none */
	unsigned db;
};

/* "redis://[[user]:password@]host[:port][/db]", host may be [v6]. Port
 * defaults to 6379, db to 0. Returns 0 or -1 with a reason. */
int ha_parse_redis_url(const char *url, struct ha_redis_url *out, char *err, size_t errlen);
/* "h:p[,h:p...]" (at most HA_SENTINELS_MAX, port required, [v6]:p ok). */
int ha_parse_hostports(const char *list, struct ha_addr *out, size_t cap, size_t *n,
		       char *err, size_t errlen);
/* The Redis and Sentinel passwords (lower-case hex of 32 bytes of
 * HKDF-SHA256(root secret, info "mesh/v1/redis" or "mesh/v1/sentinel")),
 * read from the secret file. Returns 0 or an errno value with a reason. */
#define HA_INFO_REDIS "mesh/v1/redis"
#define HA_INFO_SENTINEL "mesh/v1/sentinel"
int ha_derive_password(const char *secret_file, const char *info, char out[65],
		       char *err, size_t errlen);

/* ---- Lua scripts (scripts.c) --------------------------------------------- */

struct ha_script {
	const char *name;
	const char *body;
	char sha1[41];
};

enum { HA_SCRIPT_PUBLISH, HA_SCRIPT_FETCH, HA_SCRIPT_SWEEP, HA_SCRIPT_REGISTRY, HA_SCRIPT_REPLAY,
       HA_SCRIPT_COUNT };
/* The scripts with their SHA1 computed (idempotent). */
const struct ha_script *ha_script(int which);

/* ---- rconn: one managed hiredis async connection (rconn.c) --------------- */

struct rconn;

enum rconn_kind {
	RCONN_DATA,     /* commands; ROLE must say master */
	RCONN_SUB,      /* SUBSCRIBE to one channel, messages to on_message */
	RCONN_SENTINEL, /* commands to a Sentinel */
};

struct rconn_config {
	const char *name;          /* for logs: "master", "sentinel 198.18.0.11:26379" */
	enum rconn_kind kind;
	const char *channel;       /* RCONN_SUB */
	struct ha_counters *ctr;
	void (*on_up)(void *arg);
	void (*on_down)(void *arg, const char *why);
	/* RCONN_SUB: one published message (channel already matched). */
	void (*on_message)(void *arg, const char *data, size_t len);
	void *arg;
};

/* reply is NULL when the command could not be sent or the connection was
 * lost before its answer. Always called from the event loop, never from
 * inside rconn_cmd itself. */
typedef void (*rconn_cb)(redisReply *reply, void *arg);

struct rconn *rconn_new(struct event_base *base, const struct rconn_config *cfg);
/* Drops the connection; pending callbacks are NOT called. */
void rconn_free(struct rconn *rc);
/* Drops the connection and stays down; every pending callback is called
 * now with NULL (for shutdown, outside hiredis callbacks). */
void rconn_close(struct rconn *rc);
/* Points the connection at host:port (reconnecting if it changed) and
 * keeps it connected with backoff. host NULL: disconnect and stay so. */
void rconn_set_target(struct rconn *rc, const char *host, uint16_t port, const char *password,
		      unsigned db);
/* Drops the connection now (failing its pending commands) and reconnects
 * after the backoff. */
void rconn_kick(struct rconn *rc, const char *why);
bool rconn_ready(const struct rconn *rc);
/* Why not ready, for /v1/ready. */
const char *rconn_state_text(const struct rconn *rc, char *buf, size_t len);
const char *rconn_name(const struct rconn *rc);
int rconn_cmd(struct rconn *rc, rconn_cb cb, void *arg, int argc, const char **argv,
	      const size_t *lens);
/* EVALSHA script, falling back to EVAL on NOSCRIPT. argv: KEYS then ARGV
 * (nkeys of them keys). */
int rconn_script(struct rconn *rc, int which, rconn_cb cb, void *arg, int nkeys, int argc,
		 const char **argv, const size_t *lens);
/* Writes what is queued now instead of at the end of the loop turn, so
 * Redis starts on a batch while the coordinator reads more requests. */
void rconn_push(struct rconn *rc);
/* Calls cb(NULL, arg) from the event loop (for answers decided locally). */
void rconn_defer(struct rconn *rc, rconn_cb cb, void *arg);

/* A short text of an error reply for logs ("READONLY You can't ..."). */
bool ha_reply_is_error(const redisReply *r, const char *prefix);

/* ---- Sentinel set (sentinel.c) -------------------------------------------- */

struct sentinel_set;

struct sentinel_config {
	const struct ha_addr *addrs;
	size_t n;
	const char *master_name;
	const char *password;      /* Sentinel's requirepass, "" for none */
	struct ha_counters *ctr;
	/* After every query round: the master a strict majority of the
	 * configured Sentinels names (host NULL when none does). */
	void (*on_round)(void *arg, const char *host, uint16_t port, unsigned agree,
			 unsigned answered, unsigned total);
	void *arg;
};

struct sentinel_set *sentinel_new(struct event_base *base, const struct sentinel_config *cfg);
void sentinel_free(struct sentinel_set *ss);
/* Asks all Sentinels now (or right after the round in progress). */
void sentinel_query_now(struct sentinel_set *ss);
/* Prometheus lines: per-Sentinel reachability. */
void sentinel_metrics(struct sentinel_set *ss, struct evbuffer *out);

/* ---- the Redis mailbox (mailbox_redis.c) ---------------------------------- */

struct ha;
struct mb_stats;

struct mailbox_redis_config {
	unsigned message_ttl_s;
	unsigned pair_idle_s;
	bool wait_replicas;   /* --ha: publishes and acks wait for a replica */
};

struct mailbox *mailbox_redis_new(struct event_base *base, struct ha *ha,
				  const struct mailbox_redis_config *cfg);
/* The real release (ops->free is a no-op: ha owns the mailbox). */
void mailbox_redis_destroy(struct mailbox *mb);
/* Shutdown: from now on every call answers UNAVAILABLE at once, and the
 * publishes not sent yet are answered so (before the connection closes). */
void mailbox_redis_quiesce(struct mailbox *mb);
/* Its loop is going away: release its events, keep the memory. */
void mailbox_redis_stop(struct mailbox *mb);
/* The subscriber delivered "wake <peer>". */
void mailbox_redis_wake(struct mailbox *mb, const char *peer, size_t len);
/* The subscriber (re)connected: notifications may have been missed. */
void mailbox_redis_wake_all(struct mailbox *mb);
/* Periodic upkeep of the watch marks (every tick). */
void mailbox_redis_tick(struct mailbox *mb);
/* The data connection (re)connected: marks again, then wakes all. */
void mailbox_redis_remark(struct mailbox *mb);
/* From the periodic sweep: the cluster-wide queue length, and what this
 * coordinator's sweep expired. */
void mailbox_redis_sweep_stats(struct mailbox *mb, uint64_t queued, uint64_t expired);

/* ---- the Redis replay store (replay_redis.c) ------------------------------- */

struct replay *replay_redis_new(struct event_base *base, struct ha *ha);
void replay_redis_destroy(struct replay *rp);
void replay_redis_quiesce(struct replay *rp);
void replay_redis_stop(struct replay *rp);
/* A nonce recorded elsewhere (the publish script): counted in size(). */
void replay_redis_count_fresh(struct replay *rp);

/* ---- the registry (registry.c) ---------------------------------------------- */

struct registry;
struct ha_node_info;

/* write: --ha (publish this node and read the others); otherwise the
 * list holds only this node. */
struct registry *registry_new(struct ha *ha, const struct ha_node_info *self, bool write,
			      char *err, size_t errlen);
void registry_free(struct registry *reg);
/* Refreshes this node's entry and reads the live ones (one round trip). */
void registry_refresh(struct registry *reg);
void registry_json(struct registry *reg, struct evbuffer *out);
size_t registry_live(struct registry *reg);

/* ---- what ha.c offers the parts above -------------------------------------- */

/* The calling thread's instance's mailbox / replay store (ha_bind_thread),
 * for the ops the broker calls through the owner's tables. */
struct mailbox *ha_thread_mailbox(struct ha *ha);
struct replay *ha_thread_replay(struct ha *ha);
/* Counters summed over every instance (for stats() on any thread). */
void ha_sum_stats(struct ha *ha, struct mb_stats *out, size_t *replay_size);
size_t replay_redis_own_size(struct replay *rp);
void mailbox_redis_own_stats(struct mailbox *mb, struct mb_stats *out);
/* Whether other threads have instances (then figures are summed). */
bool ha_is_threaded(struct ha *ha);

/* The data connection to the master, or NULL. */
struct rconn *ha_data(struct ha *ha);
struct ha_counters *ha_ctr(struct ha *ha);
/* Whether the mailbox may be used now; why gets the reason when not. */
bool ha_usable(struct ha *ha, char *why, size_t len);
/* A 16-hex generation candidate (random per process). */
const char *ha_gen_candidate(struct ha *ha);
/* An error reply showed the master is not a writable master any more
 * (READONLY, NOREPLICAS...): re-check it now. */
void ha_master_suspect(struct ha *ha, const redisReply *r);

#endif
