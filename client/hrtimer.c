/* hrtimer: a timerfd registered with libre's fd_listen, for deadlines
 * finer than libre's millisecond timers (QUIC pacing). Owns its file
 * descriptor and nothing else; it never calls the handler from inside
 * hrtimer_start, nor after hrtimer_cancel or mem_deref. */
#include <errno.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <re.h>

#include "client/hrtimer.h"

struct hrtimer {
	int fd;
	bool armed;
	hrtimer_h *h;
	void *arg;
};

static void hrtimer_destructor(void *arg)
{
	struct hrtimer *t = arg;

	if (t->fd >= 0) {
		fd_close(t->fd);
		(void)close(t->fd);
	}
}

static void hrtimer_read(int flags, void *arg)
{
	struct hrtimer *t = arg;
	uint64_t expirations;

	(void)flags;
	/* EAGAIN: re-armed after it fired and before this read. */
	if (read(t->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	if (!t->armed)
		return;
	t->armed = false;
	t->h(t->arg);
}

int hrtimer_alloc(struct hrtimer **tp, hrtimer_h *h, void *arg)
{
	struct hrtimer *t;
	int err;

	if (!tp || !h)
		return EINVAL;
	t = mem_zalloc(sizeof(*t), hrtimer_destructor);
	if (!t)
		return ENOMEM;
	t->h = h;
	t->arg = arg;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0) {
		err = errno;
		mem_deref(t);
		return err;
	}
	err = fd_listen(t->fd, FD_READ, hrtimer_read, t);
	if (err) {
		(void)close(t->fd);
		t->fd = -1;
		mem_deref(t);
		return err;
	}
	*tp = t;
	return 0;
}

int hrtimer_start(struct hrtimer *t, uint64_t delay_ns)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (!t)
		return EINVAL;
	if (delay_ns == 0)
		delay_ns = 1; /* an all-zero it_value disarms */
	its.it_value.tv_sec = (time_t)(delay_ns / 1000000000u);
	its.it_value.tv_nsec = (long)(delay_ns % 1000000000u);
	if (timerfd_settime(t->fd, 0, &its, NULL) != 0)
		return errno;
	t->armed = true;
	return 0;
}

void hrtimer_cancel(struct hrtimer *t)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (!t || !t->armed)
		return;
	t->armed = false;
	(void)timerfd_settime(t->fd, 0, &its, NULL);
}
