/* Tests of client/hrtimer.c on libre's main loop: one shot after the
 * delay (never before, within a generous bound after), re-arming
 * replaces the deadline, cancel and mem_deref keep the handler from
 * running (also when the deadline already passed and the loop has not
 * read it yet), start(0) fires on a later loop turn. Bounds are loose on
 * purpose: the suite also runs under the sanitizers. */
#include "tests/client/udpio/utest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <re.h>

#include "client/hrtimer.h"

enum {
	LATE_NS = 200 * 1000000, /* a timer may fire this late, no later */
	MS = 1000000,
};

struct fires {
	unsigned n;              /* handler calls */
	uint64_t t[16];          /* their times (first 16) */
	bool stop;               /* re_cancel() on each call */
	unsigned rearm;          /* re-arm with start(0) this many times */
	struct hrtimer *self;    /* for re-arming */
	struct hrtimer **victim; /* mem_deref'ed (and cleared) on a call */
	struct hrtimer **spawn;  /* allocated and armed on a call */
	struct fires *spawn_f;
	uint64_t spawn_ns;
};

static void on_fire(void *arg)
{
	struct fires *f = arg;

	if (f->n < sizeof(f->t) / sizeof(f->t[0]))
		f->t[f->n] = utest_now_ns();
	f->n++;
	if (f->victim && *f->victim)
		*f->victim = mem_deref(*f->victim);
	if (f->spawn && !*f->spawn) {
		f->spawn_f->t[15] = utest_now_ns(); /* when it was armed */
		if (hrtimer_alloc(f->spawn, on_fire, f->spawn_f) == 0)
			(void)hrtimer_start(*f->spawn, f->spawn_ns);
	}
	if (f->rearm) {
		f->rearm--;
		(void)hrtimer_start(f->self, 0);
		return;
	}
	if (f->stop)
		re_cancel();
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * MS };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Fires once, not before delay_ns after start, at most LATE_NS late. */
static int fire_once_case(uint64_t delay_ns)
{
	struct fires f = { .stop = true };
	struct hrtimer *t = NULL;
	uint64_t t0;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, delay_ns), 0);
	CHECK_EQ(f.n, 0); /* never from inside hrtimer_start */
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
	CHECK(f.t[0] - t0 >= delay_ns);
	CHECK(f.t[0] - t0 <= delay_ns + LATE_NS);
	printf("#   %llu us asked, fired after %llu us\n",
	       (unsigned long long)(delay_ns / 1000),
	       (unsigned long long)((f.t[0] - t0) / 1000));
	/* One shot: no second call. */
	f.stop = false;
	CHECK(!utest_run(30));
	CHECK_EQ(f.n, 1);
 out:
	mem_deref(t);
	return rc;
}

static int t_hrtimer_fires_once(void)
{
	return fire_once_case(5 * MS) || fire_once_case(300 * 1000) ||
	       fire_once_case(20 * MS);
}

/* A later start replaces the deadline, both ways. */
static int t_hrtimer_rearm(void)
{
	struct fires f = { .stop = true };
	struct hrtimer *t = NULL;
	uint64_t t0;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);

	/* 1 s, then 5 ms: fires well before the first deadline, once. */
	CHECK_EQ(hrtimer_start(t, 1000 * (uint64_t)MS), 0);
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, 5 * MS), 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
	CHECK(f.t[0] - t0 >= 5 * MS);
	CHECK(f.t[0] - t0 <= 5 * MS + LATE_NS);
	f.stop = false;
	CHECK(!utest_run(50));
	CHECK_EQ(f.n, 1);

	/* 5 ms, then 80 ms: nothing at 5 ms, once at 80 ms. */
	f.n = 0;
	f.stop = true;
	CHECK_EQ(hrtimer_start(t, 5 * MS), 0);
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, 80 * MS), 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
	CHECK(f.t[0] - t0 >= 80 * MS);
	CHECK(f.t[0] - t0 <= 80 * MS + LATE_NS);
	f.stop = false;
	CHECK(!utest_run(30));
	CHECK_EQ(f.n, 1);
 out:
	mem_deref(t);
	return rc;
}

/* The first deadline passed while the loop was busy elsewhere (its
 * expiry is pending on the fd), then a re-arm: only the new deadline
 * counts. */
static int t_hrtimer_rearm_expired(void)
{
	struct fires f = { .stop = true };
	struct hrtimer *t = NULL;
	uint64_t t0;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	CHECK_EQ(hrtimer_start(t, 1 * MS), 0);
	sleep_ms(5);
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, 60 * MS), 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
	CHECK(f.t[0] - t0 >= 60 * MS);
	CHECK(f.t[0] - t0 <= 60 * MS + LATE_NS);
	f.stop = false;
	CHECK(!utest_run(30));
	CHECK_EQ(f.n, 1);
 out:
	mem_deref(t);
	return rc;
}

/* Cancel before the deadline, after it (not yet read by the loop),
 * twice, and unarmed; the timer still works afterwards. */
static int t_hrtimer_cancel(void)
{
	struct fires f = { .stop = true };
	struct hrtimer *t = NULL;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	hrtimer_cancel(t); /* unarmed: nothing */

	CHECK_EQ(hrtimer_start(t, 5 * MS), 0);
	hrtimer_cancel(t);
	CHECK(!utest_run(60));
	CHECK_EQ(f.n, 0);

	CHECK_EQ(hrtimer_start(t, 1 * MS), 0);
	sleep_ms(5);
	hrtimer_cancel(t);
	hrtimer_cancel(t);
	CHECK(!utest_run(40));
	CHECK_EQ(f.n, 0);

	CHECK_EQ(hrtimer_start(t, 0), 0);
	hrtimer_cancel(t);
	CHECK(!utest_run(20));
	CHECK_EQ(f.n, 0);

	CHECK_EQ(hrtimer_start(t, 2 * MS), 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
 out:
	mem_deref(t);
	return rc;
}

/* mem_deref while armed: never fires (the sanitizers would also catch
 * a handler running on freed memory). */
static int t_hrtimer_deref_armed(void)
{
	struct fires f = { 0 };
	struct hrtimer *t = NULL;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	CHECK_EQ(hrtimer_start(t, 2 * MS), 0);
	t = mem_deref(t);
	CHECK(!utest_run(50));
	CHECK_EQ(f.n, 0);

	/* Deadline passed, expiry pending on the fd, then freed. */
	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	CHECK_EQ(hrtimer_start(t, 1 * MS), 0);
	sleep_ms(5);
	t = mem_deref(t);
	CHECK(!utest_run(40));
	CHECK_EQ(f.n, 0);
 out:
	mem_deref(t);
	return rc;
}

/* Two timers expire in the same loop turn; whichever runs first frees
 * the other, which then must not run. */
static int t_hrtimer_deref_same_turn(void)
{
	struct fires fa = { 0 }, fb = { 0 };
	struct hrtimer *a = NULL, *b = NULL;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&a, on_fire, &fa), 0);
	CHECK_EQ(hrtimer_alloc(&b, on_fire, &fb), 0);
	fa.victim = &b;
	fb.victim = &a;
	CHECK_EQ(hrtimer_start(a, 1 * MS), 0);
	CHECK_EQ(hrtimer_start(b, 1 * MS), 0);
	sleep_ms(5);
	CHECK(!utest_run(50));
	CHECK_EQ(fa.n + fb.n, 1);
	CHECK((a == NULL) != (b == NULL));
 out:
	mem_deref(a);
	mem_deref(b);
	return rc;
}

/* As above, and the handler makes a new timer at once (it may get the
 * freed timer's fd number while the loop still holds that fd's event):
 * the new timer keeps its own deadline. */
static int t_hrtimer_deref_reuse(void)
{
	struct fires fa = { 0 }, fb = { 0 }, fc = { 0 };
	struct hrtimer *a = NULL, *b = NULL, *c = NULL;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&a, on_fire, &fa), 0);
	CHECK_EQ(hrtimer_alloc(&b, on_fire, &fb), 0);
	fa.victim = &b;
	fb.victim = &a;
	fa.spawn = fb.spawn = &c;
	fa.spawn_f = fb.spawn_f = &fc;
	fa.spawn_ns = fb.spawn_ns = 60 * MS;
	fc.stop = true;
	CHECK_EQ(hrtimer_start(a, 1 * MS), 0);
	CHECK_EQ(hrtimer_start(b, 1 * MS), 0);
	sleep_ms(5);
	CHECK(utest_run(1000));
	CHECK_EQ(fa.n + fb.n, 1);
	CHECK(c != NULL);
	CHECK_EQ(fc.n, 1);
	CHECK(fc.t[0] - fc.t[15] >= 60 * MS);
 out:
	mem_deref(a);
	mem_deref(b);
	mem_deref(c);
	return rc;
}

/* start(0): not inside the call, on a later loop turn, soon; a handler
 * may re-arm its own timer with 0 (what a pacing loop does). */
static int t_hrtimer_zero(void)
{
	struct fires f = { .stop = true };
	struct hrtimer *t = NULL;
	uint64_t t0;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(&t, on_fire, &f), 0);
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, 0), 0);
	CHECK_EQ(f.n, 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 1);
	CHECK(f.t[0] - t0 <= LATE_NS);

	f.n = 0;
	f.self = t;
	f.rearm = 4;
	t0 = utest_now_ns();
	CHECK_EQ(hrtimer_start(t, 0), 0);
	CHECK(utest_run(1000));
	CHECK_EQ(f.n, 5);
	CHECK(f.t[4] - t0 <= LATE_NS);
	f.stop = false;
	CHECK(!utest_run(20));
	CHECK_EQ(f.n, 5);
 out:
	mem_deref(t);
	return rc;
}

/* Many timers at once, deadlines 0..3 ms: each fires exactly once and
 * never early. */
static int t_hrtimer_many(void)
{
	enum { N = 64 };
	static struct fires f[N];
	struct hrtimer *t[N] = { NULL };
	uint64_t t0[N];
	int rc = 0;

	memset(f, 0, sizeof(f));
	for (unsigned i = 0; i < N; i++) {
		CHECK_EQ(hrtimer_alloc(&t[i], on_fire, &f[i]), 0);
		t0[i] = utest_now_ns();
		CHECK_EQ(hrtimer_start(t[i], (uint64_t)(i % 4) * MS + i * 1000), 0);
	}
	CHECK(!utest_run(250));
	for (unsigned i = 0; i < N; i++) {
		uint64_t d = (uint64_t)(i % 4) * MS + i * 1000;

		CHECK_EQ(f[i].n, 1);
		CHECK(f[i].t[0] - t0[i] >= d);
		CHECK(f[i].t[0] - t0[i] <= d + LATE_NS);
	}
 out:
	for (unsigned i = 0; i < N; i++)
		mem_deref(t[i]);
	return rc;
}

static void no_fire(void *arg)
{
	(void)arg;
}

static int t_hrtimer_args(void)
{
	struct hrtimer *t = NULL;
	int rc = 0;

	CHECK_EQ(hrtimer_alloc(NULL, no_fire, NULL), EINVAL);
	CHECK_EQ(hrtimer_alloc(&t, NULL, NULL), EINVAL);
	CHECK(t == NULL);
	CHECK_EQ(hrtimer_start(NULL, 1), EINVAL);
	hrtimer_cancel(NULL);
	CHECK_EQ(hrtimer_alloc(&t, no_fire, NULL), 0);
	CHECK(t != NULL);
 out:
	mem_deref(t);
	return rc;
}

const struct utest utest_hrtimer[] = {
	{ "hrtimer_fires_once", t_hrtimer_fires_once },
	{ "hrtimer_rearm", t_hrtimer_rearm },
	{ "hrtimer_rearm_expired", t_hrtimer_rearm_expired },
	{ "hrtimer_cancel", t_hrtimer_cancel },
	{ "hrtimer_deref_armed", t_hrtimer_deref_armed },
	{ "hrtimer_deref_same_turn", t_hrtimer_deref_same_turn },
	{ "hrtimer_deref_reuse", t_hrtimer_deref_reuse },
	{ "hrtimer_zero", t_hrtimer_zero },
	{ "hrtimer_many", t_hrtimer_many },
	{ "hrtimer_args", t_hrtimer_args },
	{ NULL, NULL },
};
