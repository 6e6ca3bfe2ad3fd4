/* The monotonic clock in the units the project measures intervals in.
 * Intervals (ages, TTLs, deadlines, rate limits) use it so that a step of
 * the wall clock neither expires nor extends anything. */
#ifndef MESH_COMMON_CLOCK_H
#define MESH_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
