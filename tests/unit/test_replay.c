/* Tests of signaling/replay_mem.c: a nonce is fresh once then seen, many
 * nonces (table growth), and REPLAY_FULL at the memory bound. Rotation
 * every 2 * AUTH_MAX_SKEW_S seconds reads the real clock and is not
 * tested here (it would take four minutes). */
#include <stdio.h>
#include <string.h>

#include "signaling/replay.h"
#include "tests/unit/test.h"

struct answer {
	int calls;
	enum replay_result res;
};

static void on_check(enum replay_result res, void *arg)
{
	struct answer *a = arg;
	a->calls++;
	a->res = res;
}

/* The memory backend answers before check returns, exactly once. */
static int check(struct replay *rp, const char *nonce)
{
	struct answer a = { 0, REPLAY_UNAVAILABLE };
	rp->ops->check(rp, nonce, on_check, &a);
	return a.calls == 1 ? (int)a.res : -1;
}

static void nonce_of(unsigned long long i, char out[33])
{
	/* Spread the counter over both halves (the store splits hi/lo). */
	snprintf(out, 33, "%016llx%016llx", i * 0x9e3779b97f4a7c15ULL, i);
}

static void t_fresh_then_seen(void)
{
	struct replay *rp = NULL;
	CHECK_EQ(replay_mem_new(&rp, 1000), 0);
	CHECK_EQ(rp->ops->size(rp), 0);
	CHECK_EQ(check(rp, "00112233445566778899aabbccddeeff"), REPLAY_FRESH);
	CHECK_EQ(rp->ops->size(rp), 1);
	CHECK_EQ(check(rp, "00112233445566778899aabbccddeeff"), REPLAY_SEEN);
	CHECK_EQ(check(rp, "00112233445566778899aabbccddeeff"), REPLAY_SEEN);
	CHECK_EQ(rp->ops->size(rp), 1);
	/* Differs in the last digit, in the first digit, in the other half. */
	CHECK_EQ(check(rp, "00112233445566778899aabbccddeefe"), REPLAY_FRESH);
	CHECK_EQ(check(rp, "10112233445566778899aabbccddeeff"), REPLAY_FRESH);
	CHECK_EQ(check(rp, "0011223344556677f899aabbccddeeff"), REPLAY_FRESH);
	/* The all-zero nonce and its 2^-128 alias are both usable once. */
	CHECK_EQ(check(rp, "00000000000000000000000000000000"), REPLAY_FRESH);
	CHECK_EQ(check(rp, "00000000000000000000000000000000"), REPLAY_SEEN);
	CHECK_EQ(rp->ops->size(rp), 5);
out:
	if (rp)
		rp->ops->free(rp);
}

static void t_many(void)
{
	/* 20000 nonces: more than the initial table, so it grows. */
	struct replay *rp = NULL;
	char n[33];
	CHECK_EQ(replay_mem_new(&rp, 100000), 0);
	for (unsigned i = 1; i <= 20000; i++) {
		nonce_of(i, n);
		CHECKF(check(rp, n) == REPLAY_FRESH, "nonce %u not fresh", i);
	}
	CHECK_EQ(rp->ops->size(rp), 20000);
	for (unsigned i = 1; i <= 20000; i++) {
		nonce_of(i, n);
		CHECKF(check(rp, n) == REPLAY_SEEN, "nonce %u forgotten", i);
	}
	nonce_of(20001, n);
	CHECK_EQ(check(rp, n), REPLAY_FRESH);
out:
	if (rp)
		rp->ops->free(rp);
}

static void t_full(void)
{
	/* Within one window the store takes new nonces up to a bound no
	 * larger than max_entries, then refuses with FULL without forgetting
	 * (a seen nonce stays SEEN, not FULL). */
	const size_t max = 64;
	struct replay *rp = NULL;
	char n[33];
	unsigned fresh = 0;
	int res = -1;
	CHECK_EQ(replay_mem_new(&rp, max), 0);
	for (unsigned i = 1; i <= 2 * max; i++) {
		nonce_of(i, n);
		res = check(rp, n);
		if (res != REPLAY_FRESH)
			break;
		fresh++;
	}
	CHECK_EQ(res, REPLAY_FULL);
	CHECKF(fresh >= 1 && fresh <= max, "%u fresh before FULL with max_entries %zu", fresh, max);
	CHECK(rp->ops->size(rp) <= max);
	CHECK_EQ(rp->ops->size(rp), fresh);
	nonce_of(1, n);
	CHECK_EQ(check(rp, n), REPLAY_SEEN);
	nonce_of(fresh, n);
	CHECK_EQ(check(rp, n), REPLAY_SEEN);
	nonce_of(3 * max, n);
	CHECK_EQ(check(rp, n), REPLAY_FULL);
	CHECK_EQ(rp->ops->size(rp), fresh);
	/* A refused nonce was not recorded: still FULL, not SEEN. */
	CHECK_EQ(check(rp, n), REPLAY_FULL);
out:
	if (rp)
		rp->ops->free(rp);
}

TEST_SUITE(replay_suite,
	{ "replay_fresh_then_seen", t_fresh_then_seen },
	{ "replay_many_nonces", t_many },
	{ "replay_full_at_bound", t_full });
