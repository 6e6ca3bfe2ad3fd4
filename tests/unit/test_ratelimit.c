/* Tests of signaling/ratelimit.c: per-peer token buckets driven with an
 * explicit now_ms (burst, refusal with retry_ms, refill, the cap at the
 * burst, independence of peers, sweep). */
#include "signaling/ratelimit.h"
#include "tests/unit/test.h"

static void t_burst_then_refusal(void)
{
	/* 10 per second, burst 5. */
	struct ratelimit *rl = ratelimit_new(10, 5);
	int64_t retry = -1, t = 1000000;
	CHECK(rl);
	for (int i = 0; i < 5; i++)
		CHECKF(ratelimit_take(rl, "w1", t, &retry), "token %d of the burst refused", i);
	CHECK(!ratelimit_take(rl, "w1", t, &retry));
	/* One token comes every 100 ms. */
	CHECKF(retry >= 1 && retry <= 101, "retry_ms %lld", (long long)retry);
	int64_t r2 = -1;
	CHECK(!ratelimit_take(rl, "w1", t + retry - 2, &r2));
	CHECKF(r2 >= 1 && r2 <= 3, "retry_ms after waiting %lld ms: %lld", (long long)(retry - 2), (long long)r2);
	CHECK(ratelimit_take(rl, "w1", t + retry, &r2));
	CHECK(!ratelimit_take(rl, "w1", t + retry, &r2));
	/* Another peer has its own bucket. */
	for (int i = 0; i < 5; i++)
		CHECK(ratelimit_take(rl, "w2", t, &retry));
	CHECK(!ratelimit_take(rl, "w2", t, &retry));
out:
	ratelimit_free(rl);
}

static void t_refill(void)
{
	struct ratelimit *rl = ratelimit_new(2, 4);
	int64_t retry = 0, t = 5000;
	int n = 0;
	CHECK(rl);
	while (n < 100 && ratelimit_take(rl, "p", t, &retry))
		n++;
	CHECK_EQ(n, 4);
	CHECKF(retry > 0 && retry <= 501, "retry_ms %lld at 2/s", (long long)retry);
	/* 1.5 s later: 3 tokens. */
	t += 1500;
	n = 0;
	while (n < 100 && ratelimit_take(rl, "p", t, &retry))
		n++;
	CHECK_EQ(n, 3);
	/* A long pause refills only up to the burst. */
	t += 3600 * 1000;
	n = 0;
	while (n < 100 && ratelimit_take(rl, "p", t, &retry))
		n++;
	CHECK_EQ(n, 4);
	/* A clock step backwards gives nothing, and takes nothing either:
	 * the wait stays one token's worth. */
	CHECK(!ratelimit_take(rl, "p", t - 100, &retry));
	CHECKF(retry > 0 && retry <= 501, "retry_ms %lld after a step back", (long long)retry);
out:
	ratelimit_free(rl);
}

static void t_disabled(void)
{
	struct ratelimit *rl = ratelimit_new(0, 1);
	int64_t retry = 0;
	CHECK(rl);
	for (int i = 0; i < 10000; i++)
		CHECK(ratelimit_take(rl, "w1", 0, &retry));
out:
	ratelimit_free(rl);
}

static void t_sweep(void)
{
	/* Sweeping forgets only full buckets: an empty one stays empty. */
	struct ratelimit *rl = ratelimit_new(1, 2);
	int64_t retry = 0;
	CHECK(rl);
	CHECK(ratelimit_take(rl, "busy", 0, &retry));
	CHECK(ratelimit_take(rl, "busy", 0, &retry));
	CHECK(ratelimit_take(rl, "idle", 0, &retry));
	ratelimit_sweep(rl, 100);
	CHECK(!ratelimit_take(rl, "busy", 100, &retry));
	/* After 2 s both are full again and may be forgotten; a forgotten
	 * bucket comes back full. */
	ratelimit_sweep(rl, 2100);
	CHECK(ratelimit_take(rl, "busy", 2100, &retry));
	CHECK(ratelimit_take(rl, "busy", 2100, &retry));
	CHECK(!ratelimit_take(rl, "busy", 2100, &retry));
out:
	ratelimit_free(rl);
}

TEST_SUITE(ratelimit_suite,
	{ "ratelimit_burst_then_refusal", t_burst_then_refusal },
	{ "ratelimit_refill", t_refill },
	{ "ratelimit_disabled", t_disabled },
	{ "ratelimit_sweep", t_sweep });
