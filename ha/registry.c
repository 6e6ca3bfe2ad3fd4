/* The coordinator registry behind /v1/coordinators: with --ha each node
 * writes its entry (id, advertised URL, STUN/TURN endpoints) into Redis
 * every HA_REGISTRY_PERIOD_MS and, in the same script call, reads the
 * entries refreshed within HA_REGISTRY_TTL_MS; the answer is served from
 * that cache, aged locally between refreshes. Without --ha it lists only
 * this node (CONTRACT section 2). It must not block or fail a request:
 * when Redis is away the cache ages out and only this node remains. */
#include "ha/ha_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "common/log.h"
#include "ha/ha.h"
#include "ha/reply_parse.h"
#include "signaling/auth.h"

#define ENTRIES_MAX 64

struct reg_entry {
	char id[PEER_ID_MAX + 1];
	json_t *obj;        /* validated entry without age_ms */
	int64_t age_ms;     /* at the time of the fetch */
};

struct registry {
	struct ha *ha;
	bool write;                 /* --ha: publish our entry */
	char self_id[PEER_ID_MAX + 1];
	json_t *self;
	char *self_json;            /* compact, as written to Redis */
	struct reg_entry entries[ENTRIES_MAX];
	size_t n;
	int64_t fetched_ms;         /* local monotonic time of the fetch */
	bool inflight;
	bool logged_bad;
	size_t last_count;          /* for logging membership changes */
};

static void entries_clear(struct registry *reg)
{
	for (size_t i = 0; i < reg->n; i++)
		json_decref(reg->entries[i].obj);
	reg->n = 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_entry *)a)->id, ((const struct reg_entry *)b)->id);
}

static void refresh_reply(redisReply *r, void *arg)
{
	struct registry *reg = arg;
	reg->inflight = false;
	uint64_t now;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		if (r && r->type == REDIS_REPLY_ERROR)
			ha_master_suspect(reg->ha, r);
		else if (r)
			ha_ctr(reg->ha)->err_protocol++;
		return;
	}
	if (!rp_registry_ms(r->element[0]->str, (size_t)r->element[0]->len, &now)) {
		ha_ctr(reg->ha)->err_protocol++;
		return;
	}
	entries_clear(reg);
	size_t n = (r->elements - 1) / 3;
	bool bad = false;
	for (size_t i = 0; i < n && reg->n < ENTRIES_MAX; i++) {
		redisReply *id = r->element[1 + 3 * i], *ts = r->element[2 + 3 * i],
			   *js = r->element[3 + 3 * i];
		if (id->type != REDIS_REPLY_STRING || ts->type != REDIS_REPLY_STRING ||
		    js->type != REDIS_REPLY_STRING || !id_valid(id->str, (size_t)id->len)) {
			bad = true;
			continue;
		}
		/* Sorted-set scores come back as "%.17g": an integer here. */
		uint64_t refreshed;
		if (!rp_registry_ms(ts->str, (size_t)ts->len, &refreshed)) {
			bad = true;
			continue;
		}
		json_t *obj = rp_registry_entry(id->str, js->str, (size_t)js->len);
		if (!obj) {
			bad = true;
			continue;
		}
		struct reg_entry *e = &reg->entries[reg->n++];
		snprintf(e->id, sizeof(e->id), "%s", id->str);
		e->obj = obj;
		e->age_ms = now > refreshed ? (int64_t)(now - refreshed) : 0;
	}
	if (bad) {
		ha_ctr(reg->ha)->err_protocol++;
		if (!reg->logged_bad)
			log_warn("ha", "registry: skipped malformed entries in Redis");
		reg->logged_bad = true;
	}
	qsort(reg->entries, reg->n, sizeof(reg->entries[0]), entry_cmp);
	reg->fetched_ms = ha_now_ms();
	if (reg->n != reg->last_count) {
		log_info("ha", "registry: %zu live coordinator(s)", reg->n);
		reg->last_count = reg->n;
	}
}

void registry_refresh(struct registry *reg)
{
	struct rconn *rc = ha_data(reg->ha);
	if (!reg->write || reg->inflight || !rconn_ready(rc))
		return;
	reg->inflight = true;
	char ttl[16], forget[16];
	int lt = snprintf(ttl, sizeof(ttl), "%d", HA_REGISTRY_TTL_MS);
	int lf = snprintf(forget, sizeof(forget), "%d", HA_REGISTRY_FORGET_MS);
	const char *argv[] = { HA_PREFIX, reg->self_id, reg->self_json, ttl, forget };
	size_t lens[] = { strlen(HA_PREFIX), strlen(reg->self_id), strlen(reg->self_json),
			  (size_t)lt, (size_t)lf };
	rconn_script(rc, HA_SCRIPT_REGISTRY, refresh_reply, reg, 0, 5, argv, lens);
}

static void append_entry(struct evbuffer *out, json_t *obj, int64_t age, bool *first)
{
	json_t *copy = json_copy(obj);
	if (!copy)
		return;
	json_object_set_new(copy, "age_ms", json_integer(age));
	char *s = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(copy);
	if (!s)
		return;
	if (!*first)
		evbuffer_add(out, ",", 1);
	*first = false;
	evbuffer_add(out, s, strlen(s));
	free(s);
}

static size_t live_entries(struct registry *reg, int64_t *elapsed)
{
	*elapsed = ha_now_ms() - reg->fetched_ms;
	size_t n = 0;
	for (size_t i = 0; i < reg->n; i++)
		if (reg->entries[i].age_ms + *elapsed <= HA_REGISTRY_SERVE_MS)
			n++;
	return n;
}

void registry_json(struct registry *reg, struct evbuffer *out)
{
	bool first = true, self_listed = false;
	int64_t elapsed;
	live_entries(reg, &elapsed);
	evbuffer_add(out, "[", 1);
	for (size_t i = 0; reg->write && i < reg->n; i++) {
		struct reg_entry *e = &reg->entries[i];
		int64_t age = e->age_ms + elapsed;
		bool self = strcmp(e->id, reg->self_id) == 0;
		if (self) {
			/* This node serves the request: alive, with its own
			 * current entry. */
			append_entry(out, reg->self, age, &first);
			self_listed = true;
			continue;
		}
		if (age > HA_REGISTRY_SERVE_MS)
			continue;
		append_entry(out, e->obj, age, &first);
	}
	if (!self_listed)
		append_entry(out, reg->self, 0, &first);
	evbuffer_add(out, "]", 1);
}

size_t registry_live(struct registry *reg)
{
	if (!reg->write)
		return 1;
	int64_t elapsed;
	size_t n = live_entries(reg, &elapsed);
	bool self = false;
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->entries[i].id, reg->self_id) == 0 &&
		    reg->entries[i].age_ms + elapsed <= HA_REGISTRY_SERVE_MS)
			self = true;
	return self ? n : n + 1;
}

static json_t *endpoint_array(const char *ep)
{
	json_t *a = json_array();
	if (a && ep && *ep)
		json_array_append_new(a, json_string(ep));
	return a;
}

struct registry *registry_new(struct ha *ha, const struct ha_node_info *self, bool write,
			      char *err, size_t errlen)
{
	if (!self->node_id || !id_valid(self->node_id, strlen(self->node_id))) {
		snprintf(err, errlen, "--node-id: want ^[A-Za-z0-9._-]{1,64}$");
		return NULL;
	}
	if (!self->advertise_url || !*self->advertise_url ||
	    strlen(self->advertise_url) > RP_ENDPOINT_MAX) {
		snprintf(err, errlen, "--advertise-url: missing or too long");
		return NULL;
	}
	struct registry *reg = calloc(1, sizeof(*reg));
	if (!reg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	reg->ha = ha;
	reg->write = write;
	snprintf(reg->self_id, sizeof(reg->self_id), "%s", self->node_id);
	reg->self = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "id", self->node_id, "url",
			      self->advertise_url, "stun", endpoint_array(self->stun), "turn_udp",
			      endpoint_array(self->turn_udp), "turn_tcp",
			      endpoint_array(self->turn_tcp), "turn_tls",
			      endpoint_array(self->turn_tls));
	if (reg->self)
		reg->self_json = json_dumps(reg->self, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!reg->self || !reg->self_json || strlen(reg->self_json) > RP_ENTRY_JSON_MAX) {
		snprintf(err, errlen, "cannot build the registry entry");
		registry_free(reg);
		return NULL;
	}
	return reg;
}

void registry_free(struct registry *reg)
{
	if (!reg)
		return;
	entries_clear(reg);
	json_decref(reg->self);
	free(reg->self_json);
	free(reg);
}
