#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "heartbeat.h"
#include "log.h"

struct heartbeat {
	struct ev_loop *loop;
	int fd;
	int family;
	ev_io w;
	ev_tstamp window;		/* the second being counted */
	unsigned long in_window;
	unsigned long answered, dropped;
};

static int
pktinfo_on(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6)
		return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
		    sizeof one);
	return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
}

/* The reply's source: the datagram's destination, from its control
 * message, turned into one for sendmsg. */
static void
reply_from(struct msghdr *m)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo *pi = (void *)CMSG_DATA(c);

			pi->ipi_ifindex = 0;
			pi->ipi_spec_dst = pi->ipi_addr;
			memmove(m->msg_control, c, CMSG_SPACE(sizeof *pi));
			m->msg_controllen = CMSG_SPACE(sizeof *pi);
			return;
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo *pi = (void *)CMSG_DATA(c);

			pi->ipi6_ifindex = 0;
			memmove(m->msg_control, c, CMSG_SPACE(sizeof *pi));
			m->msg_controllen = CMSG_SPACE(sizeof *pi);
			return;
		}
	}
	m->msg_control = NULL;
	m->msg_controllen = 0;
}

/* From the address the client sent to; if the system will not take that
 * (a v4-mapped client on an IPv6 socket, say), from its own choice. */
static int
send_reply(struct heartbeat *h, struct msghdr *m)
{
	if (sendmsg(h->fd, m, MSG_DONTWAIT) != -1)
		return 0;
	if (m->msg_control == NULL || errno != EINVAL)
		return -1;
	m->msg_control = NULL;
	m->msg_controllen = 0;
	return sendmsg(h->fd, m, MSG_DONTWAIT) == -1 ? -1 : 0;
}

static int
allowed(struct heartbeat *h)
{
	ev_tstamp now = ev_now(h->loop);

	if (now - h->window >= 1) {
		h->window = now;
		h->in_window = 0;
	}
	return h->in_window++ < HB_RATE;
}

static void
hb_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct heartbeat *h = w->data;
	union {
		struct cmsghdr align;
		unsigned char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
		    CMSG_SPACE(sizeof(struct in_pktinfo))];
	} ctl;
	struct sockaddr_storage from;
	unsigned char d[64], zero = 0;
	struct iovec iov;
	struct msghdr m;
	int i;

	(void)loop;
	(void)revents;
	for (i = 0; i < HB_BURST; i++) {
		memset(&m, 0, sizeof m);
		iov.iov_base = d;
		iov.iov_len = sizeof d;
		m.msg_name = &from;
		m.msg_namelen = sizeof from;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = ctl.b;
		m.msg_controllen = sizeof ctl.b;
		if (recvmsg(h->fd, &m, MSG_DONTWAIT) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				LOG_WARN_LIMITED("udp heartbeat: %s", strerror(errno));
			return;
		}
		if (!allowed(h)) {
			h->dropped++;
			continue;
		}
		reply_from(&m);
		iov.iov_base = &zero;
		iov.iov_len = 1;
		m.msg_flags = 0;
		if (send_reply(h, &m) == -1)
			h->dropped++;
		else
			h->answered++;
	}
}

struct heartbeat *
heartbeat_new(struct ev_loop *loop, const char *host, const char *port,
    char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	struct heartbeat *h;
	int rc, zero = 0, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = host && *host ? AF_UNSPEC : AF_INET6;
	if ((rc = getaddrinfo(host && *host ? host : NULL, port, &hints,
	    &res)) != 0) {
		snprintf(err, errlen, "udp %s:%s: %s", host ? host : "", port,
		    gai_strerror(rc));
		return NULL;
	}
	if ((h = calloc(1, sizeof *h)) == NULL) {
		freeaddrinfo(res);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->family = res->ai_family;
	h->fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd != -1 && res->ai_family == AF_INET6 && !(host && *host))
		(void)setsockopt(h->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (h->fd != -1) {
		(void)setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (res->ai_family == AF_INET6)	/* v4-mapped clients too */
			(void)setsockopt(h->fd, IPPROTO_IP, IP_PKTINFO, &one,
			    sizeof one);
	}
	if (h->fd == -1 || pktinfo_on(h->fd, h->family) == -1 ||
	    bind(h->fd, res->ai_addr, res->ai_addrlen) == -1) {
		snprintf(err, errlen, "udp %s:%s: %s", host ? host : "*", port,
		    strerror(errno));
		if (h->fd != -1)
			close(h->fd);
		free(h);
		freeaddrinfo(res);
		return NULL;
	}
	freeaddrinfo(res);
	ev_io_init(&h->w, hb_read, h->fd, EV_READ);
	h->w.data = h;
	ev_io_start(loop, &h->w);
	return h;
}

void
heartbeat_stats(const struct heartbeat *h, unsigned long *answered,
    unsigned long *dropped)
{
	*answered = h->answered;
	*dropped = h->dropped;
}

void
heartbeat_free(struct heartbeat *h)
{
	if (h == NULL)
		return;
	ev_io_stop(h->loop, &h->w);
	close(h->fd);
	free(h);
}
