/* TLS material for TURN over TLS: generates the self-signed pair used
 * when the operator gives none, and checks a given pair before coturn
 * sees it (coturn would only log a bad pair and run TLS without a key).
 * Must not keep key material in memory after writing it, and must not
 * write anywhere but the directory it is given. */
#include "relay/relay_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* A restart makes a new pair; clients do not pin it (TURN credentials,
 * not the certificate, authenticate the relay's users). */
#define CERT_DAYS 825
#define CERT_CN "mesh-relay"

static void ossl_reason(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else {
		snprintf(err, errlen, "%s", what);
	}
	ERR_clear_error();
}

/* Creates path exclusively with mode 0600 and opens it for writing. */
static FILE *create_private(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

/* Writes with fn into a new 0600 file; 0 or an errno value. */
static int write_pem(const char *path, int (*fn)(FILE *, const void *),
		     const void *obj, char *err, size_t errlen)
{
	FILE *f = create_private(path, err, errlen);
	int rc = 0;

	if (!f)
		return EIO;
	if (!fn(f, obj)) {
		ossl_reason(err, errlen, "cannot write PEM");
		rc = EIO;
	}
	if (fclose(f) != 0 && rc == 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = EIO;
	}
	if (rc)
		unlink(path);
	return rc;
}

static int pem_key(FILE *f, const void *k)
{
	return PEM_write_PrivateKey(f, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int pem_cert(FILE *f, const void *x)
{
	return PEM_write_X509(f, (X509 *)x);
}

int relay_cert_generate(const char *dir, char *err, size_t errlen)
{
	char key_path[4096], cert_path[4096];
	unsigned char serial[16];
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	int rc = EIO;

	if ((size_t)snprintf(key_path, sizeof(key_path), "%s/key.pem", dir) >= sizeof(key_path) ||
	    (size_t)snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir) >= sizeof(cert_path)) {
		snprintf(err, errlen, "temp dir path too long");
		return ENAMETOOLONG;
	}

	pkey = EVP_EC_gen("P-256");
	if (!pkey) {
		ossl_reason(err, errlen, "cannot generate an EC key");
		goto out;
	}
	x = X509_new();
	if (!x) {
		ossl_reason(err, errlen, "cannot allocate a certificate");
		rc = ENOMEM;
		goto out;
	}
	/* RFC 5280 section 4.1.2.2: positive serial, at most 20 octets. */
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		ossl_reason(err, errlen, "no randomness for the serial");
		goto out;
	}
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	name = X509_get_subject_name(x);
	if (!bn || !X509_set_version(x, 2) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)CERT_DAYS * 86400) ||
	    !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)CERT_CN, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) ||
	    !X509_sign(x, pkey, EVP_sha256())) {
		ossl_reason(err, errlen, "cannot build the self-signed certificate");
		goto out;
	}
	rc = write_pem(key_path, pem_key, pkey, err, errlen);
	if (rc)
		goto out;
	rc = write_pem(cert_path, pem_cert, x, err, errlen);
	if (rc)
		unlink(key_path);
out:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

int relay_cert_check(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int rc = EINVAL;

	if (!ctx) {
		ossl_reason(err, errlen, "cannot create a TLS context");
		return ENOMEM;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ossl_reason(err, errlen, "TLS certificate file unusable");
		goto out;
	}
	bio = BIO_new_file(key, "r");
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pkey) {
		ossl_reason(err, errlen, "TLS key file unusable (PEM, no passphrase)");
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ossl_reason(err, errlen, "TLS key does not match the certificate");
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	SSL_CTX_free(ctx);
	return rc;
}
