/* bench_http_sink: an HTTP/1.1 server for the lf-tdlog benchmark; not a
 * tool.
 *
 *   bench_http_sink PORTFILE REQUESTS
 *
 * Listens on 127.0.0.1 (an ephemeral port, written to PORTFILE), reads
 * requests with a Content-Length body on any number of keep-alive
 * connections, answers each 200 with a small JSON body, and exits once
 * REQUESTS requests are answered, printing the requests and body bytes.
 * Bodies are skipped, never inflated or decoded: the figures are
 * lf-tdlog's, not this sink's. */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"

#define MAXC	32
#define RBUF	(256u << 10)
#define HEADMAX	(16u << 10)

struct conn {
	int fd;
	char head[HEADMAX];
	size_t hlen;
	unsigned long long skip;	/* body bytes still to pass over */
};

static unsigned long long requests, bodybytes;

static const char answer[] = "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/* The Content-Length of a request head, or 0. */
static unsigned long long
content_length(const char *h)
{
	const char *p = h;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			return strtoull(p + 15, NULL, 10);
	}
	return 0;
}

/* Take n bytes read from c: 0, or -1 to drop the connection. */
static int
take(struct conn *c, const char *p, size_t n)
{
	char *end;
	size_t k;

	while (n > 0) {
		if (c->skip > 0) {
			k = n < c->skip ? n : (size_t)c->skip;
			c->skip -= k;
			bodybytes += k;
			p += k;
			n -= k;
			if (c->skip == 0 && io_write_all(c->fd, answer,
			    sizeof answer - 1) == -1)
				return -1;
			if (c->skip == 0)
				requests++;
			continue;
		}
		k = HEADMAX - 1 - c->hlen < n ? HEADMAX - 1 - c->hlen : n;
		if (k == 0)
			return -1;
		memcpy(c->head + c->hlen, p, k);
		c->hlen += k;
		c->head[c->hlen] = '\0';
		if ((end = strstr(c->head, "\r\n\r\n")) == NULL) {
			p += k;
			n -= k;
			continue;
		}
		/* the bytes after the head go back to the body */
		k -= c->hlen - (size_t)(end + 4 - c->head);
		p += k;
		n -= k;
		c->skip = content_length(c->head);
		c->hlen = 0;
		if (c->skip == 0) {
			if (io_write_all(c->fd, answer, sizeof answer - 1) == -1)
				return -1;
			requests++;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct conn cs[MAXC];
	struct pollfd pf[MAXC + 1];
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	unsigned long long want;
	static char rbuf[RBUF];
	FILE *f;
	int lfd, i, n, one = 1;
	ssize_t r;

	if (argc != 3)
		return 2;
	want = strtoull(argv[2], NULL, 10);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    listen(lfd, 64) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) == -1)
		die("listen");
	if ((f = fopen(argv[1], "w")) == NULL)
		die(argv[1]);
	fprintf(f, "%d\n", ntohs(sa.sin_port));
	fclose(f);
	for (i = 0; i < MAXC; i++)
		cs[i].fd = -1;
	while (requests < want) {
		pf[0].fd = lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < MAXC; i++) {
			pf[i + 1].fd = cs[i].fd;
			pf[i + 1].events = POLLIN;
		}
		if ((n = poll(pf, MAXC + 1, -1)) == -1) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pf[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);

			/* each answer goes at once, as a server's would */
			if (fd != -1)
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof one);

			for (i = 0; fd != -1 && i < MAXC; i++)
				if (cs[i].fd == -1) {
					memset(&cs[i], 0, sizeof cs[i]);
					cs[i].fd = fd;
					break;
				}
			if (fd != -1 && i == MAXC)
				close(fd);
		}
		for (i = 0; i < MAXC; i++) {
			if (cs[i].fd == -1 || !(pf[i + 1].revents &
			    (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(cs[i].fd, rbuf, sizeof rbuf);
			if (r > 0 && take(&cs[i], rbuf, (size_t)r) == 0)
				continue;
			if (r == -1 && errno == EINTR)
				continue;
			close(cs[i].fd);
			cs[i].fd = -1;
		}
	}
	printf("requests=%llu bytes=%llu\n", requests, bodybytes);
	return 0;
}
