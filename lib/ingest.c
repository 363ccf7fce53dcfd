#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "sock.h"

#define INGEST_READ (1u << 20)	/* bytes read from one input per wake-up */

struct ingest_conn {
	struct ingest_conn *next, **prevp;
	struct ingest *in;
	int fd, pipe, eof;
	ev_io rio, wio;
	struct stream_reader r;
	struct buf out;			/* acks not yet written */
	int held;			/* hb is waiting to be taken */
	struct stream_batch hb;
	struct buf htag, hentries, hchunk;
	struct stream_batch *cur;	/* the batch being offered */
};

static void conn_read(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write(struct ev_loop *loop, ev_io *w, int revents);
static void conn_close(struct ingest_conn *c);

void
ingest_init(struct ingest *in, struct ev_loop *loop,
    const struct stream_limits *lim, ingest_batch_fn fn, void *ctx)
{
	memset(in, 0, sizeof *in);
	in->loop = loop;
	in->lim = *lim;
	in->fn = fn;
	in->ctx = ctx;
	in->lfd = -1;
}

static int
reading(const struct ingest *in, const struct ingest_conn *c)
{
	return !in->paused && !in->stopped && !c->held && !c->eof;
}

static void
update(struct ingest_conn *c)
{
	if (reading(c->in, c))
		ev_io_start(c->in->loop, &c->rio);
	else
		ev_io_stop(c->in->loop, &c->rio);
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
	c->held = 1;
	c->in->held++;
	update(c);
	return 0;
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

/* Offer every whole message read so far.  -1 if the connection closed. */
static int
drain(struct ingest_conn *c)
{
	struct stream_batch b;
	int rc;

	while (!c->held && (rc = stream_reader_next(&c->r, &b)) != 0) {
		if (rc == 1) {
			if (offer(c, &b) == -1)
				return -1;
			continue;
		}
		c->in->bad++;
		if (rc == STREAM_EMSG) {
			LOG_WARN_LIMITED("%s %d: offset %llu: %s", c->pipe ? "pipe" :
			    "connection", c->fd, (unsigned long long)c->r.err_off, c->r.err);
			continue;
		}
		log_warn("%s %d: offset %llu: %s: closing", c->pipe ? "pipe" :
		    "connection", c->fd, (unsigned long long)c->r.err_off, c->r.err);
		conn_close(c);
		return -1;
	}
	return 0;
}

static int
owed(const struct ingest_conn *c)
{
	for (size_t i = 0; i < c->in->nacks; i++)
		if (c->in->acks[i].c == c)
			return 1;
	return 0;
}

static void
conn_eof(struct ingest_conn *c)
{
	if (stream_reader_end(&c->r) != 0) {
		c->in->bad++;
		log_warn("%s %d: offset %llu: %s", c->pipe ? "pipe" : "connection",
		    c->fd, (unsigned long long)c->r.err_off, c->r.err);
	}
	if (c->pipe) {
		c->in->pipes_open--;
		c->eof = 1;
		conn_close(c);
		return;
	}
	/* a socket stays open until the acks it is owed are written */
	c->eof = 1;
	update(c);
	if (c->out.len == 0 && !owed(c))
		conn_close(c);
}

static void
conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_conn *c = w->data;
	size_t total = 0, avail;
	unsigned char *p;
	ssize_t n;

	(void)loop;
	(void)revents;
	while (total < INGEST_READ && reading(c->in, c)) {
		if ((p = stream_reader_space(&c->r, 65536, &avail)) == NULL) {
			log_warn("out of memory reading connection %d", c->fd);
			conn_close(c);
			return;
		}
		if ((n = read(c->fd, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_warn("connection %d: read: %s", c->fd, strerror(errno));
			conn_close(c);
			return;
		}
		if (n == 0) {
			if (drain(c) == 0)
				conn_eof(c);
			return;
		}
		stream_reader_wrote(&c->r, (size_t)n);
		total += (size_t)n;
		if (drain(c) == -1)
			return;
		if (c->pipe)
			break;	/* a pipe is blocking: one read per wake-up */
	}
}

static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest *in = w->data;
	int fd;

	(void)loop;
	(void)revents;
	while ((fd = sock_accept(in->lfd)) != -1) {
		if (conn_new(in, fd, 0) == NULL) {
			close(fd);
			return;
		}
	}
	if (errno != EAGAIN && errno != EINTR)
		log_warn("accept: %s", strerror(errno));
}

int
ingest_listen(struct ingest *in, int lfd)
{
	in->lfd = lfd;
	ev_io_init(&in->lio, listen_cb, lfd, EV_READ);
	in->lio.data = in;
	ev_io_start(in->loop, &in->lio);
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
	}
	if (c->out.len == 0) {
		ev_io_stop(loop, &c->wio);
		if (c->eof)
			conn_close(c);
	} else {
		ev_io_start(loop, &c->wio);
	}
}

void
ingest_send_acks(struct ingest *in)
{
	struct ingest_conn *c, *next;

	for (size_t i = 0; i < in->nacks; i++) {
		if ((c = in->acks[i].c) == NULL)
			continue;
		/* {"ack": <the chunk option, byte for byte>} */
		if (buf_add(&c->out, "\x81\xa3" "ack", 5) == -1 ||
		    buf_add(&c->out, in->toks.p + in->acks[i].off, in->acks[i].len) == -1) {
			conn_close(c);
			continue;
		}
	}
	in->nacks = 0;
	buf_reset(&in->toks);
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
	if (c->held)
		in->held--;
	if (c->pipe && !c->eof)
		in->pipes_open--;	/* closed before its end */
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	if (!c->pipe)
		close(c->fd);
	stream_reader_free(&c->r);
	buf_free(&c->out);
	buf_free(&c->htag);
	buf_free(&c->hentries);
	buf_free(&c->hchunk);
	free(c);
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
		if (drain(c) == 0)
			update(c);
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
	for (struct ingest_conn *c = in->conns; c; c = c->next)
		update(c);
}

void
ingest_free(struct ingest *in)
{
	while (in->conns)
		conn_close(in->conns);
	free(in->acks);
	buf_free(&in->toks);
}
