/* A one-shot timer with nanosecond resolution on libre's main loop.
 * libre's tmr ticks in whole milliseconds, which caps a paced QUIC sender
 * at one send quantum (at most 64 KiB in ngtcp2 0.12) per millisecond,
 * about 0.5 Gbit/s, when nothing else wakes it; pacing needs its
 * deadlines kept to the microsecond. Freed with mem_deref. */
#ifndef MESH_CLIENT_HRTIMER_H
#define MESH_CLIENT_HRTIMER_H

#include <stdbool.h>
#include <stdint.h>

struct hrtimer;
typedef void (hrtimer_h)(void *arg);

int hrtimer_alloc(struct hrtimer **tp, hrtimer_h *h, void *arg);
/* (Re)arms the timer delay_ns from now (0: on the next loop turn). */
int hrtimer_start(struct hrtimer *t, uint64_t delay_ns);
void hrtimer_cancel(struct hrtimer *t);

#endif
