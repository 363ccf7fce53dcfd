#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dial.h"
#include "log.h"

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

/* Which of n addresses this connection takes: the next one with
 * round_robin; else the one that last connected, moving on only after a
 * connection that could not connect (failover between a name's
 * addresses). */
static size_t
pick(struct dial_addr *a, size_t n)
{
	if (a->round_robin || (a->tried && !a->connected))
		a->next++;
	a->tried = 1;
	a->connected = 0;
	/* round robin takes the first address first, too */
	return (a->round_robin ? a->next - 1 : a->next) % n;
}

static int
start_sa(const struct resolve_sa *sa, int *fd)
{
	return start(sa->ss.ss_family, (const struct sockaddr *)&sa->ss,
	    sa->len, fd);
}

/* getaddrinfo here, in open(): numeric addresses (AI_NUMERICHOST never
 * asks a name server), or any name when there is no resolver. */
static int
open_now(struct dial_addr *a, int flags, int *fd)
{
	struct addrinfo hints, *res, *ai;
	struct resolve_sa sa[RESOLVE_ADDRS];
	size_t n = 0;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG | flags;
	if ((rc = getaddrinfo(a->host, a->port, &hints, &res)) != 0) {
		errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai && n < RESOLVE_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof sa[n].ss)
			continue;
		memcpy(&sa[n].ss, ai->ai_addr, ai->ai_addrlen);
		sa[n++].len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (n == 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	return start_sa(&sa[pick(a, n)], fd);
}

static int
numeric(const struct dial_addr *a)
{
	unsigned char b[sizeof(struct in6_addr)];

	return a->port[strspn(a->port, "0123456789")] == '\0' &&
	    (inet_pton(AF_INET, a->host, b) == 1 ||
	    inet_pton(AF_INET6, a->host, b) == 1);
}

/* The resolver's answer, in the loop: keep the address this connection
 * takes, and wake the stand-in fd so that finish() is called. */
static void
resolved(void *arg, const struct resolve_res *res)
{
	struct dial_addr *a = arg;
	uint64_t one = 1;

	a->req = NULL;
	if (res->err != 0) {
		a->got = -1;
		a->err = res->err == EAI_AGAIN ? ETIMEDOUT : EHOSTUNREACH;
	} else {
		a->sa = res->sa[pick(a, res->n)];
		a->got = 1;
	}
	(void)write(a->wait_fd, &one, sizeof one);
}

/* Ask the resolver; the connection is in progress meanwhile, on a
 * stand-in fd that becomes readable with the answer. */
static int
open_later(struct dial_addr *a, int *fd)
{
	int efd, e;

	if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	a->got = 0;
	a->wait_fd = efd;
	if ((a->req = resolve_forward(a->res, a->host, a->port, resolved, a))
	    == NULL) {
		e = errno;
		if (e == EAGAIN) {
			LOG_WARN_LIMITED("%s: too many name lookups pending",
			    a->desc);
			e = ENOBUFS;
		}
		close(efd);
		errno = e;
		return -1;
	}
	a->waiting = 1;
	*fd = efd;
	return 1;
}

static int
sock_open(void *ctx, int *fd)
{
	struct dial_addr *a = ctx;
	struct resolve_res res;
	struct sockaddr_un sun;

	if (a->unix_) {
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, a->path, strlen(a->path));
		return start(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, fd);
	}
	if (numeric(a))
		return open_now(a, AI_NUMERICHOST | AI_NUMERICSERV, fd);
	if (a->res == NULL)
		return open_now(a, 0, fd);	/* blocks: see dial.h */
	if (resolve_cached(a->res, a->host, a->port, &res) == 1)
		return start_sa(&res.sa[pick(a, res.n)], fd);
	return open_later(a, fd);
}

/* The stand-in: still waiting, failed, or connect now and put the
 * socket in its place.  1 even when connect() finished at once: the
 * caller must set its watcher again on the new file (dial.h). */
static int
finish_lookup(struct dial_addr *a, int fd, int *events)
{
	int s, e;

	if (a->got == 0) {
		*events = EV_READ;
		return 1;
	}
	if (a->got < 0) {
		errno = a->err;
		return -1;
	}
	if (start_sa(&a->sa, &s) == -1)
		return -1;
	if (dup3(s, fd, O_CLOEXEC) == -1) {
		e = errno;
		close(s);
		errno = e;
		return -1;
	}
	close(s);
	a->waiting = 0;
	*events = EV_WRITE;
	return 1;
}

static int
sock_finish(void *ctx, int fd, int *events)
{
	struct dial_addr *a = ctx;
	int e = 0;
	socklen_t len = sizeof e;

	if (a->waiting && fd == a->wait_fd)
		return finish_lookup(a, fd, events);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return -1;
	if (e != 0) {
		errno = e;
		return -1;
	}
	a->connected = 1;
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
	struct dial_addr *a = ctx;

	if (a->waiting && fd == a->wait_fd) {
		/* the lookup's answer must not reach a closed connection */
		resolve_cancel(a->req);
		a->req = NULL;
		a->waiting = 0;
	}
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
