/* QUIC carrier: one QUIC connection (ngtcp2 + GnuTLS, TLS 1.3, mutual
 * certificate-fingerprint authentication, ALPN "mesh/1") per pair of
 * peers, running on libre's main loop over a struct mesh_path. It exposes
 * the struct carrier of client/carrier.h (streams with back-pressure and
 * DATAGRAM frames) to the port forwarder. See docs/quic.md. */
#ifndef MESH_CLIENT_QUIC_H
#define MESH_CLIENT_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/carrier.h"
#include "client/path.h"

struct quic_conn;
struct quic_identity;

/* A per-start key pair and self-signed certificate (Ed25519). Its
 * fingerprint is the lower-case hex SHA-256 of the DER certificate, the
 * value that travels in the signed offer (CONTRACT section 3). Free with
 * mem_deref; connections keep their own reference. */
int quic_identity_new(struct quic_identity **idp);
const char *quic_identity_fingerprint(const struct quic_identity *id);

enum quic_role {
	QUIC_ROLE_CLIENT, /* the lexically smaller peer id (CONTRACT section 4) */
	QUIC_ROLE_SERVER,
};

enum quic_event {
	QUIC_EV_CONNECTED,   /* handshake confirmed, both certificates checked */
	QUIC_EV_CLOSED,      /* closed: idle, by either side, or on error */
	QUIC_EV_AUTH_FAILED, /* a certificate fingerprint did not match; no data flowed */
};

struct quic_close_info {
	bool local;         /* this side ended it (false: the peer did) */
	bool app;           /* code is an application code, not a transport one */
	uint64_t code;      /* QUIC error code (RFC 9000 section 20) */
	const char *reason; /* one line for the log, never NULL */
};

/* ci is NULL for QUIC_EV_CONNECTED. The handler may mem_deref the
 * connection (it then stops at once and sends nothing more). */
typedef void (quic_state_h)(struct quic_conn *qc, enum quic_event ev,
			    const struct quic_close_info *ci, void *arg);

enum quic_cc {
	QUIC_CC_DEFAULT = 0,
	QUIC_CC_RENO,
	QUIC_CC_CUBIC,
	QUIC_CC_BBR,
	QUIC_CC_BBR2,
};

struct quic_config {
	enum quic_role role;
	struct quic_identity *id;  /* ours; referenced, not copied */
	const char *remote_fp;     /* peer's fingerprint, 64 lower-case hex */
	quic_state_h *stateh;      /* gets the arg of quic_conn_alloc */
	/* Zero selects the default of each (docs/quic.md). */
	uint64_t idle_timeout_ms;  /* default 15000 */
	uint64_t keepalive_ms;     /* default 5000 */
	uint64_t handshake_timeout_ms; /* default 10000 */
	uint64_t initial_rtt_ms;   /* e.g. from ICE checks; default 333 (RFC 9002) */
	size_t stream_sndbuf;      /* per-stream send buffer bound; default 1 MiB */
	enum quic_cc cc;           /* congestion controller; default BBRv2 */
};

/* Codes the carrier itself passes to cstream_handlers.reset. */
#define QUIC_ERR_CONN_CLOSED     UINT64_C(0x6d7f0001) /* connection went away */
#define QUIC_ERR_STREAM_RELEASED UINT64_C(0x6d7f0002) /* released while open */

/* Carrier behaviour beyond carrier.h (docs/quic.md): stream_open and
 * datagram_send return ENOTCONN before QUIC_EV_CONNECTED and after a
 * close; stream_open returns EAGAIN while the peer's stream limit is
 * reached; datagram_send returns ENOBUFS when its small queue is full (the
 * datagram is dropped, as UDP would). After a reset (either side), or
 * release, cstream_consumed() is no longer needed. Every cstream handle
 * must be released, also after its connection is gone. */

/* Installs itself as path->recv. A client starts the handshake at once, a
 * server waits for the client's first packet. h and arg become the
 * carrier's h and arg (its user may replace them later, e.g.
 * forward_attach()); arg is also cfg->stateh's argument. The path must
 * outlive the connection. */
int quic_conn_alloc(struct quic_conn **qcp, const struct quic_config *cfg,
		    struct mesh_path *path, const struct carrier_handlers *h,
		    void *arg);
struct carrier *quic_carrier(struct quic_conn *qc);

/* Sends CONNECTION_CLOSE with an application code so the peer learns at
 * once (e.g. on SIGTERM); the state handler then sees QUIC_EV_CLOSED with
 * local=true. Streams get reset(QUIC_ERR_CONN_CLOSED). Idempotent. */
void quic_conn_close(struct quic_conn *qc, uint64_t app_error,
		     const char *reason);

bool quic_conn_is_connected(const struct quic_conn *qc);

struct quic_stats {
	uint64_t srtt_us, min_rtt_us, latest_rtt_us;
	uint64_t cwnd, bytes_in_flight;
	uint64_t tx_pkts, rx_pkts, tx_bytes, rx_bytes; /* UDP payloads */
	uint64_t stream_tx_bytes, stream_rx_bytes;
	uint64_t dgram_tx, dgram_rx, dgram_dropped;
	size_t streams;       /* streams not yet freed (open, or released and draining) */
	size_t max_udp_payload;
};
void quic_conn_stats(const struct quic_conn *qc, struct quic_stats *st);

#endif
