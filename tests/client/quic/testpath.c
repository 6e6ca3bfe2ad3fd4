/* Test paths for the QUIC carrier tests and benchmark: an in-memory pair
 * with random drop and delay, and a UDP socket path on 127.0.0.1. They
 * stand in for ICE's paths and must not know anything about QUIC. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <re.h>

#include "tests/client/quic/testpath.h"

/* --- In-memory pair ------------------------------------------------------ */

struct mpkt {
	struct le le;
	uint64_t due;    /* tmr_jiffies() when it arrives */
	size_t len;
	uint8_t data[];
};

struct mempath {
	struct mesh_path p;    /* first: path->send casts back */
	struct mempath *peer;  /* the other end (NULL once it is gone) */
	double drop;           /* probability a send is lost */
	uint32_t delay_ms;     /* one-way delay */
	bool down;             /* everything is lost */
	uint64_t rng;          /* xorshift64 state */
	struct list q;         /* packets in flight towards peer */
	struct tmr tmr;        /* delivers q */
	uint64_t sent, dropped;
};

static double rnd01(struct mempath *m)
{
	/* xorshift64 (Marsaglia 2003). */
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return (double)(m->rng >> 11) / (double)(1ULL << 53);
}

static void mempath_deliver(void *arg);

static void mempath_destructor(void *arg)
{
	struct mempath *m = arg;

	tmr_cancel(&m->tmr);
	list_flush(&m->q);
	if (m->peer)
		m->peer->peer = NULL;
}

static void mempath_arm(struct mempath *m)
{
	struct mpkt *k = list_ledata(list_head(&m->q));
	uint64_t now = tmr_jiffies();

	if (!k)
		return;
	tmr_start(&m->tmr, k->due > now ? k->due - now : 0, mempath_deliver, m);
}

static void mempath_deliver(void *arg)
{
	struct mempath *m = arg;
	uint64_t now = tmr_jiffies();
	struct mpkt *k;

	mem_ref(m);
	while ((k = list_ledata(list_head(&m->q))) && k->due <= now) {
		list_unlink(&k->le);
		if (m->peer && !m->down && m->peer->p.recv)
			m->peer->p.recv(k->data, k->len, m->peer->p.recv_arg);
		mem_deref(k);
	}
	mempath_arm(m);
	mem_deref(m);
}

static int mempath_send(struct mesh_path *p, const uint8_t *data, size_t len)
{
	struct mempath *m = (struct mempath *)p;
	struct mpkt *k;

	m->sent++;
	if (m->down || !m->peer || (m->drop > 0 && rnd01(m) < m->drop)) {
		m->dropped++;
		return 0;
	}
	if (!m->delay_ms) {
		if (m->peer->p.recv)
			m->peer->p.recv(data, len, m->peer->p.recv_arg);
		return 0;
	}
	k = mem_alloc(sizeof(*k) + len, NULL);
	if (!k)
		return ENOMEM;
	memset(&k->le, 0, sizeof(k->le));
	k->due = tmr_jiffies() + m->delay_ms;
	k->len = len;
	memcpy(k->data, data, len);
	list_append(&m->q, &k->le, k);
	if (!tmr_isrunning(&m->tmr))
		mempath_arm(m);
	return 0;
}

static int mempath_alloc(struct mempath **mp, double drop, uint32_t delay_ms,
			 size_t mtu, uint64_t seed)
{
	struct mempath *m = mem_zalloc(sizeof(*m), mempath_destructor);

	if (!m)
		return ENOMEM;
	m->p.send = mempath_send;
	m->p.mtu = mtu;
	m->drop = drop;
	m->delay_ms = delay_ms;
	m->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	list_init(&m->q);
	tmr_init(&m->tmr);
	*mp = m;
	return 0;
}

int mempath_pair(struct mempath **a, struct mempath **b, double drop,
		 uint32_t delay_ms, size_t mtu, uint64_t seed)
{
	struct mempath *x = NULL, *y = NULL;
	int err;

	err = mempath_alloc(&x, drop, delay_ms, mtu, seed);
	if (err)
		goto out;
	err = mempath_alloc(&y, drop, delay_ms, mtu, seed * 31 + 7);
	if (err)
		goto out;
	x->peer = y;
	y->peer = x;
 out:
	if (err) {
		mem_deref(x);
		mem_deref(y);
	}
	else {
		*a = x;
		*b = y;
	}
	return err;
}

struct mesh_path *mempath_path(struct mempath *m)
{
	return &m->p;
}

void mempath_set_down(struct mempath *m, bool down)
{
	m->down = down;
	if (m->peer)
		m->peer->down = down;
}

void mempath_set_drop(struct mempath *m, double drop)
{
	m->drop = drop;
}

uint64_t mempath_sent(const struct mempath *m)
{
	return m->sent;
}

uint64_t mempath_dropped(const struct mempath *m)
{
	return m->dropped;
}

/* --- UDP on 127.0.0.1 ---------------------------------------------------- */

struct udppath {
	struct mesh_path p;  /* first: path->send casts back */
	int fd;              /* bound to 127.0.0.1, connected to the peer */
	uint16_t port;       /* our port */
	uint64_t eagain;     /* sends the socket refused */
	uint8_t buf[65536];  /* receive buffer */
};

static void udppath_destructor(void *arg)
{
	struct udppath *u = arg;

	if (u->fd >= 0) {
		fd_close(u->fd);
		close(u->fd);
	}
}

static void udppath_readable(int flags, void *arg)
{
	struct udppath *u = arg;

	(void)flags;
	mem_ref(u);
	/* Drain the socket, then let QUIC write once (its flush is deferred). */
	for (int i = 0; i < 512; i++) {
		ssize_t n = recv(u->fd, u->buf, sizeof(u->buf), MSG_DONTWAIT);

		if (n < 0)
			break;
		if (u->p.recv)
			u->p.recv(u->buf, (size_t)n, u->p.recv_arg);
		if (mem_nrefs(u) == 1)
			break; /* freed by a handler */
	}
	mem_deref(u);
}

static int udppath_send(struct mesh_path *p, const uint8_t *data, size_t len)
{
	struct udppath *u = (struct udppath *)p;

	if (send(u->fd, data, len, MSG_DONTWAIT) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			u->eagain++;
			return EAGAIN;
		}
		return errno;
	}
	return 0;
}

int udppath_open(struct udppath **up, uint16_t port, size_t mtu)
{
	struct udppath *u;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int bufsz = 4 * 1024 * 1024;
	int err = 0;

	u = mem_zalloc(sizeof(*u), udppath_destructor);
	if (!u)
		return ENOMEM;
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		err = errno;
		goto out;
	}
	(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if (bind(u->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(u->fd, (struct sockaddr *)&sin, &sl) < 0) {
		err = errno;
		goto out;
	}
	u->port = ntohs(sin.sin_port);
	u->p.send = udppath_send;
	u->p.mtu = mtu;
	err = fd_listen(u->fd, FD_READ, udppath_readable, u);
 out:
	if (err)
		mem_deref(u);
	else
		*up = u;
	return err;
}

uint16_t udppath_port(const struct udppath *u)
{
	return u->port;
}

int udppath_connect(struct udppath *u, uint16_t peer_port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(peer_port);
	return connect(u->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ? errno : 0;
}

struct mesh_path *udppath_path(struct udppath *u)
{
	return &u->p;
}

uint64_t udppath_eagain(const struct udppath *u)
{
	return u->eagain;
}
