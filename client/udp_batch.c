/* udp_batch: UDP GSO/GRO and sendmmsg on a socket someone else owns (the
 * ICE host bases). It holds no state and must not close, bind or listen
 * on the socket. Needs Linux 5.0 for UDP_GRO and 4.18 for UDP_SEGMENT;
 * without them it falls back to one datagram per message. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
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

static bool full_for_now(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
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
	int err;

	*sent = 0;
	if (fd < 0 || !dst || !p || !len || !seg || seg > UINT16_MAX ||
	    (len + seg - 1) / seg > UDP_BATCH_MAX_SEGS)
		return EINVAL;
	if (*gso && len > seg) {
		err = send_gso(fd, dst, p, len, seg);
		if (!err) {
			*sent = len;
			return 0;
		}
		if (full_for_now(err))
			return err;
		/* EIO: the device cannot checksum segments; EINVAL or
		 * ENOPROTOOPT: no GSO in this kernel. Stop asking. */
		if (err != EIO && err != EINVAL && err != ENOPROTOOPT && err != EOPNOTSUPP)
			return err;
		*gso = false;
	}
	return send_mmsg(fd, dst, p, len, seg, sent);
}

bool udp_batch_gro_enable(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

ssize_t udp_batch_recv(int fd, uint8_t *buf, size_t cap, struct sa *src, size_t *seg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { buf, cap };
	struct msghdr mh = {
		.msg_name = &src->u.sa,
		.msg_namelen = sizeof(src->u),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctrl.buf,
		.msg_controllen = sizeof(ctrl.buf),
	};
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
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
