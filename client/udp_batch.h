/* Batched datagram I/O on a UDP socket: many datagrams per system call
 * (UDP GSO to send, UDP GRO and a read loop to receive). A QUIC flow at
 * Gbit/s rates is ~100,000 packets/s; one sendto and one recvfrom per
 * packet spend most of the client's time in the kernel, and GSO also
 * lets the packets cross veth, bridges and NAT as one. */
#ifndef MESH_CLIENT_UDP_BATCH_H
#define MESH_CLIENT_UDP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sa;

enum {
	UDP_BATCH_MAX_SEGS = 64,  /* the kernel's UDP GSO limit */
};

/* Sends len bytes as datagrams of seg bytes (the last may be shorter) to
 * dst. Uses GSO while *gso says it works, clearing it when the kernel or
 * device refuses it, then sendmmsg. Returns 0, or an errno with *sent the
 * bytes of the whole datagrams that went. */
int udp_batch_send(int fd, const struct sa *dst, const uint8_t *p, size_t len, size_t seg,
		   bool *gso, size_t *sent);
/* Asks the kernel to coalesce received datagrams (UDP_GRO); false when
 * it cannot (then every read returns one datagram). */
bool udp_batch_gro_enable(int fd);
/* One read: up to cap bytes into buf, src filled, *seg the size of the
 * datagrams it holds (all seg bytes, the last may be shorter). Returns
 * the bytes read, or -1 with errno (EAGAIN when nothing is left). */
ssize_t udp_batch_recv(int fd, uint8_t *buf, size_t cap, struct sa *src, size_t *seg);

#endif
