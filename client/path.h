/* A network path that carries datagrams between two peers: whatever ICE
 * selected (host, srflx, prflx, or a TURN relay over UDP, TCP or TLS).
 * QUIC sends through it and is fed by it, and never learns which path
 * it is on, so a later change of path does not disturb the connection. */
#ifndef MESH_CLIENT_PATH_H
#define MESH_CLIENT_PATH_H

#include <stddef.h>
#include <stdint.h>

struct mesh_path;

typedef int (*path_send_fn)(struct mesh_path *p, const uint8_t *data, size_t len);
/* Sends len bytes as datagrams of seg bytes each (the last may be
 * shorter), in one system call where the path can (UDP GSO). Returns 0,
 * or an errno with *sent the bytes (whole datagrams) that went before
 * it; EAGAIN/ENOBUFS mean "try the rest later". */
typedef int (*path_send_batch_fn)(struct mesh_path *p, const uint8_t *data, size_t len,
				  size_t seg, size_t *sent);
typedef void (*path_recv_fn)(const uint8_t *data, size_t len, void *arg);

struct mesh_path {
	path_send_fn send;  /* set by the path's owner (ICE) */
	path_send_batch_fn send_batch; /* optional: NULL sends one by one */
	path_recv_fn recv;  /* set by the path's user (QUIC) */
	void *recv_arg;
	size_t mtu;         /* largest datagram the path carries whole */
};

#endif
