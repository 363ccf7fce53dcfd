/* bench_fwd: a forward-protocol sender for the lf-recv benchmark; not a
 * tool.
 *
 *   bench_fwd run ADDR CONNS EVENTS WINDOW
 *   bench_fwd idle ADDR N
 *   bench_fwd port
 *
 * run: CONNS connections to ADDR (host:port, or unix:path) share EVENTS
 * events, sent as PackedForward messages of 1,000 events of ~150 bytes,
 * each with its own "chunk" id; a connection keeps up to WINDOW messages
 * unacked.  Prints events/s from the first connect to the last ack, and
 * the ack latency (first byte written to ack read) median and p99.  Exits
 * 1 on a refused connection, a close, or an ack for no message in flight.
 *
 * idle: holds N connections to ADDR that send nothing; prints "connected
 * N" once they are all open and waits to be killed.  Opens them 100 at a
 * time, 10 ms apart.  Raises its own RLIMIT_NOFILE to the hard limit.
 *
 * port: prints a TCP port of 127.0.0.1 that is free now.
 *
 * One thread, poll(2), messages built once: the sender must not be what
 * the benchmark measures. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"

#define PER	1000		/* events a message */
#define MAXW	64		/* window bound */
#define IDLEN	24		/* the chunk option: base64 of 16 bytes */
#define RBUF	4096

struct conn {
	int fd;
	unsigned char *msg;	/* this connection's copy of the message */
	size_t off;		/* bytes of it written; msglen = idle */
	uint64_t quota;		/* messages still to start */
	unsigned nfly;		/* messages written (at least in part), unacked */
	char ids[MAXW][IDLEN];	/* their chunk ids, oldest first */
	double t0[MAXW];	/* when their first byte went */
	unsigned char rbuf[RBUF];
	size_t rlen;
};

static size_t msglen, idoff;	/* message size; where its chunk id is */
static double *lat;		/* ack latencies, seconds */
static size_t nlat;
static uint64_t serial, acked;
static unsigned window;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char *
put_str(unsigned char *p, const char *s)
{
	size_t n = strlen(s);

	if (n < 32)
		*p++ = (unsigned char)(0xa0 | n);
	else {
		*p++ = 0xd9;
		*p++ = (unsigned char)n;
	}
	memcpy(p, s, n);
	return p + n;
}

static unsigned char *
put_be32(unsigned char *p, uint32_t v)
{
	*p++ = (unsigned char)(v >> 24);
	*p++ = (unsigned char)(v >> 16);
	*p++ = (unsigned char)(v >> 8);
	*p++ = (unsigned char)v;
	return p;
}

/* The message of PER events: [tag, bin32 entries, {"size": PER, "chunk":
 * <24 characters patched per send>}].  The records are bench/hop.py's. */
static unsigned char *
build(void)
{
	static const char *keys[] = { "host", "method", "path", "code",
	    "agent", "referer" };
	unsigned char *m, *p, *ents;
	char path[32], *vals[6];
	uint32_t i, k, t = 1441588984;

	if ((m = malloc(PER * 256 + 256)) == NULL)
		die("malloc");
	p = m;
	*p++ = 0x93;
	p = put_str(p, "bench.access");
	*p++ = 0xc6;
	ents = p + 4;
	p = ents;
	vals[0] = "192.168.0.12";
	vals[1] = "GET";
	vals[2] = path;
	vals[3] = "200";
	vals[4] = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0)";
	vals[5] = "http://example.com/";
	for (i = 0; i < PER; i++) {
		snprintf(path, sizeof path, "/items/%08u.html", i);
		*p++ = 0x92;
		*p++ = 0xd7;
		*p++ = 0x00;
		p = put_be32(p, t + i);
		p = put_be32(p, i);
		*p++ = 0x86;
		for (k = 0; k < 6; k++) {
			p = put_str(p, keys[k]);
			p = put_str(p, vals[k]);
		}
	}
	put_be32(ents - 4, (uint32_t)(p - ents));
	*p++ = 0x82;
	p = put_str(p, "size");
	*p++ = 0xcd;
	*p++ = PER >> 8;
	*p++ = PER & 0xff;
	p = put_str(p, "chunk");
	*p++ = 0xa0 | IDLEN;
	idoff = (size_t)(p - m);
	memset(p, 'A', IDLEN);
	p += IDLEN;
	msglen = (size_t)(p - m);
	return m;
}

/* A fresh chunk id: base64 of 16 bytes, 8 of them a serial number. */
static void
new_id(char *out)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[18] = { 0 };
	uint64_t s = ++serial;
	int i;

	memcpy(raw, "lf-bench", 8);
	for (i = 0; i < 8; i++)
		raw[8 + i] = (unsigned char)(s >> (56 - 8 * i));
	for (i = 0; i < 6; i++) {
		uint32_t v = (uint32_t)raw[3 * i] << 16 |
		    (uint32_t)raw[3 * i + 1] << 8 | raw[3 * i + 2];
		out[4 * i] = b64[v >> 18 & 63];
		out[4 * i + 1] = b64[v >> 12 & 63];
		out[4 * i + 2] = b64[v >> 6 & 63];
		out[4 * i + 3] = b64[v & 63];
	}
	out[22] = out[23] = '=';	/* 16 bytes: two of padding */
}

static int
dial(const char *addr)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
	socklen_t sl;
	char host[64];
	const char *colon;
	int fd, one = 1;

	memset(&ss, 0, sizeof ss);
	if (strncmp(addr, "unix:", 5) == 0) {
		sun->sun_family = AF_UNIX;
		if (strlen(addr + 5) >= sizeof sun->sun_path)
			return -1;
		strcpy(sun->sun_path, addr + 5);
		sl = sizeof *sun;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL ||
		    (size_t)(colon - addr) >= sizeof host)
			return -1;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sl = sizeof *sin;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM, 0)) == -1)
		die("socket");
	if (connect(fd, (struct sockaddr *)&ss, sl) == -1)
		die(addr);
	if (ss.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Write what the socket takes; start the next message when one is done
 * and the window allows.  -1 on an error. */
static int
pump(struct conn *c)
{
	ssize_t w;

	for (;;) {
		if (c->off == msglen) {
			if (c->quota == 0 || c->nfly >= window)
				return 0;
			new_id(c->ids[c->nfly]);
			memcpy(c->msg + idoff, c->ids[c->nfly], IDLEN);
			c->t0[c->nfly] = now();
			c->nfly++;
			c->quota--;
			c->off = 0;
		}
		w = send(c->fd, c->msg + c->off, msglen - c->off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w == -1)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)w;
	}
}

/* Take the acks read so far: each must name a message in flight (the
 * oldest, as lf-recv answers in order).  -1 on anything else. */
static int
acks(struct conn *c)
{
	const unsigned char *p, *end;
	struct mp_obj m, k, v;
	size_t off = 0, n;
	unsigned i;
	int r;

	while (off < c->rlen) {
		p = c->rbuf + off;
		end = c->rbuf + c->rlen;
		if ((r = mp_skip(p, (size_t)(end - p), 4, &n)) == MP_MORE)
			break;
		if (r != MP_OK)
			return -1;
		off += n;
		if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP || m.n != 1 ||
		    mp_read(&p, end, &k) == -1 || !mp_streq(&k, "ack") ||
		    mp_read(&p, end, &v) == -1 || v.type != MP_STR ||
		    v.n != IDLEN)
			return -1;
		for (i = 0; i < c->nfly; i++)
			if (memcmp(c->ids[i], v.p, IDLEN) == 0)
				break;
		/* the message being written cannot be acked yet */
		if (i == c->nfly || (i == c->nfly - 1 && c->off < msglen)) {
			fprintf(stderr, "bench_fwd: an ack for no message "
			    "in flight\n");
			return -1;
		}
		lat[nlat++] = now() - c->t0[i];
		memmove(c->ids[i], c->ids[i + 1], (c->nfly - i - 1) * IDLEN);
		memmove(&c->t0[i], &c->t0[i + 1],
		    (c->nfly - i - 1) * sizeof c->t0[0]);
		c->nfly--;
		acked += PER;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	return 0;
}

static int
cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
run(const char *addr, int nconn, uint64_t events)
{
	struct conn *cs;
	struct pollfd *pf;
	unsigned char *tmpl;
	uint64_t msgs = events / PER, want;
	double t0, t;
	ssize_t r;
	int i;

	if (nconn < 1 || msgs < 1)
		return 2;
	tmpl = build();
	want = msgs * PER;
	if ((cs = calloc((size_t)nconn, sizeof *cs)) == NULL ||
	    (pf = calloc((size_t)nconn, sizeof *pf)) == NULL ||
	    (lat = calloc(msgs, sizeof *lat)) == NULL)
		die("calloc");
	t0 = now();
	for (i = 0; i < nconn; i++) {
		cs[i].fd = dial(addr);
		if ((cs[i].msg = malloc(msglen)) == NULL)
			die("malloc");
		memcpy(cs[i].msg, tmpl, msglen);
		cs[i].off = msglen;
		cs[i].quota = msgs / (uint64_t)nconn +
		    ((uint64_t)i < msgs % (uint64_t)nconn);
	}
	while (acked < want) {
		for (i = 0; i < nconn; i++) {
			if (pump(&cs[i]) == -1)
				die("send");
			pf[i].fd = cs[i].fd;
			pf[i].events = POLLIN | (cs[i].off < msglen ? POLLOUT : 0);
		}
		if (poll(pf, (nfds_t)nconn, 10000) <= 0) {
			fprintf(stderr, "bench_fwd: no ack for 10 s, %llu of "
			    "%llu events acked\n", (unsigned long long)acked,
			    (unsigned long long)want);
			return 1;
		}
		for (i = 0; i < nconn; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = recv(cs[i].fd, cs[i].rbuf + cs[i].rlen,
			    RBUF - cs[i].rlen, MSG_DONTWAIT);
			if (r == 0) {
				fprintf(stderr, "bench_fwd: closed by the "
				    "server\n");
				return 1;
			}
			if (r == -1) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				die("recv");
			}
			cs[i].rlen += (size_t)r;
			if (acks(&cs[i]) == -1)
				return 1;
		}
	}
	t = now() - t0;
	for (i = 0; i < nconn; i++)
		close(cs[i].fd);
	qsort(lat, nlat, sizeof *lat, cmpd);
	printf("%llu events in %llu messages of %d (%zu bytes) on %d "
	    "connections, window %u: %.3f s, %.0f events/s, %.1f MB/s; "
	    "ack latency median %.2f ms, p99 %.2f ms\n",
	    (unsigned long long)want, (unsigned long long)msgs, PER, msglen,
	    nconn, window, t, want / t, msgs * (double)msglen / t / 1e6,
	    lat[nlat / 2] * 1e3, lat[nlat * 99 / 100] * 1e3);
	return 0;
}

static _Noreturn void
idle(const char *addr, int n)
{
	struct timespec pace = { 0, 10 * 1000 * 1000 };
	struct rlimit rl;
	int i;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (i = 0; i < n; i++) {
		dial(addr);
		/* paced: a burst past the server's listen backlog has its SYNs
		 * dropped and sent again a second later */
		if (i % 100 == 99)
			nanosleep(&pace, NULL);
	}
	printf("connected %d\n", n);
	fflush(stdout);
	for (;;)
		pause();
}

static int
freeport(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == -1)
		die("port");
	printf("%d\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "run") == 0) {
		window = (unsigned)atoi(argv[5]);
		if (window < 1 || window > MAXW)
			return 2;
		return run(argv[2], atoi(argv[3]),
		    strtoull(argv[4], NULL, 10));
	}
	if (argc == 4 && strcmp(argv[1], "idle") == 0)
		idle(argv[2], atoi(argv[3]));
	if (argc == 2 && strcmp(argv[1], "port") == 0)
		return freeport();
	fprintf(stderr, "usage: bench_fwd run ADDR CONNS EVENTS WINDOW\n"
	    "       bench_fwd idle ADDR N\n       bench_fwd port\n");
	return 2;
}
