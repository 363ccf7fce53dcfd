#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"

int
sock_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int
unix_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

int
sock_unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd, e;

	if (unix_addr(&sun, path) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
sock_unix_listen(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, e, probe;

	if (unix_addr(&sun, path) == -1)
		return -1;
	/* a stale socket file from a crash is removed; a live one is not */
	if ((probe = sock_unix_connect(path)) != -1) {
		close(probe);
		errno = EADDRINUSE;
		return -1;
	}
	/* only a socket is taken over, never another kind of file */
	if (errno == ECONNREFUSED && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    listen(fd, SOCK_BACKLOG) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
errmsg(char *err, size_t n, const char *spec, const char *why)
{
	snprintf(err, n, "%s: %s", spec, why);
	return -1;
}

int
sock_tcp_listen(const char *host, const char *port, char *err, size_t n)
{
	struct addrinfo hints, *res;
	int fd, rc, e, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	/* resolved once, at start: a name is the owner's choice */
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, n, "%s:%s: %s", host, port, gai_strerror(rc));
		errno = rc == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, SOCK_BACKLOG) == -1) {
		e = errno;
		snprintf(err, n, "%s:%s: %s", host, port, strerror(e));
		if (fd != -1)
			close(fd);
		freeaddrinfo(res);
		errno = e;
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

int
sock_listen(const char *spec, enum sock_kind *kind, char *err, size_t n)
{
	char host[256], port[32];
	const char *s, *colon, *h;
	size_t hlen;
	int fd;

	if (strncmp(spec, "unix:", 5) == 0 && spec[5] != '\0') {
		*kind = SOCK_UNIX;
		if ((fd = sock_unix_listen(spec + 5)) == -1)
			return errmsg(err, n, spec + 5, strerror(errno));
		return fd;
	}
	if (strncmp(spec, "tcp:", 4) != 0) {
		errno = EINVAL;
		return errmsg(err, n, spec, "want unix:PATH or tcp:HOST:PORT");
	}
	s = h = spec + 4;
	if (*s == '[') {
		h = s + 1;
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':') {
			errno = EINVAL;
			return errmsg(err, n, spec, "want tcp:[ADDRESS]:PORT");
		}
		hlen = (size_t)(colon - h);
		colon++;
	} else if ((colon = strrchr(s, ':')) != NULL) {
		hlen = (size_t)(colon - s);
	} else {
		errno = EINVAL;
		return errmsg(err, n, spec, "want tcp:HOST:PORT");
	}
	if (hlen == 0 || hlen >= sizeof host || colon[1] == '\0' ||
	    strlen(colon + 1) >= sizeof port ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		errno = EINVAL;
		return errmsg(err, n, spec, "want tcp:HOST:PORT (the port a number)");
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	*kind = SOCK_TCP;
	return sock_tcp_listen(host, port, err, n);
}

int
sock_host(const struct sockaddr *sa, socklen_t len, char *buf, size_t n,
    unsigned *port)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in s4;
	char serv[16];

	if (port)
		*port = 0;
	if (sa->sa_family == AF_UNIX) {
		if (n == 0)
			return -1;
		buf[0] = '\0';
		return 0;
	}
	/* an IPv4 client of an IPv6 socket is named as IPv4, as everywhere
	 * else (log lines, --allow, source_address_key) */
	if (sa->sa_family == AF_INET6 && len >= sizeof *s6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memset(&s4, 0, sizeof s4);
		s4.sin_family = AF_INET;
		s4.sin_port = s6->sin6_port;
		memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		sa = (const struct sockaddr *)&s4;
		len = sizeof s4;
	}
	if (getnameinfo(sa, len, buf, (socklen_t)n, serv, sizeof serv,
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	if (port)
		*port = (unsigned)strtoul(serv, NULL, 10);
	return 0;
}

int
sock_name(int fd, int peer, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int rc;

	memset(&ss, 0, sizeof ss);
	rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) :
	    getsockname(fd, (struct sockaddr *)&ss, &len);
	if (rc == -1)
		return -1;
	if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		rc = snprintf(buf, n, "unix:%.*s", (int)sizeof sun->sun_path,
		    sun->sun_path);
	} else {
		if (sock_host((struct sockaddr *)&ss, len, host, sizeof host, &port) == -1)
			return -1;
		rc = snprintf(buf, n, ss.ss_family == AF_INET6 ? "tcp:[%s]:%u" :
		    "tcp:%s:%u", host, port);
	}
	return rc < 0 || (size_t)rc >= n ? -1 : 0;
}

int
sock_accept_from(int lfd, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof *ss;
	return accept4(lfd, (struct sockaddr *)ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
