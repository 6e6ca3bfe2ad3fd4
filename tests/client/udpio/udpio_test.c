/* Test runner for the client's batched UDP I/O (client/udp_batch.c) and
 * its sub-millisecond timer (client/hrtimer.c): one binary with a table
 * of named tests (test_batch.c, test_hrtimer.c), runnable one at a time
 * by name; prints "ok - name" / "not ok - name" and "N passed, M failed".
 * Owns the helpers of utest.h; must not hold test logic itself. */
#include "tests/client/udpio/utest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <re.h>

void utest_fail(const char *file, int line, const char *what)
{
	printf("#   %s:%d: check failed: %s\n", file, line, what);
}

void utest_failf(const char *file, int line, const char *what, long long got,
		 long long want)
{
	printf("#   %s:%d: check failed: %s (got %lld, want %lld)\n", file, line, what,
	       got, want);
}

uint64_t utest_now_ns(void)
{
	struct timespec tp;

	clock_gettime(CLOCK_MONOTONIC, &tp);
	return (uint64_t)tp.tv_sec * 1000000000u + (uint64_t)tp.tv_nsec;
}

static bool guard_fired;

static void guard_timeout(void *arg)
{
	(void)arg;
	guard_fired = true;
	re_cancel();
}

bool utest_run(unsigned ms)
{
	struct tmr guard;

	tmr_init(&guard);
	guard_fired = false;
	tmr_start(&guard, ms, guard_timeout, NULL);
	(void)re_main(NULL);
	tmr_cancel(&guard);
	return !guard_fired;
}

int utest_udp(struct sa *addr)
{
	int fd, err;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = sa_set_str(addr, "127.0.0.1", 0);
	if (err) {
		(void)close(fd);
		return -err;
	}
	if (bind(fd, &addr->u.sa, addr->len) != 0) {
		err = errno;
		(void)close(fd);
		return -err;
	}
	addr->len = sizeof(addr->u);
	if (getsockname(fd, &addr->u.sa, &addr->len) != 0) {
		err = errno;
		(void)close(fd);
		return -err;
	}
	return fd;
}

bool utest_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0 && (pfd.revents & POLLIN);
}

void utest_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		/* xorshift32: no period shorter than any datagram we send */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static bool selected(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return true;
	for (int a = 1; a < argc; a++)
		if (strcmp(argv[a], name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const struct utest *tables[] = { utest_batch, utest_hrtimer };
	int passed = 0, failed = 0, err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	err = libre_init();
	if (err) {
		fprintf(stderr, "libre_init: %s\n", strerror(err));
		return 2;
	}
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct utest *u = tables[t]; u->name; u++) {
			if (!selected(argc, argv, u->name))
				continue;
			if (u->fn() == 0) {
				printf("ok - %s\n", u->name);
				passed++;
			}
			else {
				printf("not ok - %s\n", u->name);
				failed++;
			}
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	libre_close();
	if (passed + failed == 0) {
		fprintf(stderr, "udpio-test: no test by that name\n");
		return 2;
	}
	return failed ? 1 : 0;
}
