/* libFuzzer target: the poll cursor. The input is a poll query string;
 * it goes (1) through the broker's own parse_query (signaling/broker.c is
 * #included, so its static parser is the real one; nothing of the broker
 * runs) and (2) as an acknowledgement cursor into the in-memory mailbox's
 * fetch (signaling/mailbox_mem.c, linked as is, whose static
 * parse_cursor it exercises), both as the raw input and as the cursor
 * parse_query extracted. A leading '@' is replaced by the mailbox's own
 * generation so the fuzzer reaches the acknowledging path.
 * Checks against a small reference: a cursor of the form
 * ^[0-9a-f]{1,16}-[0-9]{1,20}$ whose number fits 64 bits is MB_OK (and
 * acknowledges exactly the ids up to it when the generation is this
 * mailbox's), anything else non-empty is MB_BAD_CURSOR; the answer comes
 * once, before fetch returns. abort() on any violation. */
#include "signaling/broker.c"

#define NPUB 4

static struct event_base *fz_base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_base = event_base_new();
	if (!fz_base)
		abort();
	log_set_level("error");
	return 0;
}

struct fz_fetch {
	int calls;
	enum mb_status status;
	size_t count;
	uint64_t first_seq;
};

static uint64_t fz_seq(const char *id)
{
	const char *dash = strrchr(id, '-');
	return dash ? strtoull(dash + 1, NULL, 10) : 0;
}

static void fz_on_fetch(const struct mb_fetch_result *res, void *arg)
{
	struct fz_fetch *f = arg;
	f->calls++;
	f->status = res->status;
	f->count = res->count;
	f->first_seq = res->count ? fz_seq(res->msgs[0].id) : 0;
	if (!res->cursor)
		abort();
	if (res->count && strcmp(res->cursor, res->msgs[res->count - 1].id) != 0)
		abort();
}

static void fz_on_publish(const struct mb_publish_result *res, void *arg)
{
	struct mb_publish_result *out = arg;
	*out = *res;
}

/* The reference: -1 malformed, 0 well-formed other generation or empty,
 * 1 this generation with *seq. */
static int fz_classify(const char *c, const char *gen, uint64_t *seq)
{
	if (!*c)
		return 0;
	const char *dash = strchr(c, '-');
	size_t glen = dash ? (size_t)(dash - c) : 0;
	if (!dash || glen < 1 || glen > 16)
		return -1;
	for (size_t i = 0; i < glen; i++)
		if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
			return -1;
	const char *d = dash + 1;
	size_t dlen = strlen(d);
	if (dlen < 1 || dlen > 20)
		return -1;
	unsigned __int128 v = 0;
	for (size_t i = 0; i < dlen; i++) {
		if (d[i] < '0' || d[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(d[i] - '0');
	}
	if (v > UINT64_MAX)
		return -1;
	if (glen != strlen(gen) || memcmp(c, gen, glen) != 0)
		return 0;
	*seq = (uint64_t)v;
	return 1;
}

static void fz_fetch_check(const char *cursor)
{
	struct mailbox_mem_config cfg = { .message_ttl_s = 120, .pair_idle_s = 3600,
					  .max_bytes = 1 << 20 };
	struct mailbox *mb = NULL;
	struct mb_publish_result pub[NPUB];
	struct publish_msg m;
	if (mailbox_mem_new(&mb, fz_base, &cfg) != 0)
		abort();
	memset(&m, 0, sizeof(m));
	strcpy(m.from, "w1");
	strcpy(m.to, "w2");
	strcpy(m.kind, "offer");
	memset(m.psig, '0', SIG_HEX_LEN);
	m.epoch = 1;
	m.payload = "x";
	m.payload_len = 1;
	for (int i = 0; i < NPUB; i++) {
		memset(&pub[i], 0, sizeof(pub[i]));
		mb->ops->publish(mb, &m, fz_on_publish, &pub[i]);
		if (pub[i].status != MB_OK)
			abort();
	}
	char gen[MSG_ID_MAX];
	snprintf(gen, sizeof(gen), "%s", pub[0].id);
	char *dash = strchr(gen, '-');
	if (!dash)
		abort();
	*dash = '\0';

	/* '@' stands for this mailbox's generation. */
	size_t clen = strlen(cursor);
	char *c = malloc(clen + sizeof(gen) + 1);
	if (!c)
		abort();
	if (cursor[0] == '@')
		snprintf(c, clen + sizeof(gen) + 1, "%s%s", gen, cursor + 1);
	else
		memcpy(c, cursor, clen + 1);

	uint64_t seq = 0;
	int kind = fz_classify(c, gen, &seq);
	struct fz_fetch f = { 0 };
	mb->ops->fetch(mb, "w2", c, POLL_BATCH_MAX, fz_on_fetch, &f);
	if (f.calls != 1)
		abort();
	if (kind < 0) {
		if (f.status != MB_BAD_CURSOR)
			abort();
	} else {
		size_t want = 0;
		for (int i = 0; i < NPUB; i++)
			want += kind == 0 || fz_seq(pub[i].id) > seq;
		if (f.status != MB_OK || f.count != want)
			abort();
		if (want && f.first_seq != fz_seq(pub[NPUB - want].id))
			abort();
	}
	free(c);
	mb->ops->free(mb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = malloc(size + 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';

	struct call c;
	memset(&c, 0, sizeof(c));
	if (parse_query(&c, q) == 0) {
		if (c.wait_s > POLL_WAIT_MAX_S || !memchr(c.cursor, '\0', sizeof(c.cursor)))
			abort();
		fz_fetch_check(c.cursor);
	}
	fz_fetch_check(q);
	free(q);
	return 0;
}
