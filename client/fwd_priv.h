/* Internals shared by client/forward.c, fwd_tcp.c, fwd_udp.c and
 * fwd_sock.c; not for other modules (they use client/forward.h). */
#ifndef MESH_CLIENT_FWD_PRIV_H
#define MESH_CLIENT_FWD_PRIV_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <re.h>

#include "client/carrier.h"
#include "client/forward.h"
#include "client/fwd_frame.h"
#include "client/peers.h"

/* Bounds (docs/forwarding.md "Limits"). */
enum {
	FWD_CHUNK = 64 * 1024,        /* one read from a local TCP socket */
	FWD_READ_BUDGET = 16,         /* reads per socket event before yielding */
	FWD_UDP_BUDGET = 64,          /* datagrams per socket event */
	FWD_ACCEPT_BUDGET = 16,       /* accepts per listener event */
	FWD_BACKLOG = 128,            /* listen() backlog */
	FWD_STREAMS_MAX = 4096,       /* streams held per peer, all kinds */
	FWD_UDP_STREAMS_MAX = 64,     /* large datagrams in flight per peer and
				       * direction */
	/* Bytes the carrier delivered but the local socket has not taken
	 * yet. The carrier's stream window bounds this in practice; these
	 * catch a carrier that ignores its own window. */
	FWD_STREAM_RXBUF_MAX = 16 * 1024 * 1024,
	FWD_PEER_RXBUF_MAX = 64 * 1024 * 1024,
	FWD_RXBUF_KEEP = 256 * 1024,  /* an emptied buffer above this is freed */
	/* Read buffer shared by all sockets: one TCP chunk, or the largest
	 * datagram with room for a UDP-stream header in front and one byte
	 * more to notice an oversized one. */
	FWD_SCRATCH_UDP = FWD_HDR_LEN + FWD_UDP_LEN_LEN + FWD_UDP_MAX + 1,
	FWD_SCRATCH = FWD_CHUNK > FWD_SCRATCH_UDP ? FWD_CHUNK : FWD_SCRATCH_UDP,
	FWD_UDP_SOCKBUF = 1024 * 1024, /* asked for; the kernel caps it at
					* net.core.[rw]mem_max */
};

struct forward;
struct fwd_peer;

/* One forwarded port of one other peer. */
struct fwd_slot {
	struct fwd_peer *peer;
	size_t k;                /* slot (identity plan) or allow index (VIP) */
	uint16_t wire;           /* port field on the wire: k, or the port */
	struct sockaddr_in bind; /* our sockets here: host:<peer's port k>, or
				  * <peer's VIP>:<port> */
	struct sockaddr_in app;  /* where that peer's traffic is delivered:
				  * host:<own port k>, or host:<port> */
	bool keep_src_port;      /* identity plan: TCP connects from bind */
	int udp_fd;              /* -1 when the slot carries no UDP */
	int tcp_fd;              /* listener; -1 if it could not be rebound */
	bool listening;          /* accepting (a carrier is attached) */
	struct tmr tmr;          /* accept() rest after EMFILE */
};

struct fwd_peer {
	struct forward *fwd;
	size_t idx;              /* index in the peer table */
	const char *id;          /* points into the peer table */
	bool self;               /* this host: no slots, no carrier */
	struct carrier *car;     /* attached link, NULL while down */
	struct fwd_slot *slots;  /* nslots of them */
	size_t nslots;
	struct list streams;     /* struct fwd_stream, every kind */
	unsigned nstreams;       /* list_count(&streams), kept as we go */
	unsigned ntcp;           /* of those, TCP connections */
	unsigned udp_out, udp_in;/* of those, large datagrams each way */
	size_t buffered;         /* bytes held in this peer's stream buffers */
	struct forward_counters cnt;
};

struct forward {
	struct peer_table *t;
	struct fwd_peer *peers;  /* one per table entry, self included */
	size_t npeers;
	struct in_addr host;     /* network byte order */
	uint8_t *scratch;        /* FWD_SCRATCH bytes shared by all reads */
};

enum fwd_skind {
	FWD_S_HDR,     /* opened by the peer, header not complete yet */
	FWD_S_TCP,     /* a TCP connection, either direction */
	FWD_S_UDP_IN,  /* a large datagram from the peer */
	FWD_S_UDP_OUT, /* a large datagram to the peer */
};

/* One carrier stream and what hangs on it. Held by peer->streams; event
 * handlers take a reference while they run, so closing inside a handler
 * (dead = true) frees only at the end. */
struct fwd_stream {
	struct le le;            /* in peer->streams */
	struct fwd_peer *peer;
	struct fwd_slot *slot;   /* NULL until the header is known */
	struct cstream *cs;      /* NULL once released */
	enum fwd_skind kind;
	bool dead;               /* closed, waiting for the last reference */
	/* Header (and UDP length) of a peer-opened stream. */
	uint8_t hdr[FWD_HDR_LEN + FWD_UDP_LEN_LEN];
	size_t hdrlen;
	/* TCP: the local socket. */
	int fd;
	int fdflags;             /* what fd_listen() currently asks for */
	bool connecting;         /* our connect() to the app is in progress */
	bool sock_eof;           /* local app shut its write side (read 0) */
	bool fin_sent;           /* stream_shutdown_write() done */
	bool fin_rcvd;           /* the peer's FIN arrived */
	bool sock_shut;          /* shutdown(SHUT_WR) done on the local socket */
	/* Toward the peer: bytes not yet accepted by stream_write (a TCP
	 * header plus at most one read, or one whole large datagram). */
	uint8_t *tx;
	size_t txoff, txlen, txcap;
	/* From the peer: bytes not yet written into the local socket (TCP)
	 * or the datagram being collected (UDP_IN). */
	uint8_t *rx;
	size_t rxoff, rxlen, rxcap;
	size_t udp_len;          /* UDP_IN: length announced */
	bool udp_done;           /* UDP_IN: delivered */
};

/* forward.c */
extern const struct cstream_handlers fwd_stream_handlers;
/* A stream held by peer->streams (which owns the reference; *stp is
 * borrowed). */
int fwd_stream_alloc(struct fwd_stream **stp, struct fwd_peer *peer,
		     struct cstream *cs, enum fwd_skind kind);
/* Closes a stream: with reset != 0 the stream is reset with that code
 * first; abort closes the local socket with RST. Idempotent. */
void fwd_stream_close(struct fwd_stream *st, uint64_t reset, bool abort);
struct fwd_slot *fwd_slot_by_wire(struct fwd_peer *peer, uint16_t wire,
				  bool udp);
void fwd_stream_set_kind(struct fwd_stream *st, enum fwd_skind kind);
/* st->rx: append within max bytes for the stream and the per-peer bound
 * (0, EOVERFLOW or ENOMEM); drop n bytes from its front. */
int fwd_buf_append(struct fwd_stream *st, const uint8_t *p, size_t n,
		   size_t max);
void fwd_buf_drop(struct fwd_stream *st, size_t n);
/* st->tx: append (0 or ENOMEM); write into the stream: 0 when empty,
 * EAGAIN when the carrier is full (writable follows), else an errno. */
int fwd_tx_put(struct fwd_stream *st, const uint8_t *p, size_t n);
int fwd_tx_flush(struct fwd_stream *st);

/* fwd_tcp.c */
void fwd_tcp_accept(int flags, void *arg); /* fd handler of a listener */
void fwd_tcp_inbound(struct fwd_stream *st, uint16_t wire);
void fwd_tcp_data(struct fwd_stream *st, const uint8_t *p, size_t n);
void fwd_tcp_fin(struct fwd_stream *st);
void fwd_tcp_reset(struct fwd_stream *st, uint64_t code);
void fwd_tcp_writable(struct fwd_stream *st);

/* fwd_udp.c */
void fwd_udp_recv(int flags, void *arg);  /* fd handler of a slot's socket */
void fwd_udp_datagram(const uint8_t *p, size_t n, void *arg); /* carrier */
int fwd_udp_in_start(struct fwd_stream *st, uint16_t wire, uint32_t len);
void fwd_udp_in_data(struct fwd_stream *st, const uint8_t *p, size_t n);
void fwd_udp_in_fin(struct fwd_stream *st);
void fwd_udp_out_writable(struct fwd_stream *st);
void fwd_udp_out_fin(struct fwd_stream *st);

/* fwd_sock.c */
int fwd_sock_udp(const struct sockaddr_in *bind, int *fdp);
int fwd_sock_tcp_listener(const struct sockaddr_in *bind, bool reuseport,
			  int *fdp);
int fwd_sock_tcp_connect(const struct sockaddr_in *src, bool reuseport,
			 const struct sockaddr_in *dst, int *fdp,
			 bool *inprogress);
void fwd_sock_abort(int fd);   /* fd_close, SO_LINGER 0, close: sends RST */
void fwd_sock_close(int fd);   /* fd_close, close */
int fwd_sock_error(int fd);    /* SO_ERROR */
const char *fwd_sock_fmt(const struct sockaddr_in *a, char *buf, size_t n);

#endif
