#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dial.h"

static int
parse_err(char *err, size_t n, const char *spec, const char *why)
{
	snprintf(err, n, "\"%s\": %s", spec, why);
	return -1;
}

static int
copy(char *dst, size_t cap, const char *s, size_t len)
{
	if (len == 0 || len >= cap)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int
parse_hostport(struct dial_addr *a, const char *spec, const char *s,
    char *err, size_t n)
{
	const char *colon, *host = s;
	size_t hlen;

	if (*s == '[') {
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':')
			return parse_err(err, n, spec, "expected [ADDRESS]:PORT");
		host = s + 1;
		hlen = (size_t)(colon - host);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return parse_err(err, n, spec,
			    "expected unix:PATH or HOST:PORT");
		hlen = (size_t)(colon - s);
	}
	if (copy(a->host, sizeof a->host, host, hlen) == -1)
		return parse_err(err, n, spec, "bad host");
	if (copy(a->port, sizeof a->port, colon + 1, strlen(colon + 1)) == -1)
		return parse_err(err, n, spec, "bad port");
	snprintf(a->desc, sizeof a->desc, "tcp:%s", s);
	return 0;
}

int
dial_parse(struct dial_addr *a, const char *spec, char *err, size_t n)
{
	memset(a, 0, sizeof *a);
	if (strncmp(spec, "unix:", 5) == 0 || strchr(spec, '/') != NULL) {
		const char *p = strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec;

		if (copy(a->path, sizeof a->path, p, strlen(p)) == -1)
			return parse_err(err, n, spec,
			    "socket path empty or too long");
		a->unix_ = 1;
		snprintf(a->desc, sizeof a->desc, "unix:%s", p);
		return 0;
	}
	if (strncmp(spec, "tcp:", 4) == 0)
		spec += 4;
	return parse_hostport(a, spec, spec, err, n);
}

/* TCP keepalive probes: a peer that vanished (a host gone, a NAT or a
 * load balancer that dropped the flow) while the connection sat idle is
 * found within DIAL_KA_IDLE + DIAL_KA_INTVL * DIAL_KA_CNT seconds, not
 * the kernel's two hours.  With data in flight, the hop's own send and
 * ack timeouts are the bound. */
static void
keepalive(int fd)
{
	int one = 1, idle = DIAL_KA_IDLE, intvl = DIAL_KA_INTVL,
	    cnt = DIAL_KA_CNT;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof intvl);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* socket(), then a non-blocking connect: 0 connected, 1 in progress. */
static int
start(int family, const struct sockaddr *sa, socklen_t salen, int *fdp)
{
	int fd, e, one = 1;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (family != AF_UNIX) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		keepalive(fd);
	}
	if (connect(fd, sa, salen) == 0) {
		*fdp = fd;
		return 0;
	}
	/* EAGAIN, a Unix listener's full backlog, is a failure like a
	 * refusal: the socket is not connecting, so retry later */
	if (errno == EINPROGRESS) {
		*fdp = fd;
		return 1;
	}
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int
sock_open(void *ctx, int *fd)
{
	struct dial_addr *a = ctx;
	struct addrinfo hints, *res, *ai;
	struct sockaddr_un sun;
	unsigned i, cnt;
	int rc;

	if (a->unix_) {
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, a->path, strlen(a->path));
		return start(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, fd);
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	/* blocks for a name, at connect time only (see dial.h) */
	if ((rc = getaddrinfo(a->host, a->port, &hints, &res)) != 0) {
		errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
		return -1;
	}
	for (cnt = 0, ai = res; ai; ai = ai->ai_next)
		cnt++;
	for (i = 0, ai = res; i < a->next % cnt; i++)
		ai = ai->ai_next;
	a->next++;
	rc = start(ai->ai_family, ai->ai_addr, ai->ai_addrlen, fd);
	freeaddrinfo(res);
	return rc;
}

static int
sock_finish(void *ctx, int fd, int *events)
{
	int e = 0;
	socklen_t len = sizeof e;

	(void)ctx;
	(void)events;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return -1;
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static ssize_t
sock_read(void *ctx, int fd, void *p, size_t n)
{
	(void)ctx;
	return read(fd, p, n);
}

static ssize_t
sock_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	struct msghdr mh;

	(void)ctx;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = (size_t)cnt;
	return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

static void
sock_close(void *ctx, int fd)
{
	(void)ctx;
	close(fd);
}

static const char *
sock_name(void *ctx)
{
	return ((struct dial_addr *)ctx)->desc;
}

const struct dial_ops dial_sock_ops = {
	sock_open, sock_finish, sock_read, sock_writev, sock_close, sock_name,
};
