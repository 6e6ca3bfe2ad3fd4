/* Tests of signaling/mailbox_mem.c through the mailbox interface
 * (mailbox.h): the epoch rules of CONTRACT section 2, cursor
 * acknowledgement, message ids, the 1024-message cap and the byte bound
 * (a refusal changes nothing), TTL expiry (by fetch and by the sweep
 * timer), pair forgetting, watch/unwatch wakes from the event loop (also
 * across threads, with mailbox_mem_bind_thread), concurrent publishers,
 * and the stats. The backend has no clock injection, so the TTL tests sleep
 * or run the loop (about 5 s in all). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "signaling/mailbox.h"
#include "tests/unit/test.h"

#define PSIG "dd0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8"
#define BATCH 256

struct mbt {
	struct event_base *base;
	struct mailbox *mb;
};

static int mbt_new(struct mbt *t, unsigned ttl_s, unsigned idle_s, uint64_t max_bytes)
{
	struct mailbox_mem_config cfg = { .message_ttl_s = ttl_s, .pair_idle_s = idle_s,
					  .max_bytes = max_bytes };
	t->mb = NULL;
	t->base = event_base_new();
	if (!t->base)
		return -1;
	return mailbox_mem_new(&t->mb, t->base, &cfg) == 0 ? 0 : -1;
}

static int mbt_default(struct mbt *t)
{
	return mbt_new(t, 120, 3600, UINT64_C(1) << 30);
}

static void mbt_free(struct mbt *t)
{
	if (t->mb)
		t->mb->ops->free(t->mb);
	if (t->base)
		event_base_free(t->base);
	t->mb = NULL;
	t->base = NULL;
}

/* ---- publish ------------------------------------------------------------- */

#define NOT_CALLED_ONCE ((enum mb_status)99)

struct pub_answer {
	int calls;
	struct mb_publish_result res;
};

static void on_publish(const struct mb_publish_result *res, void *arg)
{
	struct pub_answer *a = arg;
	a->calls++;
	a->res = *res;
}

static struct mb_publish_result publish_bytes(struct mailbox *mb, const char *from, const char *to,
					      uint64_t epoch, const char *payload, size_t len)
{
	struct publish_msg m;
	memset(&m, 0, sizeof(m));
	snprintf(m.from, sizeof(m.from), "%s", from);
	snprintf(m.to, sizeof(m.to), "%s", to);
	snprintf(m.kind, sizeof(m.kind), "offer");
	snprintf(m.psig, sizeof(m.psig), "%s", PSIG);
	m.epoch = epoch;
	m.payload = payload;
	m.payload_len = len;
	struct pub_answer a = { 0 };
	mb->ops->publish(mb, &m, on_publish, &a);
	/* The memory backend answers before publish returns, exactly once. */
	if (a.calls != 1)
		a.res.status = NOT_CALLED_ONCE;
	return a.res;
}

static struct mb_publish_result publish(struct mailbox *mb, const char *from, const char *to,
					uint64_t epoch, const char *payload)
{
	return publish_bytes(mb, from, to, epoch, payload, strlen(payload));
}

/* ---- fetch: copies what the callback sees (valid only during it) ------- */

struct got {
	char id[MSG_ID_MAX];
	char from[PEER_ID_MAX + 1], to[PEER_ID_MAX + 1], kind[KIND_MAX + 1];
	char psig[SIG_HEX_LEN + 1];
	uint64_t epoch;
	char payload[64]; /* the first bytes */
	size_t payload_len;
	int64_t age_ms;
};

struct fetched {
	int calls;
	enum mb_status status;
	size_t count;
	char cursor[128];
	struct got msgs[BATCH];
};

static void on_fetch(const struct mb_fetch_result *res, void *arg)
{
	struct fetched *f = arg;
	f->calls++;
	f->status = res->status;
	f->count = res->count;
	snprintf(f->cursor, sizeof(f->cursor), "%s", res->cursor ? res->cursor : "(null)");
	for (size_t i = 0; i < res->count && i < BATCH; i++) {
		const struct mb_message *m = &res->msgs[i];
		struct got *g = &f->msgs[i];
		memcpy(g->id, m->id, sizeof(g->id));
		memcpy(g->from, m->from, sizeof(g->from));
		memcpy(g->to, m->to, sizeof(g->to));
		memcpy(g->kind, m->kind, sizeof(g->kind));
		memcpy(g->psig, m->psig, sizeof(g->psig));
		g->epoch = m->epoch;
		g->payload_len = m->payload_len;
		memset(g->payload, 0, sizeof(g->payload));
		memcpy(g->payload, m->payload, m->payload_len < sizeof(g->payload) - 1 ? m->payload_len
										       : sizeof(g->payload) - 1);
		g->age_ms = m->age_ms;
	}
}

/* f is large (BATCH messages): callers keep it static or on the heap. */
static int fetch(struct mailbox *mb, const char *peer, const char *ack, size_t max, struct fetched *f)
{
	/* ack may point into f (a cursor from the previous answer). */
	char ackbuf[256];
	if (ack) {
		snprintf(ackbuf, sizeof(ackbuf), "%s", ack);
		ack = ackbuf;
	}
	memset(f, 0, sizeof(*f));
	mb->ops->fetch(mb, peer, ack, max, on_fetch, f);
	if (f->calls != 1)
		return -1;
	return (int)f->status;
}

static uint64_t seq_of(const char *id)
{
	const char *dash = strrchr(id, '-');
	return dash ? strtoull(dash + 1, NULL, 10) : 0;
}

static struct mb_stats stats(struct mailbox *mb)
{
	struct mb_stats s;
	memset(&s, 0xff, sizeof(s));
	mb->ops->stats(mb, &s);
	return s;
}

static void run_loop_ms(struct event_base *base, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static struct fetched *new_fetched(void)
{
	return calloc(1, sizeof(struct fetched));
}

/* ---- tests ------------------------------------------------------------- */

static void t_publish_fetch(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char buf[16] = "hello";
	CHECK(f);
	CHECK(mbt_default(&t) == 0);
	CHECK_STREQ(t.mb->ops->name, "memory");
	CHECK(t.mb->ops->ready(t.mb, buf + 8, 8));
	struct mb_publish_result r = publish(t.mb, "w1", "w2", 1764253800123ULL, buf);
	CHECK_EQ(r.status, MB_OK);
	CHECK_EQ(r.epoch, 1764253800123ULL);
	CHECK(r.id[0] != '\0');
	memcpy(buf, "XXXXX", 5); /* the mailbox holds its own copy */

	for (int round = 0; round < 2; round++) { /* returning does not delete */
		CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
		CHECK_EQ(f->count, 1);
		CHECK_STREQ(f->msgs[0].id, r.id);
		CHECK_STREQ(f->msgs[0].from, "w1");
		CHECK_STREQ(f->msgs[0].to, "w2");
		CHECK_STREQ(f->msgs[0].kind, "offer");
		CHECK_STREQ(f->msgs[0].psig, PSIG);
		CHECK_EQ(f->msgs[0].epoch, 1764253800123ULL);
		CHECK_EQ(f->msgs[0].payload_len, 5);
		CHECK_STREQ(f->msgs[0].payload, "hello");
		CHECK(f->msgs[0].age_ms >= 0 && f->msgs[0].age_ms < 5000);
		CHECK_STREQ(f->cursor, r.id); /* the id of the last message returned */
	}
	/* Nothing for the sender; "" as cursor is no acknowledgement. */
	CHECK_EQ(fetch(t.mb, "w1", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 0);
	CHECK_STREQ(f->cursor, "");
	CHECK_EQ(fetch(t.mb, "w2", "", BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	/* Binary payload bytes are kept as they are. */
	CHECK_EQ(publish_bytes(t.mb, "w1", "w3", 1, "a\0b", 3).status, MB_OK);
	CHECK_EQ(fetch(t.mb, "w3", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_EQ(f->msgs[0].payload_len, 3);
	CHECK(!memcmp(f->msgs[0].payload, "a\0b", 3));
out:
	mbt_free(&t);
	free(f);
}

static void t_epoch_stale(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 5, "a").status, MB_OK);
	struct mb_stats before = stats(t.mb);
	struct mb_publish_result r = publish(t.mb, "w1", "w2", 4, "b");
	CHECK_EQ(r.status, MB_STALE);
	CHECK_EQ(r.epoch, 5); /* the current epoch */
	r = publish(t.mb, "w1", "w2", 1, "c");
	CHECK_EQ(r.status, MB_STALE);
	CHECK_EQ(r.epoch, 5);
	struct mb_stats after = stats(t.mb);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_STREQ(f->msgs[0].payload, "a");
	/* Epochs are per ordered pair. */
	CHECK_EQ(publish(t.mb, "w2", "w1", 1, "d").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w3", "w2", 1, "e").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w3", 1, "f").status, MB_OK);
out:
	mbt_free(&t);
	free(f);
}

static void t_epoch_equal_appends(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 7, "a").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w2", 7, "b").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w2", 7, "c").status, MB_OK);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 3);
	CHECK_STREQ(f->msgs[0].payload, "a");
	CHECK_STREQ(f->msgs[1].payload, "b");
	CHECK_STREQ(f->msgs[2].payload, "c");
	CHECK_EQ(stats(t.mb).purged_total, 0);
out:
	mbt_free(&t);
	free(f);
}

static void t_epoch_higher_purges(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 5, "a").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w3", "w2", 9, "b").status, MB_OK); /* other sender, higher epoch */
	CHECK_EQ(publish(t.mb, "w1", "w2", 5, "c").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w4", 5, "d").status, MB_OK); /* other recipient */
	CHECK_EQ(publish(t.mb, "w2", "w1", 5, "e").status, MB_OK); /* reverse pair */
	struct mb_publish_result r = publish(t.mb, "w1", "w2", 6, "f");
	CHECK_EQ(r.status, MB_OK);
	CHECK_EQ(r.epoch, 6);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 2);
	CHECK_STREQ(f->msgs[0].payload, "b");
	CHECK_STREQ(f->msgs[1].payload, "f");
	CHECK_EQ(f->msgs[1].epoch, 6);
	CHECK_EQ(fetch(t.mb, "w4", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_STREQ(f->msgs[0].payload, "d");
	CHECK_EQ(fetch(t.mb, "w1", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.purged_total, 2);
	CHECK_EQ(s.queued_messages, 4);
	CHECK_EQ(s.queued_bytes, 4 * mailbox_mem_charge(1));
	/* The pair's epoch moved to 6; w1->w4 keeps its own. */
	r = publish(t.mb, "w1", "w2", 5, "g");
	CHECK_EQ(r.status, MB_STALE);
	CHECK_EQ(r.epoch, 6);
	CHECK_EQ(publish(t.mb, "w1", "w4", 5, "h").status, MB_OK);
	/* A jump purges every older epoch of that sender, not only the last. */
	CHECK_EQ(publish(t.mb, "w1", "w2", 6, "i").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1000000, "j").status, MB_OK);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 2);
	CHECK_STREQ(f->msgs[0].payload, "b");
	CHECK_STREQ(f->msgs[1].payload, "j");
	CHECK_EQ(stats(t.mb).purged_total, 4);
out:
	mbt_free(&t);
	free(f);
}

static void t_cursor_ack(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char ids[5][MSG_ID_MAX];
	CHECK(f && mbt_default(&t) == 0);
	for (int i = 0; i < 5; i++) {
		char p[2] = { (char)('a' + i), 0 };
		struct mb_publish_result r = publish(t.mb, "w1", "w2", 1, p);
		CHECK_EQ(r.status, MB_OK);
		memcpy(ids[i], r.id, MSG_ID_MAX);
	}
	/* Up to and including the cursor. */
	CHECK_EQ(fetch(t.mb, "w2", ids[2], BATCH, f), MB_OK);
	CHECK_EQ(f->count, 2);
	CHECK_STREQ(f->msgs[0].id, ids[3]);
	CHECK_STREQ(f->msgs[1].id, ids[4]);
	CHECK_STREQ(f->cursor, ids[4]);
	CHECK_EQ(stats(t.mb).queued_messages, 2);
	/* The acknowledged ones are gone for good. */
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 2);
	CHECK_STREQ(f->msgs[0].payload, "d");
	/* An older cursor again is harmless. */
	CHECK_EQ(fetch(t.mb, "w2", ids[0], BATCH, f), MB_OK);
	CHECK_EQ(f->count, 2);
	/* Acknowledging the last one empties the box; the answer's cursor is
	 * then the acknowledged one. */
	CHECK_EQ(fetch(t.mb, "w2", ids[4], BATCH, f), MB_OK);
	CHECK_EQ(f->count, 0);
	CHECK_STREQ(f->cursor, ids[4]);
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 0);
	CHECK_EQ(s.queued_bytes, 0);
	CHECK_EQ(s.expired_total, 0);
	CHECK_EQ(s.purged_total, 0);
	/* A cursor for a peer with no box at all. */
	CHECK_EQ(fetch(t.mb, "nobody", ids[4], BATCH, f), MB_OK);
	CHECK_EQ(f->count, 0);
	CHECK_STREQ(f->cursor, ids[4]);
out:
	mbt_free(&t);
	free(f);
}

static void t_cursor_other_generation(void)
{
	struct mbt t = { 0 }, t2 = { 0 };
	struct fetched *f = new_fetched();
	char other[MSG_ID_MAX + 8], id[MSG_ID_MAX];
	CHECK(f && mbt_default(&t) == 0 && mbt_default(&t2) == 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	struct mb_publish_result r = publish(t.mb, "w1", "w2", 1, "y");
	memcpy(id, r.id, sizeof(id));
	const char *dash = strchr(id, '-');
	CHECKF(dash && dash - id == 16, "id %s is not <16 hex>-<seq>", id);
	/* Same format, another generation: acknowledges nothing. */
	snprintf(other, sizeof(other), "%s", id);
	other[0] = other[0] == 'a' ? 'b' : 'a';
	CHECK_EQ(fetch(t.mb, "w2", other, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 4);
	snprintf(other, sizeof(other), "%.16s-18446744073709551615", id[0] == '0' ? "1111111111111111" : "0000000000000000");
	CHECK_EQ(fetch(t.mb, "w2", other, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 4);
	CHECK_EQ(fetch(t.mb, "w2", "abc-99", BATCH, f), MB_OK);
	CHECK_EQ(f->count, 4);
	/* Ids of another mailbox (another process run) never match. */
	for (int i = 0; i < 10; i++)
		CHECK_EQ(publish(t2.mb, "w1", "w2", 1, "z").status, MB_OK);
	CHECK_EQ(fetch(t2.mb, "w2", id, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 10);
	/* This generation with the largest sequence acknowledges everything. */
	snprintf(other, sizeof(other), "%.16s-18446744073709551615", id);
	CHECK_EQ(fetch(t.mb, "w2", other, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 0);
out:
	mbt_free(&t);
	mbt_free(&t2);
	free(f);
}

static void t_cursor_malformed(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char gen[17], c[128];
	CHECK(f && mbt_default(&t) == 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	struct mb_publish_result r = publish(t.mb, "w1", "w2", 1, "y");
	snprintf(gen, sizeof(gen), "%.16s", r.id);
	static const char *const bad_plain[] = {
		"x", "-", "-1", "abc", "abc-", "abc-x", "abc-1x", "abc--1", "abc-1-2", "ABC-1",
		"g-1", " abc-1", "abc-+1", "abc- 1", "abc-1 ", "abc-0x1", "abc-99999999999999999999999",
		"00000000000000000-1", /* 17 hex digits */
	};
	for (size_t i = 0; i < sizeof(bad_plain) / sizeof(bad_plain[0]); i++)
		CHECKF(fetch(t.mb, "w2", bad_plain[i], BATCH, f) == MB_BAD_CURSOR, "accepted cursor \"%s\"",
		       bad_plain[i]);
	/* This generation with a bad sequence: never an acknowledgement. */
	static const char *const bad_seq[] = { "", "+4", "4 ", "-4", "4a", "18446744073709551616",
					       "99999999999999999999", "000000000000000000004" };
	for (size_t i = 0; i < sizeof(bad_seq) / sizeof(bad_seq[0]); i++) {
		snprintf(c, sizeof(c), "%s-%s", gen, bad_seq[i]);
		CHECKF(fetch(t.mb, "w2", c, BATCH, f) == MB_BAD_CURSOR, "accepted cursor \"%s\"", c);
	}
	for (size_t i = 0; i < 16; i++) /* upper-case generation */
		c[i] = (char)(gen[i] >= 'a' ? gen[i] - 32 : gen[i]);
	snprintf(c + 16, sizeof(c) - 16, "-%s", strchr(r.id, '-') + 1);
	if (strncmp(c, gen, 16) != 0)
		CHECKF(fetch(t.mb, "w2", c, BATCH, f) == MB_BAD_CURSOR, "accepted cursor \"%s\"", c);
	/* A refused cursor deleted nothing. */
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 4);
	CHECK_EQ(stats(t.mb).queued_messages, 4);
out:
	mbt_free(&t);
	free(f);
}

static void t_ids_increasing(void)
{
	struct mbt t = { 0 };
	char prev[MSG_ID_MAX] = "";
	uint64_t prev_seq = 0;
	CHECK(mbt_default(&t) == 0);
	for (int i = 0; i < 200; i++) {
		char to[8];
		snprintf(to, sizeof(to), "r%d", i % 7);
		struct mb_publish_result r = publish(t.mb, "w1", to, 1 + (uint64_t)(i / 50), "x");
		CHECK_EQ(r.status, MB_OK);
		uint64_t seq = seq_of(r.id);
		CHECKF(seq > prev_seq, "id %s after %s", r.id, prev);
		CHECKF(!prev[0] || !strncmp(prev, r.id, 17), "generation changed: %s after %s", r.id, prev);
		prev_seq = seq;
		memcpy(prev, r.id, sizeof(prev));
	}
out:
	mbt_free(&t);
}

static void t_no_id_reuse_after_sweep(void)
{
	/* A box acknowledged empty is swept out by the 1 s timer; refilled,
	 * its ids continue, so a cursor the client still holds does not
	 * acknowledge the new messages. */
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char old[MSG_ID_MAX];
	CHECK(f && mbt_default(&t) == 0);
	struct mb_publish_result r = publish(t.mb, "w1", "w9", 1, "first");
	CHECK_EQ(r.status, MB_OK);
	memcpy(old, r.id, sizeof(old));
	CHECK_EQ(fetch(t.mb, "w9", old, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 0);
	run_loop_ms(t.base, 1300);
	r = publish(t.mb, "w1", "w9", 1, "second");
	CHECK_EQ(r.status, MB_OK);
	CHECKF(strcmp(r.id, old) != 0 && seq_of(r.id) > seq_of(old), "id %s after %s", r.id, old);
	CHECK_EQ(fetch(t.mb, "w9", old, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_STREQ(f->msgs[0].payload, "second");
out:
	mbt_free(&t);
	free(f);
}

static void t_cap(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "first").status, MB_OK);
	for (int i = 1; i < MAILBOX_CAP; i++)
		CHECKF(publish(t.mb, "w3", "w2", 1, "x").status == MB_OK, "message %d refused", i + 1);
	struct mb_stats before = stats(t.mb);
	CHECK_EQ(before.queued_messages, MAILBOX_CAP);
	/* One more is refused, whoever sends it, with nothing changed. */
	CHECK_EQ(publish(t.mb, "w3", "w2", 1, "x").status, MB_FULL);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_FULL);
	CHECK_EQ(publish(t.mb, "w4", "w2", 7, "x").status, MB_FULL); /* a new pair */
	struct mb_stats after = stats(t.mb);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, BATCH);
	CHECK_STREQ(f->msgs[0].payload, "first");
	/* Another recipient is not affected. */
	CHECK_EQ(publish(t.mb, "w3", "w5", 1, "x").status, MB_OK);
	/* A higher epoch whose purge makes room is accepted. */
	CHECK_EQ(publish(t.mb, "w1", "w2", 2, "second").status, MB_OK);
	CHECK_EQ(stats(t.mb).purged_total, 1);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_STREQ(f->msgs[0].payload, "x");
	/* The refused w4 publish did not set that pair's epoch: once there is
	 * room, a lower epoch than the refused one is accepted. */
	CHECK_EQ(fetch(t.mb, "w2", f->msgs[0].id, BATCH, f), MB_OK);
	struct mb_publish_result r = publish(t.mb, "w4", "w2", 3, "y");
	CHECK_EQ(r.status, MB_OK);
	CHECK_EQ(publish(t.mb, "w4", "w2", 3, "z").status, MB_FULL);
out:
	mbt_free(&t);
	free(f);
}

static void t_cap_purge_all(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	for (int i = 0; i < MAILBOX_CAP; i++)
		CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_FULL);
	CHECK_EQ(publish(t.mb, "w1", "w2", 2, "new").status, MB_OK);
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 1);
	CHECK_EQ(s.purged_total, MAILBOX_CAP);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_STREQ(f->msgs[0].payload, "new");
out:
	mbt_free(&t);
	free(f);
}

static void t_max_bytes(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char *big = malloc(2001);
	/* The bound holds exactly a 600-byte and a 400-byte message, each
	 * charged with its bookkeeping. */
	const uint64_t cap = mailbox_mem_charge(600) + mailbox_mem_charge(400);
	const size_t overhead = (size_t)mailbox_mem_charge(0);
	CHECK(f && big && overhead + 1001 <= 2000 && mbt_new(&t, 120, 3600, cap) == 0);
	memset(big, 'b', 2000);
	big[2000] = '\0';
	CHECK_EQ(publish_bytes(t.mb, "w1", "w2", 1, big, 600).status, MB_OK);
	struct mb_stats before = stats(t.mb);
	CHECK_EQ(publish_bytes(t.mb, "w3", "w2", 1, big, 401).status, MB_OVERLOADED);
	CHECK_EQ(publish_bytes(t.mb, "w3", "w7", 1, big, 401).status, MB_OVERLOADED); /* global bound */
	/* A refused higher epoch neither purges nor moves the epoch. */
	/* Even after purging the 600, this one is one byte over the bound. */
	CHECK_EQ(publish_bytes(t.mb, "w1", "w2", 2, big, overhead + 1001).status, MB_OVERLOADED);
	struct mb_stats after = stats(t.mb);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_EQ(f->msgs[0].epoch, 1);
	/* (Epoch still 1: an epoch-1 publish is refused for its size, not as stale.) */
	CHECK_EQ(publish_bytes(t.mb, "w1", "w2", 1, big, 1001).status, MB_OVERLOADED);
	/* Exactly at the bound is allowed. */
	CHECK_EQ(publish_bytes(t.mb, "w3", "w2", 1, big, 400).status, MB_OK);
	CHECK_EQ(stats(t.mb).queued_bytes, cap);
	CHECK_EQ(publish_bytes(t.mb, "w3", "w2", 1, big, 1).status, MB_OVERLOADED);
	/* Acknowledging frees the bytes. */
	CHECK_EQ(fetch(t.mb, "w2", f->msgs[0].id, BATCH, f), MB_OK);
	CHECK_EQ(stats(t.mb).queued_bytes, mailbox_mem_charge(400));
	CHECK_EQ(publish_bytes(t.mb, "w3", "w2", 1, big, 600).status, MB_OK);
out:
	mbt_free(&t);
	free(f);
	free(big);
}

static void t_ttl_fetch(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_new(&t, 1, 3600, UINT64_C(1) << 30) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "old").status, MB_OK);
	sleep_ms(1100);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "new!").status, MB_OK);
	CHECK_EQ(fetch(t.mb, "w2", NULL, BATCH, f), MB_OK);
	CHECK_EQ(f->count, 1);
	CHECK_STREQ(f->msgs[0].payload, "new!");
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.expired_total, 1);
	CHECK_EQ(s.queued_messages, 1);
	CHECK_EQ(s.queued_bytes, mailbox_mem_charge(4));
out:
	mbt_free(&t);
	free(f);
}

static void t_ttl_sweep_and_pair_idle(void)
{
	/* Without any fetch, the sweep timer drops expired messages and
	 * forgets idle pairs (after which a low epoch is accepted again). */
	struct mbt t = { 0 };
	CHECK(mbt_new(&t, 1, 1, UINT64_C(1) << 30) == 0);
	CHECK_EQ(publish(t.mb, "w1", "w9", 500, "x").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w2", "w9", 500, "y").status, MB_OK);
	CHECK_EQ(stats(t.mb).pairs, 2);
	run_loop_ms(t.base, 2300);
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 0);
	CHECK_EQ(s.queued_bytes, 0);
	CHECK_EQ(s.expired_total, 2);
	CHECK_EQ(s.pairs, 0);
	CHECK_EQ(publish(t.mb, "w1", "w9", 1, "z").status, MB_OK);
out:
	mbt_free(&t);
}

struct wake_count {
	int n;
	struct mailbox *mb;
	struct mb_watch *self; /* unwatched from inside the wake when set */
};

static void on_wake(void *arg)
{
	struct wake_count *w = arg;
	w->n++;
	if (w->self) {
		w->mb->ops->unwatch(w->mb, w->self);
		w->self = NULL;
	}
}

static void t_watch(void)
{
	struct mbt t = { 0 };
	struct wake_count a = { 0 }, b = { 0 };
	struct mb_watch *wa = NULL, *wb = NULL;
	CHECK(mbt_default(&t) == 0);
	wa = t.mb->ops->watch(t.mb, "w2", on_wake, &a);
	wb = t.mb->ops->watch(t.mb, "w2", on_wake, &b);
	CHECK(wa && wb);
	/* A publish for another peer wakes nobody. */
	CHECK_EQ(publish(t.mb, "w1", "w3", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 0);
	/* A publish for w2 wakes both, from the loop, not from publish. */
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	CHECK_EQ(a.n, 0);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 1);
	CHECK_EQ(b.n, 1);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 1); /* once */
	/* Refused publishes wake nobody. */
	CHECK_EQ(publish(t.mb, "w1", "w2", 0, "x").status, MB_STALE);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 1);
	/* After unwatch: no more wakes for that watcher. */
	t.mb->ops->unwatch(t.mb, wa);
	wa = NULL;
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 1);
	CHECK_EQ(b.n, 2);
	/* Unwatched between the publish and the loop: no wake, no dangling
	 * event. */
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	t.mb->ops->unwatch(t.mb, wb);
	wb = NULL;
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(b.n, 2);
	/* A watcher that unwatches itself from inside its wake (as a long
	 * poll does when it answers). */
	struct wake_count c = { 0, t.mb, NULL };
	c.self = t.mb->ops->watch(t.mb, "w2", on_wake, &c);
	CHECK(c.self);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(c.n, 1);
	CHECK(c.self == NULL);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(c.n, 1);
	/* unwatch(NULL) is a no-op. */
	t.mb->ops->unwatch(t.mb, NULL);
out:
	if (t.mb && wa)
		t.mb->ops->unwatch(t.mb, wa);
	if (t.mb && wb)
		t.mb->ops->unwatch(t.mb, wb);
	mbt_free(&t);
}

static void t_watch_left_at_free(void)
{
	/* Watchers still registered when the mailbox is freed are released
	 * with it (LeakSanitizer checks). A watch on a peer with no messages
	 * keeps its box through a sweep. */
	struct mbt t = { 0 };
	struct wake_count a = { 0 };
	CHECK(mbt_default(&t) == 0);
	CHECK(t.mb->ops->watch(t.mb, "w2", on_wake, &a) != NULL);
	CHECK(t.mb->ops->watch(t.mb, "w2", on_wake, &a) != NULL);
	run_loop_ms(t.base, 1100);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	CHECK_EQ(a.n, 2);
out:
	mbt_free(&t);
}

static void t_fetch_batches(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	char last[128] = "";
	uint64_t prev = 0;
	CHECK(f && mbt_default(&t) == 0);
	for (int i = 0; i < 300; i++) {
		char p[16];
		snprintf(p, sizeof(p), "%d", i);
		CHECK_EQ(publish(t.mb, "w1", "w2", 1, p).status, MB_OK);
	}
	CHECK_EQ(fetch(t.mb, "w2", NULL, 10, f), MB_OK);
	CHECK_EQ(f->count, 10);
	CHECK_STREQ(f->msgs[0].payload, "0");
	CHECK_STREQ(f->msgs[9].payload, "9");
	CHECK_STREQ(f->cursor, f->msgs[9].id);
	CHECK_EQ(fetch(t.mb, "w2", NULL, 100000, f), MB_OK);
	CHECK_EQ(f->count, POLL_BATCH_MAX); /* at most 256 per answer */
	/* Draining by acknowledging each answer's cursor: every message once,
	 * oldest first. */
	int seen = 0;
	for (int round = 0; round < 5; round++) {
		CHECK_EQ(fetch(t.mb, "w2", last[0] ? last : NULL, BATCH, f), MB_OK);
		if (f->count == 0)
			break;
		for (size_t i = 0; i < f->count; i++, seen++) {
			char p[16];
			snprintf(p, sizeof(p), "%d", seen);
			CHECK_STREQ(f->msgs[i].payload, p);
			CHECK(seq_of(f->msgs[i].id) > prev);
			prev = seq_of(f->msgs[i].id);
		}
		snprintf(last, sizeof(last), "%s", f->cursor);
	}
	CHECK_EQ(seen, 300);
	CHECK_EQ(stats(t.mb).queued_messages, 0);
out:
	mbt_free(&t);
	free(f);
}

static void t_stats(void)
{
	struct mbt t = { 0 };
	struct fetched *f = new_fetched();
	CHECK(f && mbt_default(&t) == 0);
	struct mb_stats s = stats(t.mb);
	CHECK(s.queued_messages == 0 && s.queued_bytes == 0 && s.pairs == 0 && s.expired_total == 0 &&
	      s.purged_total == 0);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "abc").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "abcde").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w3", "w2", 1, "abcdefg").status, MB_OK);
	CHECK_EQ(publish(t.mb, "w2", "w1", 1, "").status, MB_OK);
	s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 4);
	CHECK_EQ(s.queued_bytes, 4 * mailbox_mem_charge(0) + 15);
	CHECK_EQ(s.pairs, 3);
	CHECK_EQ(fetch(t.mb, "w2", NULL, 1, f), MB_OK);
	CHECK_EQ(fetch(t.mb, "w2", f->msgs[0].id, 1, f), MB_OK);
	s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 3);
	CHECK_EQ(s.queued_bytes, 3 * mailbox_mem_charge(0) + 12);
	CHECK_EQ(publish(t.mb, "w1", "w2", 2, "z").status, MB_OK); /* purges "abcde" */
	s = stats(t.mb);
	CHECK_EQ(s.queued_messages, 3);
	CHECK_EQ(s.queued_bytes, 3 * mailbox_mem_charge(0) + 8);
	CHECK_EQ(s.purged_total, 1);
	CHECK_EQ(s.pairs, 3);
	CHECK_EQ(s.expired_total, 0);
out:
	mbt_free(&t);
	free(f);
}


/* ---- threads: the broker's workers share one mailbox ------------------- */

struct waker {
	struct mailbox *mb;
	struct event_base *base;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int watching;         /* the watch is registered */
	int wakes;
	int wrong_thread;     /* a wake ran on another thread */
	pthread_t self;
	struct mb_watch *w;
};

static void waker_wake(void *arg)
{
	struct waker *k = arg;
	if (!pthread_equal(pthread_self(), k->self))
		k->wrong_thread = 1;
	k->wakes++;
	k->mb->ops->unwatch(k->mb, k->w);
	k->w = NULL;
	event_base_loopbreak(k->base);
}

static void *waker_main(void *arg)
{
	struct waker *k = arg;
	k->self = pthread_self();
	mailbox_mem_bind_thread(k->base);
	k->w = k->mb->ops->watch(k->mb, "w2", waker_wake, k);
	pthread_mutex_lock(&k->lock);
	k->watching = k->w ? 1 : -1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->w) {
		/* A backstop so a missing wake fails the test, not hangs it. */
		struct timeval tv = { 5, 0 };
		event_base_loopexit(k->base, &tv);
		event_base_loop(k->base, EVLOOP_NO_EXIT_ON_EMPTY);
	}
	if (k->w) {
		k->mb->ops->unwatch(k->mb, k->w);
		k->w = NULL;
	}
	return NULL;
}

static void t_wake_other_thread(void)
{
	/* A watch made on a thread bound to its own loop fires on that loop
	 * when another thread publishes; the publisher's loop sees nothing. */
	struct mbt t = { 0 };
	struct waker k = { 0 };
	pthread_t th;
	int started = 0;
	CHECK(evthread_use_pthreads() == 0);
	CHECK(mbt_default(&t) == 0);
	k.mb = t.mb;
	k.base = event_base_new();
	CHECK(k.base);
	pthread_mutex_init(&k.lock, NULL);
	pthread_cond_init(&k.cond, NULL);
	CHECK(pthread_create(&th, NULL, waker_main, &k) == 0);
	started = 1;
	pthread_mutex_lock(&k.lock);
	while (!k.watching)
		pthread_cond_wait(&k.cond, &k.lock);
	pthread_mutex_unlock(&k.lock);
	CHECK_EQ(k.watching, 1);
	CHECK_EQ(publish(t.mb, "w1", "w2", 1, "x").status, MB_OK);
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	pthread_join(th, NULL);
	started = 0;
	CHECK_EQ(k.wakes, 1);
	CHECK_EQ(k.wrong_thread, 0);
out:
	if (started)
		pthread_join(th, NULL);
	if (k.base) {
		pthread_mutex_destroy(&k.lock);
		pthread_cond_destroy(&k.cond);
		event_base_free(k.base);
	}
	mbt_free(&t);
}

#define PUB_THREADS 4
#define PUB_EACH 250

struct publisher {
	struct mailbox *mb;
	char from[8];
	int failures;
};

static void *publisher_main(void *arg)
{
	struct publisher *p = arg;
	for (int i = 0; i < PUB_EACH; i++) {
		/* Every 50 messages a higher epoch purges this sender's older
		 * ones; other senders' messages must survive. */
		struct mb_publish_result r = publish(p->mb, p->from, "w2", 1 + (uint64_t)(i / 50), "x");
		if (r.status != MB_OK)
			p->failures++;
	}
	return NULL;
}

static void t_concurrent_publishers(void)
{
	struct mbt t = { 0 };
	struct publisher p[PUB_THREADS];
	pthread_t th[PUB_THREADS];
	struct fetched *f = new_fetched();
	int started = 0;
	char last[128] = "";
	uint64_t prev = 0;
	size_t seen = 0;
	CHECK(f && mbt_default(&t) == 0);
	for (int i = 0; i < PUB_THREADS; i++) {
		p[i].mb = t.mb;
		p[i].failures = 0;
		snprintf(p[i].from, sizeof(p[i].from), "p%d", i);
	}
	for (; started < PUB_THREADS; started++)
		CHECK(pthread_create(&th[started], NULL, publisher_main, &p[started]) == 0);
	for (; started > 0; started--)
		pthread_join(th[started - 1], NULL);
	for (int i = 0; i < PUB_THREADS; i++)
		CHECK_EQ(p[i].failures, 0);
	/* Each sender keeps its last 50 (epoch 5), purged 200. */
	struct mb_stats s = stats(t.mb);
	CHECK_EQ(s.queued_messages, PUB_THREADS * 50);
	CHECK_EQ(s.purged_total, PUB_THREADS * 200);
	CHECK_EQ(s.queued_bytes, PUB_THREADS * 50 * mailbox_mem_charge(1));
	CHECK_EQ(s.pairs, PUB_THREADS);
	for (int round = 0; round < 4; round++) {
		CHECK_EQ(fetch(t.mb, "w2", last[0] ? last : NULL, BATCH, f), MB_OK);
		for (size_t i = 0; i < f->count; i++, seen++) {
			CHECK_EQ(f->msgs[i].epoch, PUB_EACH / 50);
			CHECK(seq_of(f->msgs[i].id) > prev);
			prev = seq_of(f->msgs[i].id);
		}
		if (f->count)
			snprintf(last, sizeof(last), "%s", f->cursor);
	}
	CHECK_EQ(seen, PUB_THREADS * 50);
out:
	for (; started > 0; started--)
		pthread_join(th[started - 1], NULL);
	mbt_free(&t);
	free(f);
}

TEST_SUITE(mailbox_suite,
	{ "mailbox_publish_fetch", t_publish_fetch },
	{ "mailbox_epoch_stale", t_epoch_stale },
	{ "mailbox_epoch_equal_appends", t_epoch_equal_appends },
	{ "mailbox_epoch_higher_purges", t_epoch_higher_purges },
	{ "mailbox_cursor_ack", t_cursor_ack },
	{ "mailbox_cursor_other_generation", t_cursor_other_generation },
	{ "mailbox_cursor_malformed", t_cursor_malformed },
	{ "mailbox_ids_increasing", t_ids_increasing },
	{ "mailbox_no_id_reuse_after_sweep", t_no_id_reuse_after_sweep },
	{ "mailbox_cap", t_cap },
	{ "mailbox_cap_purge_makes_room", t_cap_purge_all },
	{ "mailbox_max_bytes", t_max_bytes },
	{ "mailbox_ttl_fetch", t_ttl_fetch },
	{ "mailbox_ttl_sweep_and_pair_idle", t_ttl_sweep_and_pair_idle },
	{ "mailbox_watch_unwatch", t_watch },
	{ "mailbox_watch_left_at_free", t_watch_left_at_free },
	{ "mailbox_fetch_batches", t_fetch_batches },
	{ "mailbox_stats", t_stats },
	{ "mailbox_wake_on_watchers_thread", t_wake_other_thread },
	{ "mailbox_concurrent_publishers", t_concurrent_publishers });
