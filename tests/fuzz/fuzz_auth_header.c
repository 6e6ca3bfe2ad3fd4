/* libFuzzer target: auth_parse (signaling/auth.c, linked as is) on
 * arbitrary bytes. On success all four fields must be valid (peer id
 * charset and length, ts of at most 12 digits, nonce 32 and sig 64
 * lower-case hex), the canonical header rebuilt from them must parse to
 * the same fields, and auth_sig_ok must agree with auth_compute_sig.
 * abort() on any violation. Owns only the harness. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/auth.h"

/* Our own reading of CONTRACT section 2, independent of the code under
 * test: ^[A-Za-z0-9._-]{1,64}$ and ^[a-z]{1,16}$. */
static int peer_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void check_header(const struct auth_header *h)
{
	if (!memchr(h->peer, '\0', sizeof(h->peer)) || !peer_id_ok(h->peer))
		abort();
	if (h->ts < 0 || h->ts > INT64_C(999999999999))
		abort();
	if (!memchr(h->nonce, '\0', sizeof(h->nonce)) || strlen(h->nonce) != NONCE_HEX_LEN ||
	    !lower_hex(h->nonce, NONCE_HEX_LEN))
		abort();
	if (!memchr(h->sig, '\0', sizeof(h->sig)) || strlen(h->sig) != SIG_HEX_LEN ||
	    !lower_hex(h->sig, SIG_HEX_LEN))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct auth_header h, h2;
	char text[AUTH_HEADER_MAX + 64], want[SIG_HEX_LEN + 1];
	memset(&h, 0xa5, sizeof(h));

	int rc = auth_parse((const char *)data, size, &h);
	if (rc != 0) {
		if (rc != EBADMSG)
			abort();
		return 0;
	}
	if (size > AUTH_HEADER_MAX || size < 17 || memcmp(data, "MESH-HMAC-SHA256 ", 17) != 0)
		abort();
	check_header(&h);

	int n = snprintf(text, sizeof(text), "MESH-HMAC-SHA256 peer=%s,ts=%" PRId64 ",nonce=%s,sig=%s",
			 h.peer, h.ts, h.nonce, h.sig);
	if (n < 0 || (size_t)n >= sizeof(text))
		abort();
	memset(&h2, 0x5a, sizeof(h2));
	if (auth_parse(text, (size_t)n, &h2) != 0 || strcmp(h.peer, h2.peer) || h.ts != h2.ts ||
	    strcmp(h.nonce, h2.nonce) || strcmp(h.sig, h2.sig))
		abort();

	auth_compute_sig(key, "GET", "/v1/poll?wait=0", h.ts, h.nonce, NULL, 0, want);
	if (auth_sig_ok(key, &h, "GET", "/v1/poll?wait=0", NULL, 0) != (strcmp(want, h.sig) == 0))
		abort();
	return 0;
}
