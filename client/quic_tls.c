/* TLS side of the QUIC carrier: makes the per-start identity (Ed25519 key
 * and self-signed certificate) and configures GnuTLS sessions for ngtcp2
 * with mutual authentication by certificate fingerprint. It must not touch
 * packets or ngtcp2 connection state (client/quic.c owns those); trust in
 * a peer comes only from the fingerprint in its signed offer, never from
 * a CA, a name or a validity period. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <re.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "client/quic.h"
#include "client/quic_int.h"

_Static_assert(offsetof(struct quic_tls, ref) == 0,
	       "verify_peer() finds struct quic_tls from its ref");

struct quic_identity {
	gnutls_certificate_credentials_t cred; /* key + certificate for sessions */
	char fp[QUIC_FP_LEN + 1];              /* SHA-256 of the DER certificate */
};

/* TLS 1.3 only (RFC 9001 section 4.2: clients MUST NOT offer older
 * versions). Cipher suites: RFC 9001 section 5.3 forbids
 * TLS_AES_128_CCM_8_SHA256, so only the AEADs with 16-byte tags. Middlebox
 * compatibility mode MUST NOT be used (RFC 9001 section 8.4). */
static const char tls_priority[] =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
	"+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:"
	"+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";

static void hexify(char *out, const uint8_t *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int der_fingerprint(char out[QUIC_FP_LEN + 1], const gnutls_datum_t *der)
{
	uint8_t md[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, md) < 0)
		return EIO;
	hexify(out, md, sizeof(md));
	return 0;
}

bool quic_fp_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; s[i]; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return i == QUIC_FP_LEN;
}

static void identity_destructor(void *arg)
{
	struct quic_identity *id = arg;

	if (id->cred)
		gnutls_certificate_free_credentials(id->cred);
}

int quic_identity_new(struct quic_identity **idp)
{
	struct quic_identity *id;
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = { NULL, 0 };
	uint8_t serial[16];
	time_t now = time(NULL);
	int err = 0;

	if (!idp)
		return EINVAL;

	id = mem_zalloc(sizeof(*id), identity_destructor);
	if (!id)
		return ENOMEM;

	if (gnutls_x509_privkey_init(&key) < 0 ||
	    gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519, 256, 0) < 0 ||
	    gnutls_x509_crt_init(&crt) < 0) {
		err = EIO;
		goto out;
	}

	/* RFC 5280 section 4.1.2.2: a positive serial of at most 20 octets. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0) {
		err = EIO;
		goto out;
	}
	serial[0] &= 0x7f;
	serial[0] |= 0x01;

	/* The peer checks only the fingerprint, so the validity period is
	 * open-ended (RFC 5280 section 4.1.2.5: 99991231235959Z means "no
	 * well-defined expiration date"); notBefore allows some clock skew. */
	if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 24 * 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt,
				GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
					  "mesh-client", 11) < 0 ||
	    gnutls_x509_crt_set_key(crt, key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
	    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA512, 0) < 0) {
		err = EIO;
		goto out;
	}

	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0) {
		err = EIO;
		goto out;
	}
	err = der_fingerprint(id->fp, &der);
	if (err)
		goto out;

	/* The credentials keep their own copies of crt and key. */
	if (gnutls_certificate_allocate_credentials(&id->cred) < 0) {
		id->cred = NULL;
		err = ENOMEM;
		goto out;
	}
	if (gnutls_certificate_set_x509_key(id->cred, &crt, 1, key) < 0) {
		err = EIO;
		goto out;
	}

 out:
	gnutls_free(der.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (err)
		mem_deref(id);
	else
		*idp = id;
	return err;
}

const char *quic_identity_fingerprint(const struct quic_identity *id)
{
	return id ? id->fp : NULL;
}

/* Called by GnuTLS once the peer's Certificate has arrived (on the server
 * too: the client certificate is required). The signature in the peer's
 * CertificateVerify proves it holds the key of this certificate; we only
 * decide whether it is the certificate the signed offer named. A nonzero
 * return aborts the handshake with a bad_certificate alert, which ngtcp2
 * turns into CONNECTION_CLOSE 0x12a (RFC 9001 section 4.8). */
static int verify_peer(gnutls_session_t session)
{
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
	struct quic_tls *t = (struct quic_tls *)(void *)ref; /* ref is first */
	const gnutls_datum_t *certs;
	unsigned int n = 0;

	certs = gnutls_certificate_get_peers(session, &n);
	if (!certs || n == 0) {
		t->peer_fp[0] = '\0';
		t->fp_mismatch = true;
		return -1;
	}
	if (der_fingerprint(t->peer_fp, &certs[0]) != 0) {
		t->fp_mismatch = true;
		return -1;
	}
	/* Fingerprints are public; a constant-time compare costs nothing. */
	if (mem_seccmp((const uint8_t *)t->peer_fp,
		       (const uint8_t *)t->expected_fp, QUIC_FP_LEN) != 0) {
		t->fp_mismatch = true;
		return -1;
	}
	return 0;
}

int quic_tls_init(struct quic_tls *t, const struct quic_identity *id,
		  bool server, const char *remote_fp,
		  ngtcp2_crypto_get_conn get_conn, void *user_data)
{
	static const gnutls_datum_t alpn = {
		(unsigned char *)QUIC_ALPN, sizeof(QUIC_ALPN) - 1
	};
	char fp[QUIC_FP_LEN + 1];
	gnutls_session_t s = NULL;
	int err = 0;

	if (!t || !id || !quic_fp_valid(remote_fp))
		return EINVAL;

	memcpy(fp, remote_fp, sizeof(fp)); /* remote_fp may point into t */
	memset(t, 0, sizeof(*t));
	memcpy(t->expected_fp, fp, sizeof(fp));
	t->ref.get_conn = get_conn;
	t->ref.user_data = user_data;

	/* No session tickets: keys live for one process start, so resumption
	 * and 0-RTT have nothing to offer. */
	if (gnutls_init(&s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			GNUTLS_NO_TICKETS) < 0) {
		s = NULL;
		err = ENOMEM;
		goto out;
	}
	if ((server ? ngtcp2_crypto_gnutls_configure_server_session(s)
		    : ngtcp2_crypto_gnutls_configure_client_session(s)) != 0) {
		err = EIO;
		goto out;
	}
	if (gnutls_priority_set_direct(s, tls_priority, NULL) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, id->cred) < 0 ||
	    gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0) {
		err = EIO;
		goto out;
	}
	if (server)
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_verify_function(s, verify_peer);
	gnutls_session_set_ptr(s, &t->ref);

 out:
	if (err) {
		if (s)
			gnutls_deinit(s);
	}
	else {
		t->session = s;
	}
	return err;
}

void quic_tls_deinit(struct quic_tls *t)
{
	if (t && t->session) {
		gnutls_deinit(t->session);
		t->session = NULL;
	}
}

bool quic_tls_alpn_ok(const struct quic_tls *t)
{
	gnutls_datum_t p;

	if (!t->session ||
	    gnutls_alpn_get_selected_protocol(t->session, &p) < 0)
		return false;
	return p.size == sizeof(QUIC_ALPN) - 1 &&
	       memcmp(p.data, QUIC_ALPN, p.size) == 0;
}
