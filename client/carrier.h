/* What the port forwarder needs from a link to one peer: reliable
 * bidirectional streams with back-pressure, and unreliable datagrams.
 * The QUIC connection (client/quic.c) is the real carrier; tests may
 * plug in an in-memory pair. Everything runs on libre's main loop. */
#ifndef MESH_CLIENT_CARRIER_H
#define MESH_CLIENT_CARRIER_H

#include <stddef.h>
#include <stdint.h>

struct carrier;
struct cstream;

struct carrier_handlers {
	/* The remote side opened a stream; set its handlers before returning. */
	void (*stream_opened)(struct cstream *s, void *arg);
	/* A whole datagram arrived (never a fragment). */
	void (*datagram)(const uint8_t *p, size_t n, void *arg);
};

struct cstream_handlers {
	/* Data arrived. The receiver calls cstream_consumed() once it has
	 * passed the bytes on: the peer's send window only grows then, so a
	 * slow local reader slows the remote writer. */
	void (*data)(struct cstream *s, const uint8_t *p, size_t n, void *arg);
	void (*fin)(struct cstream *s, void *arg);                 /* end of stream */
	void (*reset)(struct cstream *s, uint64_t code, void *arg); /* aborted */
	void (*writable)(struct cstream *s, void *arg);            /* room again after a short write */
};

struct carrier_ops {
	int (*stream_open)(struct carrier *c, struct cstream **out);
	void (*stream_set_handlers)(struct cstream *s, const struct cstream_handlers *h, void *arg);
	/* Accepts up to n bytes; returns how many (0: buffer full, wait for
	 * writable) or a negative errno. */
	long (*stream_write)(struct cstream *s, const uint8_t *p, size_t n);
	void (*stream_consumed)(struct cstream *s, size_t n);
	int (*stream_shutdown_write)(struct cstream *s);      /* sends FIN after queued data */
	void (*stream_reset)(struct cstream *s, uint64_t code); /* aborts both directions */
	void (*stream_release)(struct cstream *s);            /* the handle is no longer used */
	/* Returns 0, or EMSGSIZE when p does not fit one datagram (the
	 * caller then sends it on a stream), or another errno. */
	int (*datagram_send)(struct carrier *c, const uint8_t *p, size_t n);
	size_t (*datagram_max)(struct carrier *c);
};

struct carrier {
	const struct carrier_ops *ops;
	/* Set by the carrier's user (forward_attach() sets both, detach
	 * clears them); the carrier reads them at each call and passes
	 * c->arg to h.stream_opened and h.datagram. */
	struct carrier_handlers h;
	void *arg;
};

#endif
