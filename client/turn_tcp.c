/* TURN over TCP and TLS (RFC 8656 3.1): a relayed candidate for networks
 * that drop UDP. One TCP connection (with TLS on it for turn_tls) to the
 * TURN server carries the allocation's STUN transactions and the peer
 * traffic, framed as STUN messages and ChannelData (padded to 4 bytes over
 * TCP, RFC 8656 12.5); the relayed address itself is UDP. Built on libre's
 * tcp/tls and turnc (whose ICE module covers only UDP). This file owns the
 * connection and the stream reassembly; it must not look inside what the
 * peer sends (that is ice_base_recv's job). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "client/ice_int.h"
#include "common/log.h"

enum {
	/* Connection, TLS handshake and Allocate must be done by then, or
	 * the relay is given up (gathering itself stops waiting sooner). */
	TURN_TCP_ALLOC_TIMEOUT_MS = 8000,
	/* RFC 8656 12.5 / RFC 8489 5: the largest frame is a STUN message
	 * (20 + 65535) or ChannelData (4 + 65535 + padding); the buffer
	 * never needs more than one frame and one read. */
	TURN_TCP_RX_MAX = 128 * 1024,
	/* Back-pressure for the path: beyond this many bytes queued in the
	 * socket's send queue, send() answers ENOBUFS and QUIC waits. */
	TURN_TCP_TXQ_MAX = 256 * 1024,
	/* RFC 8656 3.2 / 7.2: default allocation lifetime, 10 minutes. */
	TURN_TCP_LIFETIME = 600,
	STUN_HDR = 20,  /* RFC 8489 5 */
	CHAN_HDR = 4,   /* RFC 8656 12.4 */
};

static int tcp_relay_send(struct ice_base *b, const struct sa *dst,
			  struct mbuf *mb)
{
	if (b->dead || !b->ready || !b->turnc || !b->tc)
		return ENOTCONN;
	if (tcp_conn_txqsz(b->tc) > TURN_TCP_TXQ_MAX)
		return ENOBUFS;
	/* turnc_send frames it (ChannelData padded, or a Send indication)
	 * and writes it through the TLS helper when there is one. */
	return turnc_send(b->turnc, dst, mb);
}

static void tcp_relay_permit(struct ice_base *b, const struct sa *dst)
{
	if (b->dead || !b->ready || !b->turnc)
		return;
	(void)turnc_add_perm(b->turnc, dst, NULL, NULL);
}

static void tcp_relay_bind(struct ice_base *b, const struct sa *dst)
{
	if (b->dead || !b->ready || !b->turnc)
		return;
	(void)turnc_add_chan(b->turnc, dst, NULL, NULL);
}

static void tcp_relay_shutdown(struct ice_base *b)
{
	tmr_cancel(&b->tmr);
	b->turnc = mem_deref(b->turnc);
	b->tlsc = mem_deref(b->tlsc);
	b->tc = mem_deref(b->tc);
}

static const struct ice_base_ops tcp_relay_ops = {
	.send = tcp_relay_send,
	.permit = tcp_relay_permit,
	.bind = tcp_relay_bind,
	.shutdown = tcp_relay_shutdown,
};

static const char *tname(const struct ice_base *b)
{
	return b->kind == ICE_BASE_RELAY_TLS ? "TLS" : "TCP";
}

static void deadline(void *arg)
{
	struct ice_base *b = arg;

	if (!b->ready && !b->dead)
		ice_base_failed(b, "no allocation over %s within %u ms",
				tname(b), TURN_TCP_ALLOC_TIMEOUT_MS);
}

static void estab_handler(void *arg)
{
	struct ice_base *b = arg;
	const struct ice_srv *srv = b->srv;
	int err;

	if (b->dead || b->turnc)
		return;
	err = turnc_alloc(&b->turnc, &ice_turn_stun_conf, IPPROTO_TCP, b->tc,
			  0, &srv->addr, srv->user, srv->pass,
			  TURN_TCP_LIFETIME, ice_base_turn_handler, b);
	if (err)
		ice_base_failed(b, "allocate over %s: %s", tname(b),
				strerror(err));
}

/* One complete frame: hand it to turnc, which answers its own
 * transactions and unwraps Data indications and ChannelData. */
static void frame(struct ice_base *b, const uint8_t *p, size_t n, size_t len)
{
	struct mbuf *mb;
	struct sa src;
	int err;

	mb = mbuf_alloc(n);
	if (!mb)
		return;
	(void)mbuf_write_mem(mb, p, len); /* without ChannelData padding */
	mb->pos = 0;
	sa_init(&src, AF_UNSPEC);
	err = turnc_recv(b->turnc, &src, mb);
	if (!err && mbuf_get_left(mb) && sa_isset(&src, SA_ALL) && !b->dead)
		ice_base_recv(b, &src, mb);
	mem_deref(mb);
}

/* Splits the byte stream into frames (RFC 8656 12.5, RFC 8489 5). */
static void parse_frames(struct ice_base *b)
{
	struct mbuf *rx = b->rx;

	while (!b->dead && b->turnc) {
		const uint8_t *p = mbuf_buf(rx);
		size_t left = mbuf_get_left(rx), need, len;

		if (left < CHAN_HDR)
			break;
		len = ((size_t)p[2] << 8) | p[3];
		if ((p[0] & 0xc0) == 0x00) {
			/* STUN: the length excludes the 20-byte header and is
			 * a multiple of 4 (RFC 8489 5). */
			if (len & 3) {
				ice_base_failed(b, "TURN over %s: bad STUN framing",
						tname(b));
				return;
			}
			need = STUN_HDR + len;
			len = need;
		}
		else if ((p[0] & 0xc0) == 0x40) {
			/* ChannelData, padded to 4 bytes over TCP (12.5). */
			need = CHAN_HDR + ((len + 3) & ~(size_t)3);
			len = CHAN_HDR + len;
		}
		else {
			ice_base_failed(b, "TURN over %s: bad framing (0x%02x)",
					tname(b), p[0]);
			return;
		}
		if (left < need)
			break;
		frame(b, p, need, len);
		if (b->dead)
			return;
		rx->pos += need;
	}
	if (rx->pos == rx->end) {
		mbuf_rewind(rx);
	}
	else if (rx->pos > TURN_TCP_RX_MAX / 2) {
		size_t left = mbuf_get_left(rx);

		memmove(rx->buf, mbuf_buf(rx), left);
		rx->pos = 0;
		rx->end = left;
	}
}

static void recv_handler(struct mbuf *mb, void *arg)
{
	struct ice_base *b = arg;
	struct mbuf *rx = b->rx;
	size_t rpos;

	if (b->dead || !b->turnc)
		return;
	if (mbuf_get_left(rx) + mbuf_get_left(mb) > TURN_TCP_RX_MAX) {
		ice_base_failed(b, "TURN over %s: frame larger than %u bytes",
				tname(b), TURN_TCP_RX_MAX);
		return;
	}
	/* Append at the end, keep the read mark. */
	rpos = rx->pos;
	rx->pos = rx->end;
	if (mbuf_write_mem(rx, mbuf_buf(mb), mbuf_get_left(mb))) {
		ice_base_failed(b, "TURN over %s: out of memory", tname(b));
		return;
	}
	rx->pos = rpos;
	parse_frames(b);
}

static void close_handler(int err, void *arg)
{
	struct ice_base *b = arg;

	if (b->dead)
		return;
	ice_base_failed(b, "%s connection closed%s%s", tname(b),
			err ? ": " : "", err ? strerror(err) : "");
}

int ice_base_relay_tcp_alloc(struct ice_base **bp, struct ice_session *s,
			     const struct ice_srv *srv, bool tls,
			     uint16_t lpref)
{
	struct ice_base *b;
	int err;

	if (tls && !s->tls)
		return EINVAL;
	err = ice_base_alloc(&b, s, tls ? ICE_BASE_RELAY_TLS : ICE_BASE_RELAY_TCP,
			     &tcp_relay_ops, srv, lpref);
	if (err)
		return err;
	b->rx = mbuf_alloc(8192);
	if (!b->rx) {
		err = ENOMEM;
		goto out;
	}
	err = tcp_connect(&b->tc, &srv->addr, estab_handler, recv_handler,
			  close_handler, b);
	if (err)
		goto out;
	{
		/* Datagrams must not wait for Nagle (RFC 896) to fill a
		 * segment: checks and QUIC packets go out at once. */
		int one = 1, fd = tcp_conn_fd(b->tc);

		if (fd >= 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					 sizeof(one));
	}
	/* TLS in libre is a helper on the TCP connection: it handshakes once
	 * TCP is up and calls estab_handler when TLS is. The TURN server's
	 * certificate is not verified: TLS here only gets through firewalls;
	 * TURN authenticates with the REST credential and the peers with
	 * QUIC (docs/ice.md). */
	if (tls) {
		err = tls_start_tcp(&b->tlsc, s->tls, b->tc, 0);
		if (err)
			goto out;
	}
	tmr_start(&b->tmr, TURN_TCP_ALLOC_TIMEOUT_MS, deadline, b);

 out:
	if (err)
		mem_deref(b);
	else
		*bp = b;
	return err;
}
