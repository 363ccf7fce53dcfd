#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "json.h"
#include "log.h"
#include "sock.h"

#define INGEST_READ (1u << 20)	/* bytes read from one input per wake-up */
#define INGEST_STEP (1u << 20)	/* bytes of one message decoded per turn */
#define INGEST_KEEP (64u << 10)	/* ack buffers kept when idle */
/* Input buffer kept between messages while a connection is busy.  A
 * sender of chunks (lf-send: one message per chunk of up to a few MiB)
 * would otherwise have each message read into fresh pages, and a page
 * fault costs more than the copy of its page: lf-buffer behind lf-recv,
 * taking 8 MiB chunks, spent half its CPU on them (bench/topology.sh).
 * The sweep gives it back once the connection is idle. */
#define INGEST_BUSY_KEEP (16u << 20)
#define SLOT_NONE UINT32_MAX
#define SLOT_TOK 40		/* ids up to this long are kept in the slot */

/* A deferred ack.  Free slots are chained by next; a slot's generation
 * changes each time it is freed, so an old handle no longer matches. */
struct ingest_slot {
	uint32_t gen;
	uint32_t prev, next;		/* the connection's acks, or free */
	uint32_t len;
	struct ingest_conn *c;		/* NULL: free */
	unsigned char *big;		/* a longer id */
	unsigned char tok[SLOT_TOK];
};

struct ingest_listener {
	struct ingest_listener *next;
	struct ingest *in;
	int fd;
	const struct ingest_ops *ops;
	void *arg;
	ev_io io;
	char *unlink_path;		/* a Unix socket file we made */
	char name[128];
	size_t nconns;			/* its connections open */
};

struct ingest_conn {
	struct ingest_conn *next, **prevp;
	struct ingest *in;
	int fd, pipe, eof;
	const struct ingest_ops *ops;
	void *octx;			/* the transport's, for this connection */
	struct ingest_listener *l;	/* NULL: a pipe */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	uint32_t acks;			/* its deferred acks, a list of slots */
	size_t nacks;			/* how many */
	size_t ackmem;			/* their memory */
	ev_io rio, wio;
	ev_idle step;			/* a large message decoded in turns */
	struct stream_reader r;
	struct buf out;			/* acks not yet written */
	size_t owed;			/* bytes of acks deferred */
	size_t mem;			/* bytes counted in in->mem */
	unsigned long seq;		/* its unfinished message began; 0: none */
	ev_tstamp last_in, last_out;	/* last progress reading, writing */
	int held;			/* hb is waiting to be taken */
	int shaking, want;		/* ops->finish still to run; its events */
	int more;			/* stopped reading at INGEST_READ */
	int sniffed;			/* its first byte was seen */
	int last;			/* one_message: this was it */
	struct json_stream *js;		/* JSON mode */
	unsigned long jskipped;
	struct stream_batch hb;
	struct buf htag, hentries, hchunk;
};

static void conn_read(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write(struct ev_loop *loop, ev_io *w, int revents);
static void conn_step(struct ev_loop *loop, ev_idle *w, int revents);
static void conn_close(struct ingest_conn *c);
static void conn_end(struct ingest_conn *c);
static void shake(struct ingest_conn *c);
static void accept_again(struct ev_loop *loop, ev_timer *w, int revents);
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents);

static ssize_t
plain_read(void *ctx, int fd, void *p, size_t n)
{
	(void)ctx;
	return read(fd, p, n);
}

static ssize_t
plain_write(void *ctx, int fd, const void *p, size_t n)
{
	(void)ctx;
	return write(fd, p, n);
}

static void
plain_close(void *ctx, int fd)
{
	(void)ctx;
	close(fd);
}

/* Acks are small writes answering the client's: no Nagle delay. */
static int
tcp_open(void *arg, int fd, const struct sockaddr *peer, socklen_t peerlen,
    void **ctx)
{
	int one = 1;

	(void)arg;
	(void)peer;
	(void)peerlen;
	*ctx = NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

static void
pipe_close(void *ctx, int fd)
{
	(void)ctx;
	(void)fd;	/* the tool's descriptor (stdin): left open */
}

const struct ingest_ops ingest_unix = {
	"unix", NULL, NULL, plain_read, plain_write, NULL, plain_close,
};
const struct ingest_ops ingest_tcp = {
	"tcp", tcp_open, NULL, plain_read, plain_write, NULL, plain_close,
};
static const struct ingest_ops pipe_ops = {
	"pipe", NULL, NULL, plain_read, NULL, NULL, pipe_close,
};

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
	in->free_slot = SLOT_NONE;
	in->max_memory = INGEST_MAX_MEMORY;
	in->msg_timeout = INGEST_MSG_TIMEOUT;
	ev_init(&in->accept_wait, accept_again);
	in->accept_wait.data = in;
	ev_init(&in->sweep, sweep_cb);
	in->sweep.data = in;
}

void
ingest_set_bounds(struct ingest *in, size_t max_memory, double msg_timeout)
{
	in->max_memory = max_memory;
	in->msg_timeout = msg_timeout;
}

static size_t
owing(const struct ingest_conn *c)
{
	return c->out.len + c->owed;
}

/* Owed too much: not read until acks go (released and read, or dropped). */
static int
owes_too_much(const struct ingest_conn *c)
{
	return owing(c) > INGEST_OUT_MAX || c->nacks >= INGEST_ACKS_MAX;
}

static int
reading(const struct ingest *in, const struct ingest_conn *c)
{
	return !in->paused && !in->stopped && !c->held && !c->eof &&
	    !stream_reader_busy(&c->r) && !owes_too_much(c) &&
	    (!in->over || c == in->eldest);
}

/* Bytes of a message begun and not yet whole (JSON: its text too). */
static size_t
partial(const struct ingest_conn *c)
{
	return stream_reader_partial(&c->r) +
	    (c->js && c->js->out.len > c->js->whole ? c->js->text : 0);
}

/* Bytes to read that no EV_READ will announce: read on at INGEST_READ,
 * or kept inside the transport (TLS). */
static int
more_to_read(const struct ingest_conn *c)
{
	return c->more || (c->ops->pending && c->ops->pending(c->octx));
}

static void
update(struct ingest_conn *c)
{
	struct ev_loop *loop = c->in->loop;

	if (c->shaking) {
		if ((c->want & EV_READ) && !c->in->stopped)
			ev_io_start(loop, &c->rio);
		else
			ev_io_stop(loop, &c->rio);
		if (c->want & EV_WRITE)
			ev_io_start(loop, &c->wio);
		else if (c->out.len == 0)
			ev_io_stop(loop, &c->wio);
		return;
	}
	if (reading(c->in, c)) {
		if (!ev_is_active(&c->rio))
			c->last_in = ev_now(loop);	/* its clock starts again */
		ev_io_start(loop, &c->rio);
		if (more_to_read(c))
			ev_idle_start(loop, &c->step);
	} else {
		ev_io_stop(loop, &c->rio);
	}
}

/* Memory held for clients: each connection's buffers and the acks
 * deferred for it, summed in in->mem. */
static void
account(struct ingest_conn *c)
{
	size_t m = stream_reader_mem(&c->r) + c->out.cap + c->ackmem +
	    c->htag.cap + c->hentries.cap + c->hchunk.cap +
	    (c->js ? c->js->out.cap + c->js->text : 0);

	c->in->mem = c->in->mem - c->mem + m;
	c->mem = m;
}

/* Could this connection finish its message if it alone were read? */
static int
candidate(const struct ingest_conn *c)
{
	return c->seq != 0 && !c->held && !c->eof &&
	    !stream_reader_busy(&c->r) && !owes_too_much(c);
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
	if (stream_reader_busy(&c->r) || partial(c) > 0) {
		if (c->seq == 0)
			c->seq = ++c->in->seq;
	} else {
		c->seq = 0;
	}
	/* a large message's memory goes back at once, the rest when idle;
	 * over the memory budget, all but STREAM_KEEP at once */
	if (!c->held)
		stream_reader_trim(&c->r, c->in->over ? STREAM_KEEP :
		    INGEST_BUSY_KEEP);
	if (c->js)
		buf_shrink(&c->js->out, STREAM_KEEP);
	account(c);
	budget(c->in);
	update(c);
}

static struct ingest_conn *
conn_new(struct ingest *in, int fd, const struct ingest_ops *ops, void *octx,
    struct ingest_listener *l)
{
	struct ingest_conn *c = calloc(1, sizeof *c);
	int pipe = l == NULL;

	if (c == NULL)
		return NULL;
	c->in = in;
	c->fd = fd;
	c->pipe = pipe;
	c->ops = ops;
	c->octx = octx;
	c->l = l;
	c->acks = SLOT_NONE;
	stream_reader_init(&c->r, &in->lim);
	ev_io_init(&c->rio, conn_read, fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, conn_write, fd, EV_WRITE);
	c->wio.data = c;
	ev_idle_init(&c->step, conn_step);
	c->step.data = c;
	c->last_in = ev_now(in->loop);
	if (ops->finish) {
		c->shaking = 1;
		c->want = EV_READ | EV_WRITE;	/* finish says which at once */
	}
	c->next = in->conns;
	if (c->next)
		c->next->prevp = &c->next;
	c->prevp = &in->conns;
	in->conns = c;
	if (pipe)
		in->pipes_open++;
	else
		l->nconns++;
	in->nconns++;
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

	c->in->cur = c;
	rc = c->in->fn(c->in->ctx, b);
	c->in->cur = NULL;
	if (rc == INGEST_TAKE) {
		c->last = c->in->one_message && !c->pipe;
		return 0;
	}
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
			if (c->last) {
				conn_end(c);
				return -1;	/* c may be gone: touch it no more */
			}
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
	if (!c->shaking && reading(c->in, c) && more_to_read(c)) {
		c->more = 0;
		conn_read(loop, &c->rio, 0);
		return;
	}
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
	if (c->js && json_stream_end(c->js) == -1) {
		c->in->bad++;
		LOG_WARN_LIMITED("connection %d: JSON: %s", c->fd, c->js->err);
	} else if (stream_reader_end(&c->r) != 0) {
		c->in->bad++;
		LOG_WARN_LIMITED("%s %d: offset %llu: %s", kind(c), c->fd,
		    (unsigned long long)c->r.err_off, c->r.err);
	}
	conn_end(c);
}

/* The transport's own start (TLS, the forward handshake), before data.
 * Its clock (last_in) runs from the accept, not from the last byte: a
 * handshake is a few hundred bytes, and one sent a byte at a time would
 * otherwise hold its connection and buffers for ever. */
static void
shake(struct ingest_conn *c)
{
	int rc, ev = 0;

	if ((rc = c->ops->finish(c->octx, c->fd, &ev)) == -1) {
		conn_close(c);
		return;
	}
	if (rc == 1) {
		c->want = ev ? ev : EV_READ;
		update(c);
		return;
	}
	c->shaking = 0;
	c->want = 0;
	update(c);
	conn_read(c->in->loop, &c->rio, 0);	/* what came with its end */
}

/* The forward protocol's JSON mode (Fluentd's in_forward): a connection
 * whose first byte is '{' or '[' sends JSON; its values become msgpack
 * for the same reader, and its acks go back as JSON. */
static int
sniff(struct ingest_conn *c, const unsigned char *p)
{
	c->sniffed = 1;
	if (c->pipe || (p[0] != '{' && p[0] != '['))
		return 0;
	if ((c->js = malloc(sizeof *c->js)) == NULL ||
	    json_stream_init(c->js, c->in->lim.max_message) == -1) {
		free(c->js);
		c->js = NULL;
		return -1;
	}
	return 1;
}

/* JSON read: the values that ended go to the reader.  0, or -1 closed. */
static int
json_in(struct ingest_conn *c, const unsigned char *p, size_t n)
{
	struct json_stream *js = c->js;

	if (json_stream_feed(js, p, n) == -1) {
		c->in->bad++;
		LOG_WARN_LIMITED("connection %d: JSON: %s: closing", c->fd, js->err);
		conn_end(c);
		return -1;
	}
	if (js->skipped > c->jskipped) {
		c->in->bad += js->skipped - c->jskipped;
		c->jskipped = js->skipped;
		LOG_WARN_LIMITED("connection %d: a JSON value that is not a "
		    "message (not an array): let go", c->fd);
	}
	if (js->whole > 0) {
		if (stream_reader_feed(&c->r, js->out.p, js->whole) == -1) {
			LOG_WARN_LIMITED("connection %d: out of memory reading: "
			    "closing", c->fd);
			conn_close(c);
			return -1;
		}
		json_stream_taken(js);
	}
	return drain(c);
}

/* Read what the connection has, up to INGEST_READ at a time. */
static void
conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	static unsigned char jbuf[65536];
	struct ingest_conn *c = w->data;
	size_t total = 0, avail;
	unsigned char *p;
	ssize_t n;
	int j;

	(void)revents;
	if (c->shaking) {
		shake(c);
		return;
	}
	while (total < INGEST_READ && reading(c->in, c)) {
		if (c->js) {
			p = jbuf;
			avail = sizeof jbuf;
		} else if ((p = stream_reader_space(&c->r, 65536, &avail)) == NULL) {
			LOG_WARN_LIMITED("%s %d: out of memory reading: closing",
			    kind(c), c->fd);
			conn_close(c);
			return;
		}
		if ((n = c->ops->read(c->octx, c->fd, p, avail)) == -1) {
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
		total += (size_t)n;
		if (!c->sniffed && (j = sniff(c, p)) != 0) {
			if (j == -1 || json_in(c, p, (size_t)n) == -1) {
				if (j == -1)
					conn_close(c);
				return;
			}
			continue;
		}
		if (c->js) {
			if (json_in(c, p, (size_t)n) == -1)
				return;
			continue;
		}
		stream_reader_wrote(&c->r, (size_t)n);
		if (drain(c) == -1)
			return;
		if (c->pipe)
			break;	/* a pipe is blocking: one read per wake-up */
	}
	c->more = total >= INGEST_READ;
	settle(c);
}

static void
accept_pause(struct ingest *in)
{
	for (struct ingest_listener *l = in->listeners; l; l = l->next)
		ev_io_stop(in->loop, &l->io);
	ev_timer_set(&in->accept_wait, INGEST_ACCEPT_PAUSE, 0);
	ev_timer_start(in->loop, &in->accept_wait);
}

static void
accept_again(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ingest *in = w->data;

	(void)revents;
	ev_timer_stop(loop, w);
	if (in->stopped)
		return;
	for (struct ingest_listener *l = in->listeners; l; l = l->next)
		ev_io_start(loop, &l->io);
}

/* A failed accept leaves the connection waiting and the socket readable:
 * out of descriptors or memory, trying again at once would spin, so
 * accepting pauses a while (or until a connection closes). */
static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_listener *l = w->data;
	struct ingest *in = l->in;
	struct ingest_conn *c;
	struct sockaddr_storage ss;
	socklen_t sslen;
	void *octx = l->arg;
	int fd;

	(void)loop;
	(void)revents;
	for (;;) {
		if ((fd = sock_accept_from(l->fd, &ss, &sslen)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			LOG_WARN_LIMITED("accept: %s: not accepting for %g s",
			    strerror(errno), INGEST_ACCEPT_PAUSE);
			accept_pause(in);
			return;
		}
		if (l->ops->open && l->ops->open(l->arg, fd,
		    (const struct sockaddr *)&ss, sslen, &octx) == -1) {
			close(fd);	/* refused: open said why */
			continue;
		}
		if ((c = conn_new(in, fd, l->ops, octx, l)) == NULL) {
			LOG_WARN_LIMITED("accept: out of memory: connection closed, "
			    "not accepting for %g s", INGEST_ACCEPT_PAUSE);
			l->ops->close(octx, fd);
			accept_pause(in);
			return;
		}
		if (sslen > sizeof c->peer)
			sslen = sizeof c->peer;
		memcpy(&c->peer, &ss, sslen);
		c->peerlen = sslen;
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
		if (!c->held && partial(c) == 0) {
			/* idle: an input buffer kept between reads goes back */
			stream_reader_trim(&c->r, 0);
			if (c->js)
				buf_shrink(&c->js->out, 0);
			account(c);
		}
		if (c->pipe)
			continue;
		if (c->shaking && now - c->last_in >= in->msg_timeout) {
			/* last_in is the accept's time: see shake */
			LOG_WARN_LIMITED("connection %d: its handshake not done in "
			    "%g s: closing", c->fd, in->msg_timeout);
			conn_close(c);
			continue;
		}
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
			    partial(c));
			conn_end(c);
			continue;
		}
		if (ev_is_active(&c->rio) && partial(c) > 0 &&
		    now - c->last_in >= in->msg_timeout) {
			LOG_WARN_LIMITED("connection %d: nothing sent for %g s inside "
			    "a message (%zu bytes of it came): closing", c->fd,
			    in->msg_timeout, partial(c));
			conn_end(c);	/* the acks it is owed are still written */
		}
	}
	budget(in);
}

static void
sweep_start(struct ingest *in)
{
	double t = in->msg_timeout / 4;

	if (ev_is_active(&in->sweep))
		return;
	t = t < 0.05 ? 0.05 : t > 1 ? 1 : t;
	ev_timer_set(&in->sweep, t, t);
	ev_timer_start(in->loop, &in->sweep);
}

struct ingest_listener *
ingest_listen(struct ingest *in, int lfd, const struct ingest_ops *ops, void *arg)
{
	struct ingest_listener *l = calloc(1, sizeof *l), **lp;

	if (l == NULL)
		return NULL;
	l->in = in;
	l->fd = lfd;
	l->ops = ops;
	l->arg = arg;
	if (sock_name(lfd, 0, l->name, sizeof l->name) == -1)
		snprintf(l->name, sizeof l->name, "%s:%d", ops->name, lfd);
	ev_io_init(&l->io, listen_cb, lfd, EV_READ);
	l->io.data = l;
	for (lp = &in->listeners; *lp; lp = &(*lp)->next)
		;
	*lp = l;
	if (!ev_is_active(&in->accept_wait))
		ev_io_start(in->loop, &l->io);
	sweep_start(in);
	return l;
}

struct ingest_listener *
ingest_listen_addr(struct ingest *in, const char *spec, char *err, size_t errlen)
{
	struct ingest_listener *l;
	enum sock_kind kind;
	int fd, e;

	if ((fd = sock_listen(spec, &kind, err, errlen)) == -1)
		return NULL;
	if ((l = ingest_listen(in, fd, kind == SOCK_TCP ? &ingest_tcp :
	    &ingest_unix, NULL)) == NULL ||
	    (kind == SOCK_UNIX && (l->unlink_path = strdup(spec + 5)) == NULL)) {
		e = errno;
		snprintf(err, errlen, "%s: %s", spec, strerror(e));
		if (l == NULL)
			close(fd);
		errno = e;
		return NULL;	/* a listener made is closed by ingest_free */
	}
	return l;
}

const char *
ingest_listener_name(const struct ingest_listener *l)
{
	return l->name;
}

const struct ingest_ops *
ingest_listener_ops(const struct ingest_listener *l)
{
	return l->ops;
}

size_t
ingest_listener_conns(const struct ingest_listener *l)
{
	return l->nconns;
}

int
ingest_pipe(struct ingest *in, int fd)
{
	return conn_new(in, fd, &pipe_ops, NULL, NULL) ? 0 : -1;
}

int
ingest_peer(const struct ingest *in, struct ingest_peer *p)
{
	const struct ingest_conn *c = in->cur;

	if (c == NULL)
		return -1;
	p->listener = c->l;
	p->addr = c->pipe ? NULL : (const struct sockaddr *)&c->peer;
	p->addrlen = c->pipe ? 0 : c->peerlen;
	return 0;
}

int
ingest_peer_host(const struct ingest_peer *p, char *buf, size_t n)
{
	if (p->addr == NULL || p->addrlen == 0) {
		if (n == 0)
			return -1;
		buf[0] = '\0';
		return 0;
	}
	return sock_host(p->addr, p->addrlen, buf, n, NULL);
}

/* Deferred acks: a table of slots, a handle is (generation, index). */
static int
slot_grow(struct ingest *in)
{
	uint32_t n = in->nslots ? in->nslots * 2 : 64;
	struct ingest_slot *t;

	if (in->nslots >= (UINT32_MAX >> 1) ||
	    (t = realloc(in->slots, (size_t)n * sizeof *t)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (uint32_t i = n; i-- > in->nslots; ) {
		t[i].gen = 1;
		t[i].c = NULL;
		t[i].big = NULL;
		t[i].next = in->free_slot;
		in->free_slot = i;
	}
	in->slots = t;
	in->nslots = n;
	return 0;
}

static const unsigned char *
slot_tok(const struct ingest_slot *s)
{
	return s->big ? s->big : s->tok;
}

/* Take a slot off its connection and put it on the free list. */
static void
slot_free(struct ingest *in, uint32_t i)
{
	struct ingest_slot *s = &in->slots[i];
	struct ingest_conn *c = s->c;

	if (s->prev != SLOT_NONE)
		in->slots[s->prev].next = s->next;
	else
		c->acks = s->next;
	if (s->next != SLOT_NONE)
		in->slots[s->next].prev = s->prev;
	c->nacks--;
	c->owed -= 5 + s->len;
	c->ackmem -= sizeof *s + (s->big ? s->len : 0);
	in->deferred--;
	free(s->big);
	s->big = NULL;
	s->c = NULL;
	if (++s->gen == 0)
		s->gen = 1;
	s->next = in->free_slot;
	in->free_slot = i;
}

static struct ingest_slot *
slot_of(struct ingest *in, ingest_ack_t h)
{
	uint32_t i = (uint32_t)h, gen = (uint32_t)(h >> 32);

	if (h == 0 || h == INGEST_ACK_FAIL || i >= in->nslots ||
	    in->slots[i].gen != gen || in->slots[i].c == NULL)
		return NULL;
	return &in->slots[i];
}

ingest_ack_t
ingest_ack_defer(struct ingest *in, const struct stream_batch *b)
{
	struct ingest_conn *c = in->cur;
	struct ingest_slot *s;
	uint32_t i;

	if (c == NULL || c->pipe || b->chunk == NULL)
		return 0;
	if (in->free_slot == SLOT_NONE && slot_grow(in) == -1)
		return INGEST_ACK_FAIL;
	s = &in->slots[i = in->free_slot];
	s->big = NULL;
	if (b->chunklen > SLOT_TOK && (s->big = malloc(b->chunklen)) == NULL)
		return INGEST_ACK_FAIL;
	in->free_slot = s->next;
	memcpy(s->big ? s->big : s->tok, b->chunk, b->chunklen);
	s->len = (uint32_t)b->chunklen;
	s->c = c;
	s->prev = SLOT_NONE;
	s->next = c->acks;
	if (c->acks != SLOT_NONE)
		in->slots[c->acks].prev = i;
	c->acks = i;
	c->nacks++;
	in->deferred++;
	/* counted against the connection: it is not read past its bounds */
	c->owed += 5 + s->len;
	c->ackmem += sizeof *s + (s->big ? s->len : 0);
	return (ingest_ack_t)s->gen << 32 | i;
}

/* An ended connection closes once nothing more is owed to it. */
static int
conn_done(struct ingest_conn *c)
{
	if (c->eof && owing(c) == 0) {
		conn_close(c);
		return 1;
	}
	return 0;
}

int
ingest_ack_release(struct ingest *in, ingest_ack_t h)
{
	struct ingest_slot *s = slot_of(in, h);
	struct ingest_conn *c;
	int rc;

	if (s == NULL)
		return 0;
	c = s->c;
	if (c->out.len == 0)
		c->last_out = ev_now(in->loop);	/* the clock starts */
	/* {"ack": <the chunk option, byte for byte>}, or its JSON */
	if (c->js)
		rc = buf_add(&c->out, "{\"ack\":", 7) == -1 ||
		    json_value(&c->out, slot_tok(s), s->len, NULL) == -1 ||
		    buf_add(&c->out, "}", 1) == -1 ? -1 : 1;
	else
		rc = buf_add(&c->out, "\x81\xa3" "ack", 5) == -1 ||
		    buf_add(&c->out, slot_tok(s), s->len) == -1 ? -1 : 1;
	slot_free(in, (uint32_t)(s - in->slots));
	if (rc == -1) {
		LOG_WARN_LIMITED("connection %d: out of memory for its acks: "
		    "closing", c->fd);
		conn_close(c);
		return -1;
	}
	/* written at the next turn of the loop, or by ingest_flush */
	ev_io_start(in->loop, &c->wio);
	return 1;
}

void
ingest_ack_drop(struct ingest *in, ingest_ack_t h)
{
	struct ingest_slot *s = slot_of(in, h);
	struct ingest_conn *c;

	if (s == NULL)
		return;
	c = s->c;
	slot_free(in, (uint32_t)(s - in->slots));
	if (conn_done(c))
		return;
	account(c);
	budget(in);
	update(c);
}

void
ingest_stats(const struct ingest *in, struct ingest_stats *st)
{
	memset(st, 0, sizeof *st);
	st->bad = in->bad;
	st->held = in->held;
	st->pipes_open = in->pipes_open;
	st->deferred = in->deferred;
	st->mem = in->mem;
	st->conns = in->nconns;
}

static void
conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ingest_conn *c = w->data;
	ssize_t n;

	(void)revents;
	if (c->shaking) {
		if (revents)
			shake(c);
		return;
	}
	while (c->out.len > 0) {
		n = c->ops->write(c->octx, c->fd, c->out.p, c->out.len);
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
		if (conn_done(c))
			return;
		buf_shrink(&c->out, INGEST_KEEP);
	} else {
		ev_io_start(loop, &c->wio);
	}
	account(c);
	budget(c->in);
	update(c);
}

/* Write the acks released so far now, not at the next turn of the loop:
 * a tool calls it after releasing a group commit's acks, and before it
 * stops. */
void
ingest_flush(struct ingest *in)
{
	struct ingest_conn *c, *next;

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

	/* its handles go stale: released later, they do nothing */
	while (c->acks != SLOT_NONE)
		slot_free(in, c->acks);
	if (in->cur == c)
		in->cur = NULL;
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
	c->ops->close(c->octx, c->fd);
	in->nconns--;
	if (c->l)
		c->l->nconns--;
	in->mem -= c->mem;
	if (in->eldest == c)
		in->eldest = NULL;
	stream_reader_free(&c->r);
	if (c->js) {
		json_stream_free(c->js);
		free(c->js);
	}
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
		if (c->last) {
			conn_end(c);
			continue;
		}
		if (drain(c) == 0)
			settle(c);
	}
}

void
ingest_set_one_message(struct ingest *in, int on)
{
	in->one_message = on;
}

void
ingest_stop(struct ingest *in)
{
	in->stopped = 1;
	for (struct ingest_listener *l = in->listeners; l; l = l->next) {
		if (l->fd == -1)
			continue;
		ev_io_stop(in->loop, &l->io);
		close(l->fd);
		l->fd = -1;
		if (l->unlink_path)
			unlink(l->unlink_path);
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
	struct ingest_listener *l;

	if (!in->stopped)
		ingest_stop(in);
	while (in->conns)
		conn_close(in->conns);
	while ((l = in->listeners) != NULL) {
		in->listeners = l->next;
		free(l->unlink_path);
		free(l);
	}
	free(in->slots);
	in->slots = NULL;
	in->nslots = 0;
	in->free_slot = SLOT_NONE;
}
