/* Shared by the forwarding tests in tests/client/forward/: the test
 * table type, CHECK macros, main-loop spinning and small non-blocking
 * socket helpers for the "local apps" of the two in-process hosts. */
#ifndef MESH_TESTS_FTEST_H
#define MESH_TESTS_FTEST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ftest {
	const char *name;
	int (*fn)(void);  /* 0 passed, else failed */
};

extern const struct ftest ftest_peers[];
extern const struct ftest ftest_fwd[];

void ftest_fail(const char *file, int line, const char *what);

/* Inside a test with `int rc = 0;` and an `out:` label. */
#define CHECK(c) do { \
	if (!(c)) { \
		ftest_fail(__FILE__, __LINE__, #c); \
		rc = 1; \
		goto out; \
	} \
} while (0)

/* Ports for one fixture: distinct per call and per process, so parallel
 * runs (rel and san) and consecutive tests do not meet. */
uint16_t ftest_ports(unsigned n);

/* Runs libre's main loop for ms milliseconds. */
void ftest_spin(int ms);

void ftest_addr(struct sockaddr_in *a, const char *ip, uint16_t port);
int ftest_udp(const char *ip, uint16_t port);           /* bound, nonblocking */
int ftest_listen(const char *ip, uint16_t port);        /* TCP listener */
/* Nonblocking connect that waits (spinning the loop) for the outcome:
 * returns the fd, or -errno. */
int ftest_connect(const char *ip, uint16_t port, int timeout_ms);
int ftest_accept(int lfd, struct sockaddr_in *peer, int timeout_ms);
/* Waits for a datagram: its length, or -errno (-ETIMEDOUT). */
ssize_t ftest_recvfrom(int fd, void *buf, size_t n, struct sockaddr_in *from,
		       int timeout_ms);
/* Reads exactly n bytes: n, the bytes before EOF, or -errno. */
ssize_t ftest_read(int fd, void *buf, size_t n, int timeout_ms);
/* Waits for EOF (0), data (>0, discarded) or an error (-errno). */
ssize_t ftest_wait_eof(int fd, int timeout_ms);
int ftest_write(int fd, const void *buf, size_t n, int timeout_ms);
void ftest_abort_close(int fd); /* SO_LINGER 0: RST */
bool ftest_addr_is(const struct sockaddr_in *a, const char *ip,
		   uint16_t port); /* port 0: any */

#endif
