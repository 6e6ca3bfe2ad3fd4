/* The cluster root secret file and the keys derived from it (CONTRACT
 * section 3). Shared by the coordinator and the client. */
#ifndef MESH_SIGNALING_KEYS_H
#define MESH_SIGNALING_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define ROOT_SECRET_MIN 32
#define ROOT_SECRET_MAX 1024

struct mesh_keys {
	uint8_t signal[KEY_LEN]; /* request authentication */
	uint8_t turn[KEY_LEN];   /* TURN REST credentials */
	uint8_t e2e[KEY_LEN];    /* psig over offers (clients only) */
	char turn_hex[2 * KEY_LEN + 1]; /* the turn key as coturn's static-auth-secret */
};

/* Reads and checks the secret file (exists, mode not group/other
 * readable, one line of hex or base64 decoding to >= 32 bytes) and
 * derives the keys. Returns 0, or an errno value with a one-line reason
 * in err. */
int keys_load(const char *path, struct mesh_keys *keys, char *err, size_t errlen);

/* Same from a secret already in memory (tests, fuzzing). */
int keys_derive(const uint8_t *root, size_t len, struct mesh_keys *keys);

/* RFC 5869 HKDF-SHA256. Returns 0 or EINVAL. */
int hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
		size_t ikm_len, const uint8_t *info, size_t info_len,
		uint8_t *out, size_t out_len);

/* Decodes one line of hex (even length) or standard/URL-safe base64.
 * Returns the number of bytes, or -1. Exposed for tests. */
long secret_decode(const char *text, size_t len, uint8_t *out, size_t cap);

#endif
