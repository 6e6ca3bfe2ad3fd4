/* netlab-delayd: a delayed Ethernet cable between two TAP devices, for the
 * test networks (tests/netlab, CONTRACT section 6: this kernel has no netem).
 *
 * Every frame read from TAP a is written to TAP b after --delay ms, and the
 * same from b to a, so a round trip across the cable grows by twice the
 * delay. Each direction is a FIFO bounded by --queue frames: a frame that
 * finds its queue full is dropped and counted, never blocks the other way.
 * The TAPs are created when the program starts and vanish when it exits;
 * the harness enslaves them to bridges (netlab_delay in netlab.sh).
 * SIGUSR1 prints the counters, SIGTERM/SIGINT/SIGHUP print them and exit 0.
 * It owns its two TAP file descriptors and its queues; nothing else. */

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX 65536          /* largest frame a TAP read can return */
#define READ_BATCH 256           /* frames read per wake-up per TAP */
#define QUEUE_DEFAULT 1000       /* frames per direction, like txqueuelen */
#define QUEUE_MAX 1000000
#define DELAY_MAX_MS 60000

struct frame {
	uint64_t due_ns;         /* CLOCK_MONOTONIC time to write it out */
	size_t len;              /* bytes in data */
	unsigned char *data;     /* malloc'd copy of the frame */
};

/* One direction: frames read from `in`, written to `out` when due. */
struct pipe_dir {
	const char *name;        /* "a2b" or "b2a", for the counters */
	int in;                  /* TAP fd frames are read from */
	int out;                 /* TAP fd frames are written to */
	struct frame *ring;      /* cap slots */
	size_t cap;              /* queue bound in frames */
	size_t head;             /* oldest frame */
	size_t count;            /* frames waiting */
	uint64_t fwd;            /* frames written out */
	uint64_t drop;           /* frames dropped: queue full */
	uint64_t err;            /* frames the out TAP refused, or no memory */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netlab-delayd --delay MS --tap-a NAME --tap-b NAME\n"
		"                     [--queue FRAMES] [--ready-file PATH]\n"
		"  --delay MS         one-way delay each way, 0..%d (required)\n"
		"  --tap-a NAME       first TAP device to create (required)\n"
		"  --tap-b NAME       second TAP device to create (required)\n"
		"  --queue FRAMES     frames waiting per direction, default %d;\n"
		"                     more are dropped and counted\n"
		"  --ready-file PATH  written once both TAPs exist\n"
		"Signals: USR1 prints counters; TERM, INT, HUP print them and exit.\n",
		DELAY_MAX_MS, QUEUE_DEFAULT);
}

static int parse_num(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "netlab-delayd: %s: want an integer %ld..%ld, got '%s'\n",
			opt, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Creates (or attaches to) TAP `name` without packet info, non-blocking. */
static int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd;

	if (strlen(name) >= IFNAMSIZ) {
		fprintf(stderr, "netlab-delayd: TAP name too long: %s\n", name);
		return -1;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "netlab-delayd: /dev/net/tun: %s\n", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "netlab-delayd: TUNSETIFF %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void print_stats(const struct pipe_dir *d, size_t n)
{
	size_t i;

	fprintf(stderr, "delayd: stats");
	for (i = 0; i < n; i++)
		fprintf(stderr, " %s_fwd=%llu %s_drop=%llu %s_err=%llu %s_queued=%zu",
			d[i].name, (unsigned long long)d[i].fwd,
			d[i].name, (unsigned long long)d[i].drop,
			d[i].name, (unsigned long long)d[i].err,
			d[i].name, d[i].count);
	fprintf(stderr, "\n");
	fflush(stderr);
}

/* Reads every frame waiting on d->in (up to READ_BATCH) into the queue. */
static int pipe_read(struct pipe_dir *d, unsigned char *buf, uint64_t delay_ns)
{
	int i;

	for (i = 0; i < READ_BATCH; i++) {
		ssize_t r = read(d->in, buf, FRAME_MAX);
		struct frame *f;

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			fprintf(stderr, "netlab-delayd: read %s: %s\n", d->name, strerror(errno));
			return -1;
		}
		if (r == 0)
			return 0;
		if (d->count == d->cap) {
			d->drop++;
			continue;
		}
		f = &d->ring[(d->head + d->count) % d->cap];
		f->data = malloc((size_t)r);
		if (!f->data) {
			d->err++;
			continue;
		}
		memcpy(f->data, buf, (size_t)r);
		f->len = (size_t)r;
		f->due_ns = now_ns() + delay_ns;
		d->count++;
	}
	return 0;
}

/* Writes out every frame that is due; returns the next due time or 0. */
static uint64_t pipe_release(struct pipe_dir *d, uint64_t now)
{
	while (d->count) {
		struct frame *f = &d->ring[d->head];

		if (f->due_ns > now)
			return f->due_ns;
		if (write(d->out, f->data, f->len) == (ssize_t)f->len)
			d->fwd++;
		else
			d->err++;
		free(f->data);
		f->data = NULL;
		d->head = (d->head + 1) % d->cap;
		d->count--;
	}
	return 0;
}

static void pipe_free(struct pipe_dir *d)
{
	while (d->count) {
		free(d->ring[d->head].data);
		d->head = (d->head + 1) % d->cap;
		d->count--;
	}
	free(d->ring);
	d->ring = NULL;
}

static int write_ready(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "netlab-delayd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *tap_a = NULL, *tap_b = NULL, *ready = NULL;
	long delay_ms = -1, queue = QUEUE_DEFAULT;
	struct pipe_dir dir[2];
	unsigned char *buf = NULL;
	int fa = -1, fb = -1, sfd = -1, rc = 1, i;
	uint64_t delay_ns;
	sigset_t mask;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "netlab-delayd: %s: unknown option or missing value\n", o);
			return 2;
		}
		if (!strcmp(o, "--delay")) {
			if (parse_num(o, argv[++i], 0, DELAY_MAX_MS, &delay_ms))
				return 2;
		} else if (!strcmp(o, "--queue")) {
			if (parse_num(o, argv[++i], 1, QUEUE_MAX, &queue))
				return 2;
		} else if (!strcmp(o, "--tap-a")) {
			tap_a = argv[++i];
		} else if (!strcmp(o, "--tap-b")) {
			tap_b = argv[++i];
		} else if (!strcmp(o, "--ready-file")) {
			ready = argv[++i];
		} else {
			fprintf(stderr, "netlab-delayd: unknown option %s\n", o);
			return 2;
		}
	}
	if (delay_ms < 0 || !tap_a || !tap_b) {
		fprintf(stderr, "netlab-delayd: --delay, --tap-a and --tap-b are required\n");
		usage(stderr);
		return 2;
	}
	delay_ns = (uint64_t)delay_ms * 1000000u;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "netlab-delayd: signalfd: %s\n", strerror(errno));
		return 1;
	}

	memset(dir, 0, sizeof(dir));
	buf = malloc(FRAME_MAX);
	dir[0].ring = calloc((size_t)queue, sizeof(struct frame));
	dir[1].ring = calloc((size_t)queue, sizeof(struct frame));
	if (!buf || !dir[0].ring || !dir[1].ring) {
		fprintf(stderr, "netlab-delayd: out of memory\n");
		goto out;
	}
	if ((fa = tap_open(tap_a)) < 0 || (fb = tap_open(tap_b)) < 0)
		goto out;
	dir[0] = (struct pipe_dir){ .name = "a2b", .in = fa, .out = fb,
				    .ring = dir[0].ring, .cap = (size_t)queue };
	dir[1] = (struct pipe_dir){ .name = "b2a", .in = fb, .out = fa,
				    .ring = dir[1].ring, .cap = (size_t)queue };
	if (ready && write_ready(ready))
		goto out;
	fprintf(stderr, "delayd: %s <-> %s, delay %ld ms each way, queue %ld frames\n",
		tap_a, tap_b, delay_ms, queue);

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = fa, .events = POLLIN },
			{ .fd = fb, .events = POLLIN },
		};
		struct timespec ts, *tsp = NULL;
		uint64_t now = now_ns(), next = 0, n;
		int d;

		for (d = 0; d < 2; d++) {
			n = pipe_release(&dir[d], now);
			if (n && (!next || n < next))
				next = n;
		}
		if (next) {
			uint64_t wait = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
			tsp = &ts;
		}
		if (ppoll(p, 3, tsp, NULL) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "netlab-delayd: ppoll: %s\n", strerror(errno));
			goto out;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				print_stats(dir, 2);
				if (si.ssi_signo != SIGUSR1) {
					rc = 0;
					goto out;
				}
			}
		}
		for (d = 0; d < 2; d++) {
			if (p[1 + d].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				fprintf(stderr, "netlab-delayd: TAP %s failed\n",
					d ? tap_b : tap_a);
				goto out;
			}
			if ((p[1 + d].revents & POLLIN) && pipe_read(&dir[d], buf, delay_ns))
				goto out;
		}
	}

out:
	pipe_free(&dir[0]);
	pipe_free(&dir[1]);
	free(buf);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
