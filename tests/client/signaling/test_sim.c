/* Two peers' negotiations in the simulated world of neg_sim.c: start,
 * restarts of either side, both at once (20 times in a row, with random
 * delays, with clock skew, with loss), forged and stale messages, bye,
 * path failure, and a randomised model run over many seeds. Everything
 * in simulated time, so a run takes milliseconds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/negotiate.h"
#include "tests/client/signaling/neg_sim.h"
#include "tests/client/signaling/sigtest.h"

static uint32_t lcg(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

static void fail_dump(struct sim *s, uint32_t seed, const char *what)
{
	printf("#   %s: seed %u: %s%s%s\n", g_test, seed, what,
	       sim_violation(s) ? ": " : "", sim_violation(s) ? sim_violation(s) : "");
	sim_dump(s, stdout, g_verbose ? 400 : 60);
}

/* Runs until converged; checks the bound and that nothing broke. */
static bool converge(struct sim *s, uint32_t seed, uint64_t limit, uint64_t *took,
		     uint64_t *epoch)
{
	uint64_t t = sim_run_until_converged(s, limit);

	if (took)
		*took = t;
	if (t == UINT64_MAX || sim_violation(s)) {
		g_checks_failed++;
		fail_dump(s, seed, t == UINT64_MAX ? "did not converge" : "invariant broken");
		return false;
	}
	sim_converged(s, epoch);
	return true;
}

/* Both up in the same epoch stays so for a while (nothing flaps). */
static bool stays(struct sim *s, uint32_t seed, uint64_t epoch, uint64_t ms)
{
	uint64_t e = 0;

	sim_run_for(s, ms);
	if (!sim_converged(s, &e) || e != epoch || sim_violation(s)) {
		g_checks_failed++;
		fail_dump(s, seed, "did not stay converged");
		return false;
	}
	return true;
}

void t_sim_normal_start(void)
{
	uint64_t worst = 0;

	for (uint32_t seed = 1; seed <= 50; seed++) {
		struct sim_cfg c;
		uint32_t x = seed;
		uint64_t took, e;
		sim_cfg_default(&c, seed);
		struct sim *s = sim_new(&c);
		uint64_t d0 = lcg(&x) % 1000, d1 = lcg(&x) % 1000;
		sim_start(s, 0, d0);
		sim_start(s, 1, d1);
		sim_run_for(s, d0 > d1 ? d0 : d1);
		if (converge(s, seed, 3000, &took, &e)) {
			if (took > worst)
				worst = took;
			stays(s, seed, e, 60000);
			struct sim_counts cnt;
			sim_counts(s, &cnt);
			CHECKF(cnt.epochs_opened <= 2, "seed %u: %" PRIu64 " epochs", seed, cnt.epochs_opened);
		}
		sim_free(s);
	}
	NOTE("worst time to link after both started: %" PRIu64 " ms", worst);
	CHECK(worst < 2000);
}

static void restart_one(int who)
{
	uint64_t worst = 0;

	for (uint32_t seed = 1; seed <= 20; seed++) {
		struct sim_cfg c;
		uint32_t x = seed * 7;
		uint64_t e0 = 0, e1 = 0, took;
		sim_cfg_default(&c, seed);
		struct sim *s = sim_new(&c);
		sim_start(s, 0, 0);
		sim_start(s, 1, 0);
		if (!converge(s, seed, 5000, NULL, &e0))
			goto next;
		for (int i = 0; i < 10; i++) {
			sim_kill(s, who);
			uint64_t d = lcg(&x) % 3000;
			sim_start(s, who, d);
			sim_run_for(s, d);
			if (!converge(s, seed, 5000, &took, &e1))
				goto next;
			if (took > worst)
				worst = took;
			CHECKF(e1 > e0, "seed %u round %d: epoch %" PRIu64 " after %" PRIu64,
			       seed, i, e1, e0);
			e0 = e1;
			if (!stays(s, seed, e1, 30000))
				goto next;
		}
	next:
		sim_free(s);
	}
	NOTE("worst time to link after the restart: %" PRIu64 " ms", worst);
	CHECK(worst < 5000);
}

void t_sim_controlled_restart(void)
{
	restart_one(1);
}

void t_sim_controlling_restart(void)
{
	restart_one(0);
}

/* Kill both at the same moment and start both again at the same moment,
 * 20 times in a row; each time they must meet in one epoch on a link
 * both hold. */
static void both_restart(const struct sim_cfg *base, uint32_t seeds,
			 uint64_t bound, const char *label)
{
	uint64_t worst = 0, total = 0, rounds = 0, epochs = 0, max_epochs = 0;

	for (uint32_t seed = 1; seed <= seeds; seed++) {
		struct sim_cfg c = *base;
		uint32_t x = seed * 13;
		uint64_t e0 = 0, e1 = 0, took;
		c.seed = seed;
		struct sim *s = sim_new(&c);
		sim_start(s, 0, 0);
		sim_start(s, 1, 0);
		if (!converge(s, seed, 60000, NULL, &e0))
			goto next;
		for (int i = 0; i < 20; i++) {
			/* Up for a random while, then both die together. */
			sim_run_for(s, lcg(&x) % 2000);
			struct sim_counts c0, c1;
			sim_counts(s, &c0);
			sim_kill(s, 0);
			sim_kill(s, 1);
			uint64_t d = lcg(&x) % 2000;
			sim_start(s, 0, d);
			sim_start(s, 1, d);
			sim_run_for(s, d);
			if (!converge(s, seed, bound, &took, &e1)) {
				printf("#   %s: %s round %d\n", g_test, label, i);
				goto next;
			}
			if (g_verbose && took > 20000) {
				printf("#   %s seed %u round %d: %" PRIu64 " ms\n", label, seed, i, took);
				sim_dump(s, stdout, 120);
			}
			total += took;
			rounds++;
			sim_counts(s, &c1);
			epochs += c1.epochs_opened - c0.epochs_opened;
			if (c1.epochs_opened - c0.epochs_opened > max_epochs)
				max_epochs = c1.epochs_opened - c0.epochs_opened;
			if (took > worst)
				worst = took;
			CHECKF(e1 > e0, "seed %u round %d: epoch went %" PRIu64 " -> %" PRIu64,
			       seed, i, e0, e1);
			e0 = e1;
			if (!stays(s, seed, e1, 20000))
				goto next;
		}
	next:
		sim_free(s);
	}
	NOTE("%s: %" PRIu64 " rounds, mean %" PRIu64 " ms, worst %" PRIu64 " ms to a common link; "
	     "%.2f epochs per round, at most %" PRIu64,
	     label, rounds, rounds ? total / rounds : 0, worst,
	     rounds ? (double)epochs / (double)rounds : 0.0, max_epochs);
}

void t_sim_both_restart_x20(void)
{
	struct sim_cfg c;

	sim_cfg_default(&c, 0);
	both_restart(&c, 20, 5000, "default delays");
	/* Slow, very uneven message delays: reorderings across the pair. */
	c.msg_min = 1;
	c.msg_max = 800;
	c.poll_min = 1;
	c.poll_max = 600;
	c.result_max = 500;
	c.gather_max = 1500;
	/* One exchange alone can take 5 s with these delays: the bound
	 * here is about converging every time, not speed. */
	both_restart(&c, 20, 15000, "random delays up to 800 ms");
}

void t_sim_both_restart_skew(void)
{
	static const int64_t skews[][2] = {
		{ 0, 5000 }, { 5000, 0 }, { 0, 600000 }, { 600000, 0 },
		{ -600000, 0 }, { 0, -600000 }, { -3000, 3000 },
	};
	struct sim_cfg c;

	for (size_t i = 0; i < sizeof(skews) / sizeof(skews[0]); i++) {
		char label[64];
		sim_cfg_default(&c, 0);
		c.skew[0] = skews[i][0];
		c.skew[1] = skews[i][1];
		snprintf(label, sizeof(label), "skew %+" PRId64 "/%+" PRId64 " ms",
			 c.skew[0], c.skew[1]);
		both_restart(&c, 5, 5000, label);
	}
}

void t_sim_lossy(void)
{
	struct sim_cfg c;

	sim_cfg_default(&c, 0);
	c.p_dup = 25;
	c.p_reorder = 40;
	c.p_lost_result = 25;
	c.p_lost_publish = 10;
	c.msg_max = 300;
	both_restart(&c, 10, 10000, "duplicates, reordering, lost answers and publishes");
	/* Messages a coordinator accepted and then lost with its mailbox:
	 * only the timers can recover those (seconds, not ms). */
	c.p_vanish = 10;
	both_restart(&c, 10, 120000, "... and accepted messages lost");
}

void t_sim_bad_psig(void)
{
	struct sim_cfg c;
	uint64_t e = 0, e2 = 0;
	struct sim_counts cnt;

	sim_cfg_default(&c, 3);
	struct sim *s = sim_new(&c);
	sim_start(s, 0, 0);
	sim_start(s, 1, 0);
	if (!converge(s, 3, 5000, NULL, &e))
		goto out;
	/* A forged offer of a far newer epoch: were it believed, bravo would
	 * tear its link down for an attacker's description. */
	static const char forged[] =
		"{\"ice\":\"desc/mallory/1/9\",\"fp\":"
		"\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"}";
	sim_inject(s, 1, "alpha", "bravo", "offer", e + 1000000, forged, true);
	/* And a forged bye to alpha. */
	sim_inject(s, 0, "bravo", "alpha", "bye", e + 1000000, "{}", true);
	/* Signed correctly but from nobody we know, and to someone else. */
	sim_inject(s, 1, "mallory", "bravo", "offer", e + 1000000, forged, false);
	sim_inject(s, 1, "alpha", "charlie", "offer", e + 1000000, forged, false);
	sim_run_for(s, 5000);
	CHECK(sim_converged(s, &e2));
	CHECK(e2 == e);
	sim_counts(s, &cnt);
	CHECKF(cnt.psig_dropped == 2, "%" PRIu64, cnt.psig_dropped);
	CHECKF(cnt.from_dropped == 1, "%" PRIu64, cnt.from_dropped);
	CHECKF(cnt.to_dropped == 1, "%" PRIu64, cnt.to_dropped);
 out:
	sim_free(s);
}

void t_sim_stale_epoch(void)
{
	struct sim_cfg c;
	uint64_t e = 0, e2 = 0;
	struct neg_stats a0, a1, b0, b1;

	sim_cfg_default(&c, 5);
	struct sim *s = sim_new(&c);
	sim_start(s, 0, 0);
	sim_start(s, 1, 0);
	if (!converge(s, 5, 5000, NULL, &e))
		goto out;
	/* Restart both so there is history, then replay the old run's
	 * messages (correctly signed) through a coordinator that forgot its
	 * epochs. */
	sim_kill(s, 0);
	sim_kill(s, 1);
	sim_start(s, 0, 0);
	sim_start(s, 1, 0);
	if (!converge(s, 5, 5000, NULL, &e2))
		goto out;
	CHECK(e2 > e);
	neg_stats(sim_neg(s, 0), &a0);
	neg_stats(sim_neg(s, 1), &b0);
	static const char old[] =
		"{\"ice\":\"desc/alpha/1/1\",\"fp\":"
		"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";
	static const char olda[] =
		"{\"ice\":\"desc/bravo/1/1\",\"fp\":"
		"\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}";
	sim_inject(s, 1, "alpha", "bravo", "offer", e, old, false);
	sim_inject(s, 1, "alpha", "bravo", "bye", e, "{}", false);
	sim_inject(s, 0, "bravo", "alpha", "answer", e, olda, false);
	sim_run_for(s, 5000);
	CHECK(sim_converged(s, &e));
	CHECKF(e == e2, "epoch moved to %" PRIu64, e);
	neg_stats(sim_neg(s, 0), &a1);
	neg_stats(sim_neg(s, 1), &b1);
	CHECKF(b1.rx_stale - b0.rx_stale == 2, "%" PRIu64, b1.rx_stale - b0.rx_stale);
	CHECKF(a1.rx_stale - a0.rx_stale == 1, "%" PRIu64, a1.rx_stale - a0.rx_stale);
	CHECK(a1.epochs_opened == a0.epochs_opened);
 out:
	sim_free(s);
}

void t_sim_graceful_stop(void)
{
	for (int who = 0; who < 2; who++) {
		struct sim_cfg c;
		uint64_t e = 0, took;
		sim_cfg_default(&c, 11 + (uint32_t)who);
		struct sim *s = sim_new(&c);
		sim_start(s, 0, 0);
		sim_start(s, 1, 0);
		if (!converge(s, c.seed, 5000, NULL, &e))
			goto next;
		sim_stop(s, who);
		/* The bye arrives in ms: the other side drops the link at
		 * once instead of after dead-path detection. */
		sim_run_for(s, 300);
		enum neg_phase ph = neg_phase(sim_neg(s, !who));
		CHECKF(ph == (who == 0 ? NEG_WAITING : NEG_IDLE), "%s: %s",
		       who ? "alpha" : "bravo", neg_phase_name(ph));
		/* Back a second later: linked at once. */
		sim_start(s, who, 1000);
		sim_run_for(s, 1000);
		if (converge(s, c.seed, 2000, &took, NULL))
			NOTE("%s back: linked in %" PRIu64 " ms", who ? "bravo" : "alpha", took);
	next:
		sim_free(s);
	}
}

void t_sim_path_failure(void)
{
	for (uint32_t seed = 1; seed <= 20; seed++) {
		struct sim_cfg c;
		uint64_t e = 0, e2 = 0, took;
		sim_cfg_default(&c, seed);
		struct sim *s = sim_new(&c);
		sim_start(s, 0, 0);
		sim_start(s, 1, 0);
		if (!converge(s, seed, 5000, NULL, &e))
			goto next;
		sim_path_fail(s);
		/* Both sides notice within dead_max. */
		sim_run_for(s, c.dead_max + 1);
		if (!converge(s, seed, 5000, &took, &e2))
			goto next;
		CHECK(e2 > e);
		/* One side noticing first opens the new epoch; the other's
		 * request does not make yet another one. */
		struct sim_counts cnt;
		sim_counts(s, &cnt);
		CHECKF(cnt.epochs_opened <= 3, "seed %u: %" PRIu64 " epochs", seed, cnt.epochs_opened);
	next:
		sim_free(s);
	}
}

/* Random worlds: random configuration (delays, loss, skew) and a random
 * schedule of kills, stops, restarts and path failures. Invariants hold
 * throughout; once faults stop and both run, they converge. */
void t_sim_model_random(void)
{
	/* SIG_SIM_RUNS=N runs more (or fewer) worlds. */
	const char *env = getenv("SIG_SIM_RUNS");
	unsigned runs = env && atoi(env) > 0 ? (unsigned)atoi(env) : 300, ok = 0;
	uint64_t worst = 0;

	for (uint32_t seed = 1; seed <= runs; seed++) {
		struct sim_cfg c;
		uint32_t x = seed * 2654435761u;
		bool lossy;
		sim_cfg_default(&c, seed);
		c.msg_max = 5 + lcg(&x) % 1000;
		c.poll_max = 5 + lcg(&x) % 500;
		c.gather_max = 30 + lcg(&x) % 2000;
		c.connect_max = 30 + lcg(&x) % 1000;
		lossy = lcg(&x) % 2;
		if (lossy) {
			c.p_dup = lcg(&x) % 40;
			c.p_reorder = lcg(&x) % 60;
			c.p_lost_result = lcg(&x) % 30;
			c.p_lost_publish = lcg(&x) % 15;
			c.p_vanish = lcg(&x) % 10;
		}
		c.skew[0] = (int64_t)(lcg(&x) % 20001) - 10000;
		c.skew[1] = (int64_t)(lcg(&x) % 20001) - 10000;
		struct sim *s = sim_new(&c);
		sim_start(s, 0, lcg(&x) % 3000);
		sim_start(s, 1, lcg(&x) % 3000);
		int faults = 1 + (int)(lcg(&x) % 12);
		for (int i = 0; i < faults && !sim_violation(s); i++) {
			sim_run_for(s, lcg(&x) % 8000);
			switch (lcg(&x) % 7) {
			case 0: sim_kill(s, 0); sim_start(s, 0, lcg(&x) % 3000); break;
			case 1: sim_kill(s, 1); sim_start(s, 1, lcg(&x) % 3000); break;
			case 2: { uint64_t d = lcg(&x) % 3000;
				sim_kill(s, 0); sim_kill(s, 1);
				sim_start(s, 0, d); sim_start(s, 1, d); break; }
			case 3: sim_stop(s, lcg(&x) % 2); break;
			case 4: sim_path_fail(s); break;
			case 5: sim_start(s, 0, lcg(&x) % 500); sim_start(s, 1, lcg(&x) % 500); break;
			default: break;
			}
		}
		/* Faults over: everyone runs, and failures already under way
		 * (dead-path detection of a failed path) play out. */
		sim_start(s, 0, 0);
		sim_start(s, 1, 0);
		sim_run_for(s, c.dead_max + 1);
		uint64_t took, e;
		if (converge(s, seed, lossy ? 180000 : 60000, &took, &e)) {
			if (stays(s, seed, e, 60000))
				ok++;
			if (!lossy && took > worst) {
				worst = took;
				if (g_verbose && took > 8000) {
					printf("#   seed %u: %" PRIu64 " ms\n", seed, took);
					sim_dump(s, stdout, 80);
				}
			}
		}
		sim_free(s);
	}
	NOTE("%u of %u random worlds converged; worst without loss %" PRIu64 " ms",
	     ok, runs, worst);
	CHECK(ok == runs);
}
