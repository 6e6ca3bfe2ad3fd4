/* UDP half of the port forwarder: one socket per (peer, port) both takes
 * what local apps send to that peer and delivers what the peer sends, so
 * apps see the sender's identity address as the source. Datagrams that
 * fit travel in one DATAGRAM frame; larger ones (up to 65,507 bytes) on a
 * stream of their own, never dropped for their size. Must not block or
 * queue without bound: a datagram that cannot go is dropped and counted. */
#include "client/fwd_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

/* Where the payload sits in the shared read buffer: room in front for
 * either header. */
#define PAYLOAD_OFF (FWD_HDR_LEN + FWD_UDP_LEN_LEN)

static void udp_deliver(struct fwd_slot *s, const uint8_t *p, size_t n,
			bool large)
{
	struct fwd_peer *peer = s->peer;
	ssize_t w;

	do {
		w = sendto(s->udp_fd, p, n, MSG_DONTWAIT,
			   (const struct sockaddr *)&s->app, sizeof(s->app));
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		peer->cnt.drop_local++;
		return;
	}
	peer->cnt.udp_dgrams_rx++;
	peer->cnt.udp_bytes_rx += n;
	if (large)
		peer->cnt.udp_large_rx++;
}

/* --- Toward the peer ------------------------------------------------------ */

static void udp_out_push(struct fwd_stream *st)
{
	int err = fwd_tx_flush(st);

	if (err == EAGAIN)
		return;
	if (err) {
		st->peer->cnt.drop_carrier++;
		fwd_stream_close(st, FWD_RST_INTERNAL, true);
		return;
	}
	if (!st->fin_sent) {
		if (st->peer->car->ops->stream_shutdown_write(st->cs) != 0) {
			st->peer->cnt.drop_carrier++;
			fwd_stream_close(st, 0, true);
			return;
		}
		st->fin_sent = true;
	}
	/* Released once the receiver has answered with its FIN. */
	if (st->fin_rcvd)
		fwd_stream_close(st, 0, false);
}

void fwd_udp_out_writable(struct fwd_stream *st)
{
	udp_out_push(st);
}

void fwd_udp_out_fin(struct fwd_stream *st)
{
	st->fin_rcvd = true;
	if (st->fin_sent)
		fwd_stream_close(st, 0, false);
}

/* buf holds the payload at PAYLOAD_OFF with room for a header in front. */
static void udp_send_stream(struct fwd_slot *s, uint8_t *buf, size_t n)
{
	struct fwd_peer *peer = s->peer;
	struct carrier *car = peer->car;
	struct cstream *cs = NULL;
	struct fwd_stream *st;

	if (peer->udp_out >= FWD_UDP_STREAMS_MAX ||
	    peer->nstreams >= FWD_STREAMS_MAX) {
		peer->cnt.drop_backlog++;
		return;
	}
	if (car->ops->stream_open(car, &cs) != 0) {
		peer->cnt.drop_carrier++;
		return;
	}
	if (fwd_stream_alloc(&st, peer, cs, FWD_S_UDP_OUT)) {
		car->ops->stream_reset(cs, FWD_RST_INTERNAL);
		car->ops->stream_release(cs);
		peer->cnt.drop_carrier++;
		return;
	}
	st->slot = s;
	car->ops->stream_set_handlers(cs, &fwd_stream_handlers, st);

	fwd_hdr_encode(buf, FWD_KIND_UDP_STREAM, s->wire);
	fwd_put_u32(buf + FWD_HDR_LEN, (uint32_t)n);
	if (fwd_tx_put(st, buf, PAYLOAD_OFF + n)) {
		peer->cnt.drop_carrier++;
		fwd_stream_close(st, FWD_RST_INTERNAL, true);
		return;
	}
	peer->cnt.udp_dgrams_tx++;
	peer->cnt.udp_large_tx++;
	peer->cnt.udp_bytes_tx += n;
	udp_out_push(st);
}

static void udp_to_peer(struct fwd_slot *s, uint8_t *buf, size_t n)
{
	struct fwd_peer *peer = s->peer;
	struct carrier *car = peer->car;
	uint8_t *frame = buf + PAYLOAD_OFF - FWD_HDR_LEN;
	int err;

	if (FWD_HDR_LEN + n <= car->ops->datagram_max(car)) {
		fwd_hdr_encode(frame, FWD_KIND_UDP_DGRAM, s->wire);
		err = car->ops->datagram_send(car, frame, FWD_HDR_LEN + n);
		if (!err) {
			peer->cnt.udp_dgrams_tx++;
			peer->cnt.udp_bytes_tx += n;
			return;
		}
		if (err != EMSGSIZE) {
			peer->cnt.drop_carrier++;
			return;
		}
	}
	udp_send_stream(s, buf, n);
}

void fwd_udp_recv(int flags, void *arg)
{
	struct fwd_slot *s = arg;
	struct fwd_peer *peer = s->peer;
	uint8_t *buf = peer->fwd->scratch;
	int i;

	(void)flags;
	for (i = 0; i < FWD_UDP_BUDGET; i++) {
		ssize_t n = recv(s->udp_fd, buf + PAYLOAD_OFF, FWD_UDP_MAX + 1,
				 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (n > FWD_UDP_MAX) {
			peer->cnt.drop_local++; /* not IPv4: cannot happen */
			continue;
		}
		if (!peer->car) {
			peer->cnt.drop_no_link++;
			continue;
		}
		udp_to_peer(s, buf, (size_t)n);
	}
}

/* --- From the peer --------------------------------------------------------- */

void fwd_udp_datagram(const uint8_t *p, size_t n, void *arg)
{
	struct fwd_peer *peer = arg;
	struct fwd_slot *s;
	struct fwd_hdr h;

	if (!peer || peer->self || !peer->car)
		return;
	if (fwd_hdr_decode(p, n, &h) != 0 || h.kind != FWD_KIND_UDP_DGRAM ||
	    n - FWD_HDR_LEN > FWD_UDP_MAX) {
		peer->cnt.drop_bad_frame++;
		return;
	}
	s = fwd_slot_by_wire(peer, h.port, true);
	if (!s) {
		peer->cnt.drop_not_fwd++;
		return;
	}
	udp_deliver(s, p + FWD_HDR_LEN, n - FWD_HDR_LEN, false);
}

static void udp_in_complete(struct fwd_stream *st)
{
	st->udp_done = true;
	udp_deliver(st->slot, st->rx ? st->rx + st->rxoff : st->hdr,
		    st->rxlen, true);
	fwd_buf_drop(st, st->rxlen);
	st->rx = mem_deref(st->rx);
	st->rxcap = 0;
	/* Answer with our FIN; the stream is released when both are done. */
	if (st->peer->car->ops->stream_shutdown_write(st->cs) != 0) {
		fwd_stream_close(st, 0, true);
		return;
	}
	st->fin_sent = true;
	if (st->fin_rcvd)
		fwd_stream_close(st, 0, false);
}

int fwd_udp_in_start(struct fwd_stream *st, uint16_t wire, uint32_t len)
{
	struct fwd_peer *peer = st->peer;
	struct fwd_slot *s = fwd_slot_by_wire(peer, wire, true);

	if (!s) {
		peer->cnt.drop_not_fwd++;
		peer->cnt.streams_rejected++;
		fwd_stream_close(st, FWD_RST_NOT_FWD, true);
		return ENOENT;
	}
	if (len > FWD_UDP_MAX) {
		peer->cnt.drop_bad_frame++;
		peer->cnt.streams_rejected++;
		fwd_stream_close(st, FWD_RST_PROTO, true);
		return EPROTO;
	}
	if (peer->udp_in >= FWD_UDP_STREAMS_MAX) {
		peer->cnt.drop_backlog++;
		peer->cnt.streams_rejected++;
		fwd_stream_close(st, FWD_RST_LIMIT, true);
		return EBUSY;
	}
	fwd_stream_set_kind(st, FWD_S_UDP_IN);
	st->slot = s;
	st->udp_len = len;
	if (len == 0)
		udp_in_complete(st);
	return 0;
}

void fwd_udp_in_data(struct fwd_stream *st, const uint8_t *p, size_t n)
{
	struct fwd_peer *peer = st->peer;

	if (st->udp_done || st->rxlen + n > st->udp_len) {
		peer->cnt.drop_bad_frame++;
		fwd_stream_close(st, FWD_RST_PROTO, true);
		return;
	}
	if (fwd_buf_append(st, p, n, st->udp_len)) {
		peer->cnt.drop_backlog++;
		fwd_stream_close(st, FWD_RST_LIMIT, true);
		return;
	}
	/* Bounded by the announced length (at most 65,507 bytes), so the
	 * whole datagram may arrive before it goes out. */
	peer->car->ops->stream_consumed(st->cs, n);
	if (st->rxlen == st->udp_len)
		udp_in_complete(st);
}

void fwd_udp_in_fin(struct fwd_stream *st)
{
	st->fin_rcvd = true;
	if (!st->udp_done) {
		log_debug("fwd", "peer %s: large datagram cut short (%zu of %zu)",
			  st->peer->id, st->rxlen, st->udp_len);
		st->peer->cnt.drop_bad_frame++;
		fwd_stream_close(st, FWD_RST_PROTO, true);
		return;
	}
	if (st->fin_sent)
		fwd_stream_close(st, 0, false);
}
