/* Tests of client/udp_batch.c on 127.0.0.1: GSO and sendmmsg batches as
 * a plain receiver sees them (one datagram per segment, sizes, bytes,
 * order), input the sender must refuse, and reads on GRO and plain
 * sockets split back into the datagrams that were sent. */
#include "tests/client/udpio/utest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <re.h>

#include "client/udp_batch.h"

enum {
	MAX_DGRAMS = 256,
	WAIT_MS = 1000,     /* loopback delivers at once; this is slack */
	QUIET_MS = 50,      /* "nothing more arrives" */
	BIG = 256 * 1024,   /* larger than any batch we send */
};

static uint8_t tx[BIG], rx[BIG], got[BIG];

/* Two loopback sockets: the sender's and the receiver's. */
struct pair {
	int tx, rx;
	struct sa txa, rxa;
};

static int pair_open(struct pair *p)
{
	int big = 4 * 1024 * 1024;

	p->tx = utest_udp(&p->txa);
	p->rx = utest_udp(&p->rxa);
	if (p->tx < 0 || p->rx < 0)
		return -1;
	/* Room for every batch a test sends before it reads (root may go
	 * past net.core.rmem_max; otherwise the kernel's cap will do). */
	if (setsockopt(p->rx, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
		(void)setsockopt(p->rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	return 0;
}

static void pair_close(struct pair *p)
{
	if (p->tx >= 0)
		(void)close(p->tx);
	if (p->rx >= 0)
		(void)close(p->rx);
	p->tx = p->rx = -1;
}

static size_t seg_count(size_t len, size_t seg)
{
	return (len + seg - 1) / seg;
}

/* Reads datagrams with plain recvfrom and checks they are exactly the
 * segments of tx[0..len) in order, from the sender, and nothing more. */
static int expect_plain(const struct pair *p, size_t len, size_t seg)
{
	size_t nseg = seg_count(len, seg);
	int rc = 0;

	for (size_t k = 0; k < nseg; k++) {
		size_t off = k * seg, want = len - off < seg ? len - off : seg;
		struct sa from;
		ssize_t n;

		CHECK(utest_readable(p->rx, WAIT_MS));
		memset(&from, 0, sizeof(from));
		from.len = sizeof(from.u);
		n = recvfrom(p->rx, rx, sizeof(rx), MSG_DONTWAIT, &from.u.sa, &from.len);
		if (n < 0)
			printf("#   datagram %zu of %zu: %s\n", k + 1, nseg, strerror(errno));
		CHECK(n >= 0);
		if ((size_t)n != want)
			printf("#   datagram %zu of %zu\n", k + 1, nseg);
		CHECK_EQ(n, want);
		CHECK(memcmp(rx, tx + off, want) == 0);
		CHECK(sa_cmp(&from, &p->txa, SA_ALL));
	}
	CHECK(!utest_readable(p->rx, QUIET_MS));
 out:
	return rc;
}

/* One batch of len bytes in segments of seg through udp_batch_send, then
 * the receiver's view. gso_in is what the caller believes; gso_out what
 * it must believe afterwards. */
static int batch_case(size_t len, size_t seg, bool gso_in, bool gso_out, uint32_t seed)
{
	struct pair p = { -1, -1 };
	bool gso = gso_in;
	size_t sent = 7;
	int rc = 0, err;

	CHECK(len <= sizeof(tx));
	CHECK(pair_open(&p) == 0);
	utest_fill(tx, len, seed);
	err = udp_batch_send(p.tx, &p.rxa, tx, len, seg, &gso, &sent);
	if (err)
		printf("#   udp_batch_send(len %zu, seg %zu): %s\n", len, seg, strerror(err));
	CHECK_EQ(err, 0);
	CHECK_EQ(sent, len);
	CHECK_EQ(gso, gso_out);
	if (expect_plain(&p, len, seg))
		rc = 1;
 out:
	pair_close(&p);
	return rc;
}

/* --- Sending --------------------------------------------------------------- */

/* N full segments and a short last one, as one GSO send. Loopback takes
 * UDP GSO (Linux >= 4.18), so *gso must stay true. */
static int t_gso_segments(void)
{
	return batch_case(10 * 1200 + 345, 1200, true, true, 1);
}

/* No short last segment. */
static int t_gso_even(void)
{
	return batch_case(8 * 1452, 1452, true, true, 2);
}

/* The largest batch: 64 segments, 64,000 bytes. */
static int t_gso_max_segments(void)
{
	return batch_case(64 * 1000, 1000, true, true, 3);
}

/* 64 QUIC-sized segments are 92,928 bytes: more than one UDP send may
 * carry (65,507 over IPv4) even with GSO. Allowed by the API (at most
 * 64 segments), so it must still arrive as 64 datagrams. */
static int t_gso_over_64k(void)
{
	return batch_case(63 * 1452 + 1000, 1452, true, true, 4);
}

/* Segments so large that only one fits a send: still every one of
 * them, whatever the path (GSO gains nothing there). */
static int t_gso_large_segments(void)
{
	return batch_case(2 * 40000 + 123, 40000, true, true, 14) ||
	       batch_case(3 * 65507, 65507, true, true, 15);
}

/* The sendmmsg path: *gso false stays false. */
static int t_mmsg_segments(void)
{
	return batch_case(10 * 1200 + 345, 1200, false, false, 5);
}

static int t_mmsg_max_segments(void)
{
	return batch_case(63 * 1452 + 1, 1452, false, false, 6);
}

/* One segment (len == seg, and len < seg), with and without GSO. */
static int t_single_segment(void)
{
	if (batch_case(1200, 1200, true, true, 7) ||
	    batch_case(1200, 1200, false, false, 8) ||
	    batch_case(100, 1452, true, true, 9) ||
	    batch_case(1, 1, true, true, 10))
		return 1;
	return 0;
}

/* Refused with EINVAL, *sent 0, *gso untouched, nothing on the wire. */
static int t_invalid_input(void)
{
	struct pair p = { -1, -1 };
	struct {
		const char *what;
		int fd_bad;
		bool dst_null, p_null;
		size_t len, seg;
	} cases[] = {
		{ "seg 0", 0, false, false, 1200, 0 },
		{ "len 0", 0, false, false, 0, 1200 },
		{ "65 segments", 0, false, false, 65 * 100, 100 },
		{ "65 segments, last short", 0, false, false, 64 * 100 + 1, 100 },
		{ "seg over 65535", 0, false, false, 70000, 70000 },
		{ "NULL data", 0, false, true, 1200, 1200 },
		{ "NULL dst", 0, true, false, 1200, 1200 },
		{ "fd -1", 1, false, false, 1200, 1200 },
	};
	int rc = 0;

	CHECK(pair_open(&p) == 0);
	utest_fill(tx, sizeof(tx), 11);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int g = 0; g < 2; g++) {
			bool gso = g == 1;
			size_t sent = 12345;
			int err;

			err = udp_batch_send(cases[i].fd_bad ? -1 : p.tx,
					     cases[i].dst_null ? NULL : &p.rxa,
					     cases[i].p_null ? NULL : tx, cases[i].len,
					     cases[i].seg, &gso, &sent);
			if (err != EINVAL || sent != 0 || gso != (g == 1))
				printf("#   %s (gso %d): err %d, sent %zu\n", cases[i].what, g,
				       err, sent);
			CHECK_EQ(err, EINVAL);
			CHECK_EQ(sent, 0);
			CHECK_EQ(gso, g == 1);
		}
	}
	CHECK(!utest_readable(p.rx, 100));
 out:
	pair_close(&p);
	return rc;
}

/* Segments larger than any UDP payload (65,507 over IPv4): EMSGSIZE
 * from the kernel, nothing sent, and GSO stays on (the batch was at
 * fault, not the socket). */
static int t_oversize_segment(void)
{
	struct pair p = { -1, -1 };
	bool gso = true;
	size_t sent = 5;
	int rc = 0;

	CHECK(pair_open(&p) == 0);
	utest_fill(tx, 2 * 65520, 13);
	CHECK_EQ(udp_batch_send(p.tx, &p.rxa, tx, 2 * 65520, 65520, &gso, &sent), EMSGSIZE);
	CHECK_EQ(sent, 0);
	CHECK(gso);
	CHECK(!utest_readable(p.rx, QUIET_MS));
 out:
	pair_close(&p);
	return rc;
}

/* --- Receiving --------------------------------------------------------------- */

/* Reads with udp_batch_recv until total bytes arrived, splitting every
 * read by the segment size it reports; *sizes gets each datagram's size
 * and got[] their bytes back to back. */
static int collect(int fd, const struct sa *from, size_t total, size_t *sizes, size_t *ndg,
		   size_t *nreads, size_t *maxread)
{
	size_t have = 0;
	int rc = 0;

	*ndg = *nreads = *maxread = 0;
	while (have < total) {
		struct sa src;
		size_t seg = 0;
		ssize_t n;

		CHECK(utest_readable(fd, WAIT_MS));
		memset(&src, 0, sizeof(src));
		n = udp_batch_recv(fd, rx, sizeof(rx), &src, &seg);
		if (n < 0)
			printf("#   udp_batch_recv: %s\n", strerror(errno));
		CHECK(n > 0);
		CHECK(seg > 0 && seg <= (size_t)n);
		CHECK(sa_cmp(&src, from, SA_ALL));
		CHECK(have + (size_t)n <= total);
		(*nreads)++;
		if ((size_t)n > *maxread)
			*maxread = (size_t)n;
		for (size_t off = 0; off < (size_t)n; off += seg) {
			size_t k = (size_t)n - off < seg ? (size_t)n - off : seg;

			CHECK(*ndg < MAX_DGRAMS);
			sizes[(*ndg)++] = k;
			memcpy(got + have, rx + off, k);
			have += k;
		}
	}
 out:
	return rc;
}

/* A sequence of batches, each len[i] bytes in segments of seg[i], sent
 * with udp_batch_send (GSO when gso) to a receiver with or without GRO;
 * reading back with udp_batch_recv must give every datagram, in order. */
static int recv_case(const size_t *len, const size_t *seg, size_t nb, bool gso, bool gro)
{
	struct pair p = { -1, -1 };
	size_t want[MAX_DGRAMS], sizes[MAX_DGRAMS], nwant = 0, total = 0;
	size_t ndg = 0, nreads = 0, maxread = 0;
	int rc = 0;

	CHECK(pair_open(&p) == 0);
	if (gro)
		CHECK(udp_batch_gro_enable(p.rx));
	for (size_t b = 0; b < nb; b++) {
		bool g = gso;
		size_t sent = 0;

		CHECK(total + len[b] <= sizeof(tx));
		utest_fill(tx + total, len[b], 100 + (uint32_t)b);
		CHECK_EQ(udp_batch_send(p.tx, &p.rxa, tx + total, len[b], seg[b], &g, &sent), 0);
		CHECK_EQ(sent, len[b]);
		CHECK_EQ(g, gso);
		for (size_t off = 0; off < len[b]; off += seg[b]) {
			CHECK(nwant < MAX_DGRAMS);
			want[nwant++] = len[b] - off < seg[b] ? len[b] - off : seg[b];
		}
		total += len[b];
	}
	CHECK(collect(p.rx, &p.txa, total, sizes, &ndg, &nreads, &maxread) == 0);
	printf("#   %zu datagrams in %zu reads (largest read %zu bytes)\n", ndg, nreads,
	       maxread);
	CHECK_EQ(ndg, nwant);
	for (size_t i = 0; i < ndg; i++) {
		if (sizes[i] != want[i])
			printf("#   datagram %zu of %zu\n", i + 1, ndg);
		CHECK_EQ(sizes[i], want[i]);
	}
	CHECK(memcmp(got, tx, total) == 0);
	/* And nothing more: the next read says so. */
	{
		struct sa src;
		size_t s = 0;

		CHECK(!utest_readable(p.rx, QUIET_MS));
		errno = 0;
		CHECK_EQ(udp_batch_recv(p.rx, rx, sizeof(rx), &src, &s), -1);
		CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
	}
 out:
	pair_close(&p);
	return rc;
}

/* A GSO batch into a GRO socket: the reported segment size splits each
 * read back into the datagrams (loopback usually hands the whole batch
 * over in one read; if not, the splitting still has to hold). */
static int t_gro_split(void)
{
	const size_t len[] = { 20 * 1200 + 500 }, seg[] = { 1200 };

	return recv_case(len, seg, 1, true, true);
}

/* Batches of different segment sizes, a lone small datagram between
 * them and a batch without a short tail: boundaries never shift. */
static int t_gro_split_mixed(void)
{
	const size_t len[] = { 5 * 1000 + 10, 77, 7 * 1300, 1452, 44 * 1452 + 3 };
	const size_t seg[] = { 1000, 77, 1300, 1452, 1452 };

	return recv_case(len, seg, sizeof(len) / sizeof(len[0]), true, true);
}

/* Datagrams sent one by one (sendmmsg) into a GRO socket, sizes from 1
 * to the largest UDP payload: each read is one datagram, seg its size. */
static int t_gro_plain_datagrams(void)
{
	const size_t len[] = { 1, 100, 1200, 65507, 3 * 500 + 1 };
	const size_t seg[] = { 1, 100, 1200, 65507, 500 };

	return recv_case(len, seg, sizeof(len) / sizeof(len[0]), false, true);
}

/* A socket without GRO gets the kernel-split datagrams: seg == n. */
static int t_recv_no_gro(void)
{
	const size_t len[] = { 9 * 1200 + 7, 64 * 1000 };
	const size_t seg[] = { 1200, 1000 };

	return recv_case(len, seg, 2, true, false);
}

/* Nothing queued: -1 with EAGAIN, on a plain and on a GRO socket. */
static int t_recv_empty(void)
{
	struct pair p = { -1, -1 };
	struct sa src;
	size_t seg = 0;
	int rc = 0;

	CHECK(pair_open(&p) == 0);
	errno = 0;
	CHECK_EQ(udp_batch_recv(p.rx, rx, sizeof(rx), &src, &seg), -1);
	CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
	CHECK(udp_batch_gro_enable(p.rx));
	errno = 0;
	CHECK_EQ(udp_batch_recv(p.rx, rx, sizeof(rx), &src, &seg), -1);
	CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
 out:
	pair_close(&p);
	return rc;
}

/* A datagram larger than the buffer: -1 with EMSGSIZE, the datagram is
 * gone, and the next read returns the next datagram whole. */
static int recv_trunc_case(bool gro)
{
	struct pair p = { -1, -1 };
	struct sa src;
	size_t seg = 0;
	ssize_t n;
	int rc = 0;

	CHECK(pair_open(&p) == 0);
	if (gro)
		CHECK(udp_batch_gro_enable(p.rx));
	utest_fill(tx, 2100, 21);
	CHECK_EQ(sendto(p.tx, tx, 2000, 0, &p.rxa.u.sa, p.rxa.len), 2000);
	CHECK_EQ(sendto(p.tx, tx + 2000, 100, 0, &p.rxa.u.sa, p.rxa.len), 100);
	CHECK(utest_readable(p.rx, WAIT_MS));
	errno = 0;
	CHECK_EQ(udp_batch_recv(p.rx, rx, 1000, &src, &seg), -1);
	CHECK_EQ(errno, EMSGSIZE);
	CHECK(utest_readable(p.rx, WAIT_MS));
	n = udp_batch_recv(p.rx, rx, 1000, &src, &seg);
	CHECK_EQ(n, 100);
	CHECK_EQ(seg, 100);
	CHECK(memcmp(rx, tx + 2000, 100) == 0);
	CHECK(sa_cmp(&src, &p.txa, SA_ALL));
	errno = 0;
	CHECK_EQ(udp_batch_recv(p.rx, rx, sizeof(rx), &src, &seg), -1);
	CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
 out:
	pair_close(&p);
	return rc;
}

static int t_recv_truncated(void)
{
	return recv_trunc_case(false) || recv_trunc_case(true);
}

const struct utest utest_batch[] = {
	{ "gso_segments", t_gso_segments },
	{ "gso_even", t_gso_even },
	{ "gso_max_segments", t_gso_max_segments },
	{ "gso_over_64k", t_gso_over_64k },
	{ "gso_large_segments", t_gso_large_segments },
	{ "mmsg_segments", t_mmsg_segments },
	{ "mmsg_max_segments", t_mmsg_max_segments },
	{ "single_segment", t_single_segment },
	{ "invalid_input", t_invalid_input },
	{ "oversize_segment", t_oversize_segment },
	{ "gro_split", t_gro_split },
	{ "gro_split_mixed", t_gro_split_mixed },
	{ "gro_plain_datagrams", t_gro_plain_datagrams },
	{ "recv_no_gro", t_recv_no_gro },
	{ "recv_empty", t_recv_empty },
	{ "recv_truncated", t_recv_truncated },
	{ NULL, NULL },
};
