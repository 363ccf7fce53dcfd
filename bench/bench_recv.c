/* bench_recv: a forward server for the lf-send benchmark; not a tool.
 *
 *   bench_recv PORTFILE EVENTS
 *
 * Listens on 127.0.0.1 (an ephemeral port, written to PORTFILE), takes
 * PackedForward and CompressedPackedForward messages on any number of
 * connections, acks each by its "chunk" option, and exits once EVENTS
 * events (the sum of the "size" options) are acked, printing the events,
 * messages and body bytes.  Bodies are skipped, never decoded or held:
 * the figures are lf-send's, not this receiver's. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "mp.h"

#define MAXC	16
#define RBUF	(1u << 20)

struct conn {
	int fd;
	unsigned char *buf;
	size_t len;
	uint64_t skip;		/* body bytes still to pass over */
	int state;		/* 0 head, 1 body, 2 options */
};

static unsigned long long events, msgs, bodybytes;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/* Act on what is buffered: 0, or -1 if the bytes make no sense. */
static int
parse(struct conn *c)
{
	const unsigned char *p, *end;
	struct mp_obj o, k, v, chunk;
	size_t off = 0, n, hl;
	unsigned char ack[64];
	uint64_t size;
	uint32_t i;

	for (;;) {
		p = c->buf + off;
		end = c->buf + c->len;
		if (c->state == 1) {
			n = (size_t)(end - p) < c->skip ? (size_t)(end - p) :
			    (size_t)c->skip;
			c->skip -= n;
			off += n;
			if (c->skip > 0)
				break;
			c->state = 2;
			continue;
		}
		if (c->state == 0) {
			if (p == end)
				break;
			if (*p++ != 0x93)
				return -1;
			if (mp_read(&p, end, &o) == -1 || end - p < 5) {
				if (end - (c->buf + off) < 1024)
					break;	/* the head is not all in */
				return -1;
			}
			if (o.type != MP_STR)
				return -1;
			switch (*p) {
			case 0xc4: c->skip = p[1]; hl = 2; break;
			case 0xc5: c->skip = (uint64_t)p[1] << 8 | p[2]; hl = 3;
				break;
			case 0xc6: c->skip = (uint64_t)p[1] << 24 |
			    (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
				hl = 5; break;
			default: return -1;
			}
			bodybytes += c->skip;
			off = (size_t)(p + hl - c->buf);
			c->state = 1;
			continue;
		}
		if (mp_skip(p, (size_t)(end - p), 4, &n) == MP_MORE)
			break;
		if (mp_read(&p, end, &o) == -1 || o.type != MP_MAP)
			return -1;
		size = 0;
		memset(&chunk, 0, sizeof chunk);
		for (i = 0; i < o.n; i++) {
			if (mp_read(&p, end, &k) == -1 || mp_read(&p, end, &v) == -1)
				return -1;
			if (mp_streq(&k, "size"))
				size = v.v.u;
			else if (mp_streq(&k, "chunk"))
				chunk = v;
		}
		if (chunk.n == 0 || chunk.n > 40)
			return -1;
		ack[0] = 0x81;
		memcpy(ack + 1, "\xa3" "ack", 4);
		ack[5] = (unsigned char)(0xa0 | chunk.n);
		memcpy(ack + 6, chunk.p, chunk.n);
		if (io_write_all(c->fd, ack, 6 + chunk.n) == -1)
			return -1;
		events += size;
		msgs++;
		off = (size_t)(p - c->buf);
		c->state = 0;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

int
main(int argc, char **argv)
{
	struct pollfd pf[MAXC + 1];
	struct conn cs[MAXC];
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	unsigned long long want;
	int lfd, i, n = 0, one = 1;
	ssize_t r;
	FILE *f;

	if (argc != 3)
		return 2;
	want = strtoull(argv[2], NULL, 10);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    listen(lfd, 16) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) == -1)
		die("listen");
	if ((f = fopen(argv[1], "w")) == NULL)
		die(argv[1]);
	fprintf(f, "%d\n", ntohs(sa.sin_port));
	fclose(f);
	while (events < want) {
		pf[0].fd = lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < n; i++) {
			pf[i + 1].fd = cs[i].fd;
			pf[i + 1].events = POLLIN;
		}
		if (poll(pf, (nfds_t)n + 1, -1) == -1 && errno != EINTR)
			die("poll");
		if ((pf[0].revents & POLLIN) && n < MAXC) {
			memset(&cs[n], 0, sizeof cs[n]);
			if ((cs[n].fd = accept(lfd, NULL, NULL)) == -1)
				die("accept");
			if ((cs[n].buf = malloc(RBUF)) == NULL)
				die("malloc");
			n++;
		}
		for (i = 0; i < n; i++) {
			if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(cs[i].fd, cs[i].buf + cs[i].len, RBUF - cs[i].len);
			if (r > 0)
				cs[i].len += (size_t)r;
			if (r <= 0 || parse(&cs[i]) == -1) {
				close(cs[i].fd);
				free(cs[i].buf);
				cs[i] = cs[--n];
				pf[i + 1] = pf[n + 1];
				i--;
			}
		}
	}
	printf("events=%llu messages=%llu body_bytes=%llu\n", events, msgs,
	    bodybytes);
	return 0;
}
