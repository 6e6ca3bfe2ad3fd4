/* Tests of common/strmap.c: put/get/del, EEXIST, keys copied, sweep, and
 * growth to 10000 keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/strmap.h"
#include "tests/unit/test.h"

static void t_basic(void)
{
	struct strmap *m = strmap_new();
	int a = 1, b = 2;
	char key[8] = "peer";
	CHECK(m);
	CHECK_EQ(strmap_count(m), 0);
	CHECK(strmap_get(m, "peer") == NULL);
	CHECK_EQ(strmap_put(m, key, &a), 0);
	key[0] = 'X'; /* the map holds its own copy */
	CHECK(strmap_get(m, "peer") == &a);
	CHECK(strmap_get(m, "Xeer") == NULL);
	CHECK_EQ(strmap_put(m, "peer", &b), EEXIST);
	CHECK(strmap_get(m, "peer") == &a); /* nothing changed */
	CHECK_EQ(strmap_count(m), 1);
	CHECK_EQ(strmap_put(m, "", &b), 0); /* the empty key is a key */
	CHECK(strmap_get(m, "") == &b);
	CHECK(strmap_get(m, "pee") == NULL);
	CHECK(strmap_get(m, "peer ") == NULL);
	CHECK_EQ(strmap_count(m), 2);
	CHECK(strmap_del(m, "peer") == &a);
	CHECK(strmap_del(m, "peer") == NULL);
	CHECK(strmap_get(m, "peer") == NULL);
	CHECK_EQ(strmap_count(m), 1);
	CHECK_EQ(strmap_put(m, "peer", &b), 0); /* reusable after del */
	CHECK(strmap_get(m, "peer") == &b);
	/* A NULL value is stored (get cannot tell it from absent; del works). */
	CHECK_EQ(strmap_put(m, "null", NULL), 0);
	CHECK_EQ(strmap_put(m, "null", &a), EEXIST);
	CHECK_EQ(strmap_count(m), 3);
out:
	strmap_free(m);
}

static int sweep_odd(const char *key, void *val, void *arg)
{
	int *visits = arg;
	(*visits)++;
	return (int)(*(long *)val % 2);
}

static void t_growth_and_sweep(void)
{
	enum { N = 10000 };
	struct strmap *m = strmap_new();
	long *vals = malloc(N * sizeof(*vals));
	char key[32];
	int visits = 0;
	CHECK(m && vals);
	for (long i = 0; i < N; i++) {
		vals[i] = i;
		snprintf(key, sizeof(key), "peer-%ld", i);
		CHECKF(strmap_put(m, key, &vals[i]) == 0, "put %s", key);
	}
	CHECK_EQ(strmap_count(m), N);
	for (long i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "peer-%ld", i);
		CHECKF(strmap_get(m, key) == &vals[i], "get %s after growth", key);
		CHECKF(strmap_put(m, key, NULL) == EEXIST, "put %s twice", key);
	}
	strmap_sweep(m, sweep_odd, &visits);
	CHECK_EQ(visits, N);
	CHECK_EQ(strmap_count(m), N / 2);
	for (long i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "peer-%ld", i);
		void *want = i % 2 ? NULL : &vals[i];
		CHECKF(strmap_get(m, key) == want, "after sweep: %s", key);
	}
	for (long i = 0; i < N; i += 2) {
		snprintf(key, sizeof(key), "peer-%ld", i);
		CHECK(strmap_del(m, key) == &vals[i]);
	}
	CHECK_EQ(strmap_count(m), 0);
out:
	strmap_free(m);
	free(vals);
}

TEST_SUITE(strmap_suite,
	{ "strmap_basic", t_basic },
	{ "strmap_growth_and_sweep", t_growth_and_sweep });
