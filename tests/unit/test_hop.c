/* Unit tests for lib/hop, the sending half of the acked hop: the window
 * (batches, bytes, back pressure), acks matched by id (out of order,
 * unknown ids, non-acks), the ack timeout, re-sends on a new connection
 * with the original ids in order, giving up at the retry limit, partial
 * writes of a big message, the message buffer kept for the next batch and
 * given back when idle, and chunk id derivation.
 *
 * The peer is the other end of a socketpair made by a test transport; the
 * test drives the libev loop and plays the server with lib/stream. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <malloc.h>

#include <cmocka.h>
#include <ev.h>

#include "hop.h"
#include "log.h"
#include "stream.h"

#include "entries.h"

/* ---- a transport over socketpairs ---- */

struct tp {
	int peer;		/* our end of the current connection, or -1 */
	int opens;
	int refuse;		/* open() fails with ECONNREFUSED */
	int sndbuf;		/* small buffers, for partial writes */
	int trickle;		/* read as TLS may: see tp_read */
	unsigned char held[4096];
	size_t heldlen;
	struct stream_reader r;	/* the peer's reader */
};

static int
tp_open(void *ctx, int *fd)
{
	struct tp *t = ctx;
	int sv[2];

	t->opens++;
	if (t->refuse) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		return -1;
	if (t->sndbuf) {
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &t->sndbuf, sizeof t->sndbuf);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &t->sndbuf, sizeof t->sndbuf);
	}
	if (t->peer != -1)
		close(t->peer);
	t->peer = sv[1];
	t->heldlen = 0;
	stream_reader_free(&t->r);
	stream_reader_init(&t->r, NULL);
	*fd = sv[0];
	return 0;
}

static int
tp_finish(void *ctx, int fd, int *events)
{
	(void)ctx;
	(void)fd;
	(void)events;
	return 0;
}

/* With trickle, as a TLS transport may: take all the socket has and
 * hand it out one byte a call, so that bytes wait in the transport while
 * the socket signals nothing more. */
static ssize_t
tp_read(void *ctx, int fd, void *p, size_t n)
{
	struct tp *t = ctx;
	ssize_t k;

	if (!t->trickle)
		return read(fd, p, n);
	while (t->heldlen < sizeof t->held &&
	    (k = read(fd, t->held + t->heldlen, sizeof t->held - t->heldlen)) > 0)
		t->heldlen += (size_t)k;
	if (t->heldlen == 0 || n == 0) {
		errno = EAGAIN;
		return -1;
	}
	*(unsigned char *)p = t->held[0];
	memmove(t->held, t->held + 1, --t->heldlen);
	return 1;
}

static ssize_t
tp_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	struct msghdr mh = { 0 };

	(void)ctx;
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = (size_t)cnt;
	return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

static void
tp_close(void *ctx, int fd)
{
	(void)ctx;
	close(fd);
}

static const char *
tp_name(void *ctx)
{
	(void)ctx;
	return "test";
}

static const struct dial_ops tp_ops = {
	tp_open, tp_finish, tp_read, tp_writev, tp_close, tp_name,
};

/* ---- the test's side ---- */

#define MAXLOG 64

struct fix {
	struct ev_loop *loop;
	struct hop_conf conf;
	struct hop *h;
	struct tp tp;
	ev_timer tick;			/* ev_run(ONCE) never sleeps long */
	intptr_t acked[MAXLOG], gaveup[MAXLOG];
	int nacked, ngaveup, writable;
	char ids[MAXLOG][32];		/* chunk ids the peer received */
	size_t counts[MAXLOG];
	int nids;
};

static void
cb_acked(void *ctx, void *arg, size_t count)
{
	struct fix *f = ctx;

	(void)count;
	f->acked[f->nacked++] = (intptr_t)arg;
}

static void
cb_gaveup(void *ctx, void *arg, size_t count)
{
	struct fix *f = ctx;

	(void)count;
	f->gaveup[f->ngaveup++] = (intptr_t)arg;
}

static void
cb_writable(void *ctx)
{
	((struct fix *)ctx)->writable++;
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static struct fix *
fix_new(void (*tune)(struct hop_conf *))
{
	struct fix *f = calloc(1, sizeof *f);
	struct hop_cbs cbs = { 0 };
	char err[256];

	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	hop_conf_default(&f->conf);
	f->conf.retry.wait = 0.01;
	f->conf.retry.randomize = 0;
	if (tune)
		tune(&f->conf);
	assert_int_equal(hop_conf_check(&f->conf, err, sizeof err), 0);
	f->tp.peer = -1;
	stream_reader_init(&f->tp.r, NULL);
	cbs.ctx = f;
	cbs.acked = cb_acked;
	cbs.gaveup = cb_gaveup;
	cbs.writable = cb_writable;
	f->h = hop_new(f->loop, &f->conf, &tp_ops, &f->tp, &cbs);
	assert_non_null(f->h);
	ev_timer_init(&f->tick, tick_cb, 0.005, 0.005);
	ev_timer_start(f->loop, &f->tick);
	return f;
}

static void
fix_free(struct fix *f)
{
	hop_free(f->h);
	if (f->tp.peer != -1)
		close(f->tp.peer);
	stream_reader_free(&f->tp.r);
	ev_timer_stop(f->loop, &f->tick);
	ev_loop_destroy(f->loop);
	free(f);
}

static double
now(void)
{
	return ev_time();
}

/* Turn the loop for secs, reading what the peer got as it comes. */
static void peer_read(struct fix *f);

static void
spin(struct fix *f, double secs)
{
	double end = now() + secs;

	while (now() < end) {
		ev_run(f->loop, EVRUN_ONCE);
		peer_read(f);
	}
}

/* Turn the loop until *v >= want, failing after 10 s. */
static void
spin_until(struct fix *f, const int *v, int want)
{
	double end = now() + 10;

	while (*v < want) {
		assert_true(now() < end);
		ev_run(f->loop, EVRUN_ONCE);
		peer_read(f);
	}
}

static void
peer_read(struct fix *f)
{
	struct stream_batch b;
	unsigned char *p;
	size_t avail;
	ssize_t n;
	int rc;

	if (f->tp.peer == -1)
		return;
	for (;;) {
		p = stream_reader_space(&f->tp.r, 65536, &avail);
		assert_non_null(p);
		if ((n = read(f->tp.peer, p, avail)) <= 0)
			break;
		stream_reader_wrote(&f->tp.r, (size_t)n);
	}
	while ((rc = stream_reader_next(&f->tp.r, &b)) == 1) {
		const unsigned char *c = b.chunk;
		struct mp_obj o;

		assert_int_equal(b.mode, STREAM_PACKED);
		assert_non_null(c);
		assert_int_equal(mp_read(&c, b.chunk + b.chunklen, &o), 0);
		assert_int_equal(o.type, MP_STR);
		assert_int_equal(o.n, HOP_ID_B64);
		assert_true(f->nids < MAXLOG);
		memcpy(f->ids[f->nids], o.p, o.n);
		f->ids[f->nids][o.n] = '\0';
		f->counts[f->nids++] = b.count;
		assert_int_equal(b.size, (int64_t)b.count);
	}
	assert_int_equal(rc, 0);
}

static void
peer_send(struct fix *f, const void *p, size_t n)
{
	assert_int_equal(write(f->tp.peer, p, n), (ssize_t)n);
}

static void
peer_ack(struct fix *f, const char *id)
{
	unsigned char m[64];
	size_t n = strlen(id);

	memcpy(m, "\x81\xa3" "ack", 5);
	m[5] = (unsigned char)(0xa0 | n);
	memcpy(m + 6, id, n);
	peer_send(f, m, 6 + n);
}

static int
send_n(struct fix *f, size_t count, intptr_t arg)
{
	size_t len;
	unsigned char *e = entries(count, &len);
	int rc = hop_send(f->h, "t", 1, e, len, count, NULL, (void *)arg);

	free(e);
	return rc;
}

/* ---- tests ---- */

/* Acks held inside the transport (TLS keeps decrypted records the socket
 * no longer signals) are read at once, not at the ack timeout (190 s). */
static void
test_acks_held_in_the_transport_are_read(void **state)
{
	struct fix *f = fix_new(NULL);

	(void)state;
	f->tp.trickle = 1;
	assert_int_equal(send_n(f, 2, 1), HOP_OK);
	assert_int_equal(send_n(f, 3, 2), HOP_OK);
	spin_until(f, &f->nids, 2);
	peer_ack(f, f->ids[1]);
	peer_ack(f, f->ids[0]);
	spin_until(f, &f->nacked, 2);
	assert_int_equal(f->acked[0], 2);
	assert_int_equal(f->acked[1], 1);
	assert_int_equal(f->tp.opens, 1);
	fix_free(f);
}

static void
test_id_derive(void **state)
{
	struct hop_id a, b, c;

	(void)state;
	assert_int_equal(hop_id_derive(&a, "abc", 3), 0);
	/* SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ... */
	assert_string_equal(a.b64, "ungWv48Bz+pBQUDeXa4iIw==");
	assert_memory_equal(a.raw, "\xba\x78\x16\xbf\x8f\x01\xcf\xea"
	    "\x41\x41\x40\xde\x5d\xae\x22\x23", 16);
	assert_int_equal(hop_id_derive(&b, "abc", 3), 0);
	assert_memory_equal(&a, &b, sizeof a);
	assert_int_equal(hop_id_derive(&c, "abd", 3), 0);
	assert_memory_not_equal(a.raw, c.raw, 16);
	hop_id_random(&b);
	hop_id_random(&c);
	assert_int_equal(strlen(b.b64), HOP_ID_B64);
	assert_memory_not_equal(b.raw, c.raw, 16);
}

static void
tune_window3(struct hop_conf *c)
{
	c->window_batches = 3;
}

static void
test_window_batches_and_writable(void **state)
{
	struct fix *f = fix_new(tune_window3);

	(void)state;
	assert_int_equal(send_n(f, 2, 1), HOP_OK);
	assert_int_equal(send_n(f, 3, 2), HOP_OK);
	assert_int_equal(send_n(f, 4, 3), HOP_OK);
	assert_int_equal(send_n(f, 5, 4), HOP_FULL);
	assert_int_equal(hop_batches(f->h), 3);
	assert_int_equal(hop_events(f->h), 9);
	spin_until(f, &f->nids, 3);
	assert_int_equal(f->counts[0], 2);
	assert_int_equal(f->counts[2], 4);
	/* an ack out of order frees a place */
	peer_ack(f, f->ids[1]);
	spin_until(f, &f->nacked, 1);
	assert_int_equal(f->acked[0], 2);
	assert_int_equal(f->writable, 1);
	assert_int_equal(hop_events(f->h), 6);
	assert_int_equal(send_n(f, 5, 4), HOP_OK);
	spin_until(f, &f->nids, 4);
	peer_ack(f, f->ids[3]);
	peer_ack(f, f->ids[0]);
	peer_ack(f, f->ids[2]);
	spin_until(f, &f->nacked, 4);
	assert_int_equal(f->acked[1], 4);
	assert_int_equal(f->acked[2], 1);
	assert_int_equal(f->acked[3], 3);
	assert_int_equal(hop_batches(f->h), 0);
	assert_int_equal(f->writable, 1);	/* only after a HOP_FULL */
	assert_int_equal(f->tp.opens, 1);
	fix_free(f);
}

static void
tune_bytes(struct hop_conf *c)
{
	c->window_bytes = 1000;
}

static void
test_window_bytes(void **state)
{
	struct fix *f = fix_new(tune_bytes);

	(void)state;
	/* 40 events of 15 bytes: a message of about 620 bytes */
	assert_int_equal(send_n(f, 40, 1), HOP_OK);
	assert_int_equal(send_n(f, 40, 2), HOP_FULL);
	assert_int_equal(send_n(f, 10, 3), HOP_OK);
	assert_int_equal(send_n(f, 20, 4), HOP_FULL);
	spin_until(f, &f->nids, 2);
	peer_ack(f, f->ids[0]);
	peer_ack(f, f->ids[1]);
	spin_until(f, &f->nacked, 2);
	assert_int_equal(f->writable, 1);
	/* a batch bigger than the whole window goes, alone */
	assert_int_equal(send_n(f, 200, 5), HOP_OK);
	assert_int_equal(send_n(f, 1, 6), HOP_FULL);
	spin_until(f, &f->nids, 3);
	assert_int_equal(f->counts[2], 200);
	fix_free(f);
}

static void
test_unknown_and_bogus_acks_ignored(void **state)
{
	struct fix *f = fix_new(NULL);
	struct hop_stats st;

	(void)state;
	assert_int_equal(send_n(f, 1, 7), HOP_OK);
	spin_until(f, &f->nids, 1);
	peer_ack(f, "AAAAAAAAAAAAAAAAAAAAAA==");	/* unknown id */
	peer_send(f, "\x92\x01\x02", 3);		/* not an ack */
	peer_send(f, "\x81\xa3" "ack\x05", 6);		/* id not a string */
	spin(f, 0.05);
	hop_get_stats(f->h, &st);
	assert_int_equal(st.bogus_acks, 3);
	assert_int_equal(f->nacked, 0);
	assert_true(hop_connected(f->h));
	/* the ack may come split over reads */
	{
		unsigned char m[64];

		memcpy(m, "\x81\xa3" "ack\xb8", 6);
		memcpy(m + 6, f->ids[0], HOP_ID_B64);
		peer_send(f, m, 10);
		spin(f, 0.02);
		assert_int_equal(f->nacked, 0);
		peer_send(f, m + 10, 6 + HOP_ID_B64 - 10);
	}
	spin_until(f, &f->nacked, 1);
	assert_int_equal(f->acked[0], 7);
	assert_int_equal(f->tp.opens, 1);
	fix_free(f);
}

static void
tune_timeout(struct hop_conf *c)
{
	c->ack_response_timeout = 0.2;
}

static void
test_ack_timeout_resends_same_ids_in_order(void **state)
{
	struct fix *f = fix_new(tune_timeout);
	char first[3][32];
	double t0;

	(void)state;
	assert_int_equal(send_n(f, 1, 1), HOP_OK);
	assert_int_equal(send_n(f, 2, 2), HOP_OK);
	assert_int_equal(send_n(f, 3, 3), HOP_OK);
	t0 = now();
	spin_until(f, &f->nids, 3);
	memcpy(first, f->ids, sizeof first);
	/* one ack, then silence: the other two time out */
	peer_ack(f, first[0]);
	spin_until(f, &f->nacked, 1);
	spin_until(f, &f->tp.opens, 2);
	assert_true(now() - t0 >= 0.2);
	spin_until(f, &f->nids, 5);
	assert_string_equal(f->ids[3], first[1]);
	assert_string_equal(f->ids[4], first[2]);
	assert_int_equal(f->counts[3], 2);
	assert_int_equal(f->counts[4], 3);
	/* not acked again: a third connection, same ids again */
	spin_until(f, &f->tp.opens, 3);
	spin_until(f, &f->nids, 7);
	assert_string_equal(f->ids[5], first[1]);
	assert_string_equal(f->ids[6], first[2]);
	peer_ack(f, first[2]);
	peer_ack(f, first[1]);
	spin_until(f, &f->nacked, 3);
	assert_int_equal(f->acked[1], 3);
	assert_int_equal(f->acked[2], 2);
	{
		struct hop_stats st;

		hop_get_stats(f->h, &st);
		assert_int_equal(st.resent, 4);
		assert_int_equal(st.acked, 3);
	}
	fix_free(f);
}

static void
test_eof_resends_unacked_only(void **state)
{
	struct fix *f = fix_new(NULL);

	(void)state;
	for (intptr_t i = 1; i <= 4; i++)
		assert_int_equal(send_n(f, (size_t)i, i), HOP_OK);
	spin_until(f, &f->nids, 4);
	peer_ack(f, f->ids[0]);
	peer_ack(f, f->ids[2]);
	spin_until(f, &f->nacked, 2);
	close(f->tp.peer);		/* the peer goes away */
	f->tp.peer = -1;
	spin_until(f, &f->tp.opens, 2);
	spin_until(f, &f->nids, 6);
	assert_string_equal(f->ids[4], f->ids[1]);
	assert_string_equal(f->ids[5], f->ids[3]);
	peer_ack(f, f->ids[5]);
	peer_ack(f, f->ids[4]);
	spin_until(f, &f->nacked, 4);
	assert_int_equal(hop_batches(f->h), 0);
	fix_free(f);
}

static void
tune_giveup(struct hop_conf *c)
{
	c->retry.max_times = 2;
	c->window_batches = 3;
}

static void
test_give_up_in_order_then_start_again(void **state)
{
	struct fix *f = fix_new(tune_giveup);
	struct hop_stats st;

	(void)state;
	f->tp.refuse = 1;
	assert_int_equal(send_n(f, 1, 1), HOP_OK);
	assert_int_equal(send_n(f, 1, 2), HOP_OK);
	assert_int_equal(send_n(f, 1, 3), HOP_OK);
	assert_int_equal(send_n(f, 1, 4), HOP_FULL);
	spin_until(f, &f->ngaveup, 3);
	assert_int_equal(f->gaveup[0], 1);
	assert_int_equal(f->gaveup[1], 2);
	assert_int_equal(f->gaveup[2], 3);
	assert_int_equal(f->tp.opens, 3);	/* a try and two retries */
	assert_int_equal(f->writable, 1);
	assert_int_equal(hop_batches(f->h), 0);
	/* nothing to send: no reconnect, no busy loop */
	spin(f, 0.1);
	assert_int_equal(f->tp.opens, 3);
	hop_get_stats(f->h, &st);
	assert_int_equal(st.gaveup, 3);
	/* the next batch starts a fresh schedule */
	f->tp.refuse = 0;
	assert_int_equal(send_n(f, 1, 5), HOP_OK);
	spin_until(f, &f->nids, 1);
	peer_ack(f, f->ids[0]);
	spin_until(f, &f->nacked, 1);
	assert_int_equal(f->acked[0], 5);
	fix_free(f);
}

static void
test_partial_writes_never_interleave(void **state)
{
	struct fix *f = fix_new(NULL);
	size_t big = 200000;	/* ~3 MB: many partial writes */

	(void)state;
	f->tp.sndbuf = 4096;
	assert_int_equal(send_n(f, big, 1), HOP_OK);
	assert_int_equal(send_n(f, 3, 2), HOP_OK);
	assert_int_equal(send_n(f, big, 3), HOP_OK);
	spin_until(f, &f->nids, 3);
	assert_int_equal(f->counts[0], big);
	assert_int_equal(f->counts[1], 3);
	assert_int_equal(f->counts[2], big);
	for (int i = 0; i < 3; i++)
		peer_ack(f, f->ids[i]);
	spin_until(f, &f->nacked, 3);
	fix_free(f);
}

/* Bytes the program has from malloc, where glibc's malloc counts them;
 * ASan's allocator is not glibc's: there the test checks only that the
 * reused buffer carries the next message whole. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNTED 0
#else
#define HEAP_COUNTED 1
#endif

static size_t
heap_used(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd;
}

static void
test_message_buffer_kept_then_given_back(void **state)
{
	struct fix *f = fix_new(NULL);
	size_t big = 300000;	/* ~3.3 MB a message */
	size_t base;

	(void)state;
	base = heap_used();
	assert_int_equal(send_n(f, big, 1), HOP_OK);
	spin_until(f, &f->nids, 1);
	peer_ack(f, f->ids[0]);
	spin_until(f, &f->nacked, 1);
	/* kept after its ack (the peer's own reader set aside) ... */
	stream_reader_trim(&f->tp.r, 0);
	if (HEAP_COUNTED)
		assert_true(heap_used() > base + (2u << 20));
	/* ... for the next batch, which goes out whole in it */
	assert_int_equal(send_n(f, 5, 2), HOP_OK);
	assert_int_equal(send_n(f, big, 3), HOP_OK);
	spin_until(f, &f->nids, 3);
	assert_int_equal(f->counts[1], 5);
	assert_int_equal(f->counts[2], big);
	peer_ack(f, f->ids[1]);
	peer_ack(f, f->ids[2]);
	spin_until(f, &f->nacked, 3);
	assert_int_equal(f->acked[2], 3);
	/* a second without acks: given back */
	spin(f, 1.3);
	stream_reader_trim(&f->tp.r, 0);
	if (HEAP_COUNTED)
		assert_true(heap_used() < base + (1u << 20));
	fix_free(f);
}

static void
test_conf_check(void **state)
{
	struct hop_conf c;
	char err[256];

	(void)state;
	hop_conf_default(&c);
	assert_int_equal(hop_conf_check(&c, err, sizeof err), 0);
	assert_true(c.ack_response_timeout == 190);
	assert_true(c.retry.wait == 1 && c.retry.timeout == 259200);
	c.window_batches = 0;
	assert_int_equal(hop_conf_check(&c, err, sizeof err), -1);
	hop_conf_default(&c);
	c.ack_response_timeout = 0;
	assert_int_equal(hop_conf_check(&c, err, sizeof err), -1);
	hop_conf_default(&c);
	c.retry.wait = 0;
	assert_int_equal(hop_conf_check(&c, err, sizeof err), -1);
}

static void
test_dial_parse(void **state)
{
	struct dial_addr a;
	char err[256];

	(void)state;
	assert_int_equal(dial_parse(&a, "unix:/run/x.sock", err, sizeof err), 0);
	assert_true(a.unix_);
	assert_string_equal(a.path, "/run/x.sock");
	assert_int_equal(dial_parse(&a, "./s", err, sizeof err), 0);
	assert_true(a.unix_);
	assert_int_equal(dial_parse(&a, "tcp:localhost:24224", err, sizeof err), 0);
	assert_false(a.unix_);
	assert_string_equal(a.host, "localhost");
	assert_string_equal(a.port, "24224");
	assert_int_equal(dial_parse(&a, "[::1]:24224", err, sizeof err), 0);
	assert_string_equal(a.host, "::1");
	assert_string_equal(a.desc, "tcp:[::1]:24224");
	assert_int_equal(dial_parse(&a, "nowhere", err, sizeof err), -1);
	assert_int_equal(dial_parse(&a, "host:", err, sizeof err), -1);
	assert_int_equal(dial_parse(&a, "unix:", err, sizeof err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_derive),
		cmocka_unit_test(test_acks_held_in_the_transport_are_read),
		cmocka_unit_test(test_window_batches_and_writable),
		cmocka_unit_test(test_window_bytes),
		cmocka_unit_test(test_unknown_and_bogus_acks_ignored),
		cmocka_unit_test(test_ack_timeout_resends_same_ids_in_order),
		cmocka_unit_test(test_eof_resends_unacked_only),
		cmocka_unit_test(test_give_up_in_order_then_start_again),
		cmocka_unit_test(test_partial_writes_never_interleave),
		cmocka_unit_test(test_message_buffer_kept_then_given_back),
		cmocka_unit_test(test_conf_check),
		cmocka_unit_test(test_dial_parse),
	};

	log_init("test_hop");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
