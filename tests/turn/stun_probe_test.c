/* Unit test of relay/stun_probe.c, the readiness probe's STUN parser:
 * RFC 5769 sample responses, every truncation, targeted corruptions and
 * a seeded random mutation run (meant to be run under SAN=1 so any read
 * outside the buffer aborts). Tests only; no network. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "relay/stun_probe.h"

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} } while (0)

/* RFC 5769 section 2.2 (IPv4) and 2.3 (IPv6) sample responses. */
static const uint8_t txid5769[STUN_TXID_LEN] = {
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
};
static const uint8_t resp_v4[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
	0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
	0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};
static const uint8_t resp_v6[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
	0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
	0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
	0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1,
	0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

/* Runs the parser on an exact-size heap copy, so ASan sees overreads. */
static int check_copy(const uint8_t *msg, size_t len, const uint8_t *txid,
		      struct stun_mapped *out)
{
	uint8_t *p = malloc(len ? len : 1);
	int rc;

	if (!p) {
		perror("malloc");
		exit(2);
	}
	memcpy(p, msg, len);
	rc = stun_probe_check_response(p, len, txid, out);
	free(p);
	return rc;
}

static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
	/* xorshift32: deterministic, so a failure reproduces. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_crc(void)
{
	/* The CRC-32 check value of "123456789". */
	CHECK(stun_crc32((const uint8_t *)"123456789", 9) == 0xcbf43926u, "crc32 check value");
}

static void test_request(void)
{
	uint8_t txid[STUN_TXID_LEN], buf[64];
	size_t n;

	for (size_t i = 0; i < sizeof(txid); i++)
		txid[i] = (uint8_t)(i * 7 + 1);
	CHECK(stun_probe_request(buf, STUN_PROBE_REQUEST_LEN - 1, txid) == 0, "short buffer");
	n = stun_probe_request(buf, sizeof(buf), txid);
	CHECK(n == STUN_PROBE_REQUEST_LEN, "request length %zu", n);
	CHECK(buf[0] == 0x00 && buf[1] == 0x01, "binding request type");
	CHECK(buf[2] == 0x00 && buf[3] == 0x08, "length counts the fingerprint");
	CHECK(memcmp(buf + 4, "\x21\x12\xa4\x42", 4) == 0, "cookie");
	CHECK(memcmp(buf + 8, txid, sizeof(txid)) == 0, "txid");
	{
		uint32_t want = stun_crc32(buf, 20) ^ 0x5354554eu;
		uint32_t have = (uint32_t)buf[24] << 24 | (uint32_t)buf[25] << 16 |
				(uint32_t)buf[26] << 8 | buf[27];

		CHECK(buf[20] == 0x80 && buf[21] == 0x28, "fingerprint type");
		CHECK(have == want, "fingerprint value");
	}
}

static void test_vectors(void)
{
	struct stun_mapped m;
	uint8_t want6[16];

	CHECK(check_copy(resp_v4, sizeof(resp_v4), txid5769, &m) == 0, "RFC 5769 IPv4 response");
	CHECK(m.family == AF_INET && m.port == 32853 &&
	      memcmp(m.addr, "\xc0\x00\x02\x01", 4) == 0, "IPv4 mapped 192.0.2.1:32853");

	CHECK(check_copy(resp_v6, sizeof(resp_v6), txid5769, &m) == 0, "RFC 5769 IPv6 response");
	inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", want6);
	CHECK(m.family == AF_INET6 && m.port == 32853 && memcmp(m.addr, want6, 16) == 0,
	      "IPv6 mapped [2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

static void test_truncations(void)
{
	for (size_t len = 0; len < sizeof(resp_v4); len++)
		CHECK(check_copy(resp_v4, len, txid5769, NULL) != 0, "truncated to %zu accepted", len);
	for (size_t len = 0; len < sizeof(resp_v6); len++)
		CHECK(check_copy(resp_v6, len, txid5769, NULL) != 0, "truncated to %zu accepted", len);
}

static void test_corruptions(void)
{
	uint8_t m[sizeof(resp_v4)], txid[STUN_TXID_LEN];

#define RESET() memcpy(m, resp_v4, sizeof(m))
	RESET();
	m[1] = 0x11; /* error response */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "error response accepted");
	RESET();
	m[0] = 0x41; /* top bits set */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "top bits accepted");
	RESET();
	m[5] ^= 1; /* cookie */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "bad cookie accepted");
	RESET();
	m[3] += 4; /* length beyond the datagram */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "long length accepted");
	RESET();
	m[sizeof(m) - 1] ^= 0x80; /* fingerprint */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "bad fingerprint accepted");
	RESET();
	m[23] = 0xff; /* SOFTWARE length runs past the end */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "overlong attribute accepted");
	RESET();
	m[39] = 0x07; /* XOR-MAPPED-ADDRESS length not 8 */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "bad address length accepted");
	RESET();
	m[41] = 0x03; /* unknown family */
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "bad family accepted");
	RESET();
	memcpy(txid, txid5769, sizeof(txid));
	txid[11] ^= 1;
	CHECK(check_copy(m, sizeof(m), txid, NULL) != 0, "foreign txid accepted");
	RESET();
	m[36] = 0x00; /* XOR-MAPPED-ADDRESS renamed: no address left */
	m[37] = 0x21;
	CHECK(check_copy(m, sizeof(m), txid5769, NULL) != 0, "no mapped address accepted");
#undef RESET

	/* FINGERPRINT that is not last. */
	{
		uint8_t b[STUN_HEADER_LEN + 8 + 12];
		uint32_t crc;

		memcpy(b, resp_v4, STUN_HEADER_LEN);
		b[2] = 0;
		b[3] = 20;
		crc = stun_crc32(b, STUN_HEADER_LEN) ^ 0x5354554eu;
		memcpy(b + 20, "\x80\x28\x00\x04", 4);
		b[24] = (uint8_t)(crc >> 24);
		b[25] = (uint8_t)(crc >> 16);
		b[26] = (uint8_t)(crc >> 8);
		b[27] = (uint8_t)crc;
		memcpy(b + 28, resp_v4 + 36, 12);
		CHECK(check_copy(b, sizeof(b), txid5769, NULL) != 0, "fingerprint not last accepted");
	}
}

static void test_random(void)
{
	uint8_t m[sizeof(resp_v6)];

	for (int round = 0; round < 200000; round++) {
		size_t len = sizeof(resp_v6);
		int flips = 1 + (int)(rng() % 4);

		memcpy(m, resp_v6, sizeof(m));
		for (int f = 0; f < flips; f++)
			m[rng() % sizeof(m)] = (uint8_t)rng();
		if (rng() % 4 == 0)
			len = rng() % (sizeof(m) + 1);
		/* A mutation may pass (say, one that turns FINGERPRINT into
		 * an unknown attribute), but never with another type,
		 * cookie or transaction id. */
		if (check_copy(m, len, txid5769, NULL) == 0)
			CHECK(memcmp(m, resp_v6, 2) == 0 && memcmp(m + 4, resp_v6 + 4, 16) == 0,
			      "round %d: accepted a foreign header", round);
	}
}

int main(void)
{
	test_crc();
	test_request();
	test_vectors();
	test_truncations();
	test_corruptions();
	test_random();
	if (failures) {
		fprintf(stderr, "stun_probe_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("stun_probe_test: ok\n");
	return 0;
}
