/* Unit tests for lib/ingest opened up: several listeners of different
 * transports in one loop (Unix, TCP over IPv4 and IPv6), the peer of a
 * batch, and deferred acks: released in any order, after the client has
 * gone, onto a slot another connection took since, and their bound; and
 * the input buffer kept between large messages, given back when idle. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingest.h"
#include "log.h"
#include "sock.h"
#include "stream.h"

#define MAXB ((int)INGEST_ACKS_MAX + 40000)

/* What the batch function saw. */
struct seen {
	struct ingest in;
	struct ev_loop *loop;
	int n;
	ingest_ack_t h[MAXB];
	char id[MAXB][16];
	const struct ingest_listener *from[MAXB];
	char host[MAXB < 64 ? MAXB : 64][64];
	int nohandle;		/* take without deferring */
};

static int
take(void *ctx, struct stream_batch *b)
{
	struct seen *s = ctx;
	struct ingest_peer p;
	int i = s->n++;

	assert_true(i < MAXB);
	assert_int_equal(ingest_peer(&s->in, &p), 0);
	s->from[i] = p.listener;
	if (i < 64)
		assert_int_equal(ingest_peer_host(&p, s->host[i], sizeof s->host[i]), 0);
	/* the chunk option is a fixstr: its bytes after the header */
	snprintf(s->id[i], sizeof s->id[i], "%.*s", (int)b->chunklen - 1,
	    (const char *)b->chunk + 1);
	if (!s->nohandle) {
		s->h[i] = ingest_ack_defer(&s->in, b);
		assert_true(s->h[i] != 0 && s->h[i] != INGEST_ACK_FAIL);
	}
	return INGEST_TAKE;
}

/* A Forward message of one event with chunk id (at most 31 bytes). */
static size_t
message(unsigned char *p, const char *id)
{
	size_t n = 0, k = strlen(id);

	p[n++] = 0x93;			/* [tag, entries, options] */
	p[n++] = 0xa1;
	p[n++] = 't';
	p[n++] = 0x91;			/* [[time, {"a": 1}]] */
	p[n++] = 0x92;
	p[n++] = 0x01;
	p[n++] = 0x81;
	p[n++] = 0xa1;
	p[n++] = 'a';
	p[n++] = 0x01;
	p[n++] = 0x81;			/* {"chunk": id} */
	p[n++] = 0xa5;
	memcpy(p + n, "chunk", 5);
	n += 5;
	p[n++] = (unsigned char)(0xa0 | k);
	memcpy(p + n, id, k);
	return n + k;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Turn the loop until *n reaches want, for at most 5 s. */
static void
run_until(struct seen *s, const int *n, int want)
{
	double end = now() + 5;

	while (*n < want && now() < end)
		ev_run(s->loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(*n < want ? 1000 : 0);
	assert_int_equal(*n, want);
}

static void
spin(struct seen *s, double secs)
{
	double end = now() + secs;

	while (now() < end) {
		ev_run(s->loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

static void
setup_seen(struct seen *s)
{
	struct stream_limits lim;

	memset(s, 0, sizeof *s);
	s->loop = ev_loop_new(EVFLAG_AUTO);
	stream_limits_default(&lim);
	ingest_init(&s->in, s->loop, &lim, take, s);
}

static void
teardown_seen(struct seen *s)
{
	ingest_free(&s->in);
	ev_loop_destroy(s->loop);
}

static char tmpdir[64];

static const char *
unix_spec(const char *name)
{
	static char spec[4][128];
	static int k;
	char *p = spec[k++ % 4];

	snprintf(p, 128, "unix:%s/%s", tmpdir, name);
	return p;
}

/* Connect a client to a listener by its name. */
static int
dial(const char *name)
{
	struct addrinfo hints, *res;
	char host[128], *port;
	int fd;

	if (strncmp(name, "unix:", 5) == 0)
		return sock_unix_connect(name + 5);
	assert_int_equal(strncmp(name, "tcp:", 4), 0);
	snprintf(host, sizeof host, "%s", name + 4);
	port = strrchr(host, ':');
	*port++ = '\0';
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	assert_int_equal(getaddrinfo(host, port, &hints, &res), 0);
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, res->ai_addr, res->ai_addrlen), 0);
	freeaddrinfo(res);
	return fd;
}

static void
send_msg(int fd, const char *id)
{
	unsigned char m[64];
	size_t n = message(m, id);

	assert_int_equal(write(fd, m, n), (ssize_t)n);
}

/* Read n acks from a client socket, driving the loop meanwhile; their
 * ids in order into got (at most 31 bytes each). */
static void
read_acks(struct seen *s, int fd, int n, char got[][32])
{
	unsigned char buf[4096];
	size_t have = 0, off = 0;
	double end = now() + 5;
	int k = 0;
	ssize_t r;

	while (k < n && now() < end) {
		ev_run(s->loop, EVRUN_NOWAIT);
		r = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
		if (r > 0)
			have += (size_t)r;
		while (k < n && have - off >= 6 && have - off >= 6 + (size_t)(buf[off + 5] & 0x1f)) {
			size_t len = buf[off + 5] & 0x1f;
			assert_memory_equal(buf + off, "\x81\xa3" "ack", 5);
			memcpy(got[k], buf + off + 6, len);
			got[k][len] = '\0';
			k++;
			off += 6 + len;
		}
		if (r <= 0)
			usleep(1000);
	}
	assert_int_equal(k, n);
}

/* Nothing more to read on fd within secs. */
static void
no_more(struct seen *s, int fd, double secs)
{
	unsigned char b;
	double end = now() + secs;

	while (now() < end) {
		ev_run(s->loop, EVRUN_NOWAIT);
		assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
		usleep(1000);
	}
}

/* Unix, TCP IPv4, TCP IPv6 (where the host has it) and a second Unix
 * listener in one loop: each client's batch names its listener and its
 * peer, and each gets its own ack. */
static void
test_many_listeners(void **state)
{
	static struct seen s;
	struct ingest_listener *l[4];
	char err[256], got[1][32], id[16];
	int fd[4], nl = 0;

	(void)state;
	setup_seen(&s);
	assert_non_null(l[nl++] = ingest_listen_addr(&s.in, unix_spec("a"), err, sizeof err));
	assert_non_null(l[nl++] = ingest_listen_addr(&s.in, "tcp:127.0.0.1:0", err, sizeof err));
	assert_non_null(l[nl++] = ingest_listen_addr(&s.in, unix_spec("b"), err, sizeof err));
	if ((l[nl] = ingest_listen_addr(&s.in, "tcp:[::1]:0", err, sizeof err)) != NULL)
		nl++;
	else
		fprintf(stderr, "# no IPv6 here: %s\n", err);
	assert_string_equal(ingest_listener_ops(l[1])->name, "tcp");
	assert_string_equal(ingest_listener_ops(l[0])->name, "unix");
	assert_int_equal(strncmp(ingest_listener_name(l[1]), "tcp:127.0.0.1:", 14), 0);
	assert_string_not_equal(ingest_listener_name(l[1]), "tcp:127.0.0.1:0");
	for (int i = 0; i < nl; i++) {
		fd[i] = dial(ingest_listener_name(l[i]));
		assert_true(fd[i] >= 0);
	}
	for (int i = nl; i-- > 0; ) {
		snprintf(id, sizeof id, "id%d", i);
		send_msg(fd[i], id);
		run_until(&s, &s.n, nl - i);
	}
	for (int k = 0; k < nl; k++) {
		int i = nl - 1 - k;
		assert_ptr_equal(s.from[k], l[i]);
		assert_string_equal(s.host[k], i == 1 ? "127.0.0.1" : i == 3 ? "::1" : "");
	}
	/* released in the order they came: each connection has its own */
	for (int k = 0; k < nl; k++)
		assert_int_equal(ingest_ack_release(&s.in, s.h[k]), 1);
	for (int i = 0; i < nl; i++) {
		snprintf(id, sizeof id, "id%d", i);
		read_acks(&s, fd[i], 1, got);
		assert_string_equal(got[0], id);
		close(fd[i]);
	}
	teardown_seen(&s);
	/* the Unix socket files went with the listeners */
	assert_int_equal(access(unix_spec("a") + 5, F_OK), -1);
}

/* Acks go out in the order they are released, not the order of their
 * messages: Fluentd matches acks by id. */
static void
test_out_of_order_release(void **state)
{
	static struct seen s;
	struct ingest_stats st;
	char err[256], got[4][32];
	int fd;

	(void)state;
	setup_seen(&s);
	assert_non_null(ingest_listen_addr(&s.in, "tcp:127.0.0.1:0", err, sizeof err));
	fd = dial(ingest_listener_name(s.in.listeners));
	send_msg(fd, "a");
	send_msg(fd, "b");
	send_msg(fd, "c");
	send_msg(fd, "d");
	run_until(&s, &s.n, 4);
	ingest_stats(&s.in, &st);
	assert_int_equal(st.deferred, 4);
	assert_int_equal(ingest_ack_release(&s.in, s.h[2]), 1);
	assert_int_equal(ingest_ack_release(&s.in, s.h[0]), 1);
	ingest_ack_drop(&s.in, s.h[3]);		/* never acked */
	assert_int_equal(ingest_ack_release(&s.in, s.h[1]), 1);
	/* a handle released (or dropped) once is spent */
	assert_int_equal(ingest_ack_release(&s.in, s.h[2]), 0);
	assert_int_equal(ingest_ack_release(&s.in, s.h[3]), 0);
	assert_int_equal(ingest_ack_release(&s.in, 0), 0);
	assert_int_equal(ingest_ack_release(&s.in, INGEST_ACK_FAIL), 0);
	assert_int_equal(ingest_ack_release(&s.in, (ingest_ack_t)7 << 32 | 123456), 0);
	ingest_flush(&s.in);
	read_acks(&s, fd, 3, got);
	assert_string_equal(got[0], "c");
	assert_string_equal(got[1], "a");
	assert_string_equal(got[2], "b");
	no_more(&s, fd, 0.1);
	ingest_stats(&s.in, &st);
	assert_int_equal(st.deferred, 0);
	close(fd);
	teardown_seen(&s);
}

/* The client resets its connection before its acks are released: the
 * handles go stale, and releasing them later touches nothing, not even
 * the connection that took their slots since. */
static void
test_release_after_client_left(void **state)
{
	static struct seen s;
	struct linger lg = { 1, 0 };
	struct ingest_stats st;
	char err[256], got[1][32];
	int a, b;

	(void)state;
	setup_seen(&s);
	/* TCP: a reset closes the connection at once, acks owed or not */
	assert_non_null(ingest_listen_addr(&s.in, "tcp:127.0.0.1:0", err, sizeof err));
	a = dial(ingest_listener_name(s.in.listeners));
	send_msg(a, "old1");
	send_msg(a, "old2");
	run_until(&s, &s.n, 2);
	assert_int_equal(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(a);
	b = dial(ingest_listener_name(s.in.listeners));
	send_msg(b, "new");
	run_until(&s, &s.n, 3);
	ingest_stats(&s.in, &st);
	assert_int_equal(st.conns, 1);
	assert_int_equal(st.deferred, 1);
	/* the new connection's slot is one the old handles named */
	assert_true((uint32_t)s.h[2] == (uint32_t)s.h[0] ||
	    (uint32_t)s.h[2] == (uint32_t)s.h[1]);
	assert_int_equal(ingest_ack_release(&s.in, s.h[0]), 0);
	assert_int_equal(ingest_ack_release(&s.in, s.h[1]), 0);
	ingest_ack_drop(&s.in, s.h[0]);
	ingest_flush(&s.in);
	no_more(&s, b, 0.1);
	assert_int_equal(ingest_ack_release(&s.in, s.h[2]), 1);
	read_acks(&s, b, 1, got);
	assert_string_equal(got[0], "new");
	close(b);
	teardown_seen(&s);
}

/* The client sent its message and closed its end: the connection waits
 * for the deferred ack, then closes once it is written (or dropped). */
static void
test_eof_waits_for_deferred(void **state)
{
	static struct seen s;
	struct ingest_stats st;
	char err[256], got[1][32];
	int a, b;

	(void)state;
	setup_seen(&s);
	assert_non_null(ingest_listen_addr(&s.in, unix_spec("eof"), err, sizeof err));
	a = dial(ingest_listener_name(s.in.listeners));
	b = dial(ingest_listener_name(s.in.listeners));
	send_msg(a, "x");
	send_msg(b, "y");
	shutdown(a, SHUT_WR);
	shutdown(b, SHUT_WR);
	run_until(&s, &s.n, 2);
	spin(&s, 0.05);
	ingest_stats(&s.in, &st);
	assert_int_equal(st.conns, 2);		/* kept for their acks */
	/* which of the two came first is the loop's choice */
	int x = strcmp(s.id[0], "x") == 0 ? 0 : 1;
	assert_int_equal(ingest_ack_release(&s.in, s.h[x]), 1);
	ingest_ack_drop(&s.in, s.h[!x]);
	ingest_flush(&s.in);
	read_acks(&s, a, 1, got);
	assert_string_equal(got[0], "x");
	ingest_stats(&s.in, &st);
	assert_int_equal(st.conns, 0);
	close(a);
	close(b);
	teardown_seen(&s);
}

/* A connection with INGEST_ACKS_MAX acks deferred is not read (past the
 * messages of the read that crossed the bound): its messages wait in the
 * socket, and its sender stalls, until acks are released. */
#define BOUND_TOTAL ((int)INGEST_ACKS_MAX + 40000)
static void
test_deferred_bound(void **state)
{
	static struct seen s;
	static unsigned char blob[BOUND_TOTAL * 24];
	struct ingest_stats st;
	char err[256], id[16];
	size_t len = 0, off = 0;
	int fd, released = 0;
	double end;

	(void)state;
	setup_seen(&s);
	assert_non_null(ingest_listen_addr(&s.in, unix_spec("bound"), err, sizeof err));
	fd = dial(ingest_listener_name(s.in.listeners));
	for (int i = 0; i < BOUND_TOTAL; i++) {
		snprintf(id, sizeof id, "%d", i);
		len += message(blob + len, id);
	}
	end = now() + 1;
	while (off < len && now() < end) {
		ssize_t n = send(fd, blob + off, len - off, MSG_DONTWAIT);
		if (n > 0)
			off += (size_t)n;
		ev_run(s.loop, EVRUN_NOWAIT);
	}
	spin(&s, 0.1);
	assert_true(off < len);			/* the sender stalled */
	assert_true(s.n >= (int)INGEST_ACKS_MAX);
	assert_true(s.n <= (int)INGEST_ACKS_MAX + 65536 / 20);
	ingest_stats(&s.in, &st);
	assert_int_equal(st.deferred, s.n);
	assert_true(st.mem >= INGEST_ACKS_MAX * 32);	/* counted in the budget */
	/* acks released as they come: everything goes through */
	end = now() + 10;
	while ((released < BOUND_TOTAL || off < len) && now() < end) {
		ssize_t n = off < len ? send(fd, blob + off, len - off, MSG_DONTWAIT) : 0;
		char sink[65536];
		if (n > 0)
			off += (size_t)n;
		while (released < s.n)
			assert_int_equal(ingest_ack_release(&s.in, s.h[released++]), 1);
		ev_run(s.loop, EVRUN_NOWAIT);
		while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
			;
	}
	assert_int_equal(s.n, BOUND_TOTAL);
	snprintf(id, sizeof id, "%d", BOUND_TOTAL - 1);
	assert_string_equal(s.id[BOUND_TOTAL - 1], id);
	close(fd);
	teardown_seen(&s);
}

/* A pipe gets no handles: there is no one to ack. */
static void
test_pipe_no_handle(void **state)
{
	static struct seen s;
	unsigned char m[64];
	int p[2];
	size_t n = message(m, "p");

	(void)state;
	setup_seen(&s);
	s.nohandle = 1;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], m, n), (ssize_t)n);
	close(p[1]);
	assert_int_equal(ingest_pipe(&s.in, p[0]), 0);
	run_until(&s, &s.n, 1);
	assert_string_equal(s.host[0], "");
	assert_null(s.from[0]);
	teardown_seen(&s);
	close(p[0]);
}

static void
test_listen_specs(void **state)
{
	char err[256];
	enum sock_kind k;

	(void)state;
	assert_int_equal(sock_listen("udp:1.2.3.4:5", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("tcp:nocolon", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("tcp:1.2.3.4:", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("tcp::24224", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("tcp:[::1:24224", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("tcp:127.0.0.1:http", &k, err, sizeof err), -1);
	assert_int_equal(sock_listen("unix:", &k, err, sizeof err), -1);
	/* a busy port is an error, not a second listener */
	{
		char name[128];
		int a = sock_listen("tcp:127.0.0.1:0", &k, err, sizeof err), b;
		assert_true(a >= 0);
		assert_int_equal(k, SOCK_TCP);
		assert_int_equal(sock_name(a, 0, name, sizeof name), 0);
		b = sock_listen(name, &k, err, sizeof err);
		assert_int_equal(b, -1);
		assert_non_null(strstr(err, "in use"));
		close(a);
	}
}

/* A PackedForward message of count events {"a": i} with chunk id. */
static unsigned char *
big_message(size_t count, const char *id, size_t *len)
{
	size_t ents = count * (STREAM_ENTRY_HEAD + 4), k = strlen(id), n = 0;
	unsigned char *p = malloc(ents + 64);

	assert_non_null(p);
	p[n++] = 0x93;
	p[n++] = 0xa1;
	p[n++] = 't';
	p[n++] = 0xc6;			/* bin 32 */
	p[n++] = (unsigned char)(ents >> 24);
	p[n++] = (unsigned char)(ents >> 16);
	p[n++] = (unsigned char)(ents >> 8);
	p[n++] = (unsigned char)ents;
	for (size_t i = 0; i < count; i++) {
		stream_entry_head(p + n, 1441588984u, (uint32_t)i);
		n += STREAM_ENTRY_HEAD;
		memcpy(p + n, "\x81\xa1" "a", 3);
		p[n + 3] = (unsigned char)(i & 0x7f);
		n += 4;
	}
	p[n++] = 0x81;
	p[n++] = 0xa5;
	memcpy(p + n, "chunk", 5);
	n += 5;
	p[n++] = (unsigned char)(0xa0 | k);
	memcpy(p + n, id, k);
	*len = n + k;
	return p;
}

/* Write all of p to fd, turning the loop while the socket is full. */
static void
send_all(struct seen *s, int fd, const unsigned char *p, size_t n)
{
	double end = now() + 5;
	ssize_t r;

	while (n > 0) {
		assert_true(now() < end);
		ev_run(s->loop, EVRUN_NOWAIT);
		if ((r = send(fd, p, n, MSG_DONTWAIT)) > 0) {
			p += r;
			n -= (size_t)r;
		} else {
			assert_int_equal(errno, EAGAIN);
		}
	}
}

/* A sender of large messages, one after another (lf-send's chunks), has
 * its input buffer kept between them rather than read each into fresh
 * pages; once it is idle the sweep (each second at most) gives it back. */
static void
test_buffer_kept_between_messages(void **state)
{
	static struct seen s;
	struct ingest_stats st;
	char err[256];
	const char *spec = unix_spec("k");
	unsigned char *m;
	size_t len;
	int fd;

	(void)state;
	setup_seen(&s);
	s.nohandle = 1;
	assert_non_null(ingest_listen_addr(&s.in, spec, err, sizeof err));
	fd = dial(spec);
	assert_true(fd >= 0);
	m = big_message(400000, "big1", &len);	/* 4.4 MB */
	send_all(&s, fd, m, len);
	run_until(&s, &s.n, 1);
	assert_string_equal(s.id[0], "big1");
	ingest_stats(&s.in, &st);
	assert_true(st.mem >= (4u << 20));	/* kept, not cut to 1 MiB */
	memcpy(m + len - 4, "big2", 4);
	send_all(&s, fd, m, len);
	run_until(&s, &s.n, 2);
	assert_string_equal(s.id[1], "big2");
	spin(&s, 1.3);
	ingest_stats(&s.in, &st);
	assert_true(st.mem < (64u << 10));	/* idle: given back */
	free(m);
	close(fd);
	teardown_seen(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_listeners),
		cmocka_unit_test(test_out_of_order_release),
		cmocka_unit_test(test_release_after_client_left),
		cmocka_unit_test(test_eof_waits_for_deferred),
		cmocka_unit_test(test_deferred_bound),
		cmocka_unit_test(test_pipe_no_handle),
		cmocka_unit_test(test_listen_specs),
		cmocka_unit_test(test_buffer_kept_between_messages),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	log_init("test_ingest");
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lf-ingest.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	for (const char *n = "a\0b\0gone\0eof\0bound\0"; *n; n += strlen(n) + 1) {
		char p[128];
		snprintf(p, sizeof p, "%s/%s", tmpdir, n);
		unlink(p);
	}
	rmdir(tmpdir);
	return rc;
}
