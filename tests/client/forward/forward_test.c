/* Test runner for the peer table and the port forwarder: one binary with
 * a table of named tests (test_peers.c, test_fwd.c), runnable one at a
 * time by name; prints "ok - name" / "not ok - name" and a summary. Owns
 * the helpers in ftest.h; must not hold test logic itself. */
#include "tests/client/forward/ftest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <re.h>

#include "common/log.h"

static unsigned port_next;

void ftest_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "  %s:%d: check failed: %s\n", file, line, what);
}

uint16_t ftest_ports(unsigned n)
{
	uint16_t p;

	if (!port_next)
		port_next = 20000 + (unsigned)(getpid() % 50) * 160;
	p = (uint16_t)port_next;
	port_next += n;
	return p;
}

static void spin_done(void *arg)
{
	(void)arg;
	re_cancel();
}

void ftest_spin(int ms)
{
	struct tmr t;

	tmr_init(&t);
	tmr_start(&t, (uint64_t)(ms > 0 ? ms : 1), spin_done, NULL);
	(void)re_main(NULL);
	tmr_cancel(&t);
}

void ftest_addr(struct sockaddr_in *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	inet_pton(AF_INET, ip, &a->sin_addr);
}

bool ftest_addr_is(const struct sockaddr_in *a, const char *ip, uint16_t port)
{
	struct sockaddr_in b;

	ftest_addr(&b, ip, port);
	if (a->sin_addr.s_addr != b.sin_addr.s_addr) {
		char s[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
		fprintf(stderr, "  address %s:%u, want %s:%u\n", s,
			ntohs(a->sin_port), ip, port);
		return false;
	}
	if (port && a->sin_port != b.sin_port) {
		fprintf(stderr, "  port %u, want %u\n", ntohs(a->sin_port),
			port);
		return false;
	}
	return true;
}

int ftest_udp(const char *ip, uint16_t port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int big = 1 << 20;

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	ftest_addr(&a, ip, port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int ftest_listen(const char *ip, uint16_t port)
{
	struct sockaddr_in a;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ftest_addr(&a, ip, port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 64) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int ftest_connect(const char *ip, uint16_t port, int timeout_ms)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int i;

	if (fd < 0)
		return -errno;
	ftest_addr(&a, ip, port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		return -e;
	}
	for (i = 0; i < timeout_ms; i++) {
		struct sockaddr_in p;
		socklen_t len = sizeof(p);
		int err = 0;

		if (getpeername(fd, (struct sockaddr *)&p, &len) == 0)
			return fd;
		len = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			close(fd);
			return -err;
		}
		ftest_spin(1);
	}
	close(fd);
	return -ETIMEDOUT;
}

int ftest_accept(int lfd, struct sockaddr_in *peer, int timeout_ms)
{
	int i;

	for (i = 0; i <= timeout_ms; i++) {
		socklen_t len = sizeof(*peer);
		int fd = accept4(lfd, (struct sockaddr *)peer, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ftest_spin(1);
	}
	return -ETIMEDOUT;
}

ssize_t ftest_recvfrom(int fd, void *buf, size_t n, struct sockaddr_in *from,
		       int timeout_ms)
{
	int i;

	for (i = 0; i <= timeout_ms; i++) {
		socklen_t len = sizeof(*from);
		ssize_t r = recvfrom(fd, buf, n, MSG_DONTWAIT,
				     (struct sockaddr *)from, &len);

		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ftest_spin(1);
	}
	return -ETIMEDOUT;
}

ssize_t ftest_read(int fd, void *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	int idle = 0;

	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);

		if (r > 0) {
			got += (size_t)r;
			idle = 0;
			continue;
		}
		if (r == 0)
			return (ssize_t)got;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (idle++ >= timeout_ms)
			return -ETIMEDOUT;
		ftest_spin(1);
	}
	return (ssize_t)got;
}

ssize_t ftest_wait_eof(int fd, int timeout_ms)
{
	char b[256];
	int i;

	for (i = 0; i <= timeout_ms; i++) {
		ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);

		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ftest_spin(1);
	}
	return -ETIMEDOUT;
}

int ftest_write(int fd, const void *buf, size_t n, int timeout_ms)
{
	size_t done = 0;
	int idle = 0;

	while (done < n) {
		ssize_t w = send(fd, (const char *)buf + done, n - done,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			done += (size_t)w;
			idle = 0;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (idle++ >= timeout_ms)
			return -ETIMEDOUT;
		ftest_spin(1);
	}
	return 0;
}

void ftest_abort_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static const struct ftest *find(const char *name)
{
	const struct ftest *tabs[] = { ftest_peers, ftest_fwd };
	size_t i;

	for (i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
		const struct ftest *t;

		for (t = tabs[i]; t->name; t++) {
			if (!strcmp(t->name, name))
				return t;
		}
	}
	return NULL;
}

static int run(const struct ftest *t, unsigned *pass, unsigned *failed)
{
	int rc = t->fn();

	printf("%s - %s\n", rc ? "not ok" : "ok", t->name);
	fflush(stdout);
	if (rc)
		(*failed)++;
	else
		(*pass)++;
	return rc;
}

int main(int argc, char **argv)
{
	const struct ftest *tabs[] = { ftest_peers, ftest_fwd };
	unsigned pass = 0, failed = 0;
	int fds;
	const char *lvl = getenv("FWD_TEST_LOG");
	size_t i;
	int a;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
			 !strcmp(argv[1], "-l"))) {
		printf("usage: %s [test...]\ntests:\n", argv[0]);
		for (i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
			const struct ftest *t;

			for (t = tabs[i]; t->name; t++)
				printf("  %s\n", t->name);
		}
		return 0;
	}
	for (a = 1; a < argc; a++) {
		if (!find(argv[a])) {
			fprintf(stderr, "forward-test: unknown test %s (-l lists "
				"them)\n", argv[a]);
			return 2;
		}
	}

	fds = count_fds();
	log_set_level(lvl ? lvl : "error");
	if (libre_init() != 0) {
		fprintf(stderr, "forward-test: libre_init failed\n");
		return 1;
	}
	(void)fd_setsize(4096);

	if (argc > 1) {
		for (a = 1; a < argc; a++)
			run(find(argv[a]), &pass, &failed);
	}
	else {
		for (i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
			const struct ftest *t;

			for (t = tabs[i]; t->name; t++)
				run(t, &pass, &failed);
		}
	}
	tmr_debug();
	libre_close();
	/* Every socket a test or the forwarder opened is closed again. */
	if (count_fds() != fds) {
		printf("not ok - no_fd_leak (%d descriptors before, %d after)\n",
		       fds, count_fds());
		failed++;
	}
	printf("%u passed, %u failed\n", pass, failed);
	return failed ? 1 : 0;
}
