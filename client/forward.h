/* The port forwarder (CONTRACT section 5, docs/forwarding.md): binds
 * loopback TCP and UDP listeners for every other peer and carries their
 * traffic over that peer's carrier (client/carrier.h), delivering it to
 * the local apps from the sender's identity address. Runs on libre's main
 * loop; not thread-safe. */
#ifndef MESH_CLIENT_FORWARD_H
#define MESH_CLIENT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct carrier;
struct forward;
struct peer_table;

struct forward_opts {
	/* The loopback address that stands for this host: local apps listen
	 * there and identity-plan listeners bind there. NULL means
	 * "127.0.0.1" (CONTRACT section 5); tests give each in-process
	 * forwarder its own so two "hosts" fit in one process. */
	const char *host;
};

/* Per-peer counters for the admin API. "tx" is toward the peer (read from
 * local apps), "rx" is from the peer (written to local apps). */
struct forward_counters {
	uint64_t tcp_bytes_tx, tcp_bytes_rx;
	uint64_t udp_bytes_tx, udp_bytes_rx;     /* datagram payload bytes */
	uint64_t udp_dgrams_tx, udp_dgrams_rx;
	uint64_t udp_large_tx, udp_large_rx;     /* of those, carried on a stream */
	uint64_t tcp_conns_tx;     /* local apps' connections carried to the peer */
	uint64_t tcp_conns_rx;     /* the peer's connections delivered here */
	uint64_t tcp_refused_no_link; /* accepted in a race with detach, reset */
	uint64_t tcp_open_failed;  /* the carrier could not open a stream */
	uint64_t tcp_refused;      /* the local app was not listening */
	uint64_t tcp_src_fallback; /* identity plan: source port busy, ephemeral used */
	uint64_t tcp_resets_tx;    /* resets sent to the peer */
	uint64_t tcp_resets_rx;    /* resets received from the peer */
	uint64_t streams_rejected; /* peer streams refused: bad header, not
				    * forwarded, limits */
	/* UDP datagrams dropped, by reason. */
	uint64_t drop_no_link;     /* no carrier attached */
	uint64_t drop_carrier;     /* the carrier refused it (queue full, error) */
	uint64_t drop_backlog;     /* too many large datagrams in flight */
	uint64_t drop_bad_frame;   /* malformed frame from the peer */
	uint64_t drop_not_fwd;     /* slot/port not forwarded here */
	uint64_t drop_local;       /* sendto() to the local app failed */
	/* Gauges. */
	uint32_t tcp_open;         /* TCP connections open now */
	uint32_t streams_open;     /* carrier streams held now (all kinds) */
	uint64_t buffered;         /* bytes held in forwarder buffers now */
	bool attached;             /* a carrier is attached */
};

/* Binds every listener of the table (TCP ones stay closed to connections
 * until a carrier is attached, so apps get ECONNREFUSED while the link is
 * down). On failure returns an errno and writes one line into err (e.g.
 * which address is in use). Keeps a reference to t. */
int forward_alloc(struct forward **fp, struct peer_table *t,
		  const struct forward_opts *opts, char *err, size_t errlen);

/* The link manager hands over a carrier when the link to peer_id comes
 * up: the forwarder sets c->h and c->arg and opens that peer's TCP
 * listeners. Attaching over an attached carrier detaches the old one
 * first. Returns 0, ENOENT (unknown peer) or EINVAL (self). */
int forward_attach(struct forward *f, const char *peer_id, struct carrier *c);
/* Before the carrier goes away: resets every stream of that peer (local
 * apps see RST), releases the handles, clears c->h/c->arg and closes the
 * peer's TCP listeners. Must not be called from inside a carrier op the
 * forwarder made; may be called from a carrier or link event. */
void forward_detach(struct forward *f, const char *peer_id);

int forward_counters(const struct forward *f, const char *peer_id,
		     struct forward_counters *out);

/* File descriptors the table needs for listeners alone (two per forwarded
 * port of every other peer); main() sizes fd_setsize() and RLIMIT_NOFILE
 * with room for connections on top. */
size_t forward_fd_estimate(const struct peer_table *t);

#endif
