/* An in-memory carrier pair for tests: two struct carrier ends joined in
 * one process on libre's main loop, with the semantics client/carrier.h
 * promises and the forwarder relies on: a flow-control window per stream
 * (data stops until the reader calls stream_consumed), a bounded send
 * buffer per stream (stream_write returns short, writable follows), FIN,
 * reset, release, and datagrams up to a maximum size. Every callback is
 * made from the main loop, never from inside an op, as a QUIC carrier
 * would. Test-only: not linked into the programs. */
#ifndef MESH_TESTS_CARRIER_PAIR_H
#define MESH_TESTS_CARRIER_PAIR_H

#include <stddef.h>
#include <stdint.h>

struct carrier;
struct carrier_pair;

struct carrier_pair_opts {
	size_t stream_window; /* unconsumed bytes a reader may hold per
			       * stream (QUIC max_stream_data); 256 KiB */
	size_t stream_sndbuf; /* undelivered bytes stream_write accepts per
			       * stream; 64 KiB */
	size_t dgram_max;     /* largest datagram; 1200 */
	size_t dgram_queue;   /* datagrams queued per direction; 256 */
	unsigned max_streams; /* streams one side may hold open; 1024 */
	size_t chunk;         /* bytes per data callback; 16 KiB */
};

/* Reset code the pair itself uses (release while open, no handlers). */
#define CARRIER_PAIR_RST_RELEASED UINT64_C(0x70610001)

/* o may be NULL (all defaults); zero fields take their default. */
int carrier_pair_alloc(struct carrier_pair **pp,
		       const struct carrier_pair_opts *o);
/* side 0 or 1. The ends live as long as the pair; detach them from their
 * users before freeing the pair. */
struct carrier *carrier_pair_end(struct carrier_pair *p, int side);

struct carrier_pair_stats {
	size_t streams;        /* stream objects alive */
	size_t queued;         /* bytes written, not yet delivered */
	size_t unconsumed;     /* bytes delivered, not yet consumed */
	uint64_t dgrams;       /* datagrams delivered */
	uint64_t dgrams_dropped;
};
void carrier_pair_stats(const struct carrier_pair *p,
			struct carrier_pair_stats *st);

#endif
