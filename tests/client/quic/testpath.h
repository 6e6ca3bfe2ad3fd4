/* Test paths for the QUIC carrier: an in-memory pair (optional random drop
 * and one-way delay) and a UDP socket pair on 127.0.0.1. Both are plain
 * struct mesh_path implementations, as ICE's would be. */
#ifndef MESH_TESTS_QUIC_TESTPATH_H
#define MESH_TESTS_QUIC_TESTPATH_H

#include <stdbool.h>
#include <stdint.h>

#include "client/path.h"

struct mempath;

/* Two ends; what a sends, b receives and the reverse. drop is a
 * probability (0..1) applied to each datagram in each direction,
 * delay_ms a one-way delay. mtu goes into path.mtu. Free with mem_deref
 * (each end). seed makes the drops reproducible. */
int mempath_pair(struct mempath **a, struct mempath **b, double drop,
		 uint32_t delay_ms, size_t mtu, uint64_t seed);
struct mesh_path *mempath_path(struct mempath *m);
void mempath_set_down(struct mempath *m, bool down); /* both directions */
void mempath_set_drop(struct mempath *m, double drop); /* this end's sends */
uint64_t mempath_sent(const struct mempath *m);
uint64_t mempath_dropped(const struct mempath *m);

struct udppath;

/* A UDP socket bound to 127.0.0.1 (port 0: any). */
int udppath_open(struct udppath **up, uint16_t port, size_t mtu);
uint16_t udppath_port(const struct udppath *u);
int udppath_connect(struct udppath *u, uint16_t peer_port);
struct mesh_path *udppath_path(struct udppath *u);
uint64_t udppath_eagain(const struct udppath *u);

#endif
