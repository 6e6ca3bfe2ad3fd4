/* The in-memory mailbox backend: per-recipient queues, per-pair epochs,
 * TTL and caps, and local long-poll watchers. Owns every queued message.
 * Shared by the broker's worker threads: every operation holds one mutex
 * for its data work and calls back only after releasing it (a fetch hands
 * out copies), and a wake is an event activated on the watcher's own
 * thread's loop, never a call from the publisher's thread. */
#include "signaling/mailbox.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/strmap.h"

/* A pair's epoch is remembered for an hour: each counts this much
 * against the memory bound's share for pairs (max_bytes / PAIR_CHARGE). */
#define PAIR_CHARGE 128
/* How often expired messages and idle pairs are swept out. */
#define SWEEP_INTERVAL_MS 1000

struct mem_msg {
	TAILQ_ENTRY(mem_msg) link;
	uint64_t seq;
	uint64_t epoch;
	int64_t created_ms;
	size_t payload_len;
	char from[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	char psig[SIG_HEX_LEN + 1];
	char payload[];
};
TAILQ_HEAD(msg_list, mem_msg);

struct mb_watch {
	LIST_ENTRY(mb_watch) link;
	struct box *box;
	struct event *ev; /* activated on publish; runs wake from the loop */
	mb_wake_cb wake;
	void *arg;
};
LIST_HEAD(watch_list, mb_watch);

struct box {
	char peer[PEER_ID_MAX + 1];
	struct msg_list msgs; /* in seq order, so also in creation order */
	size_t count;
	struct watch_list watchers;
};

struct pair_state {
	uint64_t epoch;
	int64_t last_publish_ms;
};

struct mailbox_mem {
	struct mailbox base;
	pthread_mutex_t lock;
	struct event_base *evbase; /* watches of threads that did not bind their own */
	struct mailbox_mem_config cfg;
	struct strmap *boxes; /* peer -> struct box */
	struct strmap *pairs; /* "from\nto" -> struct pair_state */
	struct event *sweep;
	char generation[17]; /* random per process: ids from an earlier run never match */
	/* One sequence for all boxes: a box swept out and made again never
	 * reuses an id a client may still hold as its cursor. */
	uint64_t next_seq;
	struct mb_stats stats;
};

/* The loop of the calling worker thread, where its watches fire. */
static __thread struct event_base *thread_base;

void mailbox_mem_bind_thread(struct event_base *base)
{
	thread_base = base;
}


static struct mailbox_mem *upcast(struct mailbox *mb)
{
	return (struct mailbox_mem *)mb;
}

static void format_id(const struct mailbox_mem *m, uint64_t seq, char out[MSG_ID_MAX])
{
	snprintf(out, MSG_ID_MAX, "%s-%" PRIu64, m->generation, seq);
}

/* Returns 1 and the sequence for a cursor of this generation, 0 for a
 * well-formed cursor of another generation, -1 for a malformed one. */
static int parse_cursor(const struct mailbox_mem *m, const char *cursor, uint64_t *seq)
{
	const char *dash = strchr(cursor, '-');
	if (!dash || dash == cursor || dash - cursor > 16 || !dash[1] || strlen(dash + 1) > 20)
		return -1;
	for (const char *p = cursor; p < dash; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -1;
	uint64_t v = 0;
	for (const char *p = dash + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		uint64_t nv = v * 10 + (uint64_t)(*p - '0');
		if (nv / 10 != v)
			return -1;
		v = nv;
	}
	if ((size_t)(dash - cursor) != strlen(m->generation) ||
	    memcmp(cursor, m->generation, (size_t)(dash - cursor)) != 0)
		return 0;
	*seq = v;
	return 1;
}

static struct box *box_get(struct mailbox_mem *m, const char *peer, bool create)
{
	struct box *b = strmap_get(m->boxes, peer);
	if (b || !create)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	snprintf(b->peer, sizeof(b->peer), "%s", peer);
	TAILQ_INIT(&b->msgs);
	LIST_INIT(&b->watchers);
	if (strmap_put(m->boxes, peer, b)) {
		free(b);
		return NULL;
	}
	return b;
}

/* What a queued message costs against --max-queued-mb: its payload and
 * its bookkeeping, so empty payloads cannot queue for free. */
static uint64_t msg_charge(size_t payload_len)
{
	return sizeof(struct mem_msg) + payload_len + 1;
}

uint64_t mailbox_mem_charge(size_t payload_len)
{
	return msg_charge(payload_len);
}

static void msg_drop(struct mailbox_mem *m, struct box *b, struct mem_msg *msg)
{
	TAILQ_REMOVE(&b->msgs, msg, link);
	b->count--;
	m->stats.queued_messages--;
	m->stats.queued_bytes -= msg_charge(msg->payload_len);
	free(msg);
}

static void drop_expired_head(struct mailbox_mem *m, struct box *b, int64_t now)
{
	int64_t ttl_ms = (int64_t)m->cfg.message_ttl_s * 1000;
	struct mem_msg *it;
	while ((it = TAILQ_FIRST(&b->msgs)) && now - it->created_ms >= ttl_ms) {
		msg_drop(m, b, it);
		m->stats.expired_total++;
	}
}

static void publish_locked(struct mailbox_mem *m, const struct publish_msg *in,
			   struct mb_publish_result *out)
{
	struct mb_publish_result res = { .status = MB_OK };
	int64_t now = clock_mono_ms();
	char pair_key[2 * PEER_ID_MAX + 2];
	snprintf(pair_key, sizeof(pair_key), "%s\n%s", in->from, in->to);

	struct pair_state *pair = strmap_get(m->pairs, pair_key);
	uint64_t current = pair ? pair->epoch : 0;
	if (in->epoch < current) {
		res.status = MB_STALE;
		res.epoch = current;
		*out = res;
		return;
	}

	struct box *b = box_get(m, in->to, true);
	if (!b) {
		res.status = MB_OVERLOADED;
		*out = res;
		return;
	}
	/* Expired messages must not count against the bounds below. */
	drop_expired_head(m, b, now);
	/* Decide the whole outcome before changing anything, so a refusal
	 * leaves the mailbox and the epoch exactly as they were. */
	size_t purgeable = 0;
	uint64_t purgeable_bytes = 0;
	if (in->epoch > current) {
		struct mem_msg *msg;
		TAILQ_FOREACH(msg, &b->msgs, link) {
			if (msg->epoch < in->epoch && strcmp(msg->from, in->from) == 0) {
				purgeable++;
				purgeable_bytes += msg_charge(msg->payload_len);
			}
		}
	}
	if (b->count - purgeable >= MAILBOX_CAP) {
		res.status = MB_FULL;
		*out = res;
		return;
	}
	if (m->stats.queued_bytes - purgeable_bytes + msg_charge(in->payload_len) > m->cfg.max_bytes ||
	    (!pair && strmap_count(m->pairs) >= m->cfg.max_bytes / PAIR_CHARGE)) {
		res.status = MB_OVERLOADED;
		*out = res;
		return;
	}
	struct mem_msg *msg = malloc(sizeof(*msg) + in->payload_len + 1);
	if (!pair) {
		pair = calloc(1, sizeof(*pair));
		if (pair && strmap_put(m->pairs, pair_key, pair)) {
			free(pair);
			pair = NULL;
		}
	}
	if (!msg || !pair) {
		free(msg);
		res.status = MB_OVERLOADED;
		*out = res;
		return;
	}

	if (purgeable) {
		struct mem_msg *it, *next;
		for (it = TAILQ_FIRST(&b->msgs); it; it = next) {
			next = TAILQ_NEXT(it, link);
			if (it->epoch < in->epoch && strcmp(it->from, in->from) == 0) {
				msg_drop(m, b, it);
				m->stats.purged_total++;
			}
		}
	}
	pair->epoch = in->epoch;
	pair->last_publish_ms = now;

	msg->seq = ++m->next_seq;
	msg->epoch = in->epoch;
	msg->created_ms = now;
	msg->payload_len = in->payload_len;
	memcpy(msg->from, in->from, sizeof(msg->from));
	memcpy(msg->kind, in->kind, sizeof(msg->kind));
	memcpy(msg->psig, in->psig, sizeof(msg->psig));
	memcpy(msg->payload, in->payload, in->payload_len);
	msg->payload[in->payload_len] = '\0';
	TAILQ_INSERT_TAIL(&b->msgs, msg, link);
	b->count++;
	m->stats.queued_messages++;
	m->stats.queued_bytes += msg_charge(in->payload_len);

	res.epoch = in->epoch;
	format_id(m, msg->seq, res.id);

	struct mb_watch *w;
	LIST_FOREACH(w, &b->watchers, link)
		event_active(w->ev, EV_READ, 0);
	*out = res;
}

static void mem_publish(struct mailbox *mb, const struct publish_msg *in, mb_publish_cb cb, void *arg)
{
	struct mailbox_mem *m = upcast(mb);
	struct mb_publish_result res;
	pthread_mutex_lock(&m->lock);
	publish_locked(m, in, &res);
	pthread_mutex_unlock(&m->lock);
	cb(&res, arg);
}

/* What a fetch hands its caller: copies, so the lock is not held while
 * the caller builds its answer. */
struct fetch_copy {
	struct mb_message msgs[POLL_BATCH_MAX];
	char cursor[MSG_ID_MAX];
	char *payloads;
};

static enum mb_status fetch_locked(struct mailbox_mem *m, const char *peer, const char *ack_cursor,
				   size_t max, struct fetch_copy *out, size_t *count)
{
	uint64_t ack = 0;
	int have_ack = 0;
	*count = 0;

	if (ack_cursor && *ack_cursor) {
		have_ack = parse_cursor(m, ack_cursor, &ack);
		if (have_ack < 0)
			return MB_BAD_CURSOR;
	}
	struct box *b = box_get(m, peer, false);
	if (!b)
		return MB_OK;
	int64_t now = clock_mono_ms();
	int64_t ttl_ms = (int64_t)m->cfg.message_ttl_s * 1000;
	struct mem_msg *it, *next;
	for (it = TAILQ_FIRST(&b->msgs); it; it = next) {
		next = TAILQ_NEXT(it, link);
		if (have_ack == 1 && it->seq <= ack) {
			msg_drop(m, b, it);
		} else if (now - it->created_ms >= ttl_ms) {
			msg_drop(m, b, it);
			m->stats.expired_total++;
		} else {
			break; /* seq order: nothing later is acknowledged or older */
		}
	}

	if (max > POLL_BATCH_MAX)
		max = POLL_BATCH_MAX;
	size_t n = 0, bytes = 0;
	TAILQ_FOREACH(it, &b->msgs, link) {
		if (n == max || (n && bytes + it->payload_len + 1 > POLL_ANSWER_BYTES_MAX))
			break;
		bytes += it->payload_len + 1;
		n++;
	}
	max = n;
	if (!n)
		return MB_OK;
	out->payloads = malloc(bytes);
	if (!out->payloads)
		return MB_OVERLOADED;
	char *p = out->payloads;
	n = 0;
	TAILQ_FOREACH(it, &b->msgs, link) {
		if (n == max)
			break;
		struct mb_message *o = &out->msgs[n++];
		format_id(m, it->seq, o->id);
		memcpy(o->from, it->from, sizeof(o->from));
		memcpy(o->to, b->peer, sizeof(o->to));
		memcpy(o->kind, it->kind, sizeof(o->kind));
		memcpy(o->psig, it->psig, sizeof(o->psig));
		o->epoch = it->epoch;
		memcpy(p, it->payload, it->payload_len + 1);
		o->payload = p;
		o->payload_len = it->payload_len;
		p += it->payload_len + 1;
		o->age_ms = now - it->created_ms;
	}
	memcpy(out->cursor, out->msgs[n - 1].id, sizeof(out->cursor));
	*count = n;
	return MB_OK;
}

static void mem_fetch(struct mailbox *mb, const char *peer, const char *ack_cursor, size_t max,
		      mb_fetch_cb cb, void *arg)
{
	struct mailbox_mem *m = upcast(mb);
	struct fetch_copy *copy = malloc(sizeof(*copy));
	struct mb_fetch_result res = { .status = MB_OVERLOADED, .cursor = "" };
	if (!copy) {
		cb(&res, arg);
		return;
	}
	copy->payloads = NULL;
	size_t n = 0;
	pthread_mutex_lock(&m->lock);
	res.status = fetch_locked(m, peer, ack_cursor, max, copy, &n);
	pthread_mutex_unlock(&m->lock);
	if (res.status == MB_OK) {
		res.msgs = copy->msgs;
		res.count = n;
		res.cursor = n ? copy->cursor : (ack_cursor ? ack_cursor : "");
	}
	cb(&res, arg);
	free(copy->payloads);
	free(copy);
}

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct mb_watch *w = arg;
	w->wake(w->arg);
}

static struct mb_watch *mem_watch(struct mailbox *mb, const char *peer, mb_wake_cb wake, void *arg)
{
	struct mailbox_mem *m = upcast(mb);
	struct mb_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->ev = event_new(thread_base ? thread_base : m->evbase, -1, 0, watch_fire, w);
	if (!w->ev) {
		free(w);
		return NULL;
	}
	w->wake = wake;
	w->arg = arg;
	pthread_mutex_lock(&m->lock);
	struct box *b = box_get(m, peer, true);
	if (b) {
		w->box = b;
		LIST_INSERT_HEAD(&b->watchers, w, link);
	}
	pthread_mutex_unlock(&m->lock);
	if (!b) {
		event_free(w->ev);
		free(w);
		return NULL;
	}
	return w;
}

static void mem_unwatch(struct mailbox *mb, struct mb_watch *w)
{
	struct mailbox_mem *m = upcast(mb);
	if (!w)
		return;
	pthread_mutex_lock(&m->lock);
	LIST_REMOVE(w, link);
	pthread_mutex_unlock(&m->lock);
	/* No publisher can reach it now; freeing on the owning thread also
	 * drops a wake activated before the removal. */
	event_free(w->ev);
	free(w);
}

static bool mem_ready(struct mailbox *mb, char *why, size_t why_len)
{
	return true;
}

static void mem_stats(struct mailbox *mb, struct mb_stats *out)
{
	struct mailbox_mem *m = upcast(mb);
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	out->pairs = strmap_count(m->pairs);
	pthread_mutex_unlock(&m->lock);
}

struct sweep_ctx {
	struct mailbox_mem *m;
	int64_t now;
};

static int sweep_box(const char *key, void *val, void *arg)
{
	struct sweep_ctx *c = arg;
	struct box *b = val;
	drop_expired_head(c->m, b, c->now);
	if (b->count == 0 && LIST_EMPTY(&b->watchers)) {
		free(b);
		return 1;
	}
	return 0;
}

static int sweep_pair(const char *key, void *val, void *arg)
{
	struct sweep_ctx *c = arg;
	struct pair_state *p = val;
	if (c->now - p->last_publish_ms >= (int64_t)c->m->cfg.pair_idle_s * 1000) {
		free(p);
		return 1;
	}
	return 0;
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweep_ctx c = { .m = arg, .now = clock_mono_ms() };
	pthread_mutex_lock(&c.m->lock);
	strmap_sweep(c.m->boxes, sweep_box, &c);
	strmap_sweep(c.m->pairs, sweep_pair, &c);
	pthread_mutex_unlock(&c.m->lock);
}

static int free_box(const char *key, void *val, void *arg)
{
	struct box *b = val;
	struct mem_msg *it;
	while ((it = TAILQ_FIRST(&b->msgs))) {
		TAILQ_REMOVE(&b->msgs, it, link);
		free(it);
	}
	/* Watchers belong to their callers, who unwatch before freeing the
	 * mailbox; any left are detached here so nothing dangles. */
	struct mb_watch *w;
	while ((w = LIST_FIRST(&b->watchers))) {
		LIST_REMOVE(w, link);
		event_free(w->ev);
		free(w);
	}
	free(b);
	return 1;
}

static int free_pair(const char *key, void *val, void *arg)
{
	free(val);
	return 1;
}

static void mem_free(struct mailbox *mb)
{
	struct mailbox_mem *m = upcast(mb);
	if (!m)
		return;
	if (m->sweep)
		event_free(m->sweep);
	if (m->boxes) {
		strmap_sweep(m->boxes, free_box, NULL);
		strmap_free(m->boxes);
	}
	if (m->pairs) {
		strmap_sweep(m->pairs, free_pair, NULL);
		strmap_free(m->pairs);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct mailbox_ops mem_ops = {
	.name = "memory",
	.publish = mem_publish,
	.fetch = mem_fetch,
	.watch = mem_watch,
	.unwatch = mem_unwatch,
	.ready = mem_ready,
	.stats = mem_stats,
	.free = mem_free,
};

int mailbox_mem_new(struct mailbox **out, struct event_base *base,
		    const struct mailbox_mem_config *cfg)
{
	struct mailbox_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	m->base.ops = &mem_ops;
	m->evbase = base;
	pthread_mutex_init(&m->lock, NULL);
	m->cfg = *cfg;
	uint64_t gen;
	if (getrandom(&gen, sizeof(gen), 0) != sizeof(gen))
		gen = (uint64_t)clock_mono_ms();
	snprintf(m->generation, sizeof(m->generation), "%016" PRIx64, gen);
	m->boxes = strmap_new();
	m->pairs = strmap_new();
	m->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, m);
	struct timeval tv = { SWEEP_INTERVAL_MS / 1000, (SWEEP_INTERVAL_MS % 1000) * 1000 };
	if (!m->boxes || !m->pairs || !m->sweep || event_add(m->sweep, &tv)) {
		mem_free(&m->base);
		return ENOMEM;
	}
	*out = &m->base;
	return 0;
}
