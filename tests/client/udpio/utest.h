/* Shared by the data-path I/O tests in tests/client/udpio/: the test
 * table type, CHECK macros, libre main-loop running and loopback UDP
 * socket helpers. Test logic lives in test_batch.c and test_hrtimer.c,
 * never here. Everything stays on 127.0.0.1. */
#ifndef MESH_TESTS_UDPIO_UTEST_H
#define MESH_TESTS_UDPIO_UTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sa;

struct utest {
	const char *name;
	int (*fn)(void);  /* 0 passed, else failed */
};

extern const struct utest utest_batch[];
extern const struct utest utest_hrtimer[];

void utest_fail(const char *file, int line, const char *what);
void utest_failf(const char *file, int line, const char *what, long long got,
		 long long want);

/* Inside a test with `int rc = 0;` and an `out:` label that cleans up. */
#define CHECK(c) do { \
	if (!(c)) { \
		utest_fail(__FILE__, __LINE__, #c); \
		rc = 1; \
		goto out; \
	} \
} while (0)

/* Integers compared with their values printed when they differ. */
#define CHECK_EQ(got, want) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	if (got_ != want_) { \
		utest_failf(__FILE__, __LINE__, #got " == " #want, got_, want_); \
		rc = 1; \
		goto out; \
	} \
} while (0)

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t utest_now_ns(void);

/* Runs libre's main loop until re_cancel() or for at most ms
 * milliseconds (a guard timer stops it). Returns true when something
 * other than the guard stopped it. */
bool utest_run(unsigned ms);

/* A UDP socket bound to 127.0.0.1 on an ephemeral port, non-blocking;
 * its address in *addr. Returns the fd or -errno. */
int utest_udp(struct sa *addr);

/* Waits up to timeout_ms for the socket to be readable; true if it is. */
bool utest_readable(int fd, int timeout_ms);

/* Fills p with bytes derived from seed and the offset, so datagrams out
 * of order, short or shifted never compare equal. */
void utest_fill(uint8_t *p, size_t n, uint32_t seed);

#endif
