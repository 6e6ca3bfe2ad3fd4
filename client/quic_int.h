/* Internals shared by client/quic.c and client/quic_tls.c; not for other
 * modules (they use client/quic.h). */
#ifndef MESH_CLIENT_QUIC_INT_H
#define MESH_CLIENT_QUIC_INT_H

#include <stdbool.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

struct quic_identity;

/* SHA-256 in lower-case hex plus the terminating NUL. */
#define QUIC_FP_LEN 64

/* RFC 9001 section 8.1: endpoints MUST use ALPN; ours names the framing
 * version of docs/quic.md. */
#define QUIC_ALPN "mesh/1"

/* One TLS 1.3 session bound to one ngtcp2_conn. */
struct quic_tls {
	ngtcp2_crypto_conn_ref ref;        /* gnutls_session_get_ptr() points here */
	gnutls_session_t session;          /* NULL until quic_tls_init succeeds */
	char expected_fp[QUIC_FP_LEN + 1]; /* the peer's fingerprint from its offer */
	char peer_fp[QUIC_FP_LEN + 1];     /* what the peer presented ("" if none) */
	bool fp_mismatch;                  /* our check of the peer's certificate failed */
};

/* Sets up a client or server session: TLS 1.3 only, QUIC cipher suites,
 * our certificate, the peer's certificate required and checked against
 * remote_fp (both roles), ALPN "mesh/1" mandatory. get_conn/user_data fill
 * the ngtcp2_crypto_conn_ref. Returns 0 or an errno. */
int quic_tls_init(struct quic_tls *t, const struct quic_identity *id,
		  bool server, const char *remote_fp,
		  ngtcp2_crypto_get_conn get_conn, void *user_data);
void quic_tls_deinit(struct quic_tls *t);

/* True when the negotiated ALPN is QUIC_ALPN. */
bool quic_tls_alpn_ok(const struct quic_tls *t);

/* True when s is 64 lower-case hex digits. */
bool quic_fp_valid(const char *s);

#endif
