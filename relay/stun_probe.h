/* The few STUN (RFC 8489) bytes the readiness probe needs: build a Binding
 * request, check a Binding success response. Pure functions, no I/O, so
 * tests/turn/stun_probe_test.c can feed them anything. */
#ifndef MESH_RELAY_STUN_PROBE_H
#define MESH_RELAY_STUN_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 8489 section 5: 20-byte header, 96-bit transaction id. */
#define STUN_HEADER_LEN 20
#define STUN_TXID_LEN 12
/* Header plus a FINGERPRINT attribute (4 + 4 bytes). */
#define STUN_PROBE_REQUEST_LEN (STUN_HEADER_LEN + 8)

struct stun_mapped {
	int family;        /* AF_INET or AF_INET6 */
	uint16_t port;     /* host order */
	uint8_t addr[16];  /* 4 or 16 bytes used, network order */
};

/* Writes a Binding request with FINGERPRINT into buf. Returns its length
 * (STUN_PROBE_REQUEST_LEN), or 0 when cap is too small. */
size_t stun_probe_request(uint8_t *buf, size_t cap, const uint8_t txid[STUN_TXID_LEN]);

/* Checks that msg[0..len) is one complete Binding success response to
 * txid: header fields, length, attribute walk, a FINGERPRINT if present,
 * and a well-formed XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS), stored in
 * out when out is not NULL. Returns 0, or -1 for anything else. Never
 * reads outside msg[0..len). */
int stun_probe_check_response(const uint8_t *msg, size_t len,
			      const uint8_t txid[STUN_TXID_LEN],
			      struct stun_mapped *out);

/* CRC-32 (ISO-HDLC, the one FINGERPRINT uses). Exposed for tests. */
uint32_t stun_crc32(const uint8_t *p, size_t n);

#endif
