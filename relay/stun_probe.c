/* STUN Binding request/response bytes for the relay readiness probe.
 * Owns only encoding and bound-checked parsing; it must not do I/O,
 * allocate, or trust any length it did not check against the buffer. */
#include "relay/stun_probe.h"

#include <string.h>
#include <sys/socket.h>

/* RFC 8489 section 5: the magic cookie, fixed value 0x2112A442. */
#define STUN_MAGIC_COOKIE 0x2112A442u
/* RFC 8489 section 5: Binding method 0x001; class bits give request
 * 0x0001 and success response 0x0101. */
#define STUN_BINDING_REQUEST 0x0001u
#define STUN_BINDING_SUCCESS 0x0101u
/* RFC 8489 section 18.3: attribute types. */
#define STUN_ATTR_MAPPED_ADDRESS 0x0001u
#define STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020u
#define STUN_ATTR_FINGERPRINT 0x8028u
/* RFC 8489 section 14.7: FINGERPRINT is the CRC-32 XOR-ed with 0x5354554e. */
#define STUN_FINGERPRINT_XOR 0x5354554eu
/* RFC 8489 section 14.1: address family values. */
#define STUN_FAMILY_IPV4 0x01u
#define STUN_FAMILY_IPV6 0x02u

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t stun_crc32(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

size_t stun_probe_request(uint8_t *buf, size_t cap, const uint8_t txid[STUN_TXID_LEN])
{
	if (!buf || !txid || cap < STUN_PROBE_REQUEST_LEN)
		return 0;
	put16(buf, STUN_BINDING_REQUEST);
	put16(buf + 2, STUN_PROBE_REQUEST_LEN - STUN_HEADER_LEN);
	put32(buf + 4, STUN_MAGIC_COOKIE);
	memcpy(buf + 8, txid, STUN_TXID_LEN);
	/* RFC 8489 section 14.7: the CRC covers the message up to the
	 * attribute, with the header length already counting it. */
	put16(buf + STUN_HEADER_LEN, STUN_ATTR_FINGERPRINT);
	put16(buf + STUN_HEADER_LEN + 2, 4);
	put32(buf + STUN_HEADER_LEN + 4,
	      stun_crc32(buf, STUN_HEADER_LEN) ^ STUN_FINGERPRINT_XOR);
	return STUN_PROBE_REQUEST_LEN;
}

/* value[0..vlen) of an (XOR-)MAPPED-ADDRESS; msg is the whole message
 * (for the cookie and transaction id the XOR uses). */
static int parse_address(const uint8_t *v, size_t vlen, int xored,
			 const uint8_t *msg, struct stun_mapped *out)
{
	struct stun_mapped m;
	size_t alen;

	if (vlen < 4)
		return -1;
	memset(&m, 0, sizeof(m));
	if (v[1] == STUN_FAMILY_IPV4) {
		m.family = AF_INET;
		alen = 4;
	} else if (v[1] == STUN_FAMILY_IPV6) {
		m.family = AF_INET6;
		alen = 16;
	} else {
		return -1;
	}
	if (vlen != 4 + alen)
		return -1;
	m.port = get16(v + 2);
	memcpy(m.addr, v + 4, alen);
	if (xored) {
		/* RFC 8489 section 14.2: port XOR the cookie's high 16 bits,
		 * address XOR cookie (IPv4) or cookie || transaction id. */
		m.port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
		for (size_t i = 0; i < alen; i++)
			m.addr[i] ^= msg[4 + i];
	}
	if (out)
		*out = m;
	return 0;
}

int stun_probe_check_response(const uint8_t *msg, size_t len,
			      const uint8_t txid[STUN_TXID_LEN],
			      struct stun_mapped *out)
{
	int have_xor = 0, have_plain = 0;
	struct stun_mapped xm, pm;
	size_t off, end;

	if (!msg || !txid || len < STUN_HEADER_LEN)
		return -1;
	/* RFC 8489 section 5: the two top bits are zero. */
	if ((msg[0] & 0xc0) != 0)
		return -1;
	if (get16(msg) != STUN_BINDING_SUCCESS)
		return -1;
	if ((size_t)get16(msg + 2) != len - STUN_HEADER_LEN || (len & 3) != 0)
		return -1;
	if (get32(msg + 4) != STUN_MAGIC_COOKIE)
		return -1;
	if (memcmp(msg + 8, txid, STUN_TXID_LEN) != 0)
		return -1;

	end = len;
	off = STUN_HEADER_LEN;
	while (off < end) {
		uint16_t type, alen;
		size_t padded;

		if (end - off < 4)
			return -1;
		type = get16(msg + off);
		alen = get16(msg + off + 2);
		/* RFC 8489 section 14: values are padded to 4 bytes. */
		padded = ((size_t)alen + 3) & ~(size_t)3;
		if (end - off - 4 < padded)
			return -1;
		const uint8_t *val = msg + off + 4;

		if (type == STUN_ATTR_FINGERPRINT) {
			/* Must be the last attribute, 4 bytes, and match. */
			if (alen != 4 || off + 8 != end)
				return -1;
			if (get32(val) != (stun_crc32(msg, off) ^ STUN_FINGERPRINT_XOR))
				return -1;
		} else if (type == STUN_ATTR_XOR_MAPPED_ADDRESS && !have_xor) {
			if (parse_address(val, alen, 1, msg, &xm) != 0)
				return -1;
			have_xor = 1;
		} else if (type == STUN_ATTR_MAPPED_ADDRESS && !have_plain) {
			if (parse_address(val, alen, 0, msg, &pm) != 0)
				return -1;
			have_plain = 1;
		}
		off += 4 + padded;
	}

	if (!have_xor && !have_plain)
		return -1;
	if (out)
		*out = have_xor ? xm : pm;
	return 0;
}
