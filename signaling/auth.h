/* The signaling wire's cryptography, shared by coordinator and client:
 * the MESH-HMAC-SHA256 Authorization header (CONTRACT section 2), the
 * end-to-end psig (section 3) and the TURN REST credential. Pure
 * functions: no clocks, no I/O, no replay state (see replay.h). */
#ifndef MESH_SIGNALING_AUTH_H
#define MESH_SIGNALING_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signaling/keys.h"

#define PEER_ID_MAX 64
#define NONCE_HEX_LEN 32
#define SIG_HEX_LEN 64
/* CONTRACT section 2: ts more than 120 s from the coordinator's clock. */
#define AUTH_MAX_SKEW_S 120
#define AUTH_HEADER_MAX 256

struct auth_header {
	char peer[PEER_ID_MAX + 1];
	int64_t ts;
	char nonce[NONCE_HEX_LEN + 1]; /* lower-case hex */
	char sig[SIG_HEX_LEN + 1];     /* lower-case hex */
};

/* Peer and coordinator ids: ^[A-Za-z0-9._-]{1,64}$ */
bool id_valid(const char *s, size_t len);

/* Parses "MESH-HMAC-SHA256 peer=..,ts=..,nonce=..,sig=..". Strict: the
 * four fields once each, in any order, no extra fields. Returns 0 or
 * EBADMSG. */
int auth_parse(const char *hdr, size_t len, struct auth_header *out);

/* sig = hex HMAC-SHA256(signal key, METHOD\npath\nts\nnonce\nhex(sha256(body))).
 * Returns false (and no signature) when the fields are too long to sign. */
bool auth_compute_sig(const uint8_t key[KEY_LEN], const char *method,
		      const char *path_query, int64_t ts, const char *nonce,
		      const void *body, size_t body_len,
		      char sig[SIG_HEX_LEN + 1]);

/* Constant-time check of a parsed header's signature. */
bool auth_sig_ok(const uint8_t key[KEY_LEN], const struct auth_header *h,
		 const char *method, const char *path_query, const void *body,
		 size_t body_len);

/* Builds a complete header value with a fresh random nonce. Returns the
 * length written (< cap) or -1. */
int auth_build_header(char *buf, size_t cap, const uint8_t key[KEY_LEN],
		      const char *peer, int64_t ts, const char *method,
		      const char *path_query, const void *body, size_t body_len);

/* psig = hex HMAC-SHA256(e2e key, from\nto\nepoch\nkind\npayload).
 * Returns false (and no psig) when a field is too long or the MAC fails. */
bool psig_compute(const uint8_t e2e[KEY_LEN], const char *from, const char *to,
		  uint64_t epoch, const char *kind, const char *payload,
		  size_t payload_len, char out[SIG_HEX_LEN + 1]);
bool psig_ok(const uint8_t e2e[KEY_LEN], const char *from, const char *to,
	     uint64_t epoch, const char *kind, const char *payload,
	     size_t payload_len, const char *psig);

/* TURN REST credential: username "<expiry>:<peer>", password
 * base64(HMAC-SHA1(turn key hex string, username)). */
void turn_credential(const struct mesh_keys *keys, const char *peer,
		     int64_t expiry, char *user, size_t user_cap,
		     char *pass, size_t pass_cap);

void hex_encode(const uint8_t *in, size_t len, char *out); /* out: 2*len+1 */

#endif
