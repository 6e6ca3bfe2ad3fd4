/* The forwarder's wire format inside the carrier (docs/forwarding.md,
 * "Framing"): the header that starts every stream, the header of every
 * DATAGRAM frame, and the reset codes. Encoding and decoding only. */
#ifndef MESH_CLIENT_FWD_FRAME_H
#define MESH_CLIENT_FWD_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
	FWD_WIRE_VERSION = 1,
	FWD_HDR_LEN = 4,      /* version, kind, port field (uint16 BE) */
	FWD_UDP_LEN_LEN = 4,  /* uint32 BE length after a UDP-stream header */
	/* RFC 768 length field 65535 - 8 (UDP) - 20 (IPv4 header): the
	 * largest datagram an app can send over IPv4, which must arrive whole. */
	FWD_UDP_MAX = 65507,
};

enum fwd_kind {
	FWD_KIND_TCP = 1,        /* stream: one TCP connection, then raw bytes */
	FWD_KIND_UDP_STREAM = 2, /* stream: length, one datagram, FIN */
	FWD_KIND_UDP_DGRAM = 3,  /* DATAGRAM frame: one datagram follows */
};

/* Application codes of the stream resets the forwarder sends. A receiver
 * treats them all alike (the local socket is closed with RST); they only
 * tell logs and counters why. */
#define FWD_RST_APP       UINT64_C(0x6d660001) /* the local app reset/aborted */
#define FWD_RST_REFUSED   UINT64_C(0x6d660002) /* destination app not reachable */
#define FWD_RST_PROTO     UINT64_C(0x6d660003) /* malformed header or framing */
#define FWD_RST_NOT_FWD   UINT64_C(0x6d660004) /* slot/port not forwarded here */
#define FWD_RST_LIMIT     UINT64_C(0x6d660005) /* stream count or buffer bound */
#define FWD_RST_SHUTDOWN  UINT64_C(0x6d660006) /* link detached, forwarder stopped */
#define FWD_RST_INTERNAL  UINT64_C(0x6d660007) /* local resource failure */

struct fwd_hdr {
	uint8_t version;
	uint8_t kind;  /* enum fwd_kind */
	uint16_t port; /* identity plan: slot index; peer-VIP plan: port */
};

void fwd_hdr_encode(uint8_t *p, enum fwd_kind kind, uint16_t port);
/* Returns 0, EAGAIN when n < FWD_HDR_LEN, or EPROTO for an unknown
 * version or kind. */
int fwd_hdr_decode(const uint8_t *p, size_t n, struct fwd_hdr *h);

void fwd_put_u32(uint8_t *p, uint32_t v);
uint32_t fwd_get_u32(const uint8_t *p);

#endif
