/* TCP half of the port forwarder: accepts local connections on a peer's
 * port and opens a stream for each, connects streams the peer opened to
 * the local app (from the sender's identity address), and splices bytes
 * both ways with half-close, reset and back-pressure. Must not hold more
 * than the bounds of fwd_priv.h, and must not call stream_consumed before
 * the bytes are in the local socket: that is the back-pressure. */
#include "client/fwd_priv.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

/* How long a listener rests after accept() ran out of descriptors. */
#define ACCEPT_PAUSE_MS 100

static void tcp_fd_handler(int flags, void *arg);

static const struct carrier_ops *ops_of(const struct fwd_stream *st)
{
	return st->peer->car->ops;
}

static void tcp_abort(struct fwd_stream *st, uint64_t code)
{
	if (code)
		st->peer->cnt.tcp_resets_tx++;
	fwd_stream_close(st, code, true);
}

/* Poll for what the connection can use now. Never register for nothing
 * but FD_EXCEPT after our write side is shut: libre does not map EPOLLHUP
 * to a flag, so a fully closed socket would spin. */
static void tcp_update(struct fwd_stream *st)
{
	int flags = 0, err;

	if (st->dead || st->fd < 0)
		return;
	if (st->connecting) {
		flags = FD_WRITE;
	}
	else {
		if (!st->sock_eof && !st->txlen)
			flags |= FD_READ;
		if (st->rxlen)
			flags |= FD_WRITE;
		if (!flags && !st->sock_shut)
			flags = FD_EXCEPT; /* still learn of an RST */
	}
	if (flags == st->fdflags)
		return;
	st->fdflags = flags;
	if (!flags) {
		fd_close(st->fd);
		return;
	}
	err = fd_listen(st->fd, flags, tcp_fd_handler, st);
	if (err) {
		log_warn("fwd", "peer %s: fd_listen: %s", st->peer->id,
			 strerror(err));
		tcp_abort(st, FWD_RST_INTERNAL);
	}
}

static void tcp_check_done(struct fwd_stream *st)
{
	if (st->dead)
		return;
	if (st->sock_eof && st->fin_sent && st->fin_rcvd && st->sock_shut &&
	    !st->rxlen && !st->txlen)
		fwd_stream_close(st, 0, false);
}

static void tcp_send_fin(struct fwd_stream *st)
{
	if (st->fin_sent || st->dead)
		return;
	if (ops_of(st)->stream_shutdown_write(st->cs) != 0) {
		/* The stream is already gone (reset or connection closed). */
		fwd_stream_close(st, 0, true);
		return;
	}
	st->fin_sent = true;
}

static void tcp_shut_local(struct fwd_stream *st)
{
	if (st->sock_shut || st->connecting || st->rxlen || !st->fin_rcvd)
		return;
	(void)shutdown(st->fd, SHUT_WR);
	st->sock_shut = true;
}

/* Local socket -> stream, until the socket is drained, the carrier is
 * full (the rest waits in tx and reading stops) or the budget is spent. */
static void tcp_read(struct fwd_stream *st)
{
	struct fwd_peer *peer = st->peer;
	uint8_t *buf = peer->fwd->scratch;
	int i;

	for (i = 0; i < FWD_READ_BUDGET && !st->dead && !st->txlen; i++) {
		ssize_t n = recv(st->fd, buf, FWD_CHUNK, 0);
		long w;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_debug("fwd", "peer %s: local recv: %s", peer->id,
				  strerror(errno));
			tcp_abort(st, FWD_RST_APP);
			return;
		}
		if (n == 0) {
			st->sock_eof = true;
			tcp_send_fin(st);
			return;
		}
		peer->cnt.tcp_bytes_tx += (uint64_t)n;
		w = ops_of(st)->stream_write(st->cs, buf, (size_t)n);
		if (w < 0 || w > n) {
			tcp_abort(st, FWD_RST_INTERNAL);
			return;
		}
		if (w < n && fwd_tx_put(st, buf + w, (size_t)(n - w))) {
			tcp_abort(st, FWD_RST_INTERNAL);
			return;
		}
	}
}

/* Writes up to n bytes of stream data into the local socket and tells
 * the carrier they were consumed (only then). Returns the bytes written
 * (0: the socket is full), or -1 after aborting the stream. */
static ssize_t tcp_send_local(struct fwd_stream *st, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = send(st->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w >= 0) {
			ops_of(st)->stream_consumed(st->cs, (size_t)w);
			st->peer->cnt.tcp_bytes_rx += (uint64_t)w;
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		log_debug("fwd", "peer %s: local send: %s", st->peer->id, strerror(errno));
		tcp_abort(st, FWD_RST_APP);
		return -1;
	}
}

/* Write what stream data we hold into the local socket. */
static void tcp_flush_rx(struct fwd_stream *st)
{
	while (st->rxlen && !st->dead) {
		ssize_t w = tcp_send_local(st, st->rx + st->rxoff, st->rxlen);

		if (w < 0)
			return;
		if (w == 0)
			break;
		fwd_buf_drop(st, (size_t)w);
	}
	tcp_shut_local(st);
}

static void tcp_fd_handler(int flags, void *arg)
{
	struct fwd_stream *st = arg;
	int err;

	mem_ref(st);
	if (st->dead)
		goto out;
	if (st->connecting) {
		err = fwd_sock_error(st->fd);
		if (err) {
			log_debug("fwd", "peer %s: connect to the local app: %s",
				  st->peer->id, strerror(err));
			st->peer->cnt.tcp_refused++;
			tcp_abort(st, FWD_RST_REFUSED);
			goto out;
		}
		st->connecting = false;
		tcp_flush_rx(st);
	}
	else {
		if (flags & FD_EXCEPT) {
			err = fwd_sock_error(st->fd);
			if (err) {
				log_debug("fwd", "peer %s: local socket: %s",
					  st->peer->id, strerror(err));
				tcp_abort(st, FWD_RST_APP);
				goto out;
			}
		}
		if (flags & FD_WRITE)
			tcp_flush_rx(st);
	}
	if (!st->dead && (flags & FD_READ))
		tcp_read(st);
	tcp_check_done(st);
	tcp_update(st);
 out:
	mem_deref(st);
}

void fwd_tcp_data(struct fwd_stream *st, const uint8_t *p, size_t n)
{
	const struct carrier_ops *ops = ops_of(st);

	if (st->fin_rcvd) {
		ops->stream_consumed(st->cs, n); /* after FIN: a carrier bug */
		return;
	}
	if (!st->connecting && !st->rxlen) {
		while (n) {
			ssize_t w = tcp_send_local(st, p, n);

			if (w < 0)
				return;
			if (w == 0)
				break;
			p += w;
			n -= (size_t)w;
		}
	}
	if (n && fwd_buf_append(st, p, n, FWD_STREAM_RXBUF_MAX)) {
		log_warn("fwd", "peer %s: stream buffer bound exceeded (carrier "
			 "window larger than %u bytes?)", st->peer->id,
			 (unsigned)FWD_STREAM_RXBUF_MAX);
		tcp_abort(st, FWD_RST_LIMIT);
		return;
	}
	tcp_update(st);
}

void fwd_tcp_fin(struct fwd_stream *st)
{
	st->fin_rcvd = true;
	tcp_shut_local(st);
	tcp_check_done(st);
	tcp_update(st);
}

void fwd_tcp_reset(struct fwd_stream *st, uint64_t code)
{
	log_debug("fwd", "peer %s: connection reset by the peer (0x%llx)",
		  st->peer->id, (unsigned long long)code);
	st->peer->cnt.tcp_resets_rx++;
	fwd_stream_close(st, 0, true);
}

void fwd_tcp_writable(struct fwd_stream *st)
{
	int err = fwd_tx_flush(st);

	if (err == EAGAIN)
		return;
	if (err) {
		tcp_abort(st, FWD_RST_INTERNAL);
		return;
	}
	if (st->sock_eof)
		tcp_send_fin(st);
	tcp_check_done(st);
	tcp_update(st);
}

/* The peer opened a TCP stream for slot `wire`: connect to the local app
 * from the peer's identity address. Identity plan: from host:<peer's port
 * k> when that 4-tuple is free, else from an ephemeral port. */
void fwd_tcp_inbound(struct fwd_stream *st, uint16_t wire)
{
	struct fwd_peer *peer = st->peer;
	struct fwd_slot *s = fwd_slot_by_wire(peer, wire, false);
	struct sockaddr_in src;
	bool inprogress = false;
	int fd = -1, err = EADDRNOTAVAIL;

	if (!s) {
		log_debug("fwd", "peer %s: TCP for %u, which is not forwarded",
			  peer->id, wire);
		peer->cnt.streams_rejected++;
		fwd_stream_close(st, FWD_RST_NOT_FWD, true);
		return;
	}
	fwd_stream_set_kind(st, FWD_S_TCP);
	st->slot = s;
	peer->cnt.tcp_conns_rx++;

	if (s->keep_src_port) {
		err = fwd_sock_tcp_connect(&s->bind, true, &s->app, &fd,
					   &inprogress);
		if (err == EADDRINUSE || err == EADDRNOTAVAIL)
			peer->cnt.tcp_src_fallback++;
	}
	if (err == EADDRINUSE || err == EADDRNOTAVAIL) {
		src = s->bind;
		src.sin_port = 0;
		err = fwd_sock_tcp_connect(&src, false, &s->app, &fd,
					   &inprogress);
	}
	if (err) {
		log_debug("fwd", "peer %s: connect to the local app: %s",
			  peer->id, strerror(err));
		if (err == ECONNREFUSED)
			peer->cnt.tcp_refused++;
		tcp_abort(st, err == ECONNREFUSED ? FWD_RST_REFUSED :
			  FWD_RST_INTERNAL);
		return;
	}
	st->fd = fd;
	st->connecting = inprogress;
	tcp_update(st);
}

static void tcp_accepted(struct fwd_slot *s, int fd)
{
	struct fwd_peer *peer = s->peer;
	struct carrier *car = peer->car;
	struct cstream *cs = NULL;
	struct fwd_stream *st;
	uint8_t hdr[FWD_HDR_LEN];
	int err, one = 1;

	if (!car) {
		peer->cnt.tcp_refused_no_link++;
		fwd_sock_abort(fd);
		return;
	}
	if (peer->nstreams >= FWD_STREAMS_MAX) {
		peer->cnt.tcp_open_failed++;
		fwd_sock_abort(fd);
		return;
	}
	err = car->ops->stream_open(car, &cs);
	if (err) {
		log_debug("fwd", "peer %s: cannot open a stream: %s", peer->id,
			  strerror(err));
		peer->cnt.tcp_open_failed++;
		fwd_sock_abort(fd);
		return;
	}
	if (fwd_stream_alloc(&st, peer, cs, FWD_S_TCP)) {
		car->ops->stream_reset(cs, FWD_RST_INTERNAL);
		car->ops->stream_release(cs);
		fwd_sock_abort(fd);
		return;
	}
	st->slot = s;
	st->fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	car->ops->stream_set_handlers(cs, &fwd_stream_handlers, st);
	peer->cnt.tcp_conns_tx++;

	fwd_hdr_encode(hdr, FWD_KIND_TCP, s->wire);
	if (fwd_tx_put(st, hdr, sizeof(hdr))) {
		tcp_abort(st, FWD_RST_INTERNAL);
		return;
	}
	err = fwd_tx_flush(st);
	if (err && err != EAGAIN) {
		tcp_abort(st, FWD_RST_INTERNAL);
		return;
	}
	tcp_update(st);
}

static void accept_resume(void *arg)
{
	struct fwd_slot *s = arg;

	if (s->listening && s->tcp_fd >= 0)
		(void)fd_listen(s->tcp_fd, FD_READ, fwd_tcp_accept, s);
}

void fwd_tcp_accept(int flags, void *arg)
{
	struct fwd_slot *s = arg;
	int i;

	(void)flags;
	for (i = 0; i < FWD_ACCEPT_BUDGET && s->listening; i++) {
		int fd = accept4(s->tcp_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* The pending connection stays readable; rest
				 * instead of spinning on it. */
				log_warn("fwd", "peer %s: accept: %s",
					 s->peer->id, strerror(errno));
				fd_close(s->tcp_fd);
				tmr_start(&s->tmr, ACCEPT_PAUSE_MS,
					  accept_resume, s);
			}
			return;
		}
		tcp_accepted(s, fd);
	}
}
