/* Encoding and decoding of the forwarder's stream and datagram headers
 * (client/fwd_frame.h). Pure functions: no I/O, no allocation. */
#include "client/fwd_frame.h"

#include <errno.h>

void fwd_hdr_encode(uint8_t *p, enum fwd_kind kind, uint16_t port)
{
	p[0] = FWD_WIRE_VERSION;
	p[1] = (uint8_t)kind;
	p[2] = (uint8_t)(port >> 8);
	p[3] = (uint8_t)port;
}

int fwd_hdr_decode(const uint8_t *p, size_t n, struct fwd_hdr *h)
{
	if (n < FWD_HDR_LEN)
		return EAGAIN;
	h->version = p[0];
	h->kind = p[1];
	h->port = (uint16_t)((p[2] << 8) | p[3]);
	if (h->version != FWD_WIRE_VERSION)
		return EPROTO;
	if (h->kind != FWD_KIND_TCP && h->kind != FWD_KIND_UDP_STREAM &&
	    h->kind != FWD_KIND_UDP_DGRAM)
		return EPROTO;
	return 0;
}

void fwd_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t fwd_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}
