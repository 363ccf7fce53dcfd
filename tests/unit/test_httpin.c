/* Unit tests for lib/httpin: a real libev loop and loopback TCP clients.
 * Each body type and the time rules, the events handed on as canonical
 * entries, 200 only after the tool's reply, errors with their messages,
 * pipelining in order, back pressure, and each bound holding. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "buf.h"
#include "gz.h"
#include "httpin.h"
#include "json.h"
#include "sock.h"
#include "stream.h"

#define MAXB 16
#define SYNC 7		/* take and reply ok inside the function */

struct fx {
	struct ev_loop *loop;
	struct httpin *in;
	struct httpin_listener *l;
	struct httpin_conf conf;
	int mode;		/* HTTPIN_TAKE, HOLD, REFUSE or SYNC */
	int n;			/* batches offered */
	char tag[MAXB][64];
	char ev[MAXB][2048];	/* "sec.nsec {json};" per event */
	size_t count[MAXB];
	httpin_req_t req[MAXB];
};

struct cli {
	int fd;
	char buf[1 << 17];
	size_t len;
	int closed;
};

struct resp {
	int status;
	char head[2048];
	char body[1024];
	size_t bodylen;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
starts(const char *s, const char *pre)
{
	return strncmp(s, pre, strlen(pre)) == 0;
}

static int
ends(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);

	return n >= k && strcmp(s + n - k, suf) == 0;
}

static int
fn(void *ctx, const struct httpin_batch *b, httpin_req_t req)
{
	struct fx *f = ctx;
	struct stream_iter it;
	struct stream_event ev;
	struct buf js = BUF_INIT;
	int i = f->n++, rc;
	size_t k = 0;

	assert_true(i < MAXB);
	snprintf(f->tag[i], sizeof f->tag[i], "%s", b->tag);
	assert_int_equal(strlen(b->tag), b->taglen);
	f->req[i] = req;
	f->ev[i][0] = '\0';
	stream_iter_init(&it, b->entries, b->len);
	while ((rc = stream_iter_next(&it, &ev)) == 1) {
		buf_reset(&js);
		assert_int_equal(json_value(&js, ev.rec, ev.reclen, NULL), 0);
		snprintf(f->ev[i] + strlen(f->ev[i]), sizeof f->ev[i] - strlen(f->ev[i]),
		    "%u.%09u %.*s;", ev.sec, ev.nsec, (int)js.len, js.p);
		k++;
	}
	buf_free(&js);
	assert_int_equal(rc, 0);
	assert_int_equal(k, b->count);
	f->count[i] = b->count;
	assert_non_null(b->listener);
	assert_non_null(b->addr);
	if (f->mode == SYNC) {
		httpin_reply(f->in, req, 1);
		return HTTPIN_TAKE;
	}
	return f->mode;
}

static void
fx_open(struct fx *f)
{
	char err[200];

	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(f->loop);
	f->in = httpin_new(f->loop, &f->conf, fn, f, err, sizeof err);
	assert_non_null(f->in);
	f->l = httpin_listen(f->in, "127.0.0.1:0", err, sizeof err);
	assert_non_null(f->l);
}

static struct fx *
fx_new(void)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	httpin_conf_default(&f->conf);
	f->mode = SYNC;
	return f;
}

static void
fx_free(struct fx *f)
{
	httpin_free(f->in);
	ev_loop_destroy(f->loop);
	free(f);
}

/* A client; rcvbuf (before connecting, so the window fits it) if not 0. */
static struct cli *
dial_rcvbuf(struct fx *f, int rcvbuf)
{
	const char *name = httpin_listener_name(f->l);
	struct sockaddr_in sin;
	struct cli *c = calloc(1, sizeof *c);

	assert_non_null(c);
	assert_int_equal(strncmp(name, "tcp:127.0.0.1:", 14), 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(name + 14));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	if (rcvbuf)
		assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof rcvbuf), 0);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	return c;
}

static struct cli *
dial(struct fx *f)
{
	return dial_rcvbuf(f, 0);
}

static void
cli_free(struct cli *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* Write all of s, turning the loop while the socket is full. */
static void
cli_send(struct fx *f, struct cli *c, const void *s, size_t n)
{
	double end = now() + 10;

	while (n > 0 && now() < end) {
		ssize_t k = send(c->fd, s, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k > 0) {
			s = (const char *)s + k;
			n -= (size_t)k;
		} else {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			ev_run(f->loop, EVRUN_NOWAIT);
			usleep(500);
		}
	}
	assert_int_equal(n, 0);
}

static void
cli_sends(struct fx *f, struct cli *c, const char *s)
{
	cli_send(f, c, s, strlen(s));
}

/* Read what has come, turning the loop, for at most secs (0: once). */
static void
pump(struct fx *f, struct cli *c, double secs)
{
	double end = now() + secs;

	do {
		ev_run(f->loop, EVRUN_NOWAIT);
		if (c && !c->closed && c->len < sizeof c->buf) {
			ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len,
			    MSG_DONTWAIT);

			if (k > 0)
				c->len += (size_t)k;
			else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				c->closed = 1;
		}
		if (secs > 0)
			usleep(500);
	} while (now() < end);
}

/* One whole response out of c->buf, or 0 if there is none yet. */
static int
take_resp(struct cli *c, struct resp *r)
{
	char *e, *cl;
	size_t hl, bl = 0;

	if (c->len == 0)
		return 0;
	c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = '\0';
	if ((e = strstr(c->buf, "\r\n\r\n")) == NULL)
		return 0;
	hl = (size_t)(e + 4 - c->buf);
	assert_true(hl < sizeof r->head);
	memcpy(r->head, c->buf, hl);
	r->head[hl] = '\0';
	assert_int_equal(strncmp(r->head, "HTTP/1.1 ", 9), 0);
	r->status = atoi(r->head + 9);
	if ((cl = strcasestr(r->head, "\r\nContent-Length: ")) != NULL)
		bl = (size_t)atol(cl + 18);
	if (c->len < hl + bl)
		return 0;
	assert_true(bl < sizeof r->body);
	memcpy(r->body, c->buf + hl, bl);
	r->body[bl] = '\0';
	r->bodylen = bl;
	memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
	c->len -= hl + bl;
	return 1;
}

/* The next response, waiting up to 5 s for it. */
static void
expect_resp(struct fx *f, struct cli *c, int status, struct resp *r)
{
	struct resp tmp;
	double end = now() + 5;

	if (r == NULL)
		r = &tmp;
	while (!take_resp(c, r)) {
		assert_true(now() < end);
		assert_false(c->closed && c->len == 0);
		pump(f, c, 0.001);
	}
	if (r->status != status)
		fail_msg("want %d, got: %s%s", status, r->head, r->body);
}

/* Nothing comes for secs. */
static void
expect_nothing(struct fx *f, struct cli *c, double secs)
{
	pump(f, c, secs);
	assert_int_equal(c->len, 0);
}

static void
expect_closed(struct fx *f, struct cli *c)
{
	double end = now() + 5;

	while (!c->closed && now() < end)
		pump(f, c, 0.001);
	assert_true(c->closed);
}

static void
post(struct fx *f, struct cli *c, const char *path, const char *ctype,
    const void *body, size_t n, const char *extra)
{
	char h[2048];

	snprintf(h, sizeof h, "POST %s HTTP/1.1\r\nHost: t\r\n%s%s%s"
	    "Content-Length: %zu\r\n%s\r\n", path, ctype ? "Content-Type: " : "",
	    ctype ? ctype : "", ctype ? "\r\n" : "", n, extra ? extra : "");
	cli_sends(f, c, h);
	cli_send(f, c, body, n);
}

static void
post_json(struct fx *f, struct cli *c, const char *path, const char *body)
{
	post(f, c, path, "application/json", body, strlen(body), NULL);
}

/* A whole round: one request, its status, the connection kept. */
static struct fx *
fx_default(void)
{
	struct fx *f = fx_new();

	fx_open(f);
	return f;
}

static void
test_json_object(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct resp r;

	(void)state;
	f->mode = HTTPIN_TAKE;
	post_json(f, c, "/app/access", "{\"a\":1,\"time\":1441588984,\"s\":\"\\u00e9\"}");
	while (f->n == 0)
		pump(f, c, 0.001);
	assert_string_equal(f->tag[0], "app.access");
	assert_string_equal(f->ev[0], "1441588984.000000000 {\"a\":1,\"s\":\"\xc3\xa9\"};");
	/* no answer before the tool's reply */
	expect_nothing(f, c, 0.1);
	httpin_reply(f->in, f->req[0], 1);
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
	assert_non_null(strstr(r.head, "Content-Type: text/plain\r\n"));
	assert_int_equal(r.bodylen, 0);
	/* a second reply to the same request does nothing */
	httpin_reply(f->in, f->req[0], 1);
	expect_nothing(f, c, 0.05);
	/* and the connection serves the next one */
	f->mode = SYNC;
	post_json(f, c, "/b", "{}");
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->n, 2);
	assert_string_equal(f->tag[1], "b");
	cli_free(c);
	fx_free(f);
}

static void
test_json_array_and_query_time(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);

	(void)state;
	post_json(f, c, "/t?time=1441588984.123456789",
	    " [ {\"a\":1,\"time\":5} , {\"b\":[1,{\"c\":null}]},{\"d\":\"]\\\"[\"} ] ");
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->count[0], 3);
	/* ?time= is exact and the records keep their time key */
	assert_string_equal(f->ev[0],
	    "1441588984.123456789 {\"a\":1,\"time\":5};"
	    "1441588984.123456789 {\"b\":[1,{\"c\":null}]};"
	    "1441588984.123456789 {\"d\":\"]\\\"[\"};");
	/* an empty array: 200 and nothing handed on */
	post_json(f, c, "/t", "[]");
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->n, 1);
	cli_free(c);
	fx_free(f);
}

static void
test_record_time(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct resp r;
	unsigned long t0 = (unsigned long)time(NULL), t;

	(void)state;
	post_json(f, c, "/t", "[{\"time\":1441588984.5,\"a\":1},{\"time\":null},"
	    "{\"b\":2},{\"time\":false}]");
	expect_resp(f, c, 200, NULL);
	assert_true(starts(f->ev[0], "1441588984.500000000 {\"a\":1};"));
	/* null, none and false are now */
	t = strtoul(strchr(f->ev[0], ';') + 1, NULL, 10);
	assert_true(t >= t0 && t <= t0 + 5);
	assert_non_null(strstr(f->ev[0], " {};"));
	assert_non_null(strstr(f->ev[0], " {\"b\":2};"));
	/* ?time=0 is now too */
	post_json(f, c, "/t?time=0", "{\"a\":1}");
	expect_resp(f, c, 200, NULL);
	t = strtoul(f->ev[1], NULL, 10);
	assert_true(t >= t0 && t <= t0 + 5);
	/* a string time is a 400, as in_http; so is a ?time= not a number */
	post_json(f, c, "/t", "{\"time\":\"2015-09-07\"}");
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\nevent 1: time: not epoch "
	    "seconds (a number, or an EventTime)\n");
	post_json(f, c, "/t?time=abc", "{}");
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\ntime: not epoch seconds: 'abc'\n");
	post_json(f, c, "/t", "{\"time\":-1}");
	expect_resp(f, c, 400, NULL);
	/* what the client sent is quoted on one line */
	post_json(f, c, "/t?time=%0D%0Ax", "{}");
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\ntime: not epoch seconds: '??x'\n");
	assert_int_equal(f->n, 2);
	cli_free(c);
	fx_free(f);
}

/* msgpack: a map, then an array of maps; EventTime and float times. */
static void
test_msgpack(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	static const unsigned char body[] = {
		0x82, 0xa1, 'a', 0x01,		/* {"a":1, "time": EventTime} */
		0xa4, 't', 'i', 'm', 'e', 0xd7, 0x00,
		0x55, 0xec, 0xe6, 0xf8, 0x00, 0x00, 0x00, 0x05,
		0x92,				/* [{"b": bin "\0"}, {"time": 1.25}] */
		0x81, 0xa1, 'b', 0xc4, 0x01, 0x00,
		0x81, 0xa4, 't', 'i', 'm', 'e', 0xcb,
		0x3f, 0xf4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct resp r;

	(void)state;
	post(f, c, "/m", "application/msgpack", body, sizeof body, NULL);
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->count[0], 3);
	assert_true(ends(f->ev[0], ";1.250000000 {};"));
	assert_true(starts(f->ev[0], "1441588984.000000005 {\"a\":1};"));
	assert_non_null(strstr(f->ev[0], " {\"b\":\"AA==\"};"));
	post(f, c, "/m", "application/x-msgpack", "\x81\xa1" "a\x01", 4, NULL);
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->count[1], 1);
	/* truncated, or not a map */
	post(f, c, "/m", "application/msgpack", body, 10, NULL);
	expect_resp(f, c, 400, &r);
	assert_non_null(strstr(r.body, "msgpack: truncated"));
	post(f, c, "/m", "application/msgpack", "\x01", 1, NULL);
	expect_resp(f, c, 400, &r);
	assert_non_null(strstr(r.body, "msgpack: not a map or an array of maps"));
	post(f, c, "/m", "application/msgpack", "\x92\x80\x01", 3, NULL);
	expect_resp(f, c, 400, &r);
	assert_non_null(strstr(r.body, "event 2: not a map"));
	assert_int_equal(f->n, 2);
	cli_free(c);
	fx_free(f);
}

static void
test_form_and_query(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	const char *form = "json=%7B%22a%22%3A+%22x+y%22%7D&time=1441588984";
	struct resp r;

	(void)state;
	post(f, c, "/f", "application/x-www-form-urlencoded", form, strlen(form), NULL);
	expect_resp(f, c, 200, NULL);
	assert_string_equal(f->ev[0], "1441588984.000000000 {\"a\":\"x y\"};");
	/* msgpack= in a form: {"k":"v"} percent-encoded */
	form = "msgpack=%81%A1k%A1v";
	post(f, c, "/f", "application/x-www-form-urlencoded", form, strlen(form), NULL);
	expect_resp(f, c, 200, NULL);
	assert_non_null(strstr(f->ev[1], " {\"k\":\"v\"};"));
	/* json= in the query string, with a percent-encoded tag */
	post(f, c, "/a%20b/c?json=%5B%7B%22q%22%3A1%7D%5D", NULL, "", 0, NULL);
	expect_resp(f, c, 200, NULL);
	assert_string_equal(f->tag[2], "a b.c");
	assert_non_null(strstr(f->ev[2], " {\"q\":1};"));
	/* ndjson, blank lines skipped */
	post(f, c, "/n", "application/x-ndjson", "{\"a\":1}\r\n\n[{\"b\":2}]\n", 20, NULL);
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->count[3], 2);
	/* no parameter at all */
	post(f, c, "/n", "text/plain", "hello", 5, NULL);
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\n'json', 'ndjson' or 'msgpack' "
	    "parameter is required\n");
	cli_free(c);
	fx_free(f);
}

static void
test_gzip(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct buf z = BUF_INIT;
	const char *js = "[{\"a\":1},{\"a\":2}]";
	struct resp r;

	(void)state;
	assert_int_equal(gz_deflate((const unsigned char *)js, strlen(js), &z, 6), 0);
	post(f, c, "/z", "application/json", z.p, z.len, "Content-Encoding: gzip\r\n");
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->count[0], 2);
	post(f, c, "/z", "application/json", z.p, z.len - 4, "Content-Encoding: gzip\r\n");
	expect_resp(f, c, 400, &r);
	assert_non_null(strstr(r.body, "body: gzip"));
	post(f, c, "/z", "application/json", "{}", 2, "Content-Encoding: br\r\n");
	expect_resp(f, c, 415, NULL);
	/* deflate is zlib's format */
	{
		unsigned char zb[256];
		uLongf zn = sizeof zb;

		assert_int_equal(compress(zb, &zn, (const Bytef *)js, strlen(js)), Z_OK);
		post(f, c, "/z", "application/csp-report", zb, zn,
		    "Content-Encoding: deflate\r\n");
		expect_resp(f, c, 200, NULL);
		assert_int_equal(f->count[1], 2);
	}
	buf_free(&z);
	cli_free(c);
	fx_free(f);
}

/* A small body that inflates past decompression_size_limit: 413. */
static void
test_gzip_bomb(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct buf z = BUF_INIT;
	unsigned char *zeros = calloc(1, 1 << 20);
	struct resp r;

	(void)state;
	f->conf.decompression_size_limit = 64 << 10;
	fx_open(f);
	c = dial(f);
	assert_int_equal(gz_deflate(zeros, 1 << 20, &z, 9), 0);
	assert_true(z.len < 4096);
	post(f, c, "/z", "application/json", z.p, z.len, "Content-Encoding: gzip\r\n");
	expect_resp(f, c, 413, NULL);
	expect_closed(f, c);
	cli_free(c);
	fx_free(f);
	/* headers added to many small records: the decoded events are bounded */
	f = fx_new();
	f->conf.decompression_size_limit = 64 << 10;
	f->conf.add_http_headers = 1;
	fx_open(f);
	c = dial(f);
	buf_reset(&z);
	assert_int_equal(buf_addc(&z, '['), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(buf_adds(&z, i ? ",{}" : "{}"), 0);
	assert_int_equal(buf_addc(&z, ']'), 0);
	memset(zeros, 'x', 1000);
	zeros[1000] = '\0';
	{
		char h[1100];

		snprintf(h, sizeof h, "X-Pad: %s\r\n", (char *)zeros);
		post(f, c, "/z", "application/json", z.p, z.len, h);
	}
	expect_resp(f, c, 413, &r);
	assert_non_null(strstr(r.body, "the events take more than 65536 bytes"));
	expect_closed(f, c);
	assert_int_equal(f->n, 0);
	free(zeros);
	buf_free(&z);
	cli_free(c);
	fx_free(f);
}

static void
test_errors_keep_connection(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct resp r;

	(void)state;
	post_json(f, c, "/", "{}");
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\nno tag: POST /TAG\n");
	post_json(f, c, "/t", "{\"a\":");
	expect_resp(f, c, 400, &r);
	assert_true(starts(r.body, "400 Bad Request\njson: event 1: "));
	post_json(f, c, "/t", "[{\"a\":1},2]");
	expect_resp(f, c, 400, &r);
	assert_string_equal(r.body, "400 Bad Request\njson: element 2 of the array: "
	    "not an object\n");
	post_json(f, c, "/t", "\"x\"");
	expect_resp(f, c, 400, NULL);
	cli_sends(f, c, "DELETE /t HTTP/1.1\r\n\r\n");
	expect_resp(f, c, 405, &r);
	assert_non_null(strstr(r.head, "Allow: POST"));
	cli_sends(f, c, "GET /health HTTP/1.1\r\n\r\n");
	expect_resp(f, c, 200, NULL);
	/* nothing was handed on, the connection still works */
	assert_int_equal(f->n, 0);
	post_json(f, c, "/ok", "{}");
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->n, 1);
	assert_false(c->closed);
	cli_free(c);
	fx_free(f);
}

static void
test_malformed_closes(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct resp r;
	struct httpin_stats st;

	(void)state;
	cli_sends(f, c, "POST /t HTTP/1.1\r\nContent-Length: x\r\n\r\n");
	expect_resp(f, c, 400, &r);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	assert_non_null(strstr(r.body, "malformed HTTP: "));
	expect_closed(f, c);
	cli_free(c);
	c = dial(f);
	cli_sends(f, c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");	/* TLS */
	expect_resp(f, c, 400, NULL);
	expect_closed(f, c);
	httpin_stats(f->in, f->l, &st);
	assert_int_equal(st.status_4xx, 2);
	assert_int_equal(st.accepted, 2);
	cli_free(c);
	fx_free(f);
}

/* Three requests in one write: answered in order, one at a time. */
static void
test_pipelined(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct resp r;
	const char *reqs =
	    "POST /a HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 7\r\n\r\n{\"a\":1}"
	    "POST /b HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 5\r\n\r\n{\"a\":"
	    "POST /c HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 7\r\n\r\n{\"c\":3}"
	    "GET /d HTTP/1.1\r\nConnection: close\r\n\r\n";

	(void)state;
	f->mode = HTTPIN_TAKE;
	cli_sends(f, c, reqs);
	while (f->n == 0)
		pump(f, c, 0.001);
	/* the first waits for its reply, and the others for it */
	expect_nothing(f, c, 0.1);
	assert_int_equal(f->n, 1);
	httpin_reply(f->in, f->req[0], 1);
	expect_resp(f, c, 200, NULL);
	expect_resp(f, c, 400, &r);
	while (f->n == 1)
		pump(f, c, 0.001);
	assert_string_equal(f->tag[1], "c");
	httpin_reply(f->in, f->req[1], 0);
	expect_resp(f, c, 503, &r);
	assert_non_null(strstr(r.head, "Retry-After: 1\r\n"));
	assert_non_null(strstr(r.head, "Connection: keep-alive"));
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	expect_closed(f, c);
	cli_free(c);
	fx_free(f);
}

static void
test_hold_retry_refuse(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f);
	struct httpin_stats st;
	struct resp r;

	(void)state;
	f->mode = HTTPIN_HOLD;
	post_json(f, c, "/h", "{\"a\":1}");
	while (f->n == 0)
		pump(f, c, 0.001);
	expect_nothing(f, c, 0.1);
	httpin_stats(f->in, NULL, &st);
	assert_int_equal(st.waiting, 1);
	f->mode = SYNC;
	httpin_retry(f->in);
	expect_resp(f, c, 200, NULL);
	assert_int_equal(f->n, 2);
	assert_string_equal(f->ev[0], f->ev[1]);	/* the same batch */
	assert_true(f->req[0] == f->req[1]);
	f->mode = HTTPIN_REFUSE;
	post_json(f, c, "/h", "{\"a\":1}");
	expect_resp(f, c, 503, &r);
	assert_non_null(strstr(r.head, "Retry-After: 1\r\n"));
	assert_non_null(strstr(r.body, "send them again"));
	httpin_stats(f->in, f->l, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.events, 1);
	assert_int_equal(st.status_5xx, 1);
	assert_int_equal(st.waiting, 0);
	cli_free(c);
	fx_free(f);
}

/* The client goes while its request waits: the reply does nothing. */
static void
test_reply_after_client_left(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f), *d;
	struct httpin_stats st;

	(void)state;
	f->mode = HTTPIN_TAKE;
	post_json(f, c, "/x", "{}");
	while (f->n == 0)
		pump(f, c, 0.001);
	cli_free(c);
	/* it is seen gone once its socket is read or written */
	httpin_reply(f->in, f->req[0], 1);
	pump(f, NULL, 0.05);
	httpin_stats(f->in, NULL, &st);
	assert_int_equal(st.waiting, 0);
	/* a new connection may take its slot: the old handle stays stale */
	d = dial(f);
	post_json(f, d, "/y", "{}");
	while (f->n == 1)
		pump(f, d, 0.001);
	httpin_reply(f->in, f->req[0], 1);
	expect_nothing(f, d, 0.05);
	httpin_reply(f->in, f->req[1], 1);
	expect_resp(f, d, 200, NULL);
	cli_free(d);
	fx_free(f);
}

static void
test_headers_and_remote_addr(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;

	(void)state;
	f->conf.add_http_headers = 1;
	f->conf.add_remote_addr = 1;
	f->conf.add_query_params = 1;
	fx_open(f);
	c = dial(f);
	cli_sends(f, c, "POST /h?x-y=1 HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "User-Agent: t/1\r\nContent-Length: 8\r\n\r\n{\"u\":1}\n");
	expect_resp(f, c, 200, NULL);
	assert_string_equal(f->ev[0] + 21, "{\"u\":1,\"HTTP_CONTENT_TYPE\":"
	    "\"application/json\",\"HTTP_USER_AGENT\":\"t/1\","
	    "\"HTTP_CONTENT_LENGTH\":\"8\",\"REMOTE_ADDR\":\"127.0.0.1\","
	    "\"QUERY_X_Y\":\"1\"};");
	httpin_free(f->in);
	/* X-Forwarded-For: its first element */
	f->conf.add_http_headers = 0;
	f->conf.add_query_params = 0;
	f->in = httpin_new(f->loop, &f->conf, fn, f, NULL, 0);
	f->l = httpin_listen(f->in, "127.0.0.1:0", NULL, 0);
	cli_free(c);
	c = dial(f);
	post(f, c, "/h", "application/json", "{}", 2,
	    "X-Forwarded-For:  192.0.2.7 , 10.0.0.1\r\n");
	expect_resp(f, c, 200, NULL);
	assert_string_equal(f->ev[1] + 21, "{\"REMOTE_ADDR\":\"192.0.2.7\"};");
	cli_free(c);
	fx_free(f);
}

static void
test_204_and_gif(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct resp r;
	char prefix[8];

	(void)state;
	f->conf.use_204_response = 1;
	fx_open(f);
	c = dial(f);
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 204, &r);
	assert_null(strcasestr(r.head, "Content-Length"));
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 204, &r);
	cli_free(c);
	httpin_free(f->in);
	f->conf.use_204_response = 0;
	f->conf.respond_with_empty_img = 1;
	snprintf(prefix, sizeof prefix, "pre");
	f->conf.tag_prefix = prefix;
	f->in = httpin_new(f->loop, &f->conf, fn, f, NULL, 0);
	prefix[0] = 'X';	/* copied */
	f->l = httpin_listen(f->in, "127.0.0.1:0", NULL, 0);
	c = dial(f);
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Content-Type: image/gif"));
	assert_int_equal(r.bodylen, 35);
	assert_int_equal(memcmp(r.body, "GIF89a", 6), 0);
	assert_string_equal(f->tag[2], "pre.t");
	cli_free(c);
	fx_free(f);
}

static void
test_cors(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct resp r;
	char err[200];

	(void)state;
	/* credentials need named origins */
	f->conf.cors_allow_origins = "*";
	f->conf.cors_allow_credentials = 1;
	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_null(httpin_new(f->loop, &f->conf, fn, f, err, sizeof err));
	assert_non_null(strstr(err, "cors_allow_credentials"));
	ev_loop_destroy(f->loop);
	f->conf.cors_allow_origins = "https://a.example, *.b.example";
	fx_open(f);
	c = dial(f);
	cli_sends(f, c, "OPTIONS /t HTTP/1.1\r\nOrigin: https://x.b.example\r\n"
	    "Access-Control-Request-Method: POST\r\n"
	    "Access-Control-Request-Headers: content-type\r\n\r\n");
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Access-Control-Allow-Origin: https://x.b.example\r\n"));
	assert_non_null(strstr(r.head, "Access-Control-Allow-Methods: POST\r\n"));
	assert_non_null(strstr(r.head, "Access-Control-Allow-Headers: content-type\r\n"));
	assert_non_null(strstr(r.head, "Access-Control-Allow-Credentials: true\r\n"));
	post(f, c, "/t", "application/json", "{}", 2, "Origin: https://a.example\r\n");
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Access-Control-Allow-Origin: https://a.example\r\n"));
	/* no Origin: not a browser, served */
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 200, NULL);
	post(f, c, "/t", "application/json", "{}", 2, "Origin: https://evil.example\r\n");
	expect_resp(f, c, 403, NULL);
	expect_closed(f, c);
	assert_int_equal(f->n, 2);
	cli_free(c);
	fx_free(f);
}

static void
test_keepalive_and_close(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct resp r;
	double t0;

	(void)state;
	f->conf.keepalive_timeout = 0.5;
	fx_open(f);
	/* HTTP/1.0 closes by default, HTTP/1.1 with Connection: close */
	c = dial(f);
	cli_sends(f, c, "POST /t HTTP/1.0\r\nContent-Type: application/json\r\n"
	    "Content-Length: 2\r\n\r\n{}");
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	expect_closed(f, c);
	cli_free(c);
	c = dial(f);
	post(f, c, "/t", "application/json", "{}", 2, "Connection: close\r\n");
	expect_resp(f, c, 200, &r);
	expect_closed(f, c);
	cli_free(c);
	/* keep-alive: idle past keepalive_timeout is closed, not before */
	c = dial(f);
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 200, NULL);
	t0 = now();
	pump(f, c, 0.2);
	assert_false(c->closed);
	expect_closed(f, c);
	assert_true(now() - t0 >= 0.45);
	assert_true(now() - t0 < 3);
	cli_free(c);
	fx_free(f);
}

/* Slowloris: a request trickled in is cut at request_timeout with 408. */
static void
test_request_timeout(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct resp r;
	double t0;
	int i;

	(void)state;
	f->conf.request_timeout = 0.6;
	f->conf.keepalive_timeout = 30;
	fx_open(f);
	c = dial(f);
	t0 = now();
	cli_sends(f, c, "POST /t HTTP/1.1\r\n");
	for (i = 0; i < 100 && c->len == 0; i++) {
		cli_sends(f, c, "X: y\r\n");
		pump(f, c, 0.05);
	}
	expect_resp(f, c, 408, &r);
	assert_true(now() - t0 >= 0.55);
	assert_true(now() - t0 < 3);
	assert_non_null(strstr(r.head, "Connection: close"));
	expect_closed(f, c);
	cli_free(c);
	fx_free(f);
}

static void
test_size_bounds(void **state)
{
	struct fx *f = fx_new();
	struct cli *c;
	struct resp r;
	char big[4096];

	(void)state;
	f->conf.body_size_limit = 1000;
	f->conf.max_header_size = 1024;
	f->conf.max_url = 512;
	fx_open(f);
	/* Content-Length over the limit: 413 at once, and close */
	c = dial(f);
	cli_sends(f, c, "POST /t HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 1001\r\n\r\n");
	expect_resp(f, c, 413, &r);
	assert_non_null(strstr(r.body, "body_size_limit"));
	expect_closed(f, c);
	cli_free(c);
	/* a chunked body growing past it */
	c = dial(f);
	cli_sends(f, c, "POST /t HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	memset(big, ' ', sizeof big);
	for (int i = 0; i < 3 && c->len == 0; i++) {
		cli_sends(f, c, "200\r\n");
		cli_send(f, c, big, 0x200);
		cli_sends(f, c, "\r\n");
		pump(f, c, 0.01);
	}
	expect_resp(f, c, 413, NULL);
	expect_closed(f, c);
	cli_free(c);
	/* exactly the limit is fine */
	c = dial(f);
	memset(big, ' ', 1000);
	big[0] = '{';
	big[999] = '}';
	post(f, c, "/t", "application/json", big, 1000, NULL);
	expect_resp(f, c, 200, NULL);
	/* Expect: 100-continue within the limit, then beyond it */
	post(f, c, "/t", "application/json", "{}", 2, "Expect: 100-continue\r\n");
	expect_resp(f, c, 100, NULL);
	expect_resp(f, c, 200, NULL);
	cli_sends(f, c, "POST /t HTTP/1.1\r\nContent-Length: 5000\r\n"
	    "Expect: 100-continue\r\n\r\n");
	expect_resp(f, c, 413, NULL);
	expect_closed(f, c);
	cli_free(c);
	/* an unknown expectation */
	c = dial(f);
	post(f, c, "/t", "application/json", "{}", 2, "Expect: magic\r\n");
	expect_resp(f, c, 417, NULL);
	expect_closed(f, c);
	cli_free(c);
	/* headers, URL */
	c = dial(f);
	memset(big, 'a', sizeof big);
	cli_sends(f, c, "POST /t HTTP/1.1\r\nX-Big: ");
	cli_send(f, c, big, 1100);
	cli_sends(f, c, "\r\n\r\n");
	expect_resp(f, c, 431, NULL);
	expect_closed(f, c);
	cli_free(c);
	c = dial(f);
	cli_sends(f, c, "POST /");
	cli_send(f, c, big, 600);
	cli_sends(f, c, " HTTP/1.1\r\n\r\n");
	expect_resp(f, c, 414, NULL);
	expect_closed(f, c);
	cli_free(c);
	fx_free(f);
}

/* Past max_connections accepting pauses; a close lets the next one in. */
static void
test_max_connections(void **state)
{
	struct fx *f = fx_new();
	struct cli *c[3];
	struct httpin_stats st;

	(void)state;
	f->conf.max_connections = 2;
	fx_open(f);
	for (int i = 0; i < 3; i++) {
		c[i] = dial(f);	/* the kernel's backlog takes the third */
		pump(f, NULL, 0.02);
	}
	post_json(f, c[2], "/t", "{}");
	expect_nothing(f, c[2], 0.2);
	httpin_stats(f->in, f->l, &st);
	assert_int_equal(st.conns, 2);
	post_json(f, c[0], "/t", "{}");
	expect_resp(f, c[0], 200, NULL);
	cli_free(c[0]);
	expect_resp(f, c[2], 200, NULL);
	httpin_stats(f->in, f->l, &st);
	assert_int_equal(st.accepted, 3);
	assert_true(st.conns <= 2);
	cli_free(c[1]);
	cli_free(c[2]);
	fx_free(f);
}

/* Over max_memory only the connection whose request began first is read:
 * a second one waits until the first is done. */
static void
test_max_memory(void **state)
{
	struct fx *f = fx_new();
	struct cli *a, *b;
	struct httpin_stats st;
	static char body[200000];

	(void)state;
	f->conf.max_memory = 150000;
	fx_open(f);
	a = dial(f);
	b = dial(f);
	memset(body, ' ', sizeof body);
	body[0] = '{';
	body[sizeof body - 1] = '}';
	/* a: its headers and most of its body */
	cli_sends(f, a, "POST /a HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 200000\r\n\r\n");
	cli_send(f, a, body, 190000);
	pump(f, a, 0.1);
	httpin_stats(f->in, NULL, &st);
	assert_true(st.mem > 150000);
	/* b: a whole small request, not read while a is unfinished */
	post_json(f, b, "/b", "{}");
	expect_nothing(f, b, 0.2);
	assert_int_equal(f->n, 0);
	cli_send(f, a, body + 190000, 10000);
	expect_resp(f, a, 200, NULL);
	expect_resp(f, b, 200, NULL);
	assert_string_equal(f->tag[0], "a");
	assert_string_equal(f->tag[1], "b");
	/* and the memory went back */
	pump(f, NULL, 0.05);
	httpin_stats(f->in, NULL, &st);
	assert_true(st.mem < 150000);
	cli_free(a);
	cli_free(b);
	fx_free(f);
}

/* A client that sends requests but never reads the answers is not read
 * either, once its answers fill up: what it holds stays bounded. */
static void
test_unread_responses(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial_rcvbuf(f, 65536);	/* and no autotuning */
	struct httpin_stats st;
	enum { N = 100000 };
	static char reqs[N * 25];
	const char *one = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n", *p = reqs;
	size_t n = 0, got = 0, total = 0, rlen = strlen(one), left;
	double end;

	(void)state;
	for (int i = 0; i < N; i++)
		n += (size_t)sprintf(reqs + n, "GET /%05d HTTP/1.1\r\n\r\n", i % 100000);
	/* 7.5 MB of answers: more than the socket buffers take.  Send the
	 * requests, read no answer, and let the server run a while */
	left = n;
	end = now() + 1;
	while (now() < end) {
		ssize_t k = left ? send(c->fd, p, left, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

		if (k > 0) {
			p += k;
			left -= (size_t)k;
		}
		ev_run(f->loop, EVRUN_NOWAIT);
	}
	httpin_stats(f->in, NULL, &st);
	assert_true(st.requests > 0);
	assert_true(st.requests < N);
	assert_true(st.mem < (1u << 20));
	/* now read: everything is answered, in order, all alike */
	end = now() + 60;
	while (total + got < N && !c->closed && now() < end) {
		ssize_t k = left ? send(c->fd, p, left, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

		if (k > 0) {
			p += k;
			left -= (size_t)k;
		}
		pump(f, c, 0);
		for (size_t i = got * rlen; i + rlen <= c->len; i += rlen, got++)
			assert_memory_equal(c->buf + i, one, rlen);
		if (got > 1000) {
			memmove(c->buf, c->buf + got * rlen, c->len - got * rlen);
			c->len -= got * rlen;
			total += got;
			got = 0;
		}
	}
	assert_int_equal(total + got, N);
	cli_free(c);
	fx_free(f);
}

static void
test_stats_and_stop(void **state)
{
	struct fx *f = fx_default();
	struct cli *c = dial(f), *d = dial(f);
	struct httpin_stats st;
	struct resp r;
	const char *body = "[{\"a\":1},{\"a\":2}]";

	(void)state;
	post_json(f, c, "/t", body);
	expect_resp(f, c, 200, NULL);
	post_json(f, c, "/t", "{");
	expect_resp(f, c, 400, NULL);
	f->mode = HTTPIN_TAKE;
	post_json(f, c, "/t", "{}");
	while (f->n < 2)
		pump(f, c, 0.001);
	pump(f, d, 0.02);
	httpin_stats(f->in, f->l, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.events, 2);
	assert_int_equal(st.status_4xx, 1);
	assert_int_equal(st.status_5xx, 0);
	assert_int_equal(st.conns, 2);
	assert_int_equal(st.waiting, 1);
	assert_true(st.bytes > 3 * 60 && st.bytes < 1000);
	/* stop: the idle connection goes, the waiting one is answered, closed */
	httpin_stop(f->in);
	expect_closed(f, d);
	httpin_reply(f->in, f->req[1], 1);
	expect_resp(f, c, 200, &r);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	expect_closed(f, c);
	httpin_stats(f->in, NULL, &st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.conns, 0);
	cli_free(c);
	cli_free(d);
	fx_free(f);
}

static void
test_listen_specs(void **state)
{
	struct fx *f = fx_new();
	struct httpin_listener *l;
	struct cli *c;
	char err[200];

	(void)state;
	fx_open(f);
	assert_int_equal(strncmp(httpin_listener_name(f->l), "tcp:127.0.0.1:", 14), 0);
	l = httpin_listen(f->in, "0", err, sizeof err);
	assert_non_null(l);
	assert_int_equal(strncmp(httpin_listener_name(l), "tcp:0.0.0.0:", 12), 0);
	l = httpin_listen(f->in, "[::1]:0", err, sizeof err);
	assert_non_null(l);
	assert_int_equal(strncmp(httpin_listener_name(l), "tcp:[::1]:", 10), 0);
	assert_null(httpin_listen(f->in, "127.0.0.1:http", err, sizeof err));
	assert_non_null(strstr(err, "127.0.0.1:http"));
	/* counters are per listener */
	c = dial(f);
	post_json(f, c, "/t", "{}");
	expect_resp(f, c, 200, NULL);
	{
		struct httpin_stats a, b;

		httpin_stats(f->in, f->l, &a);
		httpin_stats(f->in, l, &b);
		assert_int_equal(a.requests, 1);
		assert_int_equal(b.requests, 0);
		assert_int_equal(b.accepted, 0);
	}
	cli_free(c);
	fx_free(f);
}

/* Every request split at each byte gives the same answers and events. */
static void
test_probe_splits(void **state)
{
	const char *reqs =
	    "POST /a/b?time=1441588984 HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\n[{}\r\n6\r\n,{\"a\":\r\n2\r\n1}\r\n"
	    "1\r\n]\r\n0\r\n\r\n"
	    "POST /f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
	    "Content-Length: 18\r\n\r\njson=%7B%22a%22%7D"
	    "GET / HTTP/1.1\r\n\r\n";
	struct httpin_conf cf;
	struct buf whole = BUF_INIT, out = BUF_INIT;
	size_t n = strlen(reqs), ev, ev1;
	struct httpin_probe *pr;

	(void)state;
	httpin_conf_default(&cf);
	pr = httpin_probe_new(&cf);
	assert_int_equal(httpin_probe_feed(pr, reqs, n, &whole, &ev1), 0);
	httpin_probe_free(pr);
	assert_int_equal(ev1, 2);
	assert_non_null(strstr((const char *)whole.p, "400 Bad Request\njson: event 1: "));
	for (size_t k = 1; k < n; k++) {
		pr = httpin_probe_new(&cf);
		buf_reset(&out);
		assert_int_equal(httpin_probe_feed(pr, reqs, k, &out, &ev), 0);
		assert_int_equal(httpin_probe_feed(pr, reqs + k, n - k, &out, &ev), 0);
		httpin_probe_free(pr);
		assert_int_equal(ev, ev1);
		assert_int_equal(out.len, whole.len);
		assert_memory_equal(out.p, whole.p, out.len);
	}
	buf_free(&whole);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_object),
		cmocka_unit_test(test_json_array_and_query_time),
		cmocka_unit_test(test_record_time),
		cmocka_unit_test(test_msgpack),
		cmocka_unit_test(test_form_and_query),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_errors_keep_connection),
		cmocka_unit_test(test_malformed_closes),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_hold_retry_refuse),
		cmocka_unit_test(test_reply_after_client_left),
		cmocka_unit_test(test_headers_and_remote_addr),
		cmocka_unit_test(test_204_and_gif),
		cmocka_unit_test(test_cors),
		cmocka_unit_test(test_keepalive_and_close),
		cmocka_unit_test(test_request_timeout),
		cmocka_unit_test(test_size_bounds),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_max_memory),
		cmocka_unit_test(test_unread_responses),
		cmocka_unit_test(test_stats_and_stop),
		cmocka_unit_test(test_listen_specs),
		cmocka_unit_test(test_probe_splits),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
