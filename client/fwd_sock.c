/* Socket helpers of the port forwarder: binding loopback listeners,
 * connecting to local apps from a chosen source, closing with or without
 * RST. Owns no state; must not touch carriers or streams. */
#include "client/fwd_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h, since Linux 4.2 */
#endif

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) == 0 ? 0 : errno;
}

int fwd_sock_udp(const struct sockaddr_in *bind_to, int *fdp)
{
	int fd, err;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	/* Room for bursts of large datagrams between two loop turns. */
	(void)set_int(fd, SOL_SOCKET, SO_RCVBUF, FWD_UDP_SOCKBUF);
	(void)set_int(fd, SOL_SOCKET, SO_SNDBUF, FWD_UDP_SOCKBUF);
	/* No SO_REUSEADDR: nobody else may share the port and take traffic. */
	if (bind(fd, (const struct sockaddr *)bind_to, sizeof(*bind_to)) != 0) {
		err = errno;
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

int fwd_sock_tcp_listener(const struct sockaddr_in *bind_to, bool reuseport,
			  int *fdp)
{
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	err = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	/* Identity plan: our connections to the local app bind this same
	 * address as their source; Linux allows that next to a listener only
	 * when both sockets have SO_REUSEPORT. */
	if (!err && reuseport)
		err = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (!err && bind(fd, (const struct sockaddr *)bind_to,
			 sizeof(*bind_to)) != 0)
		err = errno;
	if (err) {
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

int fwd_sock_tcp_connect(const struct sockaddr_in *src, bool reuseport,
			 const struct sockaddr_in *dst, int *fdp,
			 bool *inprogress)
{
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (reuseport) {
		err = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
		if (!err)
			err = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	}
	else if (src->sin_port == 0) {
		/* Pick the port at connect() time, by 4-tuple, not at bind(). */
		(void)set_int(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
	}
	(void)set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	if (!err && bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0)
		err = errno;
	if (!err && connect(fd, (const struct sockaddr *)dst,
			    sizeof(*dst)) != 0) {
		if (errno == EINPROGRESS)
			*inprogress = true;
		else
			err = errno;
	}
	else if (!err) {
		*inprogress = false;
	}
	if (err) {
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

void fwd_sock_abort(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	fd_close(fd);
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

void fwd_sock_close(int fd)
{
	if (fd < 0)
		return;
	fd_close(fd);
	close(fd);
}

int fwd_sock_error(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) != 0)
		return errno;
	return v;
}

const char *fwd_sock_fmt(const struct sockaddr_in *a, char *buf, size_t n)
{
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, n, "%s:%u", ip, ntohs(a->sin_port));
	return buf;
}
