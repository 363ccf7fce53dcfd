#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "sock.h"

#define INGEST_READ (1u << 20)	/* bytes read from one input per wake-up */
#define INGEST_STEP (1u << 20)	/* bytes of one message decoded per turn */
#define INGEST_KEEP (64u << 10)	/* ack buffers kept when idle */

struct ingest_conn {
	struct ingest_conn *next, **prevp;
	struct ingest *in;
	int fd, pipe, eof;
	ev_io rio, wio;
	ev_idle step;			/* a large message decoded in turns */
	struct stream_reader r;
	struct buf out;			/* acks not yet written */
	size_t owed;			/* bytes of acks queued in in->acks */
	size_t mem;			/* bytes counted in in->mem */
	unsigned long seq;		/* its unfinished message began; 0: none */
	ev_tstamp last_in, last_out;	/* last progress reading, writing */
	int held;			/* hb is waiting to be taken */
	struct stream_batch hb;
	struct buf htag, hentries, hchunk;
	struct stream_batch *cur;	/* the batch being offered */
};

static void conn_read(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write(struct ev_loop *loop, ev_io *w, int revents);
static void conn_step(struct ev_loop *loop, ev_idle *w, int revents);
static void conn_close(struct ingest_conn *c);
static void accept_again(struct ev_loop *loop, ev_timer *w, int revents);
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents);

static const char *
kind(const struct ingest_conn *c)
{
	return c->pipe ? "pipe" : "connection";
}

void
ingest_init(struct ingest *in, struct ev_loop *loop,
    const struct stream_limits *lim, ingest_batch_fn fn, void *ctx)
{
	memset(in, 0, sizeof *in);
	in->loop = loop;
	in->lim = *lim;
	if (in->lim.step == 0)
		in->lim.step = INGEST_STEP;
	in->fn = fn;
	in->ctx = ctx;
	in->lfd = -1;
	in->max_memory = INGEST_MAX_MEMORY;
	in->msg_timeout = INGEST_MSG_TIMEOUT;
	ev_init(&in->accept_wait, accept_again);
	in->accept_wait.data = in;
	ev_init(&in->sweep, sweep_cb);
	in->sweep.data = in;
}

static size_t
owing(const struct ingest_conn *c)
{
	return c->out.len + c->owed;
}

static int
reading(const struct ingest *in, const struct ingest_conn *c)
{
	return !in->paused && !in->stopped && !c->held && !c->eof &&
	    !stream_reader_busy(&c->r) && owing(c) <= INGEST_OUT_MAX &&
	    (!in->over || c == in->eldest);
}

static void
update(struct ingest_conn *c)
{
	if (reading(c->in, c)) {
		if (!ev_is_active(&c->rio))
			c->last_in = ev_now(c->in->loop);	/* its clock starts again */
		ev_io_start(c->in->loop, &c->rio);
	} else {
		ev_io_stop(c->in->loop, &c->rio);
	}
}

/* Memory held for clients: each connection's buffers and the acks queued
 * for it, summed in in->mem. */
static void
account(struct ingest_conn *c)
{
	size_t m = stream_reader_mem(&c->r) + c->out.cap + c->owed +
	    c->htag.cap + c->hentries.cap + c->hchunk.cap;

	c->in->mem = c->in->mem - c->mem + m;
	c->mem = m;
}

/* Could this connection finish its message if it alone were read? */
static int
candidate(const struct ingest_conn *c)
{
	return c->seq != 0 && !c->held && !c->eof &&
	    !stream_reader_busy(&c->r) && owing(c) <= INGEST_OUT_MAX;
}

/* Over the budget, only the connection whose unfinished message is the
 * oldest is read: it can always finish, its memory is then given back,
 * and the next one goes on.  Were none read, connections each holding
 * part of a message would wait for one another for ever. */
static void
budget(struct ingest *in)
{
	struct ingest_conn *c, *e = NULL;
	int over = in->mem > in->max_memory;

	if (over)
		for (c = in->conns; c; c = c->next)
			if (candidate(c) && (e == NULL || c->seq < e->seq))
				e = c;
	if (over == in->over && e == in->eldest)
		return;
	if (over && !in->over)
		LOG_WARN_LIMITED("%zu bytes held for clients, more than %zu: "
		    "reading one connection at a time", in->mem, in->max_memory);
	in->over = over;
	if (e != in->eldest)
		in->eldest_since = ev_now(in->loop);
	in->eldest = e;
	for (c = in->conns; c; c = c->next)
		update(c);
}

/* After a message or a read: note an unfinished message, give memory
 * back, and see whether this connection may be read. */
static void
settle(struct ingest_conn *c)
{
	if (stream_reader_busy(&c->r) || stream_reader_partial(&c->r) > 0) {
		if (c->seq == 0)
			c->seq = ++c->in->seq;
	} else {
		c->seq = 0;
	}
	/* a large message's memory goes back at once, the rest when idle */
	if (!c->held)
		stream_reader_trim(&c->r, STREAM_KEEP);
	account(c);
	budget(c->in);
	update(c);
}

static struct ingest_conn *
conn_new(struct ingest *in, int fd, int pipe)
{
	struct ingest_conn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->in = in;
	c->fd = fd;
	c->pipe = pipe;
	stream_reader_init(&c->r, &in->lim);
	ev_io_init(&c->rio, conn_read, fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, conn_write, fd, EV_WRITE);
	c->wio.data = c;
	ev_idle_init(&c->step, conn_step);
	c->step.data = c;
	c->next = in->conns;
	if (c->next)
		c->next->prevp = &c->next;
	c->prevp = &in->conns;
	in->conns = c;
	if (pipe)
		in->pipes_open++;
	update(c);
	return c;
}

/* Keep a copy of a batch the tool cannot take yet: the reader's buffer
 * moves on as soon as more is read. */
static int
hold(struct ingest_conn *c, const struct stream_batch *b)
{
	if (b == &c->hb)
		goto held;	/* offered again and held again: already a copy */
	buf_reset(&c->htag);
	buf_reset(&c->hentries);
	buf_reset(&c->hchunk);
	if (buf_add(&c->htag, b->tag, b->taglen) == -1 ||
	    buf_add(&c->hentries, b->entries, b->len) == -1 ||
	    buf_add(&c->hchunk, b->chunk, b->chunklen) == -1)
		return -1;
	c->hb = *b;
	c->hb.tag = (const char *)c->htag.p;
	c->hb.entries = c->hentries.p;
	c->hb.chunk = b->chunk ? c->hchunk.p : NULL;
held:
	c->held = 1;
	c->in->held++;
	update(c);
	return 0;
}

static void
unhold(struct ingest_conn *c)
{
	buf_reset(&c->htag);
	buf_reset(&c->hentries);
	buf_reset(&c->hchunk);
	buf_shrink(&c->htag, INGEST_KEEP);
	buf_shrink(&c->hentries, INGEST_KEEP);
	buf_shrink(&c->hchunk, INGEST_KEEP);
}

/* Offer one batch.  0 taken, 1 held, -1 the connection is gone. */
static int
offer(struct ingest_conn *c, struct stream_batch *b)
{
	int rc;

	c->cur = b;
	rc = c->in->fn(c->in->ctx, b);
	c->cur = NULL;
	if (rc == INGEST_TAKE)
		return 0;
	if (rc == INGEST_HOLD && hold(c, b) == 0)
		return 1;
	if (c->pipe) {
		/* a pipe cannot be refused: the batch waits as if held */
		if (hold(c, b) == 0)
			return 1;
	}
	LOG_WARN_LIMITED("connection %d: message refused: closing without an ack", c->fd);
	conn_close(c);
	return -1;
}

/* Offer every whole message read so far.  -1 if the connection closed.
 * A large message is decoded a step per turn of the event loop, so that
 * the other inputs (and the commits that ack them) are not kept waiting. */
static int
drain(struct ingest_conn *c)
{
	struct stream_batch b;
	int rc;

	while (!c->held && (rc = stream_reader_next(&c->r, &b)) != 0) {
		if (rc == STREAM_AGAIN) {
			ev_idle_start(c->in->loop, &c->step);
			return 0;
		}
		if (rc == 1) {
			if (offer(c, &b) == -1)
				return -1;
			continue;
		}
		c->in->bad++;
		if (rc == STREAM_EMSG) {
			LOG_WARN_LIMITED("%s %d: offset %llu: %s", kind(c), c->fd,
			    (unsigned long long)c->r.err_off, c->r.err);
			continue;
		}
		LOG_WARN_LIMITED("%s %d: offset %llu: %s: closing", kind(c), c->fd,
		    (unsigned long long)c->r.err_off, c->r.err);
		conn_close(c);
		return -1;
	}
	return 0;
}

static void
conn_step(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ingest_conn *c = w->data;

	(void)revents;
	ev_idle_stop(loop, w);	/* and ingest_stop stops it */
	if (drain(c) == 0)
		settle(c);
}

/* No more input: a socket stays open until the acks it is owed are
 * written; what is left of an unfinished message is let go. */
static void
conn_end(struct ingest_conn *c)
{
	if (c->pipe) {
		c->in->pipes_open--;
		c->eof = 1;
		conn_close(c);
		return;
	}
	c->eof = 1;
	c->seq = 0;
	stream_reader_free(&c->r);
	stream_reader_init(&c->r, &c->in->lim);
	account(c);
	budget(c->in);
	update(c);
	if (owing(c) == 0)
		conn_close(c);
}

static void
conn_eof(struct ingest_conn *c)
{
	if (stream_reader_end(&c->r) != 0) {
		c->in->bad++;
		LOG_WARN_LIMITED("%s %d: offset %llu: %s", kind(c), c->fd,
		    (unsigned long long)c->r.err_off, c->r.err);
	}
	conn_end(c);
}

static void
conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_conn *c = w->data;
	size_t total = 0, avail;
	unsigned char *p;
	ssize_t n;

	(void)revents;
	while (total < INGEST_READ && reading(c->in, c)) {
		if ((p = stream_reader_space(&c->r, 65536, &avail)) == NULL) {
			LOG_WARN_LIMITED("%s %d: out of memory reading: closing",
			    kind(c), c->fd);
			conn_close(c);
			return;
		}
		if ((n = read(c->fd, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			LOG_WARN_LIMITED("%s %d: read: %s", kind(c), c->fd,
			    strerror(errno));
			conn_close(c);
			return;
		}
		if (n == 0) {
			if (drain(c) == 0)
				conn_eof(c);
			return;
		}
		c->last_in = ev_now(loop);
		stream_reader_wrote(&c->r, (size_t)n);
		total += (size_t)n;
		if (drain(c) == -1)
			return;
		if (c->pipe)
			break;	/* a pipe is blocking: one read per wake-up */
	}
	settle(c);
}

static void
accept_pause(struct ingest *in)
{
	ev_io_stop(in->loop, &in->lio);
	ev_timer_set(&in->accept_wait, INGEST_ACCEPT_PAUSE, 0);
	ev_timer_start(in->loop, &in->accept_wait);
}

static void
accept_again(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest *in = w->data;

	(void)revents;
	ev_timer_stop(loop, w);
	if (!in->stopped && in->lfd != -1)
		ev_io_start(loop, &in->lio);
}

/* A failed accept leaves the connection waiting and the socket readable:
 * out of descriptors or memory, trying again at once would spin, so
 * accepting pauses a while (or until a connection closes). */
static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest *in = w->data;
	int fd;

	(void)loop;
	(void)revents;
	for (;;) {
		if ((fd = sock_accept(in->lfd)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			LOG_WARN_LIMITED("accept: %s: not accepting for %g s",
			    strerror(errno), INGEST_ACCEPT_PAUSE);
			accept_pause(in);
			return;
		}
		if (conn_new(in, fd, 0) == NULL) {
			LOG_WARN_LIMITED("accept: out of memory: connection closed, "
			    "not accepting for %g s", INGEST_ACCEPT_PAUSE);
			close(fd);
			accept_pause(in);
			return;
		}
	}
}

/* A connection that stalls inside a message holds its part of the budget
 * for nothing; one that reads no acks holds its output.  Only the time it
 * is being read counts: back pressure is not the client's fault. */
static void
sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest *in = w->data;
	struct ingest_conn *c, *next;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	for (c = in->conns; c; c = next) {
		next = c->next;
		if (!c->held && stream_reader_partial(&c->r) == 0) {
			/* idle: an input buffer kept between reads goes back */
			stream_reader_trim(&c->r, 0);
			account(c);
		}
		if (c->pipe)
			continue;
		if (c->out.len > 0 && now - c->last_out >= in->msg_timeout) {
			LOG_WARN_LIMITED("connection %d: %zu bytes of acks unread for "
			    "%g s: closing", c->fd, c->out.len, in->msg_timeout);
			conn_close(c);
			continue;
		}
		if (in->over && c == in->eldest &&
		    now - in->eldest_since >= in->msg_timeout) {
			/* a trickle would keep the others waiting for ever */
			LOG_WARN_LIMITED("connection %d: its message not done %g s "
			    "after its turn over the memory budget came (%zu bytes "
			    "of it came): closing", c->fd, in->msg_timeout,
			    stream_reader_partial(&c->r));
			conn_end(c);
			continue;
		}
		if (ev_is_active(&c->rio) && stream_reader_partial(&c->r) > 0 &&
		    now - c->last_in >= in->msg_timeout) {
			LOG_WARN_LIMITED("connection %d: nothing sent for %g s inside "
			    "a message (%zu bytes of it came): closing", c->fd,
			    in->msg_timeout, stream_reader_partial(&c->r));
			conn_end(c);	/* the acks it is owed are still written */
		}
	}
	budget(in);
}

int
ingest_listen(struct ingest *in, int lfd)
{
	double t = in->msg_timeout / 4;

	in->lfd = lfd;
	ev_io_init(&in->lio, listen_cb, lfd, EV_READ);
	in->lio.data = in;
	ev_io_start(in->loop, &in->lio);
	t = t < 0.05 ? 0.05 : t > 1 ? 1 : t;
	ev_timer_set(&in->sweep, t, t);
	ev_timer_start(in->loop, &in->sweep);
	return 0;
}

int
ingest_pipe(struct ingest *in, int fd)
{
	return conn_new(in, fd, 1) ? 0 : -1;
}

int
ingest_ack(struct ingest *in, const struct stream_batch *b)
{
	struct ingest_conn *c;

	for (c = in->conns; c && c->cur != b; c = c->next)
		;
	if (c == NULL || c->pipe || b->chunk == NULL)
		return 0;
	if (in->nacks == in->capacks) {
		size_t cap = in->capacks ? 2 * in->capacks : 64;
		struct ingest_ack *a = realloc(in->acks, cap * sizeof *a);
		if (a == NULL)
			return -1;
		in->acks = a;
		in->capacks = cap;
	}
	in->acks[in->nacks].c = c;
	in->acks[in->nacks].off = in->toks.len;
	in->acks[in->nacks].len = b->chunklen;
	if (buf_add(&in->toks, b->chunk, b->chunklen) == -1)
		return -1;
	in->nacks++;
	/* counted against the connection: it is not read past INGEST_OUT_MAX */
	c->owed += 5 + b->chunklen;
	return 0;
}

size_t
ingest_acks_waiting(const struct ingest *in)
{
	return in->nacks;
}

static void
conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_conn *c = w->data;
	ssize_t n;

	(void)revents;
	while (c->out.len > 0) {
		n = write(c->fd, c->out.p, c->out.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n == -1) {
			conn_close(c);	/* the sender re-sends what it misses */
			return;
		}
		buf_consume(&c->out, (size_t)n);
		c->last_out = ev_now(loop);
	}
	if (c->out.len == 0) {
		ev_io_stop(loop, &c->wio);
		if (c->eof && c->owed == 0) {
			conn_close(c);
			return;
		}
		buf_shrink(&c->out, INGEST_KEEP);
	} else {
		ev_io_start(loop, &c->wio);
	}
	account(c);
	budget(c->in);
	update(c);
}

void
ingest_send_acks(struct ingest *in)
{
	struct ingest_conn *c, *next;

	for (size_t i = 0; i < in->nacks; i++) {
		if ((c = in->acks[i].c) == NULL)
			continue;
		if (c->out.len == 0)
			c->last_out = ev_now(in->loop);	/* the clock starts */
		c->owed -= 5 + in->acks[i].len;
		/* {"ack": <the chunk option, byte for byte>} */
		if (buf_add(&c->out, "\x81\xa3" "ack", 5) == -1 ||
		    buf_add(&c->out, in->toks.p + in->acks[i].off, in->acks[i].len) == -1) {
			LOG_WARN_LIMITED("connection %d: out of memory for its acks: "
			    "closing", c->fd);
			conn_close(c);
			continue;
		}
	}
	in->nacks = 0;
	buf_reset(&in->toks);
	buf_shrink(&in->toks, INGEST_KEEP);
	if (in->capacks > 4096) {
		free(in->acks);
		in->acks = NULL;
		in->capacks = 0;
	}
	for (c = in->conns; c; c = next) {
		next = c->next;
		if (c->out.len > 0 || c->eof)
			conn_write(in->loop, &c->wio, 0);
	}
}

static void
conn_close(struct ingest_conn *c)
{
	struct ingest *in = c->in;

	for (size_t i = 0; i < in->nacks; i++)
		if (in->acks[i].c == c)
			in->acks[i].c = NULL;
	ev_io_stop(in->loop, &c->rio);
	ev_io_stop(in->loop, &c->wio);
	ev_idle_stop(in->loop, &c->step);
	if (c->held)
		in->held--;
	if (c->pipe && !c->eof)
		in->pipes_open--;	/* closed before its end */
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	if (!c->pipe)
		close(c->fd);
	in->mem -= c->mem;
	if (in->eldest == c)
		in->eldest = NULL;
	stream_reader_free(&c->r);
	buf_free(&c->out);
	buf_free(&c->htag);
	buf_free(&c->hentries);
	buf_free(&c->hchunk);
	free(c);
	/* a descriptor is free again: no need to wait to accept */
	if (ev_is_active(&in->accept_wait))
		accept_again(in->loop, &in->accept_wait, 0);
	budget(in);
}

void
ingest_pause(struct ingest *in)
{
	in->paused = 1;
	for (struct ingest_conn *c = in->conns; c; c = c->next)
		update(c);
}

void
ingest_resume(struct ingest *in)
{
	in->paused = 0;
	for (struct ingest_conn *c = in->conns; c; c = c->next)
		update(c);
}

void
ingest_retry(struct ingest *in)
{
	struct ingest_conn *c, *next;

	for (c = in->conns; c; c = next) {
		next = c->next;
		if (!c->held)
			continue;
		c->held = 0;
		in->held--;
		if (offer(c, &c->hb) != 0)
			continue;	/* held again, or closed */
		unhold(c);
		if (drain(c) == 0)
			settle(c);
	}
}

void
ingest_stop(struct ingest *in)
{
	in->stopped = 1;
	if (in->lfd != -1) {
		ev_io_stop(in->loop, &in->lio);
		close(in->lfd);
		in->lfd = -1;
	}
	ev_timer_stop(in->loop, &in->accept_wait);
	ev_timer_stop(in->loop, &in->sweep);
	for (struct ingest_conn *c = in->conns; c; c = c->next) {
		ev_idle_stop(in->loop, &c->step);
		update(c);
	}
}

void
ingest_free(struct ingest *in)
{
	while (in->conns)
		conn_close(in->conns);
	ev_timer_stop(in->loop, &in->accept_wait);
	ev_timer_stop(in->loop, &in->sweep);
	free(in->acks);
	buf_free(&in->toks);
}
