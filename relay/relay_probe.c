/* The relay's readiness: a background thread sends real STUN Binding
 * requests to coturn's UDP listener and opens TCP connections to its
 * STUN port, every 200 ms until both answer, then every 5 s. Three
 * failed rounds in a row make the relay not ready again. It owns the
 * readiness flags; it must never talk to anything but the listener it was
 * given, nor touch coturn's state. */
#include "relay/relay_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "relay/stun_probe.h"

#define PROBE_FAST_MS 200      /* until the first success */
#define PROBE_SLOW_MS 5000     /* once ready */
#define PROBE_FAILS_DOWN 3     /* rounds in a row before "not ready" */
#define PROBE_TIMEOUT_MS 1000  /* per UDP answer / TCP connect */
/* A Binding response with XOR-MAPPED-ADDRESS, SOFTWARE, FINGERPRINT and
 * friends fits easily; anything larger is not an answer to us. */
#define PROBE_BUF 1500

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static atomic_bool g_ready;
static atomic_bool g_started;

bool relay_probe_ready(void)
{
	return atomic_load(&g_ready);
}

bool relay_probe_started(void)
{
	return atomic_load(&g_started);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One Binding round trip over UDP. 0 on a valid success response, else
 * -1 with a reason in why. */
static int probe_udp(char *why, size_t whylen)
{
	uint8_t txid[STUN_TXID_LEN], req[STUN_PROBE_REQUEST_LEN], buf[PROBE_BUF];
	int64_t deadline;
	size_t reqlen;
	int fd, rc = -1;

	if (getrandom(txid, sizeof(txid), 0) != (ssize_t)sizeof(txid)) {
		snprintf(why, whylen, "getrandom: %s", strerror(errno));
		return -1;
	}
	reqlen = stun_probe_request(req, sizeof(req), txid);
	fd = socket(g_addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "udp socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&g_addr, g_addrlen) != 0 ||
	    send(fd, req, reqlen, 0) != (ssize_t)reqlen) {
		snprintf(why, whylen, "udp send: %s", strerror(errno));
		goto out;
	}
	snprintf(why, whylen, "no STUN answer over UDP within %d ms", PROBE_TIMEOUT_MS);
	deadline = now_ms() + PROBE_TIMEOUT_MS;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			/* ECONNREFUSED: an ICMP port unreachable, nobody listens. */
			snprintf(why, whylen, "udp: %s", strerror(errno));
			break;
		}
		if (stun_probe_check_response(buf, (size_t)n, txid, NULL) == 0) {
			rc = 0;
			break;
		}
		snprintf(why, whylen, "invalid STUN answer over UDP (%zd bytes)", n);
	}
out:
	close(fd);
	return rc;
}

/* A TCP connect to the STUN port. */
static int probe_tcp(char *why, size_t whylen)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, soerr = 0, rc = -1;

	fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, whylen, "tcp socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&g_addr, g_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "tcp connect: %s", strerror(errno));
		goto out;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, PROBE_TIMEOUT_MS) != 1) {
		snprintf(why, whylen, "tcp connect: no answer within %d ms", PROBE_TIMEOUT_MS);
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
		snprintf(why, whylen, "tcp connect: %s", strerror(soerr ? soerr : errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static void *probe_main(void *arg)
{
	char why[160] = "";
	int fails = 0;

	(void)arg;
	for (;;) {
		bool ready = atomic_load(&g_ready);
		int ok = probe_udp(why, sizeof(why)) == 0 && probe_tcp(why, sizeof(why)) == 0;

		if (ok) {
			fails = 0;
			if (!ready) {
				atomic_store(&g_ready, true);
				if (!atomic_exchange(&g_started, true)) {
					log_info("relay", "STUN/TURN listeners answer");
					/* coturn read its key and wrote its pid
					 * file before opening the listeners. */
					relay_tmpdir_remove();
				} else {
					log_info("relay", "STUN/TURN listeners answer again");
				}
			}
		} else if (ready && ++fails >= PROBE_FAILS_DOWN) {
			atomic_store(&g_ready, false);
			log_error("relay", "not ready: %s (%d probes in a row)", why,
				  PROBE_FAILS_DOWN);
		} else if (ready) {
			log_warn("relay", "readiness probe failed: %s", why);
		} else {
			log_debug("relay", "not ready yet: %s", why);
		}
		sleep_ms(atomic_load(&g_ready) ? PROBE_SLOW_MS : PROBE_FAST_MS);
	}
	return NULL;
}

int relay_probe_start(const struct sockaddr_storage *addr, socklen_t len,
		      char *err, size_t errlen)
{
	int rc;

	if (len > sizeof(g_addr)) {
		snprintf(err, errlen, "probe address too long");
		return EINVAL;
	}
	memcpy(&g_addr, addr, len);
	g_addrlen = len;
	rc = relay_thread_start(probe_main, err, errlen);
	return rc;
}
