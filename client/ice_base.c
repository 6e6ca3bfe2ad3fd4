/* ICE bases over UDP: the host sockets (one per interface address) and
 * TURN allocations reached over UDP (libre turnc on a socket of their own,
 * RFC 8656), plus the demultiplexer every base feeds: STUN goes to the
 * check engine, anything else is a datagram for the path. Owns sockets and
 * TURN clients only; it must not decide anything about pairs or the path. */
#include <errno.h>
#include <string.h>

#include "client/ice_int.h"
#include "client/udp_batch.h"
#include "common/log.h"

/* Host sockets: reads per readiness event before the loop moves on (each
 * may hold a GRO train of up to 64 datagrams), and the read buffer. */
enum { HOST_RX_READS = 16, HOST_RX_BUF = 65536 };

/* STUN timers for our TURN clients: RFC 8489 6.2.1 defaults (initial RTO
 * 500 ms, Rc = 7, Rm = 16) and 6.2.2 (Ti = 39.5 s over TCP). */
const struct stun_conf ice_turn_stun_conf = {
	.rto = 500,
	.rc = 7,
	.rm = 16,
	.ti = 39500,
	.tos = 0,
};

/* RFC 8656 3.2 / 7.2: we ask for the default allocation lifetime of 10
 * minutes; turnc refreshes it at 3/4 of the lifetime the server grants,
 * permissions every 250 s (RFC 8656 9: they last 300 s) and channel
 * bindings every 250 s (RFC 8656 12: they last 600 s). */
enum { ICE_TURN_LIFETIME = 600 };

static void base_destructor(void *arg)
{
	struct ice_base *b = arg;

	tmr_cancel(&b->tmr);
	tmr_cancel(&b->tmr_close);
	if (b->ops && b->ops->shutdown)
		b->ops->shutdown(b);
	list_unlink(&b->le);
	mem_deref(b->rx);
	mem_deref(b->rxbuf);
}

/* A base of the given kind, appended to s->bases (which owns it). */
int ice_base_alloc(struct ice_base **bp, struct ice_session *s,
		   enum ice_base_kind kind, const struct ice_base_ops *ops,
		   const struct ice_srv *srv, uint16_t lpref)
{
	struct ice_base *b;
	int err = 0;

	if (!bp || !s || !ops)
		return EINVAL;
	b = mem_zalloc(sizeof(*b), base_destructor);
	if (!b) {
		err = ENOMEM;
		goto out;
	}
	b->s = s;
	b->kind = kind;
	b->ops = ops;
	b->srv = srv;
	b->lpref = lpref;
	tmr_init(&b->tmr);
	tmr_init(&b->tmr_close);
	list_append(&s->bases, &b->le, b);

 out:
	if (!err)
		*bp = b;
	return err;
}

static void close_timeout(void *arg)
{
	struct ice_base *b = arg;

	if (b->ops && b->ops->shutdown)
		b->ops->shutdown(b);
}

/* Marks the base dead at once and releases its transport from the main
 * loop (never inside one of its own callbacks). */
void ice_base_close(struct ice_base *b)
{
	if (!b)
		return;
	b->dead = true;
	tmr_start(&b->tmr_close, 0, close_timeout, b);
}

enum ice_tr ice_base_tr(const struct ice_base *b)
{
	switch (b->kind) {
	case ICE_BASE_RELAY_UDP: return ICE_TR_UDP;
	case ICE_BASE_RELAY_TCP: return ICE_TR_TCP;
	case ICE_BASE_RELAY_TLS: return ICE_TR_TLS;
	default:                 return ICE_TR_NONE;
	}
}

bool ice_base_is_relay(const struct ice_base *b)
{
	return b && b->kind != ICE_BASE_HOST;
}

/* Everything any base receives: after TURN framing is removed, src is the
 * peer's address as our base sees it. */
void ice_base_recv(struct ice_base *b, const struct sa *src, struct mbuf *mb)
{
	struct ice_session *s = b->s;
	struct stun_unknown_attr ua;
	struct stun_msg *msg = NULL;
	size_t n = mbuf_get_left(mb);
	const uint8_t *p = mbuf_buf(mb);

	if (b->dead || s->state == ICE_ST_FAILED || n == 0 || n > ICE_MAX_DGRAM)
		return;

	/* RFC 8489 5: STUN starts with two zero bits and carries the magic
	 * cookie 0x2112A442 in bytes 4..7. The first bits alone are not
	 * enough: ngtcp2 greases the QUIC fixed bit (RFC 9287), so a QUIC
	 * short-header packet may start with two zero bits too (RFC 9443
	 * notes the same for RFC 7983's demultiplexing). */
	if (n >= STUN_HEADER_SIZE && (p[0] & 0xc0) == 0 && p[4] == 0x21 && p[5] == 0x12 &&
	    p[6] == 0xa4 && p[7] == 0x42) {
		if (n < STUN_HEADER_SIZE || stun_msg_decode(&msg, mb, &ua))
			return; /* neither STUN nor ours */
		if (stun_msg_mcookie(msg))
			ice_checks_stun(s, b, src, msg, &ua);
		mem_deref(msg);
		return;
	}
	ice_deliver(s, b, src, mb);
}

/* --- Host sockets --------------------------------------------------- */

static int host_send(struct ice_base *b, const struct sa *dst, struct mbuf *mb)
{
	if (b->dead || !b->us)
		return ENOTCONN;
	return udp_send(b->us, dst, mb);
}

static int host_send_batch(struct ice_base *b, const struct sa *dst, const uint8_t *p,
			   size_t len, size_t seg, size_t *sent)
{
	*sent = 0;
	if (b->dead || !b->us)
		return ENOTCONN;
	bool had_gso = b->gso;
	int err = udp_batch_send(udp_sock_fd(b->us, sa_af(dst)), dst, p, len, seg, &b->gso, sent);
	if (had_gso && !b->gso) {
		char la[64];

		re_snprintf(la, sizeof(la), "%J", &b->laddr);
		log_info("ice", "%s: UDP GSO refused on %s, sending datagrams one by one",
			 b->s->name, la);
	}
	return err;
}

static void host_shutdown(struct ice_base *b)
{
	b->us = mem_deref(b->us);
}

static const struct ice_base_ops host_ops = {
	.send = host_send,
	.permit = NULL,
	.bind = NULL,
	.shutdown = host_shutdown,
	.send_batch = host_send_batch,
};

static void base_udp_recv(const struct sa *src, struct mbuf *mb, void *arg)
{
	ice_base_recv(arg, src, mb);
}

static bool looks_like_stun(const uint8_t *p, size_t n)
{
	return n >= STUN_HEADER_SIZE && (p[0] & 0xc0) == 0 && p[4] == 0x21 && p[5] == 0x12 &&
	       p[6] == 0xa4 && p[7] == 0x42;
}

/* One datagram of a read. QUIC's share goes through a window on the read
 * buffer; STUN gets an mbuf of its own, since a decoded STUN message
 * holds a reference to its buffer. */
static void host_deliver(struct ice_base *b, const struct sa *src, size_t off, size_t n)
{
	struct mbuf *rb = b->rxbuf;

	if (looks_like_stun(rb->buf + off, n)) {
		struct mbuf *mb = mbuf_alloc(n);

		if (!mb || mbuf_write_mem(mb, rb->buf + off, n)) {
			mem_deref(mb);
			return;
		}
		mb->pos = 0;
		ice_base_recv(b, src, mb);
		mem_deref(mb);
		return;
	}
	rb->pos = off;
	rb->end = off + n;
	ice_base_recv(b, src, rb);
}

/* Replaces libre's read handler of the host socket (one recvfrom per
 * readiness event): up to HOST_RX_READS reads, each maybe a GRO train. */
static void host_rx(int flags, void *arg)
{
	struct ice_base *b = arg;

	(void)flags;
	mem_ref(b);
	/* mem_nrefs: our reference is the only one left once the session
	 * let the base go during a delivery; stop then. */
	for (int i = 0; i < HOST_RX_READS && !b->dead && b->us && mem_nrefs(b) > 1; i++) {
		struct sa src;
		size_t seg;
		ssize_t n;

		if (!b->rxbuf || mem_nrefs(b->rxbuf) > 1) {
			/* Someone kept the old buffer: leave it to them. */
			b->rxbuf = mem_deref(b->rxbuf);
			b->rxbuf = mbuf_alloc(HOST_RX_BUF);
			if (!b->rxbuf)
				break;
		}
		memset(&src, 0, sizeof(src));
		n = udp_batch_recv(udp_sock_fd(b->us, sa_af(&b->laddr)), b->rxbuf->buf,
				   b->rxbuf->size, &src, &seg);
		if (n < 0) {
			if (errno == EMSGSIZE)
				continue; /* larger than any datagram we take */
			break;        /* EAGAIN: drained; errors: next event */
		}
		for (size_t off = 0; off < (size_t)n && !b->dead && b->rxbuf && mem_nrefs(b) > 1;
		     off += seg)
			host_deliver(b, &src, off, (size_t)n - off < seg ? (size_t)n - off : seg);
	}
	mem_deref(b);
}

int ice_base_host_alloc(struct ice_base **bp, struct ice_session *s,
			const struct sa *addr, uint16_t lpref)
{
	struct ice_base *b;
	struct sa local = *addr;
	int err;

	err = ice_base_alloc(&b, s, ICE_BASE_HOST, &host_ops, NULL, lpref);
	if (err)
		return err;
	sa_set_port(&local, 0);
	err = udp_listen(&b->us, &local, base_udp_recv, b);
	if (err)
		goto out;
	/* QUIC bursts: a larger socket buffer keeps the kernel from dropping
	 * what the event loop has not read yet. */
	(void)udp_sockbuf_set(b->us, 4 * 1024 * 1024);
	err = udp_local_get(b->us, &b->laddr);
	if (err)
		goto out;
	/* Our reader in place of libre's: batched reads, GRO trains. libre
	 * keeps the socket and closes it (fd_close) with b->us. */
	{
		int fd = udp_sock_fd(b->us, sa_af(&b->laddr));

		if (fd < 0) {
			err = EBADF;
			goto out;
		}
		(void)udp_batch_gro_enable(fd);
		err = fd_listen(fd, FD_READ, host_rx, b);
		if (err)
			goto out;
	}
	b->gso = true;
	b->ready = true;

 out:
	if (err)
		mem_deref(b);
	else
		*bp = b;
	return err;
}

/* --- TURN over UDP ------------------------------------------------- */

static int relay_udp_send(struct ice_base *b, const struct sa *dst,
			  struct mbuf *mb)
{
	if (b->dead || !b->ready || !b->us)
		return ENOTCONN;
	/* turnc's UDP helper wraps whatever leaves with headroom: ChannelData
	 * when a channel is bound to dst, else a Send indication. */
	return udp_send(b->us, dst, mb);
}

static void relay_permit(struct ice_base *b, const struct sa *dst)
{
	int err;

	if (b->dead || !b->ready || !b->turnc)
		return;
	err = turnc_add_perm(b->turnc, dst, NULL, NULL);
	if (err) {
		char a[ICE_SA_STRLEN];

		log_debug("ice", "%s: TURN permission for %s: %s", b->s->name,
			  ice_sa_fmt(dst, a, sizeof(a)), strerror(err));
	}
}

static void relay_bind(struct ice_base *b, const struct sa *dst)
{
	int err;

	if (b->dead || !b->ready || !b->turnc)
		return;
	err = turnc_add_chan(b->turnc, dst, NULL, NULL);
	if (err) {
		char a[ICE_SA_STRLEN];

		log_debug("ice", "%s: TURN channel to %s: %s", b->s->name,
			  ice_sa_fmt(dst, a, sizeof(a)), strerror(err));
	}
}

static void relay_udp_shutdown(struct ice_base *b)
{
	b->turnc = mem_deref(b->turnc); /* sends a Refresh with lifetime 0 */
	b->us = mem_deref(b->us);
}

static const struct ice_base_ops relay_udp_ops = {
	.send = relay_udp_send,
	.permit = relay_permit,
	.bind = relay_bind,
	.shutdown = relay_udp_shutdown,
};

/* Allocation result first; afterwards only errors of refreshes,
 * permissions and channel bindings arrive here (libre turnc). */
void ice_base_turn_handler(int err, uint16_t scode, const char *reason,
			   const struct sa *relay_addr,
			   const struct sa *mapped_addr,
			   const struct stun_msg *msg, void *arg)
{
	struct ice_base *b = arg;
	(void)msg;

	if (b->dead)
		return;
	if (!b->ready) {
		if (!err && !scode && relay_addr && mapped_addr) {
			ice_base_ready(b, relay_addr, mapped_addr);
			return;
		}
		if (err)
			ice_base_failed(b, "allocate: %s", strerror(err));
		else
			ice_base_failed(b, "allocate: %u %s", scode,
					reason ? reason : "");
		return;
	}
	/* RFC 8656 7.3: 437 Allocation Mismatch to a Refresh means the
	 * allocation is gone. Other errors (e.g. 403 for a permission to a
	 * peer the server will not relay to) leave it usable; a relay that
	 * silently stops working is caught by consent freshness. */
	if (scode == 437) {
		ice_base_failed(b, "allocation lost: 437 %s",
				reason ? reason : "");
		return;
	}
	if (err)
		snprintf(b->err, sizeof(b->err), "TURN: %s", strerror(err));
	else
		snprintf(b->err, sizeof(b->err), "TURN: %u %s", scode,
			 reason ? reason : "");
	{
		char a[ICE_SA_STRLEN];

		log_debug("ice", "%s: relay %s: %s", b->s->name,
			  ice_sa_fmt(&b->srv->addr, a, sizeof(a)), b->err);
	}
}

int ice_base_relay_udp_alloc(struct ice_base **bp, struct ice_session *s,
			     const struct ice_srv *srv, uint16_t lpref)
{
	struct ice_base *b;
	struct sa local;
	int err;

	err = ice_base_alloc(&b, s, ICE_BASE_RELAY_UDP, &relay_udp_ops, srv,
			     lpref);
	if (err)
		return err;
	sa_init(&local, sa_af(&srv->addr));
	err = udp_listen(&b->us, &local, base_udp_recv, b);
	if (err)
		goto out;
	(void)udp_sockbuf_set(b->us, 4 * 1024 * 1024);
	err = turnc_alloc(&b->turnc, &ice_turn_stun_conf, IPPROTO_UDP, b->us,
			  0, &srv->addr, srv->user, srv->pass,
			  ICE_TURN_LIFETIME, ice_base_turn_handler, b);

 out:
	if (err)
		mem_deref(b);
	else
		*bp = b;
	return err;
}
