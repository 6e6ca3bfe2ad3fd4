/* libFuzzer target: secret_decode (signaling/keys.c, linked as is). The
 * first two input bytes choose the output capacity (0..4095), the rest is
 * the secret line. The output is an exact-size heap buffer, so ASan
 * catches any write past cap. Checks: the result is -1 or 0..cap; hex
 * input decodes to exactly its bytes; base64 output re-encodes to the
 * input; well-formed input that fits is never refused. Owns only the
 * harness; keys_load's file I/O is not involved. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "signaling/keys.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char std_b64(char c)
{
	return c == '-' ? '+' : c == '_' ? '/' : c;
}

static int is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = (size_t)data[0] | (size_t)(data[1] & 0x0f) << 8;
	const char *text = (const char *)data + 2;
	size_t len = size - 2;
	uint8_t *out = malloc(cap ? cap : 1);
	if (!out)
		return 0;
	/* cap 0: a 1-byte block, but nothing may be written at all. */
	if (!cap)
		out[0] = 0xa5;

	long n = secret_decode(text, len, out, cap);
	if (n < -1 || (n >= 0 && (size_t)n > cap) || (n >= 0 && (size_t)n * 4 > len * 3))
		abort();
	if (!cap && out[0] != 0xa5)
		abort();

	int all_hex = len > 0 && len % 2 == 0;
	for (size_t i = 0; i < len && all_hex; i++)
		all_hex = hexval((unsigned char)text[i]) >= 0;
	if (all_hex) {
		if (len / 2 > cap ? n != -1 : n != (long)(len / 2))
			abort();
		for (long i = 0; i < n; i++)
			if (out[i] != (hexval((unsigned char)text[2 * i]) << 4 | hexval((unsigned char)text[2 * i + 1])))
				abort();
	} else {
		/* Base64: the alphabet, then only trailing '='. */
		size_t l = len;
		while (l && text[l - 1] == '=')
			l--;
		int ok = l > 0 && l % 4 != 1;
		for (size_t i = 0; i < l && ok; i++)
			ok = is_b64(text[i]);
		size_t bytes = l * 6 / 8;
		if (ok && bytes <= cap && n != (long)bytes)
			abort(); /* well-formed and fits, yet refused or miscounted */
		if (!ok && n != -1)
			abort(); /* accepted something that is not base64 */
		if (n > 0) {
			/* Re-encode: every character but the last (which may carry
			 * unused low bits) must match the input. */
			char *enc = malloc(4 * ((size_t)n / 3 + 1) + 1);
			if (!enc)
				abort();
			EVP_EncodeBlock((unsigned char *)enc, out, (int)n);
			for (size_t i = 0; i + 1 < l; i++)
				if (enc[i] != std_b64(text[i]))
					abort();
			free(enc);
		}
	}
	if (n >= ROOT_SECRET_MIN) {
		struct mesh_keys k;
		if (keys_derive(out, (size_t)n, &k) != 0)
			abort();
	}
	free(out);
	return 0;
}
