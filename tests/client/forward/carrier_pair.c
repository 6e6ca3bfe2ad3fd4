/* In-memory carrier pair for the forwarder's tests (carrier_pair.h): two
 * carrier ends, streams with windows and send buffers, datagrams. Owns
 * every stream object and queued byte; must never call a handler from
 * inside an op (all callbacks come from dispatch(), woken by an eventfd). */
#include "tests/client/forward/carrier_pair.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <re.h>

#include "client/carrier.h"

struct carrier_pair;
struct pstream;

struct cstream {                 /* one end of a stream */
	struct pstream *ps;
	int side;
	struct cstream_handlers h;
	void *arg;
	bool has_h;
	bool released;
};

struct pdir {                    /* bytes written by end w, read by 1-w */
	uint8_t *q;              /* written, not yet delivered */
	size_t qlen, qcap;
	size_t unconsumed;       /* delivered, not yet consumed */
	bool fin;                /* the writer shut its side */
	bool fin_delivered;
	bool want_writable;      /* a write came back short */
};

struct pstream {
	struct le le;            /* in carrier_pair.streams */
	struct carrier_pair *cp;
	struct cstream end[2];
	struct pdir dir[2];      /* dir[i]: written by end[i] */
	int opener;
	bool announced;          /* the other side's stream_opened ran */
	bool reset;              /* aborted both ways */
	int reset_by;
	uint64_t code;
	bool reset_delivered;
	bool stop[2];            /* end i released while dir[1-i] was open */
};

struct pside {
	struct carrier c;        /* first: ops get this pointer */
	struct carrier_pair *cp;
	int side;
	struct list dgrams;      /* struct pdgram, toward this side */
	size_t ndgrams;
};

struct pdgram {
	struct le le;
	size_t len;
	uint8_t data[];
};

struct carrier_pair {
	struct pside side[2];
	struct list streams;
	struct carrier_pair_opts o;
	int efd;
	bool scheduled;
	uint64_t dgrams, dgrams_dropped;
};

static void schedule(struct carrier_pair *cp)
{
	uint64_t one = 1;

	if (cp->scheduled)
		return;
	cp->scheduled = true;
	if (write(cp->efd, &one, sizeof(one)) < 0) {
		/* eventfd counter cannot overflow here; nothing to do */
	}
}

static unsigned open_count(const struct carrier_pair *cp, int side)
{
	const struct le *le;
	unsigned n = 0;

	for (le = cp->streams.head; le; le = le->next) {
		const struct pstream *ps = le->data;

		if (ps->opener == side && !ps->end[side].released)
			n++;
	}
	return n;
}

static void pstream_destructor(void *arg)
{
	struct pstream *ps = arg;

	mem_deref(ps->dir[0].q);
	mem_deref(ps->dir[1].q);
}

static void do_reset(struct pstream *ps, int by, uint64_t code)
{
	if (ps->reset)
		return;
	ps->reset = true;
	ps->reset_by = by;
	ps->code = code;
	ps->dir[0].qlen = ps->dir[1].qlen = 0;
	schedule(ps->cp);
}

/* libre's mem_realloc() refuses NULL; start with mem_alloc(). */
static uint8_t *buf_grow(uint8_t *p, size_t n)
{
	return p ? mem_realloc(p, n) : mem_alloc(n, NULL);
}

/* --- Ops --------------------------------------------------------------- */

static int op_stream_open(struct carrier *c, struct cstream **out)
{
	struct pside *sd = (struct pside *)c;
	struct carrier_pair *cp = sd->cp;
	struct pstream *ps;
	int i;

	if (open_count(cp, sd->side) >= cp->o.max_streams)
		return EAGAIN;
	ps = mem_zalloc(sizeof(*ps), pstream_destructor);
	if (!ps)
		return ENOMEM;
	ps->cp = cp;
	ps->opener = sd->side;
	for (i = 0; i < 2; i++) {
		ps->end[i].ps = ps;
		ps->end[i].side = i;
	}
	list_append(&cp->streams, &ps->le, ps);
	*out = &ps->end[sd->side];
	schedule(cp);
	return 0;
}

static void op_stream_set_handlers(struct cstream *s,
				   const struct cstream_handlers *h, void *arg)
{
	if (h) {
		s->h = *h;
		s->has_h = true;
	}
	else {
		memset(&s->h, 0, sizeof(s->h));
		s->has_h = false;
	}
	s->arg = arg;
	schedule(s->ps->cp);
}

static long op_stream_write(struct cstream *s, const uint8_t *p, size_t n)
{
	struct pstream *ps = s->ps;
	struct pdir *d = &ps->dir[s->side];
	size_t room, m;

	if (s->released)
		return -EINVAL;
	if (ps->reset)
		return -ECONNRESET;
	if (d->fin)
		return -EPIPE;
	room = d->qlen < ps->cp->o.stream_sndbuf ?
		ps->cp->o.stream_sndbuf - d->qlen : 0;
	m = n < room ? n : room;
	if (m < n)
		d->want_writable = true;
	if (!m)
		return 0;
	if (d->qlen + m > d->qcap) {
		size_t cap = d->qcap ? d->qcap : 4096;
		uint8_t *nb;

		while (cap < d->qlen + m)
			cap *= 2;
		nb = buf_grow(d->q, cap);
		if (!nb)
			return -ENOMEM;
		d->q = nb;
		d->qcap = cap;
	}
	memcpy(d->q + d->qlen, p, m);
	d->qlen += m;
	schedule(ps->cp);
	return (long)m;
}

static void op_stream_consumed(struct cstream *s, size_t n)
{
	struct pdir *d = &s->ps->dir[1 - s->side];

	if (s->released)
		return;
	d->unconsumed -= n < d->unconsumed ? n : d->unconsumed;
	schedule(s->ps->cp);
}

static int op_stream_shutdown_write(struct cstream *s)
{
	struct pstream *ps = s->ps;

	if (s->released)
		return EINVAL;
	if (ps->reset)
		return ECONNRESET;
	ps->dir[s->side].fin = true;
	schedule(ps->cp);
	return 0;
}

static void op_stream_reset(struct cstream *s, uint64_t code)
{
	if (s->released)
		return;
	do_reset(s->ps, s->side, code);
}

static void op_stream_release(struct cstream *s)
{
	struct pstream *ps = s->ps;

	if (s->released)
		return;
	s->released = true;
	s->has_h = false;
	memset(&s->h, 0, sizeof(s->h));
	if (!ps->reset) {
		if (!ps->dir[s->side].fin)
			do_reset(ps, s->side, CARRIER_PAIR_RST_RELEASED);
		else if (!ps->dir[1 - s->side].fin_delivered)
			ps->stop[s->side] = true; /* QUIC STOP_SENDING */
	}
	schedule(ps->cp);
}

static int op_datagram_send(struct carrier *c, const uint8_t *p, size_t n)
{
	struct pside *sd = (struct pside *)c;
	struct carrier_pair *cp = sd->cp;
	struct pside *to = &cp->side[1 - sd->side];
	struct pdgram *d;

	if (n > cp->o.dgram_max)
		return EMSGSIZE;
	if (to->ndgrams >= cp->o.dgram_queue) {
		cp->dgrams_dropped++;
		return ENOBUFS;
	}
	d = mem_zalloc(sizeof(*d) + n, NULL);
	if (!d)
		return ENOMEM;
	d->len = n;
	memcpy(d->data, p, n);
	list_append(&to->dgrams, &d->le, d);
	to->ndgrams++;
	schedule(cp);
	return 0;
}

static size_t op_datagram_max(struct carrier *c)
{
	return ((struct pside *)c)->cp->o.dgram_max;
}

static const struct carrier_ops pair_ops = {
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

/* --- Dispatch ---------------------------------------------------------- */

/* Returns true when more can be delivered without any new op. */
static bool stream_dispatch(struct pstream *ps)
{
	struct carrier_pair *cp = ps->cp;
	bool more = false;
	int w;

	if (!ps->announced) {
		int r = 1 - ps->opener;
		struct pside *rs = &cp->side[r];
		struct cstream *e = &ps->end[r];

		ps->announced = true;
		if (rs->c.h.stream_opened && !ps->reset)
			rs->c.h.stream_opened(e, rs->c.arg);
		if (!e->has_h && !e->released) {
			/* Nobody took it: refuse, as a QUIC carrier would. */
			e->released = true;
			do_reset(ps, r, CARRIER_PAIR_RST_RELEASED);
		}
	}

	if (ps->reset) {
		struct cstream *e = &ps->end[1 - ps->reset_by];

		if (!ps->reset_delivered) {
			ps->reset_delivered = true;
			if (!e->released && e->has_h && e->h.reset)
				e->h.reset(e, ps->code, e->arg);
		}
		return false;
	}

	for (w = 0; w < 2 && !ps->reset; w++) {
		struct pdir *d = &ps->dir[w];
		struct cstream *r = &ps->end[1 - w];
		struct cstream *wr = &ps->end[w];

		while (d->qlen && !ps->reset) {
			size_t avail, n;

			if (r->released) {
				d->qlen = 0; /* nobody reads: discard */
				break;
			}
			if (!r->has_h)
				break;
			avail = cp->o.stream_window > d->unconsumed ?
				cp->o.stream_window - d->unconsumed : 0;
			if (!avail)
				break;
			n = d->qlen;
			if (n > avail)
				n = avail;
			if (n > cp->o.chunk)
				n = cp->o.chunk;
			d->unconsumed += n;
			if (r->h.data)
				r->h.data(r, d->q, n, r->arg);
			if (ps->reset)
				break;
			memmove(d->q, d->q + n, d->qlen - n);
			d->qlen -= n;
		}
		if (ps->reset)
			break;
		if (d->fin && !d->qlen && !d->fin_delivered && r->has_h &&
		    !r->released) {
			d->fin_delivered = true;
			if (r->h.fin)
				r->h.fin(r, r->arg);
		}
		if (ps->reset)
			break;
		if (d->want_writable && d->qlen < cp->o.stream_sndbuf &&
		    !d->fin) {
			d->want_writable = false;
			if (!wr->released && wr->has_h && wr->h.writable)
				wr->h.writable(wr, wr->arg);
		}
		if (d->qlen && r->has_h && !r->released &&
		    d->unconsumed < cp->o.stream_window)
			more = true;
	}

	/* STOP_SENDING: once our data and FIN went out, the other end's
	 * sending part is aborted. */
	for (w = 0; w < 2 && !ps->reset; w++) {
		if (ps->stop[w] && ps->dir[w].fin_delivered) {
			do_reset(ps, w, CARRIER_PAIR_RST_RELEASED);
			more = true;
		}
	}
	return more;
}

static void dispatch(int flags, void *arg)
{
	struct carrier_pair *cp = arg;
	uint64_t v;
	bool more = false;
	struct le *le;
	int i;

	(void)flags;
	if (read(cp->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: spurious */
	}
	cp->scheduled = false;
	mem_ref(cp);

	for (i = 0; i < 2; i++) {
		struct pside *sd = &cp->side[i];
		size_t n = sd->ndgrams;

		while (n-- && sd->dgrams.head) {
			struct pdgram *d = sd->dgrams.head->data;

			list_unlink(&d->le);
			sd->ndgrams--;
			cp->dgrams++;
			if (sd->c.h.datagram)
				sd->c.h.datagram(d->data, d->len, sd->c.arg);
			mem_deref(d);
		}
	}

	le = cp->streams.head;
	while (le) {
		struct pstream *ps = le->data;

		mem_ref(ps);
		if (stream_dispatch(ps))
			more = true;
		le = le->next;
		if (ps->end[0].released && ps->end[1].released &&
		    ps->le.list) {
			list_unlink(&ps->le);
			mem_deref(ps); /* the list's reference */
		}
		mem_deref(ps);
	}
	if (more)
		schedule(cp);
	mem_deref(cp);
}

/* --- Pair ---------------------------------------------------------------- */

static void pair_destructor(void *arg)
{
	struct carrier_pair *cp = arg;
	int i;

	if (cp->efd >= 0) {
		fd_close(cp->efd);
		close(cp->efd);
	}
	list_flush(&cp->streams);
	for (i = 0; i < 2; i++)
		list_flush(&cp->side[i].dgrams);
}

int carrier_pair_alloc(struct carrier_pair **pp,
		       const struct carrier_pair_opts *o)
{
	struct carrier_pair *cp;
	int i, err = 0;

	cp = mem_zalloc(sizeof(*cp), pair_destructor);
	if (!cp)
		return ENOMEM;
	cp->efd = -1;
	if (o)
		cp->o = *o;
	if (!cp->o.stream_window)
		cp->o.stream_window = 256 * 1024;
	if (!cp->o.stream_sndbuf)
		cp->o.stream_sndbuf = 64 * 1024;
	if (!cp->o.dgram_max)
		cp->o.dgram_max = 1200;
	if (!cp->o.dgram_queue)
		cp->o.dgram_queue = 256;
	if (!cp->o.max_streams)
		cp->o.max_streams = 1024;
	if (!cp->o.chunk)
		cp->o.chunk = 16 * 1024;
	for (i = 0; i < 2; i++) {
		cp->side[i].c.ops = &pair_ops;
		cp->side[i].cp = cp;
		cp->side[i].side = i;
	}
	cp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cp->efd < 0) {
		err = errno;
		goto out;
	}
	err = fd_listen(cp->efd, FD_READ, dispatch, cp);

 out:
	if (err)
		mem_deref(cp);
	else
		*pp = cp;
	return err;
}

struct carrier *carrier_pair_end(struct carrier_pair *p, int side)
{
	return &p->side[side ? 1 : 0].c;
}

void carrier_pair_stats(const struct carrier_pair *p,
			struct carrier_pair_stats *st)
{
	const struct le *le;

	memset(st, 0, sizeof(*st));
	for (le = p->streams.head; le; le = le->next) {
		const struct pstream *ps = le->data;

		st->streams++;
		st->queued += ps->dir[0].qlen + ps->dir[1].qlen;
		st->unconsumed += ps->dir[0].unconsumed + ps->dir[1].unconsumed;
	}
	st->dgrams = p->dgrams;
	st->dgrams_dropped = p->dgrams_dropped;
}
