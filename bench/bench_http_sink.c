/* bench_http_sink: an HTTP/1.1 server for the lf-tdlog benchmarks; not a
 * tool.
 *
 *   bench_http_sink PORTFILE REQUESTS
 *   bench_http_sink -e EVENTS[,EVENTS...] [-k KEY] PORTFILE
 *   bench_http_sink -e - [-k KEY] PORTFILE
 *
 * Listens on 127.0.0.1 (an ephemeral port, written to PORTFILE), reads
 * requests with a Content-Length body on any number of keep-alive
 * connections, answers each 200 with a small JSON body, and exits once
 * REQUESTS requests are answered, printing the requests and body bytes.
 * Bodies are skipped, never inflated or decoded: the figures are
 * lf-tdlog's, not this sink's.
 *
 * With -e the bodies are what Treasure Data's import API takes, gzip'd
 * msgpack records, and are inflated and counted (bench/topology.sh): the
 * sink runs in phases of the given numbers of events and prints a line
 * at the end of each, as the request that completes it is answered, with
 * the wall clock of the phase's first and last request.  With -e - the
 * numbers are read from the standard input, a line each, as the phases
 * go, until its end.  With -k, a
 * record's KEY, the time it was written in microseconds since the epoch
 * (a string of digits, as lf-tail makes of an LTSV field, or an integer),
 * is subtracted from the time its request was read whole, and the line
 * has the median, 99th percentile and largest of those latencies. */
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
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "gz.h"
#include "io.h"
#include "mp.h"

#define MAXC	32
#define RBUF	(256u << 10)
#define HEADMAX	(16u << 10)

struct conn {
	int fd;
	char head[HEADMAX];
	size_t hlen;
	unsigned long long skip;	/* body bytes still to pass over */
	struct buf body;		/* with -e: the body so far */
};

static unsigned long long requests, bodybytes;

/* -e: the phases, and the current one's counts and latencies */
#define MAXPH	16
static unsigned long long phase_end[MAXPH];
static int nphase, phase, phase_stdin, decoding;
static unsigned long long events, ph_events, ph_requests, ph_bytes, ph_raw;
static double ph_first, ph_last;
static const char *lat_key;
static long long *lat;			/* microseconds */
static size_t nlat, caplat;

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

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
lat_add(long long us)
{
	if (nlat == caplat) {
		caplat = caplat ? caplat * 2 : 65536;
		if ((lat = realloc(lat, caplat * sizeof *lat)) == NULL)
			die("realloc");
	}
	lat[nlat++] = us;
}

/* A write time: digits of a str, or an integer. */
static int
stamp_of(const struct mp_obj *v, long long *us)
{
	uint32_t i;

	if (v->type == MP_UINT) {
		*us = (long long)v->v.u;
		return 0;
	}
	if (v->type != MP_STR || v->n == 0 || v->n > 18)
		return -1;
	*us = 0;
	for (i = 0; i < v->n; i++) {
		if (!isdigit(v->p[i]))
			return -1;
		*us = *us * 10 + (v->p[i] - '0');
	}
	return 0;
}

/* Count the records of one inflated body, and their latencies at t. */
static void
records(const unsigned char *q, const unsigned char *end, double t)
{
	struct mp_obj m, k, v;
	long long us, at = (long long)(t * 1e6);
	uint32_t i;

	while (q < end) {
		if (mp_read(&q, end, &m) == -1 || m.type != MP_MAP) {
			fprintf(stderr, "bench_http_sink: a body's record is "
			    "not a map\n");
			exit(1);
		}
		for (i = 0; i < m.n; i++) {
			if (mp_read(&q, end, &k) == -1)
				die("truncated record");
			if (lat_key != NULL && k.type == MP_STR &&
			    mp_streq(&k, lat_key)) {
				if (mp_read(&q, end, &v) == -1)
					die("truncated record");
				if (v.type == MP_ARRAY || v.type == MP_MAP)
					die("a nested write time");
				if (stamp_of(&v, &us) == 0)
					lat_add(at - us);
			} else if (mp_pass(&q, end) == -1)
				die("truncated record");
		}
		ph_events++;
		events++;
	}
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static void
phase_report(void)
{
	printf("events=%llu requests=%llu bytes=%llu inflated=%llu "
	    "first=%.6f last=%.6f", ph_events, ph_requests, ph_bytes, ph_raw,
	    ph_first, ph_last);
	if (nlat > 0) {
		qsort(lat, nlat, sizeof *lat, cmp_ll);
		printf(" latency_ms n=%zu p50=%.1f p99=%.1f max=%.1f", nlat,
		    lat[nlat / 2] / 1e3, lat[(nlat * 99) / 100] / 1e3,
		    lat[nlat - 1] / 1e3);
	}
	printf("\n");
	fflush(stdout);
	ph_events = ph_requests = ph_bytes = ph_raw = 0;
	nlat = 0;
	phase++;
}

/* A whole body with -e: inflate it, count it, maybe end the phase. */
static void
decode(struct conn *c)
{
	static struct buf raw;
	const char *err;
	double t = now_real();

	buf_reset(&raw);
	if (gz_inflate(c->body.p, c->body.len, &raw, (size_t)1 << 31,
	    &err) == -1) {
		fprintf(stderr, "bench_http_sink: gzip: %s\n", err);
		exit(1);
	}
	if (ph_requests++ == 0)
		ph_first = t;
	ph_last = t;
	ph_bytes += c->body.len;
	ph_raw += raw.len;
	records(raw.p, raw.p + raw.len, t);
	buf_reset(&c->body);
	while (phase < nphase && events >= phase_end[phase])
		phase_report();
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
			if (decoding && buf_add(&c->body, p, k) == -1)
				die("body");
			p += k;
			n -= k;
			if (c->skip == 0 && decoding)
				decode(c);
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

/* The requests to answer, or with -e 1 (the phases set); 0 on a usage
 * error. */
static unsigned long long
options(int argc, char **argv)
{
	char *p, *e;
	int ch;

	while ((ch = getopt(argc, argv, "e:k:")) != -1)
		switch (ch) {
		case 'e':
			decoding = 1;
			if (strcmp(optarg, "-") == 0) {
				phase_stdin = 1;
				break;
			}
			for (p = optarg; nphase < MAXPH; p = e + 1) {
				phase_end[nphase] = strtoull(p, &e, 10) +
				    (nphase ? phase_end[nphase - 1] : 0);
				nphase++;
				if (*e != ',')
					break;
			}
			break;
		case 'k':
			lat_key = optarg;
			break;
		default:
			return 0;
		}
	if (nphase > 0 || phase_stdin)
		return argc - optind == 1 ? 1 : 0;
	if (argc - optind != 2)
		return 0;
	return strtoull(argv[optind + 1], NULL, 10);
}

/* -e -: take the phases of the lines read; 0 at the end of the input. */
static int
phases_read(void)
{
	static char line[64];
	static size_t len;
	ssize_t r;
	char *nl;

	if ((r = read(0, line + len, sizeof line - 1 - len)) <= 0)
		return r == -1 && errno == EINTR ? 1 : 0;
	len += (size_t)r;
	line[len] = '\0';
	while ((nl = strchr(line, '\n')) != NULL) {
		if (nphase == MAXPH)
			die("too many phases");
		phase_end[nphase] = strtoull(line, NULL, 10) +
		    (nphase ? phase_end[nphase - 1] : 0);
		nphase++;
		len -= (size_t)(nl + 1 - line);
		memmove(line, nl + 1, len + 1);
	}
	if (len == sizeof line - 1)
		die("a long line");
	while (phase < nphase && events >= phase_end[phase])
		phase_report();
	return 1;
}

int
main(int argc, char **argv)
{
	static struct conn cs[MAXC];
	struct pollfd pf[MAXC + 2];
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	unsigned long long want;
	static char rbuf[RBUF];
	FILE *f;
	int lfd, i, n, one = 1;
	ssize_t r;

	if ((want = options(argc, argv)) == 0)
		return 2;
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
	if ((f = fopen(argv[optind], "w")) == NULL)
		die(argv[optind]);
	fprintf(f, "%d\n", ntohs(sa.sin_port));
	fclose(f);
	for (i = 0; i < MAXC; i++)
		cs[i].fd = -1;
	while (phase_stdin || (nphase > 0 ? phase < nphase :
	    requests < want)) {
		pf[0].fd = lfd;
		pf[0].events = POLLIN;
		pf[MAXC + 1].fd = phase_stdin ? 0 : -1;
		pf[MAXC + 1].events = POLLIN;
		for (i = 0; i < MAXC; i++) {
			pf[i + 1].fd = cs[i].fd;
			pf[i + 1].events = POLLIN;
		}
		if ((n = poll(pf, MAXC + 2, -1)) == -1) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pf[MAXC + 1].revents & (POLLIN | POLLHUP) &&
		    phases_read() == 0)
			phase_stdin = 0;
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
			buf_free(&cs[i].body);
		}
	}
	printf("requests=%llu bytes=%llu\n", requests, bodybytes);
	return 0;
}
