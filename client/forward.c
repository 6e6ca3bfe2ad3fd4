/* The port forwarder's core: builds the per-peer slots and listeners from
 * the peer table, attaches and detaches carriers, routes carrier events
 * to the TCP (fwd_tcp.c) and UDP (fwd_udp.c) halves, owns stream
 * lifetimes, buffers and counters. Must not parse the peer table (peers.c)
 * nor know how a carrier moves bytes (carrier.h is all it sees). */
#include "client/fwd_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* libre's mem_realloc() refuses NULL; start with mem_alloc(). */
static uint8_t *buf_grow(uint8_t *p, size_t n)
{
	return p ? mem_realloc(p, n) : mem_alloc(n, NULL);
}

/* --- Streams --------------------------------------------------------- */

static void stream_destructor(void *arg)
{
	struct fwd_stream *st = arg;

	mem_deref(st->tx);
	mem_deref(st->rx);
}

int fwd_stream_alloc(struct fwd_stream **stp, struct fwd_peer *peer,
		     struct cstream *cs, enum fwd_skind kind)
{
	struct fwd_stream *st;

	st = mem_zalloc(sizeof(*st), stream_destructor);
	if (!st)
		return ENOMEM;
	st->peer = peer;
	st->cs = cs;
	st->fd = -1;
	list_append(&peer->streams, &st->le, st);
	peer->nstreams++;
	st->kind = FWD_S_HDR;
	fwd_stream_set_kind(st, kind);
	*stp = st; /* the list holds the reference */
	return 0;
}

void fwd_stream_close(struct fwd_stream *st, uint64_t reset, bool abort)
{
	struct fwd_peer *peer = st->peer;

	if (st->dead)
		return;
	st->dead = true;

	if (st->cs && peer->car) {
		const struct carrier_ops *ops = peer->car->ops;

		if (reset)
			ops->stream_reset(st->cs, reset);
		ops->stream_release(st->cs);
	}
	st->cs = NULL;

	if (st->fd >= 0) {
		if (abort)
			fwd_sock_abort(st->fd);
		else
			fwd_sock_close(st->fd);
		st->fd = -1;
	}

	peer->buffered -= st->rxlen;
	st->rxlen = 0;
	peer->nstreams--;
	fwd_stream_set_kind(st, FWD_S_HDR);

	list_unlink(&st->le);
	mem_deref(st); /* the list's reference */
}

/* Appends to st->rx, within max bytes for the stream and the per-peer
 * bound. Returns 0, EOVERFLOW or ENOMEM. */
int fwd_buf_append(struct fwd_stream *st, const uint8_t *p, size_t n,
		   size_t max)
{
	struct fwd_peer *peer = st->peer;
	size_t need;

	if (!n)
		return 0;
	if (st->rxlen + n > max || peer->buffered + n > FWD_PEER_RXBUF_MAX)
		return EOVERFLOW;
	need = st->rxlen + n;
	if (st->rxoff + need > st->rxcap) {
		if (st->rxoff) {
			memmove(st->rx, st->rx + st->rxoff, st->rxlen);
			st->rxoff = 0;
		}
		if (need > st->rxcap) {
			size_t cap = st->rxcap ? st->rxcap * 2 : 16384;
			uint8_t *nb;

			while (cap < need)
				cap *= 2;
			if (cap > max)
				cap = max;
			nb = buf_grow(st->rx, cap);
			if (!nb)
				return ENOMEM;
			st->rx = nb;
			st->rxcap = cap;
		}
	}
	memcpy(st->rx + st->rxoff + st->rxlen, p, n);
	st->rxlen += n;
	peer->buffered += n;
	return 0;
}

void fwd_buf_drop(struct fwd_stream *st, size_t n)
{
	if (n > st->rxlen)
		n = st->rxlen;
	st->rxoff += n;
	st->rxlen -= n;
	st->peer->buffered -= n;
	if (st->rxlen)
		return;
	st->rxoff = 0;
	if (st->rxcap > FWD_RXBUF_KEEP) {
		st->rx = mem_deref(st->rx);
		st->rxcap = 0;
	}
}

int fwd_tx_put(struct fwd_stream *st, const uint8_t *p, size_t n)
{
	size_t need;

	if (st->txoff && st->txlen)
		memmove(st->tx, st->tx + st->txoff, st->txlen);
	st->txoff = 0;
	need = st->txlen + n;
	if (need > st->txcap) {
		uint8_t *nb = buf_grow(st->tx, need);

		if (!nb)
			return ENOMEM;
		st->tx = nb;
		st->txcap = need;
	}
	memcpy(st->tx + st->txlen, p, n);
	st->txlen += n;
	return 0;
}

int fwd_tx_flush(struct fwd_stream *st)
{
	const struct carrier_ops *ops = st->peer->car->ops;

	while (st->txlen) {
		long w = ops->stream_write(st->cs, st->tx + st->txoff,
					   st->txlen);

		if (w < 0)
			return (int)-w;
		if (w == 0)
			return EAGAIN;
		if ((size_t)w > st->txlen)
			return EPROTO; /* a carrier bug; never trust it */
		st->txoff += (size_t)w;
		st->txlen -= (size_t)w;
	}
	st->txoff = 0;
	return 0;
}

void fwd_stream_set_kind(struct fwd_stream *st, enum fwd_skind kind)
{
	struct fwd_peer *peer = st->peer;

	if (st->kind == FWD_S_TCP)
		peer->ntcp--;
	else if (st->kind == FWD_S_UDP_OUT)
		peer->udp_out--;
	else if (st->kind == FWD_S_UDP_IN)
		peer->udp_in--;
	st->kind = kind;
	if (kind == FWD_S_TCP)
		peer->ntcp++;
	else if (kind == FWD_S_UDP_OUT)
		peer->udp_out++;
	else if (kind == FWD_S_UDP_IN)
		peer->udp_in++;
}

struct fwd_slot *fwd_slot_by_wire(struct fwd_peer *peer, uint16_t wire,
				  bool udp)
{
	struct fwd_slot *s;

	if (peers_plan(peer->fwd->t) == PEERS_PLAN_IDENTITY) {
		if (wire >= peer->nslots)
			return NULL;
		s = &peer->slots[wire];
	}
	else {
		int k = peers_allow_find(peer->fwd->t, wire);

		if (k < 0)
			return NULL;
		s = &peer->slots[k];
	}
	if (udp && s->udp_fd < 0)
		return NULL;
	return s;
}

/* --- Carrier events ---------------------------------------------------- */

static void reject(struct fwd_stream *st, uint64_t code)
{
	st->peer->cnt.streams_rejected++;
	fwd_stream_close(st, code, true);
}

/* A peer-opened stream: collect the header, then hand it to its kind. */
static void hdr_data(struct fwd_stream *st, const uint8_t *p, size_t n)
{
	const struct carrier_ops *ops = st->peer->car->ops;
	struct fwd_hdr h;
	size_t take;

	if (st->hdrlen < FWD_HDR_LEN) {
		take = FWD_HDR_LEN - st->hdrlen;
		if (take > n)
			take = n;
		memcpy(st->hdr + st->hdrlen, p, take);
		st->hdrlen += take;
		ops->stream_consumed(st->cs, take);
		p += take;
		n -= take;
		if (st->hdrlen < FWD_HDR_LEN)
			return;
	}
	if (fwd_hdr_decode(st->hdr, FWD_HDR_LEN, &h) != 0 ||
	    h.kind == FWD_KIND_UDP_DGRAM) {
		log_debug("fwd", "peer %s: stream with a bad header %02x %02x",
			  st->peer->id, st->hdr[0], st->hdr[1]);
		reject(st, FWD_RST_PROTO);
		return;
	}

	if (h.kind == FWD_KIND_TCP) {
		fwd_tcp_inbound(st, h.port);
		if (!st->dead && n)
			fwd_tcp_data(st, p, n);
		return;
	}

	/* FWD_KIND_UDP_STREAM: a 4-byte length follows the header. */
	take = FWD_HDR_LEN + FWD_UDP_LEN_LEN - st->hdrlen;
	if (take > n)
		take = n;
	memcpy(st->hdr + st->hdrlen, p, take);
	st->hdrlen += take;
	ops->stream_consumed(st->cs, take);
	p += take;
	n -= take;
	if (st->hdrlen < FWD_HDR_LEN + FWD_UDP_LEN_LEN)
		return;
	if (fwd_udp_in_start(st, h.port, fwd_get_u32(st->hdr + FWD_HDR_LEN)))
		return;
	if (n && !st->dead)
		fwd_udp_in_data(st, p, n);
}

static void on_data(struct cstream *cs, const uint8_t *p, size_t n, void *arg)
{
	struct fwd_stream *st = arg;

	(void)cs;
	mem_ref(st);
	if (st->dead)
		goto out;
	switch (st->kind) {
	case FWD_S_HDR:
		hdr_data(st, p, n);
		break;
	case FWD_S_TCP:
		fwd_tcp_data(st, p, n);
		break;
	case FWD_S_UDP_IN:
		fwd_udp_in_data(st, p, n);
		break;
	case FWD_S_UDP_OUT:
		/* The receiver of a datagram sends nothing back: discard. */
		st->peer->car->ops->stream_consumed(st->cs, n);
		break;
	}
 out:
	mem_deref(st);
}

static void on_fin(struct cstream *cs, void *arg)
{
	struct fwd_stream *st = arg;

	(void)cs;
	mem_ref(st);
	if (st->dead)
		goto out;
	switch (st->kind) {
	case FWD_S_HDR:
		/* Ended before its header was complete. */
		reject(st, FWD_RST_PROTO);
		break;
	case FWD_S_TCP:
		fwd_tcp_fin(st);
		break;
	case FWD_S_UDP_IN:
		fwd_udp_in_fin(st);
		break;
	case FWD_S_UDP_OUT:
		fwd_udp_out_fin(st);
		break;
	}
 out:
	mem_deref(st);
}

static void on_reset(struct cstream *cs, uint64_t code, void *arg)
{
	struct fwd_stream *st = arg;

	(void)cs;
	mem_ref(st);
	if (st->dead)
		goto out;
	if (st->kind == FWD_S_TCP) {
		fwd_tcp_reset(st, code);
	}
	else {
		log_debug("fwd", "peer %s: stream reset (0x%llx)", st->peer->id,
			  (unsigned long long)code);
		if (st->kind == FWD_S_UDP_OUT)
			st->peer->cnt.drop_carrier++;
		fwd_stream_close(st, 0, true);
	}
 out:
	mem_deref(st);
}

static void on_writable(struct cstream *cs, void *arg)
{
	struct fwd_stream *st = arg;

	(void)cs;
	mem_ref(st);
	if (st->dead)
		goto out;
	if (st->kind == FWD_S_TCP)
		fwd_tcp_writable(st);
	else if (st->kind == FWD_S_UDP_OUT)
		fwd_udp_out_writable(st);
 out:
	mem_deref(st);
}

const struct cstream_handlers fwd_stream_handlers = {
	.data = on_data,
	.fin = on_fin,
	.reset = on_reset,
	.writable = on_writable,
};

static void on_stream_opened(struct cstream *cs, void *arg)
{
	struct fwd_peer *peer = arg;
	const struct carrier_ops *ops;
	struct fwd_stream *st;

	if (!peer || !peer->car)
		return; /* no handlers set: the carrier refuses the stream */
	ops = peer->car->ops;
	if (peer->nstreams >= FWD_STREAMS_MAX) {
		peer->cnt.streams_rejected++;
		ops->stream_reset(cs, FWD_RST_LIMIT);
		ops->stream_release(cs);
		return;
	}
	if (fwd_stream_alloc(&st, peer, cs, FWD_S_HDR)) {
		ops->stream_reset(cs, FWD_RST_INTERNAL);
		ops->stream_release(cs);
		return;
	}
	ops->stream_set_handlers(cs, &fwd_stream_handlers, st);
}

/* --- Listeners ----------------------------------------------------------- */

static void slot_listen(struct fwd_slot *s)
{
	char a[32];
	int err;

	if (s->listening)
		return;
	if (s->tcp_fd < 0) {
		err = fwd_sock_tcp_listener(&s->bind, s->keep_src_port,
					    &s->tcp_fd);
		if (err) {
			s->tcp_fd = -1;
			log_warn("fwd", "peer %s: cannot bind TCP %s: %s",
				 s->peer->id, fwd_sock_fmt(&s->bind, a, sizeof(a)),
				 strerror(err));
			return;
		}
	}
	if (listen(s->tcp_fd, FWD_BACKLOG) != 0) {
		log_warn("fwd", "peer %s: listen on %s: %s", s->peer->id,
			 fwd_sock_fmt(&s->bind, a, sizeof(a)), strerror(errno));
		return;
	}
	err = fd_listen(s->tcp_fd, FD_READ, fwd_tcp_accept, s);
	if (err) {
		log_warn("fwd", "peer %s: fd_listen %s: %s", s->peer->id,
			 fwd_sock_fmt(&s->bind, a, sizeof(a)), strerror(err));
		(void)shutdown(s->tcp_fd, SHUT_RD);
		return;
	}
	s->listening = true;
}

/* Stops accepting but keeps the port bound: connect() is refused
 * (ECONNREFUSED) while the link is down. On Linux shutdown(SHUT_RD)
 * takes a listener back to a bound, closed socket that can listen again. */
static void slot_pause(struct fwd_slot *s)
{
	if (!s->listening)
		return;
	s->listening = false;
	tmr_cancel(&s->tmr);
	fd_close(s->tcp_fd);
	if (shutdown(s->tcp_fd, SHUT_RD) != 0) {
		close(s->tcp_fd);
		s->tcp_fd = -1;
		if (fwd_sock_tcp_listener(&s->bind, s->keep_src_port,
					  &s->tcp_fd))
			s->tcp_fd = -1; /* bound again by slot_listen */
	}
}

/* --- Forwarder ----------------------------------------------------------- */

static void peer_close(struct fwd_peer *p)
{
	size_t k;

	if (p->car)
		forward_detach(p->fwd, p->id);
	for (k = 0; k < p->nslots; k++) {
		struct fwd_slot *s = &p->slots[k];

		tmr_cancel(&s->tmr);
		if (s->udp_fd >= 0)
			fwd_sock_close(s->udp_fd);
		if (s->tcp_fd >= 0)
			fwd_sock_close(s->tcp_fd);
		s->udp_fd = s->tcp_fd = -1;
	}
	p->slots = mem_deref(p->slots);
}

static void forward_destructor(void *arg)
{
	struct forward *f = arg;
	size_t i;

	for (i = 0; f->peers && i < f->npeers; i++)
		peer_close(&f->peers[i]);
	mem_deref(f->peers);
	mem_deref(f->scratch);
	mem_deref(f->t);
}

static void set_addr(struct sockaddr_in *a, uint32_t addr_net, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = addr_net;
	a->sin_port = htons(port);
}

static int peer_init(struct forward *f, size_t i, char *err, size_t errlen)
{
	struct fwd_peer *p = &f->peers[i];
	const struct peer_table *t = f->t;
	bool identity = peers_plan(t) == PEERS_PLAN_IDENTITY;
	size_t k, self = peers_self(t);
	char a[32];
	int rc;

	p->fwd = f;
	p->idx = i;
	p->id = peers_id(t, i);
	list_init(&p->streams);
	if (i == self) {
		p->self = true;
		return 0;
	}

	p->nslots = identity ? peers_nports(t) : peers_nallow(t);
	p->slots = mem_zalloc(p->nslots * sizeof(*p->slots), NULL);
	if (!p->slots)
		return fail(err, errlen, ENOMEM, "forward: out of memory");
	for (k = 0; k < p->nslots; k++)
		p->slots[k].udp_fd = p->slots[k].tcp_fd = -1;

	for (k = 0; k < p->nslots; k++) {
		struct fwd_slot *s = &p->slots[k];
		bool udp;

		s->peer = p;
		s->k = k;
		if (identity) {
			s->wire = (uint16_t)k;
			set_addr(&s->bind, f->host.s_addr, peers_port(t, i, k));
			set_addr(&s->app, f->host.s_addr, peers_port(t, self, k));
			s->keep_src_port = true;
			udp = true;
		}
		else {
			uint16_t port = peers_allow_port(t, k);

			s->wire = port;
			set_addr(&s->bind, htonl(peers_vip_addr(t, i)), port);
			set_addr(&s->app, f->host.s_addr, port);
			s->keep_src_port = false;
			udp = peers_allow_udp(t, k);
		}

		if (udp) {
			rc = fwd_sock_udp(&s->bind, &s->udp_fd);
			if (rc)
				return fail(err, errlen, rc, "forward: cannot bind "
					    "UDP %s for peer %s: %s",
					    fwd_sock_fmt(&s->bind, a, sizeof(a)),
					    p->id, strerror(rc));
			rc = fd_listen(s->udp_fd, FD_READ, fwd_udp_recv, s);
			if (rc)
				return fail(err, errlen, rc, "forward: cannot poll "
					    "UDP %s: %s (raise fd_setsize)",
					    fwd_sock_fmt(&s->bind, a, sizeof(a)),
					    strerror(rc));
		}
		rc = fwd_sock_tcp_listener(&s->bind, s->keep_src_port,
					   &s->tcp_fd);
		if (rc)
			return fail(err, errlen, rc, "forward: cannot bind TCP %s "
				    "for peer %s: %s",
				    fwd_sock_fmt(&s->bind, a, sizeof(a)), p->id,
				    strerror(rc));
	}
	return 0;
}

int forward_alloc(struct forward **fp, struct peer_table *t,
		  const struct forward_opts *opts, char *err, size_t errlen)
{
	const char *host = opts && opts->host ? opts->host : "127.0.0.1";
	struct forward *f;
	size_t i;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!fp || !t)
		return EINVAL;
	f = mem_zalloc(sizeof(*f), forward_destructor);
	if (!f)
		return ENOMEM;
	if (inet_pton(AF_INET, host, &f->host) != 1 ||
	    (ntohl(f->host.s_addr) >> 24) != 127) {
		rc = fail(err, errlen, EINVAL, "forward: host %s is not an "
			  "address in 127.0.0.0/8", host);
		goto out;
	}
	f->t = mem_ref(t);
	f->scratch = mem_alloc(FWD_SCRATCH, NULL);
	f->npeers = peers_count(t);
	f->peers = mem_zalloc(f->npeers * sizeof(*f->peers), NULL);
	if (!f->scratch || !f->peers) {
		rc = fail(err, errlen, ENOMEM, "forward: out of memory");
		goto out;
	}
	for (i = 0; i < f->npeers; i++) {
		rc = peer_init(f, i, err, errlen);
		if (rc)
			goto out;
	}
	log_info("fwd", "%s plan: %zu port(s) for each of %zu peer(s) on %s",
		 peers_plan(t) == PEERS_PLAN_IDENTITY ? "identity-port" :
		 "peer-VIP", peers_plan(t) == PEERS_PLAN_IDENTITY ?
		 peers_nports(t) : peers_nallow(t), f->npeers - 1, host);

 out:
	if (rc)
		mem_deref(f);
	else
		*fp = f;
	return rc;
}

static struct fwd_peer *peer_find(const struct forward *f, const char *id)
{
	int k = f ? peers_find(f->t, id) : -1;

	return k < 0 ? NULL : &f->peers[k];
}

int forward_attach(struct forward *f, const char *peer_id, struct carrier *c)
{
	struct fwd_peer *p = peer_find(f, peer_id);
	size_t k;

	if (!p)
		return ENOENT;
	if (p->self || !c || !c->ops)
		return EINVAL;
	if (p->car)
		forward_detach(f, peer_id);

	p->car = c;
	c->h.stream_opened = on_stream_opened;
	c->h.datagram = fwd_udp_datagram;
	c->arg = p;
	for (k = 0; k < p->nslots; k++)
		slot_listen(&p->slots[k]);
	log_debug("fwd", "peer %s: carrier attached", p->id);
	return 0;
}

void forward_detach(struct forward *f, const char *peer_id)
{
	struct fwd_peer *p = peer_find(f, peer_id);
	struct le *le;
	size_t k;

	if (!p || !p->car)
		return;
	for (k = 0; k < p->nslots; k++)
		slot_pause(&p->slots[k]);
	while ((le = list_head(&p->streams))) {
		struct fwd_stream *st = le->data;

		if (st->kind == FWD_S_TCP)
			p->cnt.tcp_resets_tx++;
		fwd_stream_close(st, FWD_RST_SHUTDOWN, true);
	}
	memset(&p->car->h, 0, sizeof(p->car->h));
	p->car->arg = NULL;
	p->car = NULL;
	log_debug("fwd", "peer %s: carrier detached", p->id);
}

int forward_counters(const struct forward *f, const char *peer_id,
		     struct forward_counters *out)
{
	const struct fwd_peer *p = peer_find(f, peer_id);
	struct le *le;

	if (!p || !out)
		return ENOENT;
	*out = p->cnt;
	out->tcp_open = p->ntcp;
	out->streams_open = p->nstreams;
	out->buffered = 0;
	for (le = list_head(&p->streams); le; le = le->next) {
		const struct fwd_stream *st = le->data;

		out->buffered += st->txlen + st->rxlen;
	}
	out->attached = p->car != NULL;
	return 0;
}

size_t forward_fd_estimate(const struct peer_table *t)
{
	size_t n = peers_count(t), k, per = 0;

	if (peers_plan(t) == PEERS_PLAN_IDENTITY) {
		per = 2 * peers_nports(t);
	}
	else {
		for (k = 0; k < peers_nallow(t); k++)
			per += peers_allow_udp(t, k) ? 2 : 1;
	}
	return (n - 1) * per;
}
