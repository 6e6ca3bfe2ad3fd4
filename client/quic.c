/* QUIC carrier: one ngtcp2 connection per peer pair on libre's main loop,
 * turned into the struct carrier the port forwarder uses (streams with
 * back-pressure, DATAGRAM frames). It owns the ngtcp2_conn, its single
 * timer, the per-stream send buffers and the state events. It must not
 * touch sockets or know which network path it rides on: packets leave
 * through mesh_path->send and arrive through the recv callback it
 * installs, and ngtcp2 only ever sees one fixed virtual address pair, so
 * the path under a live connection can change. TLS details live in
 * client/quic_tls.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <re.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "client/hrtimer.h"
#include "client/quic.h"
#include "client/quic_int.h"
#include "common/log.h"

/* --- Constants, each with its source ----------------------------------- */

/* RFC 9000 section 10.1: each endpoint advertises max_idle_timeout; the
 * effective value is the smaller one (and at least 3 PTO). 15 s is the
 * dead-path budget of the client issue: QUIC gives up on a silent peer
 * when ICE declares the path dead, not later. */
#define QUIC_IDLE_TIMEOUT_MS 15000
/* RFC 9000 section 10.1.2: an endpoint that wants to keep an idle
 * connection open sends PING before the idle timeout; three tries fit in
 * one idle period, and 5 s also refreshes NAT bindings (RFC 4787 REQ-5:
 * UDP mappings last at least 2 minutes; many NATs use 30 s). */
#define QUIC_KEEPALIVE_MS 5000
/* ngtcp2 settings.handshake_timeout default (NGTCP2_DEFAULT_HANDSHAKE_TIMEOUT). */
#define QUIC_HANDSHAKE_TIMEOUT_MS 10000

/* RFC 9000 section 14: every path must carry 1200-byte UDP payloads; it is
 * also ngtcp2's NGTCP2_MAX_UDP_PAYLOAD_SIZE. Larger only if the path says. */
#define QUIC_MIN_UDP_PAYLOAD NGTCP2_MAX_UDP_PAYLOAD_SIZE
/* RFC 9000 section 18.2: max_udp_payload_size is at most 65527. */
#define QUIC_MAX_UDP_PAYLOAD 65527

/* Flow control (RFC 9000 section 4). Initial windows go out as transport
 * parameters; ngtcp2 auto-tunes them up to max_window/max_stream_window
 * (ngtcp2_settings docs) while the reader consumes within about an RTT,
 * so a fast stream reaches 8 MiB (1 Gbit/s x 64 ms) and a stalled one
 * stays at 1 MiB: that is all the forwarder ever holds unconsumed per
 * stream. The connection window lets 32 stalled streams sit before they
 * block the others. */
#define QUIC_STREAM_WINDOW     (1u * 1024 * 1024)
#define QUIC_MAX_STREAM_WINDOW (8u * 1024 * 1024)
#define QUIC_CONN_WINDOW       (32u * 1024 * 1024)
#define QUIC_MAX_CONN_WINDOW   (64u * 1024 * 1024)
/* RFC 9000 section 4.6: the peer may open this many bidirectional
 * streams; each stream the peer opened and that closed gives one back. */
#define QUIC_MAX_STREAMS_BIDI 1024
/* Send buffer bound per stream (carrier.h back-pressure): bytes accepted
 * but not yet handed to ngtcp2. Bytes in flight are bounded separately by
 * congestion and flow control (at most the peer's stream window), and by
 * QUIC_STREAM_MAX_UNACKED as a hard cap; bounding in-flight bytes by the
 * 1 MiB would cap a stream at 1 MiB per RTT (168 Mbit/s at 50 ms). */
#define QUIC_STREAM_SNDBUF (1024u * 1024)
#define QUIC_STREAM_MAX_UNACKED (16u * 1024 * 1024)
#define QUIC_CHUNK 16384

/* RFC 9000 section 18.2: max_ack_delay defaults to 25 ms, and RFC 9002
 * section 6.2.1 adds it to every PTO. On sub-millisecond paths that made
 * tail-loss recovery wait 25 ms per lost flight (20 MB at 10% loss: 14 s
 * with 25 ms, 3.6 s with 5 ms); ACKs for back-to-back packets are not
 * delayed anyway (ngtcp2 ack_thresh 2, RFC 9000 section 13.2.2). */
#define QUIC_MAX_ACK_DELAY_MS 5

/* RFC 9221 section 3: 65535 means "any DATAGRAM frame that fits in a
 * packet". */
#define QUIC_MAX_DATAGRAM_FRAME 65535
/* Datagrams queued while congestion control holds them; beyond this they
 * are refused (they are unreliable anyway). */
#define QUIC_DGRAM_QUEUE_MAX   256
#define QUIC_DGRAM_QUEUE_BYTES (512u * 1024)

/* RFC 9000 section 7.2: a client's first Destination Connection ID is at
 * least 8 bytes; we use 8 for every ID (one connection per path). */
#define QUIC_CIDLEN NGTCP2_MIN_INITIAL_DCIDLEN

/* RFC 9001 section 6.6: AEAD_AES_128_GCM/256_GCM confidentiality limit is
 * 2^23 packets per key; update keys well before it. */
#define QUIC_KEY_UPDATE_PKTS (1u << 22)

/* RFC 9000 section 10.2.1: in the closing state, answer incoming packets
 * with CONNECTION_CLOSE again, but limit how often. */
#define QUIC_CLOSE_RESENDS 16
/* Copies of our CONNECTION_CLOSE sent at once: on a path losing 10% the
 * peer then misses all of them 0.1% of the time instead of 10% (it would
 * otherwise learn only at its next packet, or after its idle timeout). */
#define QUIC_CLOSE_COPIES 3

/* Short header (RFC 9000 section 17.3.1): 1 flags byte + DCID + packet
 * number (<= 4 bytes); AEAD tag 16 bytes (RFC 9001 section 5.3). DATAGRAM
 * frame (RFC 9221 section 4): type byte + varint length. */
#define QUIC_SHORT_HDR_FIXED (1 + 4 + 16)

/* Retry a packet the path refused (EAGAIN) after this long. */
#define QUIC_BLOCKED_RETRY_MS 1
/* Packets written together and handed to the path in one batch (UDP
 * GSO: at most 64 segments and 64 KiB in all). */
#define QUIC_BATCH_PKTS 64
#define QUIC_BATCH_BYTES 65000

/* --- Types --------------------------------------------------------------- */

struct sbuf_chunk {
	struct sbuf_chunk *next;   /* later bytes */
	uint64_t base;             /* stream offset of data[0] */
	uint8_t data[QUIC_CHUNK];
};

struct dgram {
	struct le le;              /* in quic_conn.dgrams */
	size_t len;
	uint8_t data[];
};

struct cstream {
	struct le le;              /* in quic_conn.streams */
	struct le sle;             /* in quic_conn.sendq while it has bytes or FIN to send */
	struct le wle;             /* in quic_conn.writeq while writable is due */
	struct quic_conn *qc;      /* NULL once the connection is gone */
	int64_t id;                /* QUIC stream ID */
	struct cstream_handlers h; /* the forwarder's callbacks */
	void *arg;
	bool has_h;                /* handlers were set */
	/* send side */
	struct sbuf_chunk *head, *tail; /* bytes from acked_off to write_off */
	uint64_t acked_off;        /* all below acknowledged (ngtcp2 may forget them) */
	uint64_t sent_off;         /* all below handed to ngtcp2 */
	uint64_t write_off;        /* all below accepted from the forwarder */
	bool fin_queued;           /* shutdown_write called */
	bool fin_sent;             /* FIN handed to ngtcp2 */
	bool wr_dead;              /* write side reset (by us or peer STOP_SENDING) */
	bool want_writable;        /* a write was short; fire writable on room */
	bool fc_blocked;           /* peer's flow control stops it */
	/* receive side */
	uint64_t rx_delivered;     /* bytes passed to h.data */
	uint64_t rx_consumed;      /* bytes the forwarder reported consumed */
	bool rx_closed;            /* no more consumed() accounting: fin/reset/release */
	bool fin_rcvd;
	/* lifetime */
	bool app_done;             /* no more callbacks (app reset it or released it) */
	bool released;             /* the forwarder gave up its handle */
	bool closed;               /* ngtcp2 closed the stream */
	bool freed;                /* the owner reference is gone */
};

struct quic_conn {
	struct carrier carrier;     /* what quic_carrier() returns; its user
				     * may replace h and arg at any time
				     * (carrier.h), so both are read at
				     * each call */
	quic_state_h *stateh;       /* state events */
	void *arg;                  /* for stateh */
	struct quic_identity *id;   /* our key + certificate (referenced) */
	struct mesh_path *path;     /* packets go out and come in here */
	enum quic_role role;
	uint64_t idle_ms, keepalive_ms, handshake_ms, initial_rtt_ms;
	size_t sndbuf;              /* per-stream send buffer bound */
	ngtcp2_cc_algo cc;
	ngtcp2_conn *conn;          /* NULL on a server until the first Initial */
	struct quic_tls tls;        /* GnuTLS session bound to conn */
	struct tmr tmr;             /* deferred flush (0 ms) and millisecond deadlines */
	struct hrtimer *pace;       /* deadlines under a millisecond (pacing) */
	struct sockaddr_in vlocal;  /* fixed virtual addresses ngtcp2 sees */
	struct sockaddr_in vremote;
	ngtcp2_path vpath;
	size_t pktsz;               /* max UDP payload we send */
	uint8_t *txbuf;             /* a batch: up to batch_max packets */
	size_t batch_max;           /* packets per batch (one GSO send) */
	uint8_t *blocked;           /* what the path refused; sent first */
	size_t blocked_len, blocked_seg;
	uint8_t *closepkt;          /* our CONNECTION_CLOSE, for resends */
	size_t closepkt_len;
	unsigned close_resends;
	struct list streams;        /* every struct cstream not yet freed */
	struct list sendq;          /* streams with something to send, round robin */
	struct list writeq;         /* streams whose writable handler is due */
	struct list dgrams;         /* struct dgram waiting to be sent */
	size_t dgram_bytes;
	unsigned guards;            /* references held by our own entry points */
	int in_ngtcp2;              /* inside an ngtcp2 call (callbacks run) */
	bool connected;             /* handshake confirmed */
	bool connected_pending;     /* CONNECTED not yet reported */
	bool terminated;            /* closed, draining or failed; nothing more sent */
	bool close_req;             /* quic_conn_close called inside a callback */
	uint64_t close_req_code;
	char close_req_reason[128];
	char reason[256];           /* close_info.reason storage */
	uint64_t ku_pkts;           /* tx_pkts at the last key update */
	struct quic_stats st;       /* counters */
};

/* --- Small helpers ------------------------------------------------------- */

static ngtcp2_tstamp now_ns(void)
{
	struct timespec tp;

	/* ngtcp2_tstamp is nanoseconds on any monotonic clock. */
	clock_gettime(CLOCK_MONOTONIC, &tp);
	return (ngtcp2_tstamp)tp.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)tp.tv_nsec;
}

static struct quic_conn *carrier_qc(struct carrier *c)
{
	return (struct quic_conn *)(void *)c; /* carrier is the first member */
}

static void qc_hold(struct quic_conn *qc)
{
	mem_ref(qc);
	qc->guards++;
}

static void qc_unhold(struct quic_conn *qc)
{
	qc->guards--;
	mem_deref(qc);
}

/* The owner has dropped its reference: only our guards keep qc alive, so
 * no handler may run any more. */
static bool qc_orphan(const struct quic_conn *qc)
{
	return mem_nrefs(qc) <= qc->guards;
}

static void qc_schedule_flush(struct quic_conn *qc);
static void qc_terminate(struct quic_conn *qc, enum quic_event ev,
			 bool local, bool app, uint64_t code,
			 const ngtcp2_connection_close_error *send_cc);

/* --- Streams: buffers and lifetime -------------------------------------- */

static void stream_destructor(void *arg)
{
	struct cstream *s = arg;

	while (s->head) {
		struct sbuf_chunk *c = s->head;

		s->head = c->next;
		free(c);
	}
	list_unlink(&s->le);
	list_unlink(&s->sle);
	list_unlink(&s->wle);
}

static void stream_maybe_free(struct cstream *s)
{
	if (s->freed || !s->released || (s->qc && !s->closed))
		return;
	s->freed = true;
	mem_deref(s);
}

static struct cstream *stream_new(struct quic_conn *qc, int64_t id)
{
	struct cstream *s = mem_zalloc(sizeof(*s), stream_destructor);

	if (!s)
		return NULL;
	s->qc = qc;
	s->id = id;
	list_append(&qc->streams, &s->le, s);
	return s;
}

/* How many more bytes stream_write may accept now. */
static size_t stream_room(const struct cstream *s)
{
	uint64_t unsent = s->write_off - s->sent_off;
	uint64_t unacked = s->write_off - s->acked_off;
	uint64_t room;

	if (!s->qc || unsent >= s->qc->sndbuf ||
	    unacked >= QUIC_STREAM_MAX_UNACKED)
		return 0;
	room = s->qc->sndbuf - unsent;
	if (room > QUIC_STREAM_MAX_UNACKED - unacked)
		room = QUIC_STREAM_MAX_UNACKED - unacked;
	return (size_t)room;
}

/* After a short write, writable fires once half the buffer is free again
 * (fewer, larger writes than firing on every packet). */
static void stream_check_writable(struct cstream *s)
{
	if (!s->want_writable || !s->qc || stream_room(s) < s->qc->sndbuf / 2)
		return;
	s->want_writable = false;
	if (!s->wle.list)
		list_append(&s->qc->writeq, &s->wle, s);
}

static bool stream_has_tx(const struct cstream *s)
{
	if (s->wr_dead || s->fc_blocked)
		return false;
	return s->sent_off < s->write_off || (s->fin_queued && !s->fin_sent);
}

static void sendq_update(struct cstream *s)
{
	struct quic_conn *qc = s->qc;

	if (!qc)
		return;
	if (stream_has_tx(s)) {
		if (!s->sle.list)
			list_append(&qc->sendq, &s->sle, s);
	}
	else {
		list_unlink(&s->sle);
	}
}

/* Up to max vectors covering [sent_off, write_off). */
static size_t stream_vecs(const struct cstream *s, ngtcp2_vec *v, size_t max,
			  uint64_t *total)
{
	const struct sbuf_chunk *c;
	uint64_t off = s->sent_off;
	size_t n = 0;

	*total = 0;
	for (c = s->head; c && n < max && off < s->write_off; c = c->next) {
		uint64_t end = c->base + QUIC_CHUNK;

		if (end > s->write_off)
			end = s->write_off;
		if (off >= end)
			continue;
		v[n].base = (uint8_t *)(uintptr_t)(c->data + (off - c->base));
		v[n].len = (size_t)(end - off);
		*total += v[n].len;
		off = end;
		n++;
	}
	return n;
}

static size_t stream_append(struct cstream *s, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		struct sbuf_chunk *t = s->tail;
		size_t used, m;

		if (!t || s->write_off - t->base == QUIC_CHUNK) {
			struct sbuf_chunk *c = malloc(sizeof(*c));

			if (!c)
				break;
			c->next = NULL;
			c->base = s->write_off;
			if (t)
				t->next = c;
			else
				s->head = c;
			s->tail = t = c;
		}
		used = (size_t)(s->write_off - t->base);
		m = QUIC_CHUNK - used;
		if (m > n - done)
			m = n - done;
		memcpy(t->data + used, p + done, m);
		s->write_off += m;
		done += m;
	}
	return done;
}

static void stream_release_acked(struct cstream *s)
{
	while (s->head && s->head->base + QUIC_CHUNK <= s->acked_off) {
		struct sbuf_chunk *c = s->head;

		s->head = c->next;
		if (s->tail == c)
			s->tail = NULL;
		free(c);
	}
}

/* Gives the connection window back for bytes the forwarder received but
 * will never report consumed (after a reset or its release). */
static void stream_close_rx(struct cstream *s)
{
	struct quic_conn *qc = s->qc;
	uint64_t owed;

	if (s->rx_closed)
		return;
	s->rx_closed = true;
	owed = s->rx_delivered - s->rx_consumed;
	s->rx_consumed = s->rx_delivered;
	if (owed && qc && qc->conn && !qc->terminated) {
		ngtcp2_conn_extend_max_offset(qc->conn, owed);
		qc_schedule_flush(qc);
	}
}

static bool stream_app_alive(const struct cstream *s)
{
	return s->qc && !s->app_done && s->has_h && !qc_orphan(s->qc);
}

static void stream_report_reset(struct cstream *s, uint64_t code)
{
	if (!stream_app_alive(s)) {
		s->app_done = true;
		return;
	}
	s->app_done = true;
	if (s->h.reset) {
		mem_ref(s);
		s->h.reset(s, code, s->arg);
		mem_deref(s);
	}
}

/* --- ngtcp2 callbacks ---------------------------------------------------- */

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *rctx)
{
	(void)rctx;
	/* Non-cryptographic use per ngtcp2_rand docs; a nonce-grade RNG. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, dest, destlen) < 0)
		memset(dest, 0, destlen);
}

static int cb_get_new_connection_id(ngtcp2_conn *conn, ngtcp2_cid *cid,
				    uint8_t *token, size_t cidlen,
				    void *user_data)
{
	(void)conn;
	(void)user_data;

	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) < 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	cid->datalen = cidlen;
	/* RFC 9000 section 10.3: stateless reset tokens must be unguessable. */
	if (gnutls_rnd(GNUTLS_RND_RANDOM, token,
		       NGTCP2_STATELESS_RESET_TOKENLEN) < 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static void mark_connected(struct quic_conn *qc)
{
	if (qc->connected)
		return;
	qc->connected = true;
	qc->connected_pending = true;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data)
{
	struct quic_conn *qc = user_data;

	(void)conn;
	if (!quic_tls_alpn_ok(&qc->tls))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	/* RFC 9001 section 4.1.2: the server's handshake is confirmed when it
	 * completes; the client waits for HANDSHAKE_DONE (handshake_confirmed)
	 * because only then has the server accepted our certificate. */
	if (qc->role == QUIC_ROLE_SERVER)
		mark_connected(qc);
	return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user_data)
{
	(void)conn;
	mark_connected(user_data);
	return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user_data)
{
	struct quic_conn *qc = user_data;
	struct cstream *s;
	int rv;

	if (!ngtcp2_is_bidi_stream(stream_id)) {
		/* We allow no unidirectional streams (initial_max_streams_uni 0). */
		return 0;
	}
	s = stream_new(qc, stream_id);
	if (!s)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	rv = ngtcp2_conn_set_stream_user_data(conn, stream_id, s);
	if (rv != 0) {
		s->released = true;
		s->closed = true;
		stream_maybe_free(s);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	/* Only a peer that finished its handshake (and so accepted our
	 * certificate) opens streams; HANDSHAKE_DONE may just be late. */
	mark_connected(qc);
	if (qc->connected_pending && !qc_orphan(qc)) {
		qc->connected_pending = false;
		if (qc->stateh)
			qc->stateh(qc, QUIC_EV_CONNECTED, NULL, qc->arg);
	}

	if (!qc_orphan(qc) && qc->carrier.h.stream_opened) {
		mem_ref(s);
		qc->carrier.h.stream_opened(s, qc->carrier.arg);
		if (!s->has_h && !s->released && !s->app_done) {
			/* Contract broken (no handlers): refuse the stream. */
			rv = ngtcp2_conn_shutdown_stream(conn, stream_id,
							 QUIC_ERR_STREAM_RELEASED);
			if (rv != 0)
				log_debug("quic", "shutdown_stream: %s",
					  ngtcp2_strerror(rv));
			s->app_done = true;
			s->released = true;
			s->rx_closed = true;
		}
		mem_deref(s);
	}
	else {
		rv = ngtcp2_conn_shutdown_stream(conn, stream_id,
						 QUIC_ERR_STREAM_RELEASED);
		if (rv != 0)
			log_debug("quic", "shutdown_stream: %s",
				  ngtcp2_strerror(rv));
		s->app_done = true;
		s->released = true;
		s->rx_closed = true;
	}
	return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
			       int64_t stream_id, uint64_t offset,
			       const uint8_t *data, size_t datalen,
			       void *user_data, void *stream_user_data)
{
	struct quic_conn *qc = user_data;
	struct cstream *s = stream_user_data;
	int rv;

	(void)offset;
	qc->st.stream_rx_bytes += datalen;

	if (!s || s->rx_closed || !stream_app_alive(s)) {
		/* Nobody will consume these bytes: give the credit back now. */
		if (datalen) {
			rv = ngtcp2_conn_extend_max_stream_offset(conn, stream_id,
								  datalen);
			if (rv != 0)
				return NGTCP2_ERR_CALLBACK_FAILURE;
			ngtcp2_conn_extend_max_offset(conn, datalen);
		}
		if (s && (flags & NGTCP2_STREAM_DATA_FLAG_FIN))
			s->fin_rcvd = true;
		return 0;
	}

	mem_ref(s);
	if (datalen) {
		s->rx_delivered += datalen;
		if (s->h.data)
			s->h.data(s, data, datalen, s->arg);
		else
			s->rx_consumed += datalen; /* no reader: nothing to wait for */
	}
	if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && !s->fin_rcvd) {
		s->fin_rcvd = true;
		if (stream_app_alive(s) && s->h.fin)
			s->h.fin(s, s->arg);
	}
	mem_deref(s);
	return 0;
}

static int cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id,
				       uint64_t offset, uint64_t datalen,
				       void *user_data, void *stream_user_data)
{
	struct cstream *s = stream_user_data;

	(void)conn;
	(void)stream_id;
	(void)user_data;
	if (!s)
		return 0;
	/* ngtcp2 reports contiguous ranges in increasing order. */
	if (offset + datalen > s->acked_off)
		s->acked_off = offset + datalen;
	stream_release_acked(s);
	stream_check_writable(s);
	return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags,
			   int64_t stream_id, uint64_t app_error_code,
			   void *user_data, void *stream_user_data)
{
	struct quic_conn *qc = user_data;
	struct cstream *s = stream_user_data;

	if (!ngtcp2_conn_is_local_stream(conn, stream_id) &&
	    ngtcp2_is_bidi_stream(stream_id)) {
		/* RFC 9000 section 4.6: credit the peer one more stream. */
		ngtcp2_conn_extend_max_streams_bidi(conn, 1);
	}
	if (!s)
		return 0;

	s->closed = true;
	list_unlink(&s->sle);
	mem_ref(s);
	if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) &&
	    !s->app_done) {
		stream_report_reset(s, app_error_code);
		stream_close_rx(s);
	}
	/* Otherwise consumed() keeps crediting the connection window for
	 * bytes the forwarder still holds, until it releases the handle. */
	(void)qc;
	stream_maybe_free(s);
	mem_deref(s);
	return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
			   uint64_t final_size, uint64_t app_error_code,
			   void *user_data, void *stream_user_data)
{
	struct cstream *s = stream_user_data;

	(void)conn;
	(void)stream_id;
	(void)final_size;
	(void)user_data;
	if (!s)
		return 0;
	mem_ref(s);
	/* The peer aborted: tell the forwarder once, then stop our side too
	 * (carrier.h: a reset aborts both directions). */
	if (!s->app_done)
		stream_report_reset(s, app_error_code);
	stream_close_rx(s);
	if (!s->wr_dead && s->qc && !s->closed) {
		int rv = ngtcp2_conn_shutdown_stream_write(conn, s->id,
							   app_error_code);
		if (rv != 0 && rv != NGTCP2_ERR_STREAM_NOT_FOUND)
			log_debug("quic", "shutdown_stream_write: %s",
				  ngtcp2_strerror(rv));
		s->wr_dead = true;
		list_unlink(&s->sle);
	}
	mem_deref(s);
	return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id,
				     uint64_t max_data, void *user_data,
				     void *stream_user_data)
{
	struct cstream *s = stream_user_data;

	(void)conn;
	(void)stream_id;
	(void)max_data;
	(void)user_data;
	if (s && s->fc_blocked) {
		s->fc_blocked = false;
		sendq_update(s);
	}
	return 0;
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags,
			    const uint8_t *data, size_t datalen,
			    void *user_data)
{
	struct quic_conn *qc = user_data;

	(void)conn;
	(void)flags;
	qc->st.dgram_rx++;
	if (!qc_orphan(qc) && qc->carrier.h.datagram)
		qc->carrier.h.datagram(data, datalen, qc->carrier.arg);
	return 0;
}

static const ngtcp2_callbacks client_callbacks = {
	.client_initial = ngtcp2_crypto_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.handshake_completed = cb_handshake_completed,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = cb_recv_stream_data,
	.acked_stream_data_offset = cb_acked_stream_data_offset,
	.stream_open = cb_stream_open,
	.stream_close = cb_stream_close,
	.recv_retry = ngtcp2_crypto_recv_retry_cb,
	.rand = cb_rand,
	.get_new_connection_id = cb_get_new_connection_id,
	.update_key = ngtcp2_crypto_update_key_cb,
	.stream_reset = cb_stream_reset,
	.extend_max_stream_data = cb_extend_max_stream_data,
	.handshake_confirmed = cb_handshake_confirmed,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.recv_datagram = cb_recv_datagram,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static const ngtcp2_callbacks server_callbacks = {
	.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.handshake_completed = cb_handshake_completed,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = cb_recv_stream_data,
	.acked_stream_data_offset = cb_acked_stream_data_offset,
	.stream_open = cb_stream_open,
	.stream_close = cb_stream_close,
	.rand = cb_rand,
	.get_new_connection_id = cb_get_new_connection_id,
	.update_key = ngtcp2_crypto_update_key_cb,
	.stream_reset = cb_stream_reset,
	.extend_max_stream_data = cb_extend_max_stream_data,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.recv_datagram = cb_recv_datagram,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	struct quic_conn *qc = ref->user_data;

	return qc->conn;
}

static void trace_printf(void *user_data, const char *fmt, ...)
{
	va_list ap;

	(void)user_data;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- Connection setup ---------------------------------------------------- */

static void qc_settings(struct quic_conn *qc, ngtcp2_settings *settings,
			ngtcp2_transport_params *params)
{
	ngtcp2_settings_default(settings);
	settings->initial_ts = now_ns();
	settings->cc_algo = qc->cc;
	settings->max_tx_udp_payload_size = qc->pktsz;
	/* Use the path's MTU as given instead of probing (ngtcp2 settings
	 * no_pmtud): probes would only learn the current path, and the path
	 * under us may change. */
	settings->no_pmtud = 1;
	settings->no_tx_udp_payload_size_shaping = qc->pktsz > QUIC_MIN_UDP_PAYLOAD;
	settings->handshake_timeout = qc->handshake_ms * NGTCP2_MILLISECONDS;
	settings->initial_rtt = qc->initial_rtt_ms * NGTCP2_MILLISECONDS;
	settings->max_window = QUIC_MAX_CONN_WINDOW;
	settings->max_stream_window = QUIC_MAX_STREAM_WINDOW;
	if (getenv("MESH_QUIC_TRACE"))
		settings->log_printf = trace_printf;

	ngtcp2_transport_params_default(params);
	params->initial_max_stream_data_bidi_local = QUIC_STREAM_WINDOW;
	params->initial_max_stream_data_bidi_remote = QUIC_STREAM_WINDOW;
	params->initial_max_stream_data_uni = 0;
	params->initial_max_data = QUIC_CONN_WINDOW;
	params->initial_max_streams_bidi = QUIC_MAX_STREAMS_BIDI;
	params->initial_max_streams_uni = 0;
	params->max_idle_timeout = qc->idle_ms * NGTCP2_MILLISECONDS;
	params->max_datagram_frame_size = QUIC_MAX_DATAGRAM_FRAME;
	/* The addresses ngtcp2 sees never change; path changes happen below
	 * us (RFC 9000 section 18.2, disable_active_migration). */
	params->disable_active_migration = 1;
	params->max_ack_delay = QUIC_MAX_ACK_DELAY_MS * NGTCP2_MILLISECONDS;
}

static int qc_new_ngtcp2(struct quic_conn *qc, const ngtcp2_pkt_hd *hd)
{
	ngtcp2_settings settings;
	ngtcp2_transport_params params;
	ngtcp2_cid dcid, scid;
	int rv, err;

	err = quic_tls_init(&qc->tls, qc->id, qc->role == QUIC_ROLE_SERVER,
			    qc->tls.expected_fp, get_conn, qc);
	if (err)
		return err;

	qc_settings(qc, &settings, &params);

	scid.datalen = QUIC_CIDLEN;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) < 0)
		return EIO;

	if (qc->role == QUIC_ROLE_CLIENT) {
		dcid.datalen = QUIC_CIDLEN;
		if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) < 0)
			return EIO;
		rv = ngtcp2_conn_client_new(&qc->conn, &dcid, &scid, &qc->vpath,
					    NGTCP2_PROTO_VER_V1,
					    &client_callbacks, &settings,
					    &params, NULL, qc);
	}
	else {
		/* RFC 9000 section 7.3: the server echoes the client's first
		 * Destination Connection ID as original_destination_connection_id. */
		params.original_dcid = hd->dcid;
		rv = ngtcp2_conn_server_new(&qc->conn, &hd->scid, &scid,
					    &qc->vpath, hd->version,
					    &server_callbacks, &settings,
					    &params, NULL, qc);
	}
	if (rv != 0) {
		qc->conn = NULL;
		log_warn("quic", "ngtcp2_conn_new: %s", ngtcp2_strerror(rv));
		return rv == NGTCP2_ERR_NOMEM ? ENOMEM : EPROTO;
	}

	ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls.session);
	ngtcp2_conn_set_keep_alive_timeout(qc->conn,
					   qc->keepalive_ms * NGTCP2_MILLISECONDS);
	return 0;
}

/* --- Output -------------------------------------------------------------- */

static bool would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS ||
	       err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS;
}

/* Sends len bytes of packets of seg bytes (the last may be shorter).
 * Returns false when the path cannot take more now: what it refused is
 * kept in qc->blocked and goes first next time. Other errors count as
 * sent: the packets are lost and QUIC recovers. */
static bool qc_send_batch(struct quic_conn *qc, const uint8_t *p, size_t len, size_t seg)
{
	size_t off = 0;
	int err = 0;

	if (!qc->path || !qc->path->send || !len)
		return true; /* nowhere to go: the packet is lost, QUIC recovers */
	if (qc->path->send_batch && len > seg) {
		/* A hard error stops the batch at one datagram (a packet
		 * filter's EPERM, say): that one is lost, the rest goes on. */
		while (off < len) {
			size_t sent = 0;

			err = qc->path->send_batch(qc->path, p + off, len - off, seg, &sent);
			off += sent;
			if (!err || would_block(err))
				break;
			off += len - off < seg ? len - off : seg;
		}
	}
	else {
		while (off < len) {
			size_t n = len - off < seg ? len - off : seg;

			err = qc->path->send(qc->path, p + off, n);
			if (would_block(err))
				break;
			off += n;
		}
	}
	if (err && !would_block(err))
		off = len;
	qc->st.tx_pkts += (off + seg - 1) / seg;
	qc->st.tx_bytes += off;
	if (off < len) {
		memmove(qc->blocked, p + off, len - off);
		qc->blocked_len = len - off;
		qc->blocked_seg = seg;
		return false;
	}
	return true;
}

static bool qc_send(struct quic_conn *qc, const uint8_t *p, size_t n)
{
	return qc_send_batch(qc, p, n, n);
}

static void qc_timeout(void *arg);

static void qc_arm(struct quic_conn *qc)
{
	ngtcp2_tstamp expiry, now;
	uint64_t ms;

	hrtimer_cancel(qc->pace);
	if (qc->terminated || !qc->conn) {
		tmr_cancel(&qc->tmr);
		return;
	}
	if (qc->blocked_len) {
		tmr_start(&qc->tmr, QUIC_BLOCKED_RETRY_MS, qc_timeout, qc);
		return;
	}
	expiry = ngtcp2_conn_get_expiry(qc->conn);
	if (expiry == UINT64_MAX) {
		tmr_cancel(&qc->tmr);
		return;
	}
	now = now_ns();
	if (expiry > now && expiry - now < NGTCP2_MILLISECONDS) {
		/* Pacing: libre's timers would round this up to a whole
		 * millisecond and cap the rate at a quantum per ms. */
		if (hrtimer_start(qc->pace, expiry - now) == 0) {
			tmr_cancel(&qc->tmr);
			return;
		}
		/* No timerfd: libre's millisecond timer below still works. */
	}
	ms = expiry <= now ? 0 : (expiry - now + NGTCP2_MILLISECONDS - 1) /
		NGTCP2_MILLISECONDS;
	tmr_start(&qc->tmr, ms, qc_timeout, qc);
}

static void qc_schedule_flush(struct quic_conn *qc)
{
	if (qc->terminated || !qc->conn)
		return;
	/* One timer: a zero delay runs the flush after the current batch of
	 * input has been read (drained first, then written). */
	tmr_start(&qc->tmr, 0, qc_timeout, qc);
}

static void dgram_pop(struct quic_conn *qc, struct dgram *d)
{
	list_unlink(&d->le);
	qc->dgram_bytes -= d->len;
	mem_deref(d);
}

static size_t varint_len(uint64_t n)
{
	/* RFC 9000 section 16. */
	return n < 64 ? 1 : n < 16384 ? 2 : n < 1073741824 ? 4 : 8;
}

static size_t qc_datagram_max(const struct quic_conn *qc)
{
	const ngtcp2_transport_params *rp;
	uint64_t budget, lim;
	size_t hdr, n;

	if (!qc->conn || !qc->connected || qc->terminated)
		return 0;
	rp = ngtcp2_conn_get_remote_transport_params(qc->conn);
	if (!rp || rp->max_datagram_frame_size == 0)
		return 0;

	budget = qc->pktsz;
	if (rp->max_udp_payload_size && rp->max_udp_payload_size < budget)
		budget = rp->max_udp_payload_size;
	hdr = QUIC_SHORT_HDR_FIXED + ngtcp2_conn_get_dcid(qc->conn)->datalen;
	if (budget <= hdr)
		return 0;
	lim = budget - hdr;
	if (rp->max_datagram_frame_size < lim)
		lim = rp->max_datagram_frame_size;
	/* Frame = type (1) + length varint + payload. */
	if (lim < 2)
		return 0;
	n = (size_t)lim - 1;
	while (n > 0 && 1 + varint_len(n) + n > lim)
		n--;
	return n;
}

static void qc_fail_liberr(struct quic_conn *qc, int liberr, const char *what)
{
	ngtcp2_connection_close_error cc;

	ngtcp2_connection_close_error_default(&cc);
	ngtcp2_connection_close_error_set_transport_error_liberr(&cc, liberr,
								 NULL, 0);
	snprintf(qc->reason, sizeof(qc->reason), "%s: %s", what,
		 ngtcp2_strerror(liberr));
	qc_terminate(qc, QUIC_EV_CLOSED, true, false, cc.error_code, &cc);
}

static void qc_maybe_key_update(struct quic_conn *qc, ngtcp2_tstamp ts)
{
	int rv;

	if (!qc->connected || qc->st.tx_pkts - qc->ku_pkts < QUIC_KEY_UPDATE_PKTS)
		return;
	rv = ngtcp2_conn_initiate_key_update(qc->conn, ts);
	if (rv == 0)
		qc->ku_pkts = qc->st.tx_pkts;
	else if (rv != NGTCP2_ERR_INVALID_STATE)
		log_debug("quic", "initiate_key_update: %s", ngtcp2_strerror(rv));
}

/* Writes everything ngtcp2 lets us: datagrams first, then stream data
 * round robin, then whatever else (ACKs, control frames). */
static void qc_write(struct quic_conn *qc)
{
	ngtcp2_tstamp ts = now_ns();
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	size_t npkts = 0, max_pkts, quantum;

	if (qc->terminated || !qc->conn)
		return;

	if (qc->blocked_len) {
		size_t n = qc->blocked_len;

		qc->blocked_len = 0;
		if (!qc_send_batch(qc, qc->blocked, n, qc->blocked_seg))
			return;
	}

	qc_maybe_key_update(qc, ts);

	/* ngtcp2 examples: send at most send_quantum per round, then
	 * ngtcp2_conn_update_pkt_tx_time() so pacing can space rounds. */
	quantum = ngtcp2_conn_get_send_quantum(qc->conn);
	max_pkts = quantum / qc->pktsz;
	if (max_pkts < 2)
		max_pkts = 2;

	ngtcp2_path_storage_zero(&ps);
	qc->in_ngtcp2++;
	/* Packets go out in batches of equal-sized packets (the last may be
	 * shorter) written one after the other into txbuf: one system call
	 * per batch where the path has UDP GSO. */
	size_t blen = 0, bseg = 0, bn = 0;
	for (;;) {
		struct le *le = list_head(&qc->sendq);
		uint8_t *out = qc->txbuf + blen;
		struct cstream *s = le ? le->data : NULL;
		struct dgram *d = list_ledata(list_head(&qc->dgrams));
		ngtcp2_ssize nwrite, ndatalen = -1;
		ngtcp2_vec vec[8];
		size_t nvec = 0;
		uint64_t total = 0;
		uint32_t flags;
		bool fin = false;

		if (d) {
			ngtcp2_vec dv = { d->data, d->len };
			int accepted = 0;

			nwrite = ngtcp2_conn_writev_datagram(qc->conn, &ps.path,
					&pi, out, qc->pktsz, &accepted,
					NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0,
					&dv, 1, ts);
			if (accepted) {
				qc->st.dgram_tx++;
				dgram_pop(qc, d);
			}
			if (nwrite == NGTCP2_ERR_WRITE_MORE)
				continue;
			if (nwrite == NGTCP2_ERR_INVALID_ARGUMENT ||
			    nwrite == NGTCP2_ERR_INVALID_STATE) {
				/* Larger than the peer takes, or no DATAGRAM
				 * support: it can never go. */
				qc->st.dgram_dropped++;
				dgram_pop(qc, d);
				continue;
			}
			if (nwrite < 0) {
				qc->in_ngtcp2--;
				qc_fail_liberr(qc, (int)nwrite, "writev_datagram");
				return;
			}
			if (nwrite == 0) {
				if (!accepted && d->len > qc_datagram_max(qc)) {
					qc->st.dgram_dropped++;
					dgram_pop(qc, d);
					continue;
				}
				break; /* congestion limited */
			}
			goto send;
		}

		flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
		if (s) {
			nvec = stream_vecs(s, vec, 8, &total);
			if (s->fin_queued && !s->fin_sent &&
			    s->sent_off + total == s->write_off) {
				fin = true;
				flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
			}
		}
		else {
			flags = NGTCP2_WRITE_STREAM_FLAG_NONE;
		}

		nwrite = ngtcp2_conn_writev_stream(qc->conn, &ps.path, &pi,
						   out, qc->pktsz,
						   &ndatalen, flags,
						   s ? s->id : -1,
						   nvec ? vec : NULL, nvec, ts);
		if (nwrite < 0) {
			switch (nwrite) {
			case NGTCP2_ERR_STREAM_DATA_BLOCKED:
				s->fc_blocked = true;
				list_unlink(&s->sle);
				continue;
			case NGTCP2_ERR_STREAM_SHUT_WR:
			case NGTCP2_ERR_STREAM_NOT_FOUND:
				/* Peer's STOP_SENDING made ngtcp2 reset it. */
				s->wr_dead = true;
				list_unlink(&s->sle);
				continue;
			case NGTCP2_ERR_WRITE_MORE:
				s->sent_off += (uint64_t)ndatalen;
				if (fin && s->sent_off == s->write_off)
					s->fin_sent = true;
				sendq_update(s);
				stream_check_writable(s);
				continue;
			default:
				qc->in_ngtcp2--;
				qc_fail_liberr(qc, (int)nwrite, "writev_stream");
				return;
			}
		}
		if (s && ndatalen >= 0) {
			s->sent_off += (uint64_t)ndatalen;
			if (fin && s->sent_off == s->write_off)
				s->fin_sent = true;
			sendq_update(s);
			stream_check_writable(s);
			if (s->sle.list && qc->sendq.head != qc->sendq.tail) {
				/* Round robin: this stream goes to the back. */
				list_unlink(&s->sle);
				list_append(&qc->sendq, &s->sle, s);
			}
		}
		if (nwrite == 0)
			break; /* nothing more, or congestion/flow limited */
 send:
		if (bn && (size_t)nwrite > bseg) {
			/* Larger than the batch's packets: the batch goes
			 * first, this packet starts the next one. */
			if (!qc_send_batch(qc, qc->txbuf, blen, bseg)) {
				/* The path is full: this packet is lost like
				 * one the network drops; QUIC resends it. */
				blen = bn = 0;
				break;
			}
			memmove(qc->txbuf, out, (size_t)nwrite);
			blen = bn = 0;
		}
		if (bn == 0)
			bseg = (size_t)nwrite;
		blen += (size_t)nwrite;
		bn++;
		++npkts;
		/* A short packet ends a batch; so does a full one. */
		if ((size_t)nwrite < bseg || bn >= qc->batch_max || npkts >= max_pkts) {
			bool ok = qc_send_batch(qc, qc->txbuf, blen, bseg);

			blen = bn = 0;
			if (!ok || npkts >= max_pkts)
				break;
		}
	}
	if (blen)
		(void)qc_send_batch(qc, qc->txbuf, blen, bseg);
	ngtcp2_conn_update_pkt_tx_time(qc->conn, ts);
	qc->in_ngtcp2--;
}

/* --- Closing --------------------------------------------------------------- */

static void qc_reset_all_streams(struct quic_conn *qc)
{
	struct le *le = list_head(&qc->streams);

	while (le) {
		struct cstream *s = le->data;

		le = le->next;
		list_unlink(&s->sle);
		s->wr_dead = true;
		s->rx_closed = true;
		mem_ref(s);
		if (!s->app_done)
			stream_report_reset(s, QUIC_ERR_CONN_CLOSED);
		mem_deref(s);
	}
}

/* The one way out: sends CONNECTION_CLOSE (send_cc) unless ngtcp2 is
 * already closing or draining, stops the timer, resets the streams and
 * reports ev once. */
static void qc_terminate(struct quic_conn *qc, enum quic_event ev,
			 bool local, bool app, uint64_t code,
			 const ngtcp2_connection_close_error *send_cc)
{
	struct quic_close_info ci;

	if (qc->terminated)
		return;

	if (send_cc && qc->conn && !ngtcp2_conn_is_in_closing_period(qc->conn) &&
	    !ngtcp2_conn_is_in_draining_period(qc->conn)) {
		ngtcp2_pkt_info pi;
		ngtcp2_ssize n;

		qc->in_ngtcp2++;
		n = ngtcp2_conn_write_connection_close(qc->conn, NULL, &pi,
						       qc->txbuf, qc->pktsz,
						       send_cc, now_ns());
		qc->in_ngtcp2--;
		if (n > 0) {
			qc->closepkt = mem_alloc((size_t)n, NULL);
			if (qc->closepkt) {
				memcpy(qc->closepkt, qc->txbuf, (size_t)n);
				qc->closepkt_len = (size_t)n;
			}
			for (int i = 0; i < QUIC_CLOSE_COPIES; i++) {
				qc->blocked_len = 0;
				(void)qc_send(qc, qc->txbuf, (size_t)n);
			}
			qc->blocked_len = 0;
		}
		else if (n < 0) {
			log_debug("quic", "write_connection_close: %s",
				  ngtcp2_strerror((int)n));
		}
	}

	qc->terminated = true;
	qc->connected_pending = false;
	tmr_cancel(&qc->tmr);
	hrtimer_cancel(qc->pace);
	while (qc->dgrams.head)
		dgram_pop(qc, qc->dgrams.head->data);

	qc_reset_all_streams(qc);

	if (!qc->reason[0])
		snprintf(qc->reason, sizeof(qc->reason), "closed");
	log_debug("quic", "%s %s: %s (code 0x%llx)",
		  ev == QUIC_EV_AUTH_FAILED ? "auth failed" : "closed",
		  local ? "here" : "by peer", qc->reason,
		  (unsigned long long)code);

	ci.local = local;
	ci.app = app;
	ci.code = code;
	ci.reason = qc->reason;
	if (!qc_orphan(qc) && qc->stateh)
		qc->stateh(qc, ev, &ci, qc->arg);
}

static void copy_reason(char *dst, size_t dstsz, const uint8_t *p, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 1 < dstsz; i++)
		dst[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	dst[j] = '\0';
}

/* The peer closed (we are draining). */
static void qc_peer_closed(struct quic_conn *qc)
{
	ngtcp2_connection_close_error cc;
	char why[160] = "";
	bool app, auth = false;

	ngtcp2_conn_get_connection_close_error(qc->conn, &cc);
	app = cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
	if (cc.reason && cc.reasonlen)
		copy_reason(why, sizeof(why), cc.reason, cc.reasonlen);

	/* RFC 9001 section 4.8: TLS alerts travel as 0x100 + alert. */
	if (!app && !qc->connected &&
	    (cc.error_code == (NGTCP2_CRYPTO_ERROR | GNUTLS_A_BAD_CERTIFICATE) ||
	     cc.error_code == (NGTCP2_CRYPTO_ERROR | GNUTLS_A_CERTIFICATE_REQUIRED) ||
	     cc.error_code == (NGTCP2_CRYPTO_ERROR | GNUTLS_A_UNSUPPORTED_CERTIFICATE)))
		auth = true;

	if (auth)
		snprintf(qc->reason, sizeof(qc->reason),
			 "peer refused our certificate (TLS alert %u)",
			 (unsigned)(cc.error_code & 0xff));
	else
		snprintf(qc->reason, sizeof(qc->reason),
			 "peer closed: %s error 0x%llx%s%s",
			 app ? "application" : "transport",
			 (unsigned long long)cc.error_code,
			 why[0] ? ": " : "", why);
	qc_terminate(qc, auth ? QUIC_EV_AUTH_FAILED : QUIC_EV_CLOSED, false,
		     app, cc.error_code, NULL);
}

static void qc_tls_failed(struct quic_conn *qc)
{
	ngtcp2_connection_close_error cc;
	uint8_t alert = ngtcp2_conn_get_tls_alert(qc->conn);

	if (!alert)
		alert = GNUTLS_A_HANDSHAKE_FAILURE;
	ngtcp2_connection_close_error_default(&cc);
	ngtcp2_connection_close_error_set_transport_error_tls_alert(&cc, alert,
								    NULL, 0);
	if (qc->tls.fp_mismatch) {
		snprintf(qc->reason, sizeof(qc->reason),
			 "peer certificate fingerprint %s, offer said %s",
			 qc->tls.peer_fp[0] ? qc->tls.peer_fp : "(none)",
			 qc->tls.expected_fp);
		qc_terminate(qc, QUIC_EV_AUTH_FAILED, true, false,
			     cc.error_code, &cc);
		return;
	}
	snprintf(qc->reason, sizeof(qc->reason), "TLS handshake failed: %s",
		 gnutls_alert_get_name((gnutls_alert_description_t)alert) ?
		 gnutls_alert_get_name((gnutls_alert_description_t)alert) : "?");
	qc_terminate(qc, QUIC_EV_CLOSED, true, false, cc.error_code, &cc);
}

static void qc_app_close(struct quic_conn *qc, uint64_t code, const char *why)
{
	ngtcp2_connection_close_error cc;

	ngtcp2_connection_close_error_default(&cc);
	ngtcp2_connection_close_error_set_application_error(&cc, code,
		(const uint8_t *)why, why ? strlen(why) : 0);
	snprintf(qc->reason, sizeof(qc->reason), "closed here: %s",
		 why && why[0] ? why : "application close");
	qc_terminate(qc, QUIC_EV_CLOSED, true, true, code,
		     qc->conn ? &cc : NULL);
}

/* Work that must not run inside ngtcp2 callbacks. */
static void qc_post(struct quic_conn *qc)
{
	if (qc->close_req && !qc->terminated) {
		qc->close_req = false;
		qc_app_close(qc, qc->close_req_code, qc->close_req_reason);
	}
	if (qc->terminated || qc_orphan(qc))
		return;
	if (qc->connected_pending) {
		qc->connected_pending = false;
		log_debug("quic", "connected (%s)",
			  qc->role == QUIC_ROLE_CLIENT ? "client" : "server");
		if (qc->stateh)
			qc->stateh(qc, QUIC_EV_CONNECTED, NULL, qc->arg);
		if (qc->terminated || qc_orphan(qc))
			return;
	}
	while (qc->writeq.head) {
		struct cstream *s = qc->writeq.head->data;

		list_unlink(&s->wle);
		if (!stream_app_alive(s) || !s->h.writable)
			continue;
		mem_ref(s);
		s->h.writable(s, s->arg);
		mem_deref(s);
		if (qc->terminated || qc_orphan(qc))
			return;
	}
}

/* --- Input and timer ------------------------------------------------------- */

static int qc_accept(struct quic_conn *qc, const uint8_t *p, size_t n)
{
	ngtcp2_pkt_hd hd;
	int rv = ngtcp2_accept(&hd, p, n);

	if (rv != 0)
		return EPROTO; /* not a client Initial: drop it */
	return qc_new_ngtcp2(qc, &hd);
}

static void qc_path_recv(const uint8_t *data, size_t len, void *arg)
{
	struct quic_conn *qc = arg;
	ngtcp2_pkt_info pi = { 0 };
	int rv;

	if (!qc || !data || !len)
		return;
	qc_hold(qc);
	qc->st.rx_pkts++;
	qc->st.rx_bytes += len;

	if (qc->terminated) {
		/* RFC 9000 section 10.2.1: repeat CONNECTION_CLOSE. */
		if (qc->closepkt_len && qc->close_resends < QUIC_CLOSE_RESENDS) {
			qc->close_resends++;
			(void)qc_send(qc, qc->closepkt, qc->closepkt_len);
			qc->blocked_len = 0;
		}
		goto out;
	}

	if (!qc->conn) {
		if (qc->role != QUIC_ROLE_SERVER || qc_accept(qc, data, len) != 0)
			goto out;
	}

	qc->in_ngtcp2++;
	rv = ngtcp2_conn_read_pkt(qc->conn, &qc->vpath, &pi, data, len, now_ns());
	qc->in_ngtcp2--;
	if (rv != 0) {
		switch (rv) {
		case NGTCP2_ERR_DRAINING:
			qc_peer_closed(qc);
			break;
		case NGTCP2_ERR_CRYPTO:
			qc_tls_failed(qc);
			break;
		case NGTCP2_ERR_DROP_CONN:
		case NGTCP2_ERR_RETRY:
			snprintf(qc->reason, sizeof(qc->reason),
				 "dropped: %s", ngtcp2_strerror(rv));
			qc_terminate(qc, QUIC_EV_CLOSED, true, false,
				     NGTCP2_INTERNAL_ERROR, NULL);
			break;
		case NGTCP2_ERR_CLOSING:
			/* Already closing: nothing to add. */
			break;
		default:
			if (qc->tls.fp_mismatch) {
				qc_tls_failed(qc);
				break;
			}
			qc_fail_liberr(qc, rv, "read_pkt");
			break;
		}
		goto out;
	}

	qc_post(qc);
	qc_schedule_flush(qc);
 out:
	qc_unhold(qc);
}

static void qc_timeout(void *arg)
{
	struct quic_conn *qc = arg;
	int rv;

	if (qc->terminated || !qc->conn)
		return;
	qc_hold(qc);

	qc->in_ngtcp2++;
	rv = ngtcp2_conn_handle_expiry(qc->conn, now_ns());
	qc->in_ngtcp2--;
	if (rv != 0) {
		switch (rv) {
		case NGTCP2_ERR_IDLE_CLOSE:
			/* RFC 9000 section 10.1: the connection is silently
			 * closed after the idle timeout. */
			snprintf(qc->reason, sizeof(qc->reason),
				 "idle timeout: no packet from peer for %llu ms",
				 (unsigned long long)qc->idle_ms);
			qc_terminate(qc, QUIC_EV_CLOSED, true, false,
				     NGTCP2_NO_ERROR, NULL);
			break;
		case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
			snprintf(qc->reason, sizeof(qc->reason),
				 "handshake timeout after %llu ms",
				 (unsigned long long)qc->handshake_ms);
			qc_terminate(qc, QUIC_EV_CLOSED, true, false,
				     NGTCP2_NO_ERROR, NULL);
			break;
		default:
			qc_fail_liberr(qc, rv, "handle_expiry");
			break;
		}
		goto out;
	}

	qc_post(qc);
	if (qc->terminated || qc_orphan(qc))
		goto out;
	qc_write(qc);
	if (!qc->terminated)
		qc_post(qc);
	qc_arm(qc);
 out:
	qc_unhold(qc);
}

/* --- Carrier operations ---------------------------------------------------- */

static int op_stream_open(struct carrier *c, struct cstream **out)
{
	struct quic_conn *qc = carrier_qc(c);
	struct cstream *s;
	int64_t id;
	int rv;

	if (!out)
		return EINVAL;
	if (qc->terminated || !qc->conn || !qc->connected)
		return ENOTCONN;

	s = stream_new(qc, -1);
	if (!s)
		return ENOMEM;
	rv = ngtcp2_conn_open_bidi_stream(qc->conn, &id, s);
	if (rv != 0) {
		s->released = true;
		s->qc = NULL;
		list_unlink(&s->le);
		stream_maybe_free(s);
		/* RFC 9000 section 4.6: wait for MAX_STREAMS. */
		return rv == NGTCP2_ERR_STREAM_ID_BLOCKED ? EAGAIN :
			rv == NGTCP2_ERR_NOMEM ? ENOMEM : EPROTO;
	}
	s->id = id;
	*out = s;
	return 0;
}

static void op_stream_set_handlers(struct cstream *s,
				   const struct cstream_handlers *h, void *arg)
{
	if (!s)
		return;
	if (h) {
		s->h = *h;
		s->has_h = true;
	}
	else {
		memset(&s->h, 0, sizeof(s->h));
		s->has_h = false;
	}
	s->arg = arg;
}

static long op_stream_write(struct cstream *s, const uint8_t *p, size_t n)
{
	struct quic_conn *qc;
	size_t room, m;

	if (!s || s->released || (!p && n))
		return -EINVAL;
	qc = s->qc;
	if (!qc || qc->terminated)
		return -ENOTCONN;
	if (s->wr_dead || s->app_done)
		return -ECONNRESET;
	if (s->fin_queued)
		return -EPIPE;
	if (n == 0)
		return 0;

	room = stream_room(s);
	m = n < room ? n : room;
	if (m)
		m = stream_append(s, p, m);
	if (m < n)
		s->want_writable = true;
	if (m == 0)
		return room ? -ENOMEM : 0;
	qc->st.stream_tx_bytes += m;
	sendq_update(s);
	qc_schedule_flush(qc);
	return (long)m;
}

static void op_stream_consumed(struct cstream *s, size_t n)
{
	struct quic_conn *qc;
	uint64_t owed;
	int rv;

	if (!s || s->rx_closed || !n)
		return;
	qc = s->qc;
	owed = s->rx_delivered - s->rx_consumed;
	if (n > owed)
		n = (size_t)owed;
	if (!n)
		return;
	s->rx_consumed += n;
	if (!qc || !qc->conn || qc->terminated)
		return;
	if (!s->closed) {
		rv = ngtcp2_conn_extend_max_stream_offset(qc->conn, s->id, n);
		if (rv != 0)
			log_debug("quic", "extend_max_stream_offset: %s",
				  ngtcp2_strerror(rv));
	}
	ngtcp2_conn_extend_max_offset(qc->conn, n);
	qc_schedule_flush(qc);
}

static int op_stream_shutdown_write(struct cstream *s)
{
	struct quic_conn *qc;

	if (!s || s->released)
		return EINVAL;
	qc = s->qc;
	if (!qc || qc->terminated)
		return ENOTCONN;
	if (s->wr_dead || s->app_done)
		return ECONNRESET;
	if (s->fin_queued)
		return 0;
	s->fin_queued = true;
	sendq_update(s);
	qc_schedule_flush(qc);
	return 0;
}

static void stream_abort(struct cstream *s, uint64_t code)
{
	struct quic_conn *qc = s->qc;
	int rv;

	s->app_done = true;
	list_unlink(&s->sle);
	stream_close_rx(s);
	if (!qc || !qc->conn || qc->terminated || s->closed ||
	    (s->wr_dead && s->fin_rcvd))
		return;
	rv = ngtcp2_conn_shutdown_stream(qc->conn, s->id, code);
	if (rv != 0 && rv != NGTCP2_ERR_STREAM_NOT_FOUND)
		log_debug("quic", "shutdown_stream: %s", ngtcp2_strerror(rv));
	s->wr_dead = true;
	qc_schedule_flush(qc);
}

static void op_stream_reset(struct cstream *s, uint64_t code)
{
	if (!s || s->released || s->app_done)
		return;
	stream_abort(s, code);
}

static void op_stream_release(struct cstream *s)
{
	struct quic_conn *qc;

	if (!s || s->released)
		return;
	qc = s->qc;
	s->released = true;
	memset(&s->h, 0, sizeof(s->h));
	s->has_h = false;

	if (qc && qc->conn && !qc->terminated && !s->closed && !s->app_done) {
		if (!s->fin_queued && !s->wr_dead) {
			/* Released without a FIN: the stream is abandoned. */
			stream_abort(s, QUIC_ERR_STREAM_RELEASED);
		}
		else if (!s->fin_rcvd) {
			/* Done writing, not reading: RFC 9000 section 3.5
			 * STOP_SENDING; queued data and the FIN still go. */
			int rv = ngtcp2_conn_shutdown_stream_read(qc->conn, s->id,
						QUIC_ERR_STREAM_RELEASED);
			if (rv != 0 && rv != NGTCP2_ERR_STREAM_NOT_FOUND)
				log_debug("quic", "shutdown_stream_read: %s",
					  ngtcp2_strerror(rv));
			qc_schedule_flush(qc);
		}
	}
	s->app_done = true;
	list_unlink(&s->wle);
	stream_close_rx(s);
	stream_maybe_free(s);
}

static int op_datagram_send(struct carrier *c, const uint8_t *p, size_t n)
{
	struct quic_conn *qc = carrier_qc(c);
	struct dgram *d;

	if (!p && n)
		return EINVAL;
	if (qc->terminated || !qc->conn || !qc->connected)
		return ENOTCONN;
	if (n > qc_datagram_max(qc))
		return EMSGSIZE;
	if (list_count(&qc->dgrams) >= QUIC_DGRAM_QUEUE_MAX ||
	    qc->dgram_bytes + n > QUIC_DGRAM_QUEUE_BYTES) {
		qc->st.dgram_dropped++;
		return ENOBUFS;
	}
	d = mem_alloc(sizeof(*d) + n, NULL);
	if (!d)
		return ENOMEM;
	memset(&d->le, 0, sizeof(d->le));
	d->len = n;
	if (n)
		memcpy(d->data, p, n);
	list_append(&qc->dgrams, &d->le, d);
	qc->dgram_bytes += n;
	qc_schedule_flush(qc);
	return 0;
}

static size_t op_datagram_max(struct carrier *c)
{
	return qc_datagram_max(carrier_qc(c));
}

static const struct carrier_ops quic_ops = {
	.stream_open = op_stream_open,
	.stream_set_handlers = op_stream_set_handlers,
	.stream_write = op_stream_write,
	.stream_consumed = op_stream_consumed,
	.stream_shutdown_write = op_stream_shutdown_write,
	.stream_reset = op_stream_reset,
	.stream_release = op_stream_release,
	.datagram_send = op_datagram_send,
	.datagram_max = op_datagram_max,
};

/* --- Public API ------------------------------------------------------------ */

static void qc_destructor(void *arg)
{
	struct quic_conn *qc = arg;
	struct le *le;

	tmr_cancel(&qc->tmr);
	qc->pace = mem_deref(qc->pace);
	if (qc->path && qc->path->recv_arg == qc) {
		qc->path->recv = NULL;
		qc->path->recv_arg = NULL;
	}
	/* ngtcp2 first: it may still point into stream buffers. */
	if (qc->conn)
		ngtcp2_conn_del(qc->conn);
	qc->conn = NULL;
	quic_tls_deinit(&qc->tls);

	le = list_head(&qc->streams);
	while (le) {
		struct cstream *s = le->data;

		le = le->next;
		list_unlink(&s->le);
		list_unlink(&s->sle);
		list_unlink(&s->wle);
		s->qc = NULL;
		stream_maybe_free(s); /* handles not released stay valid */
	}
	while (qc->dgrams.head)
		dgram_pop(qc, qc->dgrams.head->data);
	mem_deref(qc->txbuf);
	mem_deref(qc->blocked);
	mem_deref(qc->closepkt);
	mem_deref(qc->id);
}

/* ngtcp2 0.12 offers Reno, CUBIC, BBR and BBRv2 (ngtcp2_cc_algo). Loss
 * here is mostly random (lossy paths, not queues), which loss-based
 * controllers mistake for congestion. 20 MB at 10% loss each way and
 * 25 ms each way (tests/client/quic): CUBIC did not finish in 120 s, BBR
 * took 4-15 s, BBRv2 3.1-5.1 s, so BBRv2 is the default. */
static ngtcp2_cc_algo cc_algo(enum quic_cc cc)
{
	switch (cc) {
	case QUIC_CC_RENO:  return NGTCP2_CC_ALGO_RENO;
	case QUIC_CC_CUBIC: return NGTCP2_CC_ALGO_CUBIC;
	case QUIC_CC_BBR:   return NGTCP2_CC_ALGO_BBR;
	case QUIC_CC_BBR2:
	case QUIC_CC_DEFAULT:
	default:            return NGTCP2_CC_ALGO_BBR2;
	}
}

int quic_conn_alloc(struct quic_conn **qcp, const struct quic_config *cfg,
		    struct mesh_path *path, const struct carrier_handlers *h,
		    void *arg)
{
	struct quic_conn *qc;
	int err = 0;

	if (!qcp || !cfg || !cfg->id || !path || !path->send ||
	    !quic_fp_valid(cfg->remote_fp) ||
	    (cfg->role != QUIC_ROLE_CLIENT && cfg->role != QUIC_ROLE_SERVER))
		return EINVAL;

	qc = mem_zalloc(sizeof(*qc), qc_destructor);
	if (!qc)
		return ENOMEM;

	qc->carrier.ops = &quic_ops;
	if (h)
		qc->carrier.h = *h;
	qc->carrier.arg = arg;
	qc->stateh = cfg->stateh;
	qc->arg = arg;
	qc->id = mem_ref(cfg->id);
	qc->path = path;
	qc->role = cfg->role;
	qc->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : QUIC_IDLE_TIMEOUT_MS;
	qc->keepalive_ms = cfg->keepalive_ms ? cfg->keepalive_ms : QUIC_KEEPALIVE_MS;
	qc->handshake_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms :
		QUIC_HANDSHAKE_TIMEOUT_MS;
	/* RFC 9002 section 6.2.2: kInitialRtt 333 ms unless known better. */
	qc->initial_rtt_ms = cfg->initial_rtt_ms ? cfg->initial_rtt_ms :
		NGTCP2_DEFAULT_INITIAL_RTT / NGTCP2_MILLISECONDS;
	qc->sndbuf = cfg->stream_sndbuf ? cfg->stream_sndbuf : QUIC_STREAM_SNDBUF;
	qc->cc = cc_algo(cfg->cc);
	memcpy(qc->tls.expected_fp, cfg->remote_fp, QUIC_FP_LEN + 1);
	tmr_init(&qc->tmr);
	list_init(&qc->streams);
	list_init(&qc->sendq);
	list_init(&qc->writeq);
	list_init(&qc->dgrams);

	qc->pktsz = path->mtu > QUIC_MIN_UDP_PAYLOAD ? path->mtu : QUIC_MIN_UDP_PAYLOAD;
	if (qc->pktsz > QUIC_MAX_UDP_PAYLOAD)
		qc->pktsz = QUIC_MAX_UDP_PAYLOAD;
	/* UDP GSO takes up to 64 segments of at most 64 KiB in all. */
	qc->batch_max = QUIC_BATCH_BYTES / qc->pktsz;
	if (qc->batch_max > QUIC_BATCH_PKTS)
		qc->batch_max = QUIC_BATCH_PKTS;
	if (qc->batch_max < 1)
		qc->batch_max = 1;
	qc->txbuf = mem_alloc(qc->batch_max * qc->pktsz, NULL);
	qc->blocked = mem_alloc(qc->batch_max * qc->pktsz, NULL);
	if (!qc->txbuf || !qc->blocked) {
		err = ENOMEM;
		goto out;
	}
	err = hrtimer_alloc(&qc->pace, qc_timeout, qc);
	if (err)
		goto out;

	/* The virtual path: loopback addresses that never reach a socket.
	 * Only their constancy matters (ngtcp2 would see a change as a
	 * migration). */
	qc->vlocal.sin_family = AF_INET;
	qc->vlocal.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	qc->vlocal.sin_port = htons(qc->role == QUIC_ROLE_CLIENT ? 1 : 2);
	qc->vremote = qc->vlocal;
	qc->vremote.sin_port = htons(qc->role == QUIC_ROLE_CLIENT ? 2 : 1);
	qc->vpath.local.addr = (ngtcp2_sockaddr *)&qc->vlocal;
	qc->vpath.local.addrlen = sizeof(qc->vlocal);
	qc->vpath.remote.addr = (ngtcp2_sockaddr *)&qc->vremote;
	qc->vpath.remote.addrlen = sizeof(qc->vremote);

	if (qc->role == QUIC_ROLE_CLIENT) {
		err = qc_new_ngtcp2(qc, NULL);
		if (err)
			goto out;
	}

	path->recv = qc_path_recv;
	path->recv_arg = qc;
	if (qc->conn)
		qc_schedule_flush(qc); /* the client's Initial */

 out:
	if (err)
		mem_deref(qc);
	else
		*qcp = qc;
	return err;
}

struct carrier *quic_carrier(struct quic_conn *qc)
{
	return qc ? &qc->carrier : NULL;
}

void quic_conn_close(struct quic_conn *qc, uint64_t app_error,
		     const char *reason)
{
	if (!qc || qc->terminated)
		return;
	if (qc->in_ngtcp2) {
		/* Inside a callback ngtcp2 must not be re-entered to write:
		 * close once it returns. */
		qc->close_req = true;
		qc->close_req_code = app_error;
		snprintf(qc->close_req_reason, sizeof(qc->close_req_reason),
			 "%s", reason ? reason : "");
		return;
	}
	qc_hold(qc);
	qc_app_close(qc, app_error, reason);
	qc_unhold(qc);
}

bool quic_conn_is_connected(const struct quic_conn *qc)
{
	return qc && qc->connected && !qc->terminated;
}

void quic_conn_stats(const struct quic_conn *qc, struct quic_stats *st)
{
	ngtcp2_conn_stat cs;

	if (!qc || !st)
		return;
	*st = qc->st;
	st->streams = list_count(&qc->streams);
	st->max_udp_payload = qc->pktsz;
	if (!qc->conn)
		return;
	ngtcp2_conn_get_conn_stat(qc->conn, &cs);
	st->srtt_us = cs.smoothed_rtt / 1000;
	st->min_rtt_us = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt / 1000;
	st->latest_rtt_us = cs.latest_rtt / 1000;
	st->cwnd = cs.cwnd;
	st->bytes_in_flight = cs.bytes_in_flight;
}
