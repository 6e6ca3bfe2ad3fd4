/* udp_batch: UDP GSO/GRO and sendmmsg on a socket someone else owns (the
 * ICE host bases). It holds no per-socket state (only whether the kernel
 * knows UDP_SEGMENT at all) and must not close, bind or listen on the
 * socket. Needs Linux 5.0 for UDP_GRO and 4.18 for UDP_SEGMENT; without
 * them it falls back to one datagram per message. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <re.h>

#include "client/udp_batch.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* One GSO send is one UDP datagram to the IP layer before segmentation,
 * so its payload is bounded like any other: 65,535 - 20 (IPv4 header) -
 * 8 (UDP header) (RFC 791, RFC 768); the kernel refuses more with
 * EMSGSIZE. 64 segments of a 1452-byte QUIC packet are 92,928 bytes, so
 * such a batch takes two sends. (IPv6 would allow 65,527; one bound for
 * both keeps it simple.) */
enum { GSO_MAX_PAYLOAD = 65507 };

/* Room for the UDP_GRO message and whatever else the socket's owner
 * asked for (timestamps, packet info): a cut-off control buffer would
 * lose the segment size and hand a GRO train over as one datagram. */
enum { RECV_CTRL_SPACE = 256 };

static bool full_for_now(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

/* Kernels before 4.18 do not know UDP_SEGMENT and ignore a control
 * message at SOL_UDP: the "batch" would leave as one large (fragmented)
 * datagram. getsockopt(UDP_SEGMENT) tells them apart (ENOPROTOOPT).
 * The answer is the kernel's, so it is kept for the process. */
static bool kernel_has_gso(int fd)
{
	static atomic_int known; /* 0 not asked yet, 1 yes, -1 no */
	int v = atomic_load_explicit(&known, memory_order_relaxed);

	if (v == 0) {
		int val = 0;
		socklen_t vlen = sizeof(val);
		const char *env = getenv("MESH_UDP_GSO");

		/* MESH_UDP_GSO=off: one datagram per message, e.g. for a NIC
		 * that mishandles GSO, or a test whose packet filter must see
		 * every datagram (netlab's loss rules). */
		if (env && strcmp(env, "off") == 0)
			v = -1;
		else if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &val, &vlen) == 0)
			v = 1;
		else if (errno == ENOPROTOOPT)
			v = -1;
		else
			return true; /* not a reason to give up GSO: let the send say */
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v > 0;
}

static int send_gso(int fd, const struct sa *dst, const uint8_t *p, size_t len, size_t seg)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { (void *)(uintptr_t)p, len };
	struct msghdr mh = {
		.msg_name = (void *)(uintptr_t)&dst->u.sa,
		.msg_namelen = dst->len,
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctrl.buf,
		.msg_controllen = sizeof(ctrl.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	uint16_t gso_size = (uint16_t)seg;

	memset(ctrl.buf, 0, sizeof(ctrl.buf));
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(gso_size));
	memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
	for (;;) {
		if (sendmsg(fd, &mh, MSG_DONTWAIT) >= 0)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

static int send_mmsg(int fd, const struct sa *dst, const uint8_t *p, size_t len, size_t seg,
		     size_t *sent)
{
	struct mmsghdr msgs[UDP_BATCH_MAX_SEGS];
	struct iovec iov[UDP_BATCH_MAX_SEGS];
	unsigned n = 0, done = 0;

	memset(msgs, 0, sizeof(msgs));
	for (size_t off = 0; off < len && n < UDP_BATCH_MAX_SEGS; off += seg, n++) {
		iov[n].iov_base = (void *)(uintptr_t)(p + off);
		iov[n].iov_len = len - off < seg ? len - off : seg;
		msgs[n].msg_hdr.msg_name = (void *)(uintptr_t)&dst->u.sa;
		msgs[n].msg_hdr.msg_namelen = dst->len;
		msgs[n].msg_hdr.msg_iov = &iov[n];
		msgs[n].msg_hdr.msg_iovlen = 1;
	}
	while (done < n) {
		int r = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			*sent = done * seg;
			return errno;
		}
		done += (unsigned)r;
	}
	*sent = len;
	return 0;
}

int udp_batch_send(int fd, const struct sa *dst, const uint8_t *p, size_t len, size_t seg,
		   bool *gso, size_t *sent)
{
	size_t off = 0, more = 0;
	bool try_gso;
	int err = 0;

	if (!sent)
		return EINVAL;
	*sent = 0;
	if (fd < 0 || !dst || !p || !len || !seg || seg > UINT16_MAX ||
	    (len + seg - 1) / seg > UDP_BATCH_MAX_SEGS)
		return EINVAL;
	/* GSO needs two segments per send at least. A segment too large
	 * for any datagram gets EMSGSIZE from sendmmsg below, and GSO stays
	 * on for the next batch. */
	try_gso = gso && *gso && len > seg && seg <= GSO_MAX_PAYLOAD / 2;
	if (try_gso && !kernel_has_gso(fd)) {
		*gso = false;
		try_gso = false;
	}
	if (try_gso) {
		/* Whole segments per send, within one datagram's payload. */
		size_t chunk_max = GSO_MAX_PAYLOAD / seg * seg;

		while (len - off > seg) {
			size_t chunk = len - off < chunk_max ? len - off : chunk_max;

			err = send_gso(fd, dst, p + off, chunk, seg);
			if (err)
				break;
			off += chunk;
			*sent = off;
		}
		if (off == len)
			return 0;
		if (err) {
			if (full_for_now(err))
				return err;
			/* EIO: the device cannot checksum segments; EINVAL
			 * or ENOPROTOOPT: no GSO in this kernel (or segments
			 * larger than the route's MTU). Stop asking. */
			if (err != EIO && err != EINVAL && err != ENOPROTOOPT &&
			    err != EOPNOTSUPP)
				return err;
			*gso = false;
		}
		/* else a lone last segment is left: no GSO needed */
	}
	err = send_mmsg(fd, dst, p + off, len - off, seg, &more);
	*sent = off + more;
	return err;
}

bool udp_batch_gro_enable(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

ssize_t udp_batch_recv(int fd, uint8_t *buf, size_t cap, struct sa *src, size_t *seg)
{
	union {
		char buf[RECV_CTRL_SPACE];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;

	if (!buf || !src || !seg) {
		errno = EINVAL;
		return -1;
	}
	iov.iov_base = buf;
	iov.iov_len = cap;
	do {
		memset(&mh, 0, sizeof(mh));
		mh.msg_name = &src->u.sa;
		mh.msg_namelen = sizeof(src->u);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = sizeof(ctrl.buf);
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	src->len = mh.msg_namelen;
	*seg = (size_t)n;
	if (mh.msg_flags & MSG_TRUNC) {
		errno = EMSGSIZE;
		return -1;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int gso_size;

		if (cm->cmsg_level != SOL_UDP || cm->cmsg_type != UDP_GRO ||
		    cm->cmsg_len < CMSG_LEN(sizeof(gso_size)))
			continue;
		memcpy(&gso_size, CMSG_DATA(cm), sizeof(gso_size));
		if (gso_size > 0 && (size_t)gso_size < (size_t)n)
			*seg = (size_t)gso_size;
	}
	return n;
}
