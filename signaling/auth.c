/* Signatures of the signaling wire: the Authorization header, psig and
 * the TURN REST credential. Pure functions over bytes; must not read
 * clocks or keep replay state (replay.c does that). */
#include "signaling/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static const char SCHEME[] = "MESH-HMAC-SHA256 ";

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

bool id_valid(const char *s, size_t len)
{
	if (len < 1 || len > PEER_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int auth_parse(const char *hdr, size_t len, struct auth_header *out)
{
	const size_t scheme_len = sizeof(SCHEME) - 1;
	if (!hdr || len <= scheme_len || len > AUTH_HEADER_MAX || memcmp(hdr, SCHEME, scheme_len))
		return EBADMSG;

	unsigned seen = 0;
	const char *p = hdr + scheme_len, *end = hdr + len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *field_end = comma ? comma : end;
		const char *eq = memchr(p, '=', (size_t)(field_end - p));
		if (!eq)
			return EBADMSG;
		size_t klen = (size_t)(eq - p);
		const char *v = eq + 1;
		size_t vlen = (size_t)(field_end - v);
		unsigned bit;

		if (klen == 4 && !memcmp(p, "peer", 4)) {
			bit = 1;
			if (!id_valid(v, vlen))
				return EBADMSG;
			memcpy(out->peer, v, vlen);
			out->peer[vlen] = '\0';
		} else if (klen == 2 && !memcmp(p, "ts", 2)) {
			bit = 2;
			if (vlen < 1 || vlen > 12)
				return EBADMSG;
			int64_t ts = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return EBADMSG;
				ts = ts * 10 + (v[i] - '0');
			}
			out->ts = ts;
		} else if (klen == 5 && !memcmp(p, "nonce", 5)) {
			bit = 4;
			if (vlen != NONCE_HEX_LEN || !lower_hex(v, vlen))
				return EBADMSG;
			memcpy(out->nonce, v, vlen);
			out->nonce[vlen] = '\0';
		} else if (klen == 3 && !memcmp(p, "sig", 3)) {
			bit = 8;
			if (vlen != SIG_HEX_LEN || !lower_hex(v, vlen))
				return EBADMSG;
			memcpy(out->sig, v, vlen);
			out->sig[vlen] = '\0';
		} else {
			return EBADMSG;
		}
		if (seen & bit)
			return EBADMSG;
		seen |= bit;
		if (!comma)
			break;
		p = comma + 1;
		if (p == end) /* trailing comma */
			return EBADMSG;
	}
	return seen == 15 ? 0 : EBADMSG;
}

bool auth_compute_sig(const uint8_t key[KEY_LEN], const char *method, const char *path_query,
		      int64_t ts, const char *nonce, const void *body, size_t body_len,
		      char sig[SIG_HEX_LEN + 1])
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char body_hex[2 * SHA256_DIGEST_LENGTH + 1];
	SHA256(body_len ? body : (const void *)"", body_len, digest);
	hex_encode(digest, sizeof(digest), body_hex);

	/* The canonical string is small except for the path; build it in
	 * one buffer so the MAC is a single call. */
	char head[AUTH_HEADER_MAX + 2048];
	size_t plen = strlen(path_query);
	int n = -1;
	if (plen < 2048)
		n = snprintf(head, sizeof(head), "%s\n%s\n%" PRId64 "\n%s\n%s", method, path_query,
			     ts, nonce, body_hex);
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    !HMAC(EVP_sha256(), key, KEY_LEN, (const uint8_t *)head, (size_t)n, mac, &mac_len) ||
	    mac_len != 32) {
		/* Too long to sign: no signature at all, and callers that verify
		 * must refuse (see auth_sig_ok). The filler is not hex. */
		memset(sig, 'x', SIG_HEX_LEN);
		sig[SIG_HEX_LEN] = '\0';
		return false;
	}
	hex_encode(mac, 32, sig);
	return true;
}

bool auth_sig_ok(const uint8_t key[KEY_LEN], const struct auth_header *h, const char *method,
		 const char *path_query, const void *body, size_t body_len)
{
	char want[SIG_HEX_LEN + 1];
	if (!auth_compute_sig(key, method, path_query, h->ts, h->nonce, body, body_len, want))
		return false;
	return CRYPTO_memcmp(want, h->sig, SIG_HEX_LEN) == 0;
}

int auth_build_header(char *buf, size_t cap, const uint8_t key[KEY_LEN], const char *peer,
		      int64_t ts, const char *method, const char *path_query, const void *body,
		      size_t body_len)
{
	uint8_t raw[NONCE_HEX_LEN / 2];
	char nonce[NONCE_HEX_LEN + 1], sig[SIG_HEX_LEN + 1];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	hex_encode(raw, sizeof(raw), nonce);
	if (!auth_compute_sig(key, method, path_query, ts, nonce, body, body_len, sig))
		return -1;
	int n = snprintf(buf, cap, "%speer=%s,ts=%" PRId64 ",nonce=%s,sig=%s", SCHEME, peer, ts,
			 nonce, sig);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

bool psig_compute(const uint8_t e2e[KEY_LEN], const char *from, const char *to, uint64_t epoch,
		  const char *kind, const char *payload, size_t payload_len,
		  char out[SIG_HEX_LEN + 1])
{
	char head[3 * (PEER_ID_MAX + 24) + 64];
	int n = snprintf(head, sizeof(head), "%s\n%s\n%" PRIu64 "\n%s\n", from, to, epoch, kind);
	uint8_t mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
				OSSL_PARAM_construct_end() };
	bool ok = false;
	if (n > 0 && (size_t)n < sizeof(head) && ctx && EVP_MAC_init(ctx, e2e, KEY_LEN, params) == 1 &&
	    EVP_MAC_update(ctx, (const uint8_t *)head, (size_t)n) == 1 &&
	    EVP_MAC_update(ctx, (const uint8_t *)payload, payload_len) == 1 &&
	    EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1 && mac_len == 32) {
		hex_encode(mac, 32, out);
		ok = true;
	} else {
		/* Fields too long to be valid, or the MAC failed: no psig, and
		 * psig_ok refuses. The filler is not hex, so it matches nothing. */
		memset(out, 'x', SIG_HEX_LEN);
		out[SIG_HEX_LEN] = '\0';
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	return ok;
}

bool psig_ok(const uint8_t e2e[KEY_LEN], const char *from, const char *to, uint64_t epoch,
	     const char *kind, const char *payload, size_t payload_len, const char *psig)
{
	char want[SIG_HEX_LEN + 1];
	if (!psig || strlen(psig) != SIG_HEX_LEN)
		return false;
	if (!psig_compute(e2e, from, to, epoch, kind, payload, payload_len, want))
		return false;
	return CRYPTO_memcmp(want, psig, SIG_HEX_LEN) == 0;
}

void turn_credential(const struct mesh_keys *keys, const char *peer, int64_t expiry, char *user,
		     size_t user_cap, char *pass, size_t pass_cap)
{
	snprintf(user, user_cap, "%" PRId64 ":%s", expiry, peer);
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	HMAC(EVP_sha1(), keys->turn_hex, 2 * KEY_LEN, (const uint8_t *)user, strlen(user), mac,
	     &mac_len);
	/* base64 of 20 bytes is 28 characters plus the terminator. */
	if (pass_cap >= 29)
		EVP_EncodeBlock((unsigned char *)pass, mac, (int)mac_len);
	else if (pass_cap)
		pass[0] = '\0';
}
