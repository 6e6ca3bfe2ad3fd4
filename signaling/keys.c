/* The root secret file and HKDF-SHA256 key derivation (CONTRACT section 3).
 * Owns reading and checking the file; must not log or keep the secret
 * beyond the derived keys it hands back. */
#include "signaling/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "signaling/auth.h"

/* A secret line longer than this is not a secret file. */
#define SECRET_FILE_MAX 4096

int hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	if (!ikm || !out || out_len == 0 || out_len > 255 * 32)
		return EINVAL;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return EINVAL;
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!ctx)
		return ENOMEM;

	OSSL_PARAM params[5];
	size_t n = 0;
	params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (info_len)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	/* RFC 5869 2.2: an absent salt is HashLen zeros, which OpenSSL applies
	 * itself when no salt parameter is given. */
	if (salt_len)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[n] = OSSL_PARAM_construct_end();

	int rc = EVP_KDF_derive(ctx, out, out_len, params) == 1 ? 0 : EINVAL;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

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

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

long secret_decode(const char *text, size_t len, uint8_t *out, size_t cap)
{
	bool all_hex = len > 0 && len % 2 == 0;
	for (size_t i = 0; i < len && all_hex; i++)
		all_hex = hexval((unsigned char)text[i]) >= 0;
	if (all_hex) {
		if (len / 2 > cap)
			return -1;
		for (size_t i = 0; i < len; i += 2)
			out[i / 2] = (uint8_t)(hexval((unsigned char)text[i]) << 4 |
					       hexval((unsigned char)text[i + 1]));
		return (long)(len / 2);
	}

	/* Base64, standard or URL-safe alphabet, padding optional but only at
	 * the end. */
	while (len && text[len - 1] == '=')
		len--;
	if (len == 0 || len % 4 == 1)
		return -1;
	size_t n = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)text[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)n;
}

int keys_derive(const uint8_t *root, size_t len, struct mesh_keys *keys)
{
	static const char *const infos[] = { "mesh/v1/signal", "mesh/v1/turn", "mesh/v1/e2e" };
	uint8_t *outs[] = { keys->signal, keys->turn, keys->e2e };

	if (len < ROOT_SECRET_MIN)
		return EINVAL;
	for (size_t i = 0; i < 3; i++) {
		int rc = hkdf_sha256(NULL, 0, root, len, (const uint8_t *)infos[i],
				     strlen(infos[i]), outs[i], KEY_LEN);
		if (rc)
			return rc;
	}
	hex_encode(keys->turn, KEY_LEN, keys->turn_hex);
	return 0;
}

int keys_load(const char *path, struct mesh_keys *keys, char *err, size_t errlen)
{
	char text[SECRET_FILE_MAX + 1];
	uint8_t root[ROOT_SECRET_MAX];
	int rc = 0;

	/* O_NONBLOCK: a FIFO must be refused, not waited on. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rc = errno;
		snprintf(err, errlen, "secret file %s: %s", path, strerror(rc));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = errno;
		snprintf(err, errlen, "secret file %s: %s", path, strerror(rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = EPERM;
		snprintf(err, errlen, "secret file %s: mode %03o lets group or others access it; chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	ssize_t got = read(fd, text, sizeof(text));
	if (got < 0) {
		rc = errno;
		snprintf(err, errlen, "secret file %s: %s", path, strerror(rc));
		goto out;
	}
	if ((size_t)got > SECRET_FILE_MAX) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: longer than %d bytes", path, SECRET_FILE_MAX);
		goto out;
	}
	size_t len = (size_t)got;
	if (len && text[len - 1] == '\n')
		len--;
	if (len && text[len - 1] == '\r')
		len--;
	if (len == 0) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: empty", path);
		goto out;
	}
	if (memchr(text, '\n', len)) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: must hold one line", path);
		goto out;
	}
	long n = secret_decode(text, len, root, sizeof(root));
	if (n < 0) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: neither hex nor base64", path);
		goto out;
	}
	if (n < ROOT_SECRET_MIN) {
		rc = EINVAL;
		snprintf(err, errlen, "secret file %s: %ld bytes, at least %d needed", path, n,
			 ROOT_SECRET_MIN);
		goto out;
	}
	rc = keys_derive(root, (size_t)n, keys);
	if (rc)
		snprintf(err, errlen, "secret file %s: key derivation failed", path);
out:
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(root, sizeof(root));
	close(fd);
	return rc;
}
