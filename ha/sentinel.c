/* Finds the Redis master through the Sentinels: asks every configured
 * Sentinel (SENTINEL get-master-addr-by-name) once a second, at once on
 * a +switch-master notification, and whenever ha.c suspects the master;
 * reports after each round the address a strict majority of the
 * configured Sentinels agree on, or none. The majority rule keeps a
 * coordinator cut off with a minority of the cluster (a partition) from
 * writing to a master the rest of the cluster has already replaced. It
 * must not connect to Redis itself or decide what "unavailable" means:
 * ha.c does. */
#include "ha/ha_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/log.h"
#include "ha/reply_parse.h"

struct sentinel {
	struct sentinel_set *ss;
	struct ha_addr addr;
	struct rconn *cmd;  /* SENTINEL queries */
	struct rconn *sub;  /* +switch-master notifications */
	bool pending;       /* asked in this round, no answer yet */
	bool answered;      /* answered in the last finished round */
	bool has_master;    /* ... and named a master */
	char host[HA_HOST_MAX];
	uint16_t port;
};

struct sentinel_set {
	struct event_base *base;
	struct sentinel_config cfg;
	char master_name[128];
	char password[HA_PASSWORD_MAX];
	struct sentinel s[HA_SENTINELS_MAX];
	size_t n;
	struct event *timer;
	struct event *kick;  /* deferred "query now" */
	bool in_round;
	bool again;          /* someone asked during a round */
	unsigned outstanding;
};

static void round_start(struct sentinel_set *ss);

static void round_finish(struct sentinel_set *ss)
{
	ss->in_round = false;
	ss->cfg.ctr->sentinel_rounds++;
	unsigned answered = 0, best = 0;
	size_t best_i = 0;
	for (size_t i = 0; i < ss->n; i++) {
		if (!ss->s[i].answered)
			continue;
		answered++;
		if (!ss->s[i].has_master)
			continue;
		unsigned agree = 0;
		for (size_t j = 0; j < ss->n; j++)
			if (ss->s[j].answered && ss->s[j].has_master &&
			    ss->s[j].port == ss->s[i].port &&
			    strcmp(ss->s[j].host, ss->s[i].host) == 0)
				agree++;
		if (agree > best) {
			best = agree;
			best_i = i;
		}
	}
	if (best * 2 > ss->n) {
		ss->cfg.on_round(ss->cfg.arg, ss->s[best_i].host, ss->s[best_i].port, best, answered,
				 (unsigned)ss->n);
	} else {
		ss->cfg.ctr->sentinel_no_majority++;
		ss->cfg.on_round(ss->cfg.arg, NULL, 0, best, answered, (unsigned)ss->n);
	}
	if (ss->again) {
		ss->again = false;
		round_start(ss);
	}
}

static void answer_cb(redisReply *r, void *arg)
{
	struct sentinel *s = arg;
	struct sentinel_set *ss = s->ss;
	if (!s->pending)
		return;
	s->pending = false;
	s->answered = false;
	s->has_master = false;
	if (!r) {
		/* connection lost or not connected: no answer */
	} else if (r->type == REDIS_REPLY_NIL) {
		s->answered = true; /* it does not know the master name */
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		   r->element[0]->type == REDIS_REPLY_STRING &&
		   r->element[1]->type == REDIS_REPLY_STRING &&
		   rp_sentinel_host(r->element[0]->str, (size_t)r->element[0]->len) &&
		   r->element[1]->len >= 1 && r->element[1]->len <= 5) {
		uint16_t port;
		if (rp_sentinel_port(r->element[1]->str, &port)) {
			s->answered = true;
			s->has_master = true;
			memcpy(s->host, r->element[0]->str, (size_t)r->element[0]->len);
			s->host[r->element[0]->len] = '\0';
			s->port = port;
		} else {
			ss->cfg.ctr->err_protocol++;
		}
	} else if (r->type == REDIS_REPLY_ERROR) {
		log_debug("ha", "sentinel %s:%u: %s", s->addr.host, s->addr.port, r->str);
	} else {
		ss->cfg.ctr->err_protocol++;
		log_warn("ha", "sentinel %s:%u: unexpected answer to get-master-addr-by-name",
			 s->addr.host, s->addr.port);
	}
	if (--ss->outstanding == 0)
		round_finish(ss);
}

static void round_start(struct sentinel_set *ss)
{
	if (ss->in_round) {
		ss->again = true;
		return;
	}
	ss->in_round = true;
	ss->outstanding = (unsigned)ss->n;
	for (size_t i = 0; i < ss->n; i++) {
		struct sentinel *s = &ss->s[i];
		s->pending = true;
		const char *argv[] = { "SENTINEL", "get-master-addr-by-name", ss->master_name };
		size_t lens[] = { 8, 23, strlen(ss->master_name) };
		/* Not connected: rconn answers NULL from the loop. */
		rconn_cmd(s->cmd, answer_cb, s, 3, argv, lens);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	round_start(arg);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	round_start(arg);
}

void sentinel_query_now(struct sentinel_set *ss)
{
	if (ss)
		event_active(ss->kick, EV_READ, 0);
}

static void cmd_up(void *arg)
{
	struct sentinel *s = arg;
	sentinel_query_now(s->ss);
}

static void switch_msg(void *arg, const char *data, size_t len)
{
	struct sentinel *s = arg;
	struct sentinel_set *ss = s->ss;
	struct rp_switch sw;
	if (!rp_switch_master(data, len, &sw)) {
		ss->cfg.ctr->err_protocol++;
		return;
	}
	if (strcmp(sw.name, ss->master_name) != 0)
		return;
	ss->cfg.ctr->switch_messages++;
	log_info("ha", "sentinel %s:%u announces +switch-master %s:%u -> %s:%u", s->addr.host,
		 s->addr.port, sw.oip, sw.oport, sw.nip, sw.nport);
	sentinel_query_now(ss);
}

struct sentinel_set *sentinel_new(struct event_base *base, const struct sentinel_config *cfg)
{
	if (cfg->n == 0 || cfg->n > HA_SENTINELS_MAX)
		return NULL;
	struct sentinel_set *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return NULL;
	ss->base = base;
	ss->cfg = *cfg;
	ss->cfg.addrs = NULL;
	snprintf(ss->master_name, sizeof(ss->master_name), "%s", cfg->master_name);
	snprintf(ss->password, sizeof(ss->password), "%s", cfg->password ? cfg->password : "");
	ss->n = cfg->n;
	for (size_t i = 0; i < ss->n; i++) {
		struct sentinel *s = &ss->s[i];
		char name[HA_HOST_MAX + 32];
		s->ss = ss;
		s->addr = cfg->addrs[i];
		snprintf(name, sizeof(name), "sentinel");
		struct rconn_config rc = {
			.name = name, .kind = RCONN_SENTINEL, .ctr = cfg->ctr, .on_up = cmd_up, .arg = s,
		};
		s->cmd = rconn_new(base, &rc);
		snprintf(name, sizeof(name), "sentinel-sub");
		struct rconn_config sc = {
			.name = name, .kind = RCONN_SUB, .channel = "+switch-master", .ctr = cfg->ctr,
			.on_message = switch_msg, .arg = s,
		};
		s->sub = rconn_new(base, &sc);
		if (!s->cmd || !s->sub) {
			sentinel_free(ss);
			return NULL;
		}
	}
	ss->timer = event_new(base, -1, EV_PERSIST, timer_cb, ss);
	ss->kick = event_new(base, -1, 0, kick_cb, ss);
	struct timeval tv = { HA_SENTINEL_POLL_MS / 1000, (HA_SENTINEL_POLL_MS % 1000) * 1000 };
	if (!ss->timer || !ss->kick || event_add(ss->timer, &tv)) {
		sentinel_free(ss);
		return NULL;
	}
	for (size_t i = 0; i < ss->n; i++) {
		struct sentinel *s = &ss->s[i];
		rconn_set_target(s->cmd, s->addr.host, s->addr.port, ss->password, 0);
		rconn_set_target(s->sub, s->addr.host, s->addr.port, ss->password, 0);
	}
	return ss;
}

void sentinel_free(struct sentinel_set *ss)
{
	if (!ss)
		return;
	for (size_t i = 0; i < ss->n; i++) {
		rconn_free(ss->s[i].cmd);
		rconn_free(ss->s[i].sub);
	}
	if (ss->timer)
		event_free(ss->timer);
	if (ss->kick)
		event_free(ss->kick);
	free(ss);
}

void sentinel_metrics(struct sentinel_set *ss, struct evbuffer *out)
{
	if (!ss)
		return;
	evbuffer_add_printf(out, "# HELP mesh_redis_sentinel_up Whether the Sentinel answered the "
				 "last query round.\n# TYPE mesh_redis_sentinel_up gauge\n");
	for (size_t i = 0; i < ss->n; i++)
		evbuffer_add_printf(out, "mesh_redis_sentinel_up{sentinel=\"%s:%u\"} %d\n",
				    ss->s[i].addr.host, ss->s[i].addr.port, ss->s[i].answered ? 1 : 0);
}
