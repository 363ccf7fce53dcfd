#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <openssl/evp.h>

#include "buf.h"
#include "gz.h"
#include "hop.h"
#include "io.h"
#include "log.h"
#include "mp.h"
#include "stream.h"

/* Replies are acks of ~30 bytes; one that does not fit here is not an
 * ack, and the peer gets no more of our memory than this. */
#define HOP_RBUF	4096
#define HOP_IOV		64	/* pieces handed to one writev */
/* A file-backed batch's body goes out through this much memory, read
 * with pread(2) a piece at a time: the body is never in memory whole. */
#define HOP_STAGE	(256u << 10)

/* A batch in memory is its whole message in msg.  A file-backed one is
 * msg (array, tag and bin header), flen bytes of the file fd from foff,
 * then tail (the options map); the caller keeps fd open until the batch
 * is acked, given up or taken back. */
struct batch {
	TAILQ_ENTRY(batch) q;
	struct buf msg;		/* the message, or its head */
	int fd;			/* -1: in memory */
	off_t foff;
	size_t flen;
	struct buf tail;
	size_t len;		/* msg.len + flen + tail.len */
	struct hop_id id;
	size_t count;
	void *arg;
	double sent_at;		/* when its last byte went out */
	int written;		/* fully written on this connection */
	int tries;		/* connections it was written on */
};
TAILQ_HEAD(batchq, batch);

enum hop_state { HOP_DOWN, HOP_CONNECTING, HOP_UP };

struct hop {
	struct ev_loop *loop;
	struct hop_conf conf;
	const struct dial_ops *ops;
	void *dctx;
	struct hop_cbs cbs;
	enum hop_state state;
	int fd;
	ev_io rio, wio;
	ev_timer tm;		/* connect, ack and send deadlines; backoff */
	struct batchq q;	/* unacked batches in the order sent */
	size_t nbatches, bytes, events;
	struct batch *wnext;	/* first batch not fully written, or NULL */
	size_t woff;		/* bytes of wnext written */
	double progress;	/* last write progress */
	double conn_at;
	double idle_at;		/* when the last batch left, or it came up */
	struct retry_state rs;
	int want_writable;
	unsigned char rbuf[HOP_RBUF];
	size_t rlen;
	struct buf gz;
	struct hop_stats st;
	ev_timer reap;		/* without acks: written batches are done */
	unsigned char *stage;	/* HOP_STAGE bytes, allocated on first use */
	struct batch *staged;	/* whose body bytes are in stage, or NULL */
	size_t stage_at, stage_len; /* their offset in that batch, length */
	int readerr;		/* the failure is a batch file's, not the peer's */
	struct buf spare;	/* an acked batch's message buffer, for the next */
	ev_timer spare_tm;	/* gives it back after a second unused */
};

#define HOP_SPARE (16u << 20)	/* the largest message buffer kept */

static void	arm(struct hop *h);
static void	queue(struct hop *h, struct batch *b, size_t count, void *arg);
static void	fail(struct hop *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void
hop_id_random(struct hop_id *id)
{
	arc4random_buf(id->raw, sizeof id->raw);
	EVP_EncodeBlock((unsigned char *)id->b64, id->raw, sizeof id->raw);
}

int
hop_id_derive(struct hop_id *id, const void *key, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	if (EVP_Digest(key, n, md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	memcpy(id->raw, md, sizeof id->raw);
	EVP_EncodeBlock((unsigned char *)id->b64, id->raw, sizeof id->raw);
	return 0;
}

void
hop_conf_default(struct hop_conf *c)
{
	memset(c, 0, sizeof *c);
	c->window_batches = 16;
	c->window_bytes = 64u << 20;
	c->max_message = STREAM_MAX_MESSAGE;
	c->ack_response_timeout = 190;
	c->send_timeout = 60;
	c->connect_timeout = 60;
	retry_conf_default(&c->retry);
}

int
hop_conf_check(const struct hop_conf *c, char *err, size_t n)
{
	if (c->window_batches == 0 || c->window_bytes == 0 ||
	    c->max_message == 0) {
		snprintf(err, n, "the window and the message size must be "
		    "at least 1");
		return -1;
	}
	if (!(c->idle_timeout >= 0)) {
		snprintf(err, n, "the idle timeout must be 0 or more");
		return -1;
	}
	if (!(c->ack_response_timeout > 0) || !(c->send_timeout > 0) ||
	    !(c->connect_timeout > 0) || !isfinite(c->ack_response_timeout) ||
	    !isfinite(c->send_timeout) || !isfinite(c->connect_timeout)) {
		snprintf(err, n, "ack_response_timeout, send_timeout and "
		    "connect_timeout must be greater than 0");
		return -1;
	}
	return retry_conf_check(&c->retry, err, n);
}

static const char *
peer(const struct hop *h)
{
	return h->ops->name(h->dctx);
}

static int
full(const struct hop *h, size_t len)
{
	if (h->nbatches >= h->conf.window_batches)
		return 1;
	/* one batch over the byte bound still goes, alone */
	return h->nbatches > 0 && (h->bytes >= h->conf.window_bytes ||
	    len > h->conf.window_bytes - h->bytes);
}

static void
maybe_writable(struct hop *h)
{
	if (!h->want_writable || full(h, 0))
		return;
	h->want_writable = 0;
	if (h->cbs.writable)
		h->cbs.writable(h->cbs.ctx);
}

static void
batch_remove(struct hop *h, struct batch *b)
{
	TAILQ_REMOVE(&h->q, b, q);
	if (h->staged == b)
		h->staged = NULL;
	h->nbatches--;
	h->bytes -= b->len;
	h->events -= b->count;
	if (h->nbatches == 0)
		h->idle_at = ev_now(h->loop);
}

/* Whether an idle connection should be closed now, or when (INFINITY:
 * never).  Only a connection with nothing in flight is idle. */
static double
idle_deadline(const struct hop *h)
{
	if (h->nbatches > 0)
		return INFINITY;
	if (h->conf.close_idle)
		return h->idle_at;
	if (h->conf.idle_timeout > 0)
		return h->idle_at + h->conf.idle_timeout;
	return INFINITY;
}

/* An acked batch's message buffer is kept for the next batch: messages
 * of a few MiB (lf-recv passing on lf-send's chunks) would otherwise each
 * be built in fresh pages, whose faults cost more than the copy (lf-recv
 * in bench/topology.sh: a third of its CPU).  Given back once no batch
 * was acked for a second. */
static void
batch_done(struct hop *h, struct batch *b)
{
	if (b->msg.cap <= HOP_SPARE && b->msg.cap > h->spare.cap) {
		buf_free(&h->spare);
		h->spare = b->msg;
		h->spare.len = 0;
		b->msg = (struct buf)BUF_INIT;
	}
	if (h->spare.cap > 0)
		ev_timer_again(h->loop, &h->spare_tm);
}

static void
spare_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hop *h = w->data;

	(void)revents;
	buf_free(&h->spare);
	ev_timer_stop(loop, w);
}

static void
batch_free(struct batch *b)
{
	buf_free(&b->msg);
	buf_free(&b->tail);
	free(b);
}

static void
close_conn(struct hop *h)
{
	if (h->fd != -1) {
		ev_io_stop(h->loop, &h->rio);
		ev_io_stop(h->loop, &h->wio);
		h->ops->close(h->dctx, h->fd);
		h->fd = -1;
	}
	h->state = HOP_DOWN;
	h->rlen = 0;
}

static void
give_up(struct hop *h)
{
	struct batch *b;

	log_error("%s: retry limit reached after %lld retries: giving up "
	    "%zu batches (%zu events)", peer(h), h->rs.steps, h->nbatches,
	    h->events);
	while ((b = TAILQ_FIRST(&h->q)) != NULL) {
		batch_remove(h, b);
		h->st.gaveup++;
		if (h->cbs.gaveup)
			h->cbs.gaveup(h->cbs.ctx, b->arg, b->count);
		batch_free(b);
	}
	h->wnext = NULL;
	h->woff = 0;
	retry_reset(&h->rs);
	maybe_writable(h);
}

/* The connection is lost or given up on: close it, and send every
 * unacked batch again on the next one, after the retry wait. */
static void
fail(struct hop *h, const char *fmt, ...)
{
	struct batch *b;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	close_conn(h);
	h->st.failures++;
	TAILQ_FOREACH(b, &h->q, q)
		b->written = 0;
	h->wnext = TAILQ_FIRST(&h->q);
	h->woff = 0;
	/* the caller may take the batches back (hop_take) to send them
	 * elsewhere; then there is nothing left to retry here */
	if (h->cbs.failed)
		h->cbs.failed(h->cbs.ctx, why, h->readerr);
	h->readerr = 0;
	if (h->nbatches == 0) {
		log_debug("%s: %s", peer(h), why);
		arm(h);
		return;
	}
	log_warn("%s: %s; %zu batches (%zu events) to send again", peer(h),
	    why, h->nbatches, h->events);
	if (retry_failed(&h->rs, &h->conf.retry, ev_now(h->loop),
	    arc4random() / 4294967296.0) == 1)
		give_up(h);
	arm(h);
}

/* Bring the body bytes of file batch b at offset off (off >= msg.len)
 * into the stage: 0, or -1 with errno. */
static int
stage_fill(struct hop *h, struct batch *b, size_t off)
{
	size_t boff = off - b->msg.len, n = b->flen - boff;
	ssize_t r;

	if (h->stage == NULL && (h->stage = malloc(HOP_STAGE)) == NULL)
		return -1;
	if (n > HOP_STAGE)
		n = HOP_STAGE;
	h->staged = NULL;
	r = io_pread_all(b->fd, h->stage, n, b->foff + (off_t)boff);
	if (r == -1 || (size_t)r != n) {	/* or the file shrank */
		if (r != -1)
			errno = EIO;
		h->readerr = 1;
		return -1;
	}
	h->staged = b;
	h->stage_at = off;
	h->stage_len = n;
	return 0;
}

/* Pieces of batch b from offset off into iov (at most max): how many.
 * *whole says whether they reach the batch's end.  A file batch gives
 * its staged body bytes (filling the stage first if nothing else is in
 * iov yet, *n == 0), so only one file batch is ever in one writev. */
static int
batch_iov(struct hop *h, struct batch *b, size_t off, struct iovec *iov,
    int max, int first, int *whole)
{
	size_t flend = b->msg.len + b->flen;
	int n = 0;

	*whole = 0;
	if (b->fd == -1) {
		iov[0].iov_base = b->msg.p + off;
		iov[0].iov_len = b->msg.len - off;
		*whole = 1;
		return 1;
	}
	if (max < 3)
		return 0;
	if (off < b->msg.len) {
		iov[n].iov_base = b->msg.p + off;
		iov[n++].iov_len = b->msg.len - off;
		off = b->msg.len;
	}
	if (off < flend) {
		if (h->staged != b || off < h->stage_at ||
		    off >= h->stage_at + h->stage_len) {
			if (!first || (h->staged != NULL && h->staged != b))
				return n;
			if (stage_fill(h, b, off) == -1)
				return -1;
		}
		iov[n].iov_base = h->stage + (off - h->stage_at);
		iov[n++].iov_len = h->stage_at + h->stage_len - off;
		if (h->stage_at + h->stage_len < flend)
			return n;
		off = flend;
	}
	iov[n].iov_base = b->tail.p + (off - flend);
	iov[n++].iov_len = b->tail.len - (off - flend);
	*whole = 1;
	return n;
}

static void
fail_write(struct hop *h)
{
	if (h->readerr)
		fail(h, "reading a batch's file: %s", strerror(errno));
	else
		fail(h, "write: %s", strerror(errno));
}

/* Write what is unwritten, without blocking: 0 (the rest waits for the
 * socket), or -1 with errno. */
static int
flush_out(struct hop *h)
{
	struct iovec iov[HOP_IOV];
	struct batch *b;
	size_t off, rem;
	ssize_t w;
	int n, k, whole;

	/* a batch file's read error is this write's alone: a stale flag
	 * would blame a later peer failure on a file */
	h->readerr = 0;

	while (h->wnext != NULL) {
		n = 0;
		/* a stage no batch still needs is free for the next one */
		if (h->staged != h->wnext)
			h->staged = NULL;
		for (b = h->wnext, off = h->woff; b && n < HOP_IOV;
		    b = TAILQ_NEXT(b, q), off = 0) {
			k = batch_iov(h, b, off, iov + n, HOP_IOV - n, n == 0,
			    &whole);
			if (k == -1)
				return -1;
			n += k;
			if (!whole)
				break;
		}
		if ((w = h->ops->writev(h->dctx, h->fd, iov, n)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(h->loop, &h->wio);
				return 0;
			}
			return -1;
		}
		if (w == 0) {		/* not for a socket; never spin on it */
			ev_io_start(h->loop, &h->wio);
			return 0;
		}
		h->progress = ev_now(h->loop);
		while (w > 0) {
			rem = h->wnext->len - h->woff;
			if ((size_t)w < rem) {
				h->woff += (size_t)w;
				break;
			}
			w -= (ssize_t)rem;
			h->wnext->written = 1;
			h->wnext->sent_at = h->progress;
			h->wnext = TAILQ_NEXT(h->wnext, q);
			h->woff = 0;
			if (h->conf.no_ack && !ev_is_active(&h->reap))
				ev_timer_start(h->loop, &h->reap);
		}
	}
	ev_io_stop(h->loop, &h->wio);
	return 0;
}

static void
up(struct hop *h)
{
	struct batch *b;

	h->state = HOP_UP;
	h->st.established++;
	h->progress = ev_now(h->loop);
	h->idle_at = h->progress;
	ev_io_stop(h->loop, &h->wio);
	ev_io_set(&h->wio, h->fd, EV_WRITE);
	log_debug("%s: connected", peer(h));
	TAILQ_FOREACH(b, &h->q, q)
		if (b->tries++ > 0)
			h->st.resent++;
	h->wnext = TAILQ_FIRST(&h->q);
	h->woff = 0;
	ev_io_start(h->loop, &h->rio);
	if (flush_out(h) == -1) {
		fail_write(h);
		return;
	}
	arm(h);
}

static void
dial(struct hop *h)
{
	int fd, rc;

	h->st.connects++;
	if ((rc = h->ops->open(h->dctx, &fd)) == -1) {
		fail(h, "connect: %s", strerror(errno));
		return;
	}
	h->fd = fd;
	ev_io_set(&h->rio, fd, EV_READ);
	ev_io_set(&h->wio, fd, EV_WRITE);
	if (rc == 1) {
		h->state = HOP_CONNECTING;
		h->conn_at = ev_now(h->loop);
		ev_io_start(h->loop, &h->wio);
		arm(h);
		return;
	}
	up(h);
}

/* The one timer: the next thing due in this state. */
static void
arm(struct hop *h)
{
	struct batch *head = TAILQ_FIRST(&h->q);
	double now = ev_now(h->loop), at = INFINITY;

	ev_timer_stop(h->loop, &h->tm);
	switch (h->state) {
	case HOP_DOWN:
		if (h->nbatches > 0)
			at = h->rs.active ? retry_next(&h->rs) : now;
		break;
	case HOP_CONNECTING:
		at = h->conn_at + h->conf.connect_timeout;
		break;
	case HOP_UP:
		/* batches are written in order: the head is the oldest */
		if (head && head->written && !h->conf.no_ack)
			at = head->sent_at + h->conf.ack_response_timeout;
		if (h->wnext && h->progress + h->conf.send_timeout < at)
			at = h->progress + h->conf.send_timeout;
		if (idle_deadline(h) < at)
			at = idle_deadline(h);
		break;
	}
	if (at == INFINITY)
		return;
	ev_timer_set(&h->tm, at > now ? at - now : 0, 0);
	ev_timer_start(h->loop, &h->tm);
}

/* For a log line: the id if it is printable, else its length. */
static void
show_id(char *out, size_t n, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 64; i++)
		if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '"')
			break;
	if (i == len && len <= 64)
		snprintf(out, n, "\"%.*s\"", (int)len, (const char *)p);
	else
		snprintf(out, n, "of %zu bytes", len);
}

static void
ack(struct hop *h, const unsigned char *p, size_t len)
{
	struct batch *b;
	char shown[80];

	/* only batches written whole can be acked: they come first */
	for (b = TAILQ_FIRST(&h->q); b && b->written; b = TAILQ_NEXT(b, q)) {
		if (len != HOP_ID_B64 || memcmp(b->id.b64, p, len) != 0)
			continue;
		batch_remove(h, b);
		h->st.acked++;
		retry_reset(&h->rs);
		if (h->cbs.acked)
			h->cbs.acked(h->cbs.ctx, b->arg, b->count);
		batch_done(h, b);
		batch_free(b);
		maybe_writable(h);
		return;
	}
	h->st.bogus_acks++;
	show_id(shown, sizeof shown, p, len);
	LOG_WARN_LIMITED("%s: ack for an unknown chunk id %s, ignored", peer(h),
	    shown);
}

static void
reply(struct hop *h, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	struct mp_obj m, k, v;

	if (mp_read(&p, end, &m) == 0 && m.type == MP_MAP && m.n == 1 &&
	    mp_read(&p, end, &k) == 0 && mp_streq(&k, "ack") &&
	    mp_read(&p, end, &v) == 0 &&
	    (v.type == MP_STR || v.type == MP_BIN)) {
		ack(h, v.p, v.n);
		return;
	}
	h->st.bogus_acks++;
	LOG_WARN_LIMITED("%s: a reply that is not {\"ack\": id}, ignored",
	    peer(h));
}

/* One read of the peer's replies, acted on.  1 if bytes came, 0 if
 * none are there now, -1 if the connection failed. */
static int
read_once(struct hop *h)
{
	size_t off = 0, len;
	ssize_t n;
	int rc;

	n = h->ops->read(h->dctx, h->fd, h->rbuf + h->rlen,
	    sizeof h->rbuf - h->rlen);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		fail(h, "read: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		fail(h, "connection closed by the peer");
		return -1;
	}
	h->rlen += (size_t)n;
	while (off < h->rlen && h->state == HOP_UP) {
		rc = mp_skip(h->rbuf + off, h->rlen - off, 4, &len);
		if (rc == MP_MORE)
			break;
		if (rc != MP_OK) {
			fail(h, "a reply that is not msgpack");
			return -1;
		}
		reply(h, h->rbuf + off, len);
		off += len;
	}
	if (h->state != HOP_UP)
		return -1;
	if (off == 0 && h->rlen == sizeof h->rbuf) {
		fail(h, "a reply of more than %d bytes", HOP_RBUF);
		return -1;
	}
	memmove(h->rbuf, h->rbuf + off, h->rlen - off);
	h->rlen -= off;
	return 1;
}

/* Read until nothing is left: a transport may hold bytes the socket no
 * longer signals (TLS keeps decrypted records), so one read per wake-up
 * could leave acks unread until the ack timeout.  A busy peer gets
 * HOP_READS reads, then the loop comes round to the others first.  -1 if
 * the connection failed. */
#define HOP_READS 64
static int
read_replies(struct hop *h)
{
	int rc = 1;

	for (int i = 0; i < HOP_READS && rc == 1; i++)
		if ((rc = read_once(h)) == -1)
			return -1;
	if (rc == 1)
		ev_feed_event(h->loop, &h->rio, EV_READ);
	return 0;
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hop *h = w->data;

	(void)loop;
	(void)revents;
	if (read_replies(h) == 0)
		arm(h);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hop *h = w->data;
	int rc, events = 0;

	(void)loop;
	(void)revents;
	if (h->state == HOP_CONNECTING) {
		if ((rc = h->ops->finish(h->dctx, h->fd, &events)) == -1)
			fail(h, "connect: %s", strerror(errno));
		else if (rc == 0)
			up(h);
		else {
			ev_io_stop(h->loop, &h->wio);
			ev_io_set(&h->wio, h->fd, events);
			ev_io_start(h->loop, &h->wio);
		}
		return;
	}
	if (flush_out(h) == -1) {
		fail_write(h);
		return;
	}
	arm(h);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hop *h = w->data;
	struct batch *head;
	double now;

	(void)revents;
	switch (h->state) {
	case HOP_DOWN:
		if (h->nbatches > 0)
			dial(h);
		return;
	case HOP_CONNECTING:
		fail(h, "connect: timed out after %gs", h->conf.connect_timeout);
		return;
	case HOP_UP:
		break;
	}
	/* an ack that came in with the deadline is not a timeout */
	if (read_replies(h) == -1)
		return;
	now = ev_now(loop);
	head = TAILQ_FIRST(&h->q);
	if (head && head->written && !h->conf.no_ack &&
	    now >= head->sent_at + h->conf.ack_response_timeout) {
		fail(h, "no ack for chunk %s in %gs", head->id.b64,
		    h->conf.ack_response_timeout);
		return;
	}
	if (h->wnext && now >= h->progress + h->conf.send_timeout) {
		fail(h, "send timed out: no progress in %gs",
		    h->conf.send_timeout);
		return;
	}
	if (now >= idle_deadline(h)) {
		/* not a failure: the next batch opens a new connection */
		log_debug("%s: idle, closed", peer(h));
		close_conn(h);
	}
	arm(h);
}

/* Without acks a batch is done once written whole (at-most-once). */
static void
reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hop *h = w->data;
	struct batch *b;

	(void)loop;
	(void)revents;
	while ((b = TAILQ_FIRST(&h->q)) != NULL && b->written) {
		batch_remove(h, b);
		h->st.acked++;
		if (h->cbs.acked)
			h->cbs.acked(h->cbs.ctx, b->arg, b->count);
		batch_done(h, b);
		batch_free(b);
	}
	maybe_writable(h);
	arm(h);
}

struct hop *
hop_new(struct ev_loop *loop, const struct hop_conf *conf,
    const struct dial_ops *ops, void *dctx, const struct hop_cbs *cbs)
{
	struct hop *h;

	if ((h = calloc(1, sizeof *h)) == NULL)
		return NULL;
	h->loop = loop;
	h->conf = *conf;
	h->ops = ops;
	h->dctx = dctx;
	if (cbs)
		h->cbs = *cbs;
	h->fd = -1;
	TAILQ_INIT(&h->q);
	ev_io_init(&h->rio, read_cb, -1, EV_READ);
	ev_io_init(&h->wio, write_cb, -1, EV_WRITE);
	ev_timer_init(&h->tm, timer_cb, 0, 0);
	ev_timer_init(&h->reap, reap_cb, 0, 0);
	ev_timer_init(&h->spare_tm, spare_cb, 0, 1);
	h->rio.data = h->wio.data = h->tm.data = h->reap.data = h;
	h->spare_tm.data = h;
	return h;
}

static int
build(struct hop *h, struct batch *b, const char *tag, size_t taglen,
    const void *entries, size_t len, size_t count)
{
	const unsigned char *payload = entries;

	if (h->conf.gzip) {
		buf_reset(&h->gz);
		if (gz_deflate(entries, len, &h->gz, 6) == -1)
			return -1;
		payload = h->gz.p;
		len = h->gz.len;
	}
	if (buf_reserve(&b->msg, len + taglen + 64) == -1 ||
	    stream_pack_head(&b->msg, tag, taglen, len) == -1 ||
	    buf_add(&b->msg, payload, len) == -1 ||
	    stream_pack_options(&b->msg, count, h->conf.no_ack ? NULL :
	    b->id.b64, h->conf.gzip) == -1)
		return -1;
	return 0;
}

/* A new batch of len payload bytes with id (NULL: a random one), or
 * NULL: *rc is HOP_FULL when the window has no room, else -1 with errno
 * (EMSGSIZE, ENOMEM). */
static struct batch *
batch_new(struct hop *h, size_t taglen, size_t len, const struct hop_id *id,
    int *rc)
{
	struct batch *b;

	/* the caller may have spent long outside the loop: sent_at and
	 * progress must not be stale */
	ev_now_update(h->loop);
	*rc = -1;
	if (len > h->conf.max_message || taglen > h->conf.max_message) {
		errno = EMSGSIZE;
		return NULL;
	}
	if (full(h, len)) {
		h->want_writable = 1;
		*rc = HOP_FULL;
		return NULL;
	}
	if ((b = calloc(1, sizeof *b)) == NULL)
		return NULL;
	b->fd = -1;
	b->msg = h->spare;
	h->spare = (struct buf)BUF_INIT;
	if (id)
		b->id = *id;
	else
		hop_id_random(&b->id);
	return b;
}

int
hop_send(struct hop *h, const char *tag, size_t taglen, const void *entries,
    size_t len, size_t count, const struct hop_id *id, void *arg)
{
	struct batch *b;
	int rc;

	if ((b = batch_new(h, taglen, len, id, &rc)) == NULL)
		return rc;
	if (build(h, b, tag, taglen, entries, len, count) == -1) {
		batch_free(b);
		errno = ENOMEM;
		return -1;
	}
	b->len = b->msg.len;
	queue(h, b, count, arg);
	return HOP_OK;
}

int
hop_send_file(struct hop *h, const char *tag, size_t taglen, int fd,
    off_t off, size_t len, size_t count, int compressed,
    const struct hop_id *id, void *arg)
{
	struct batch *b;
	int rc;

	if ((b = batch_new(h, taglen, len, id, &rc)) == NULL)
		return rc;
	b->fd = fd;
	b->foff = off;
	b->flen = len;
	if (stream_pack_head(&b->msg, tag, taglen, len) == -1 ||
	    stream_pack_options(&b->tail, count, h->conf.no_ack ? NULL :
	    b->id.b64, compressed) == -1) {
		batch_free(b);
		errno = ENOMEM;
		return -1;
	}
	b->len = b->msg.len + len + b->tail.len;
	queue(h, b, count, arg);
	return HOP_OK;
}

/* Put a new batch at the end of the queue and write what can be. */
static void
queue(struct hop *h, struct batch *b, size_t count, void *arg)
{
	b->count = count;
	b->arg = arg;
	TAILQ_INSERT_TAIL(&h->q, b, q);
	h->nbatches++;
	h->bytes += b->len;
	h->events += count;
	h->st.sent++;
	if (h->wnext == NULL) {
		/* the send timeout counts from when there is something to
		 * write, not from the last write before an idle spell */
		h->wnext = b;
		h->woff = 0;
		h->progress = ev_now(h->loop);
	}
	if (h->state == HOP_UP) {
		b->tries = 1;
		/* a failure is left for the write watcher to find, so that
		 * no callback runs from inside hop_send */
		if (flush_out(h) == -1)
			ev_io_start(h->loop, &h->wio);
	}
	if (!ev_is_active(&h->tm) || h->state == HOP_UP)
		arm(h);
}

size_t
hop_batches(const struct hop *h)
{
	return h->nbatches;
}

size_t
hop_events(const struct hop *h)
{
	return h->events;
}

int
hop_connected(const struct hop *h)
{
	return h->state == HOP_UP;
}

void
hop_get_stats(const struct hop *h, struct hop_stats *st)
{
	*st = h->st;
}

void
hop_take(struct hop *h, void (*fn)(void *ctx, void *arg, size_t count),
    void *ctx)
{
	struct batch *b;

	if (h->fd != -1 && h->nbatches > 0)
		close_conn(h);
	ev_timer_stop(h->loop, &h->reap);
	while ((b = TAILQ_FIRST(&h->q)) != NULL) {
		batch_remove(h, b);
		if (fn)
			fn(ctx, b->arg, b->count);
		batch_free(b);
	}
	h->wnext = NULL;
	h->woff = 0;
	arm(h);
}

void
hop_free(struct hop *h)
{
	struct batch *b;

	if (h == NULL)
		return;
	close_conn(h);
	ev_timer_stop(h->loop, &h->tm);
	ev_timer_stop(h->loop, &h->reap);
	ev_timer_stop(h->loop, &h->spare_tm);
	free(h->stage);
	while ((b = TAILQ_FIRST(&h->q)) != NULL) {
		batch_remove(h, b);
		batch_free(b);
	}
	buf_free(&h->gz);
	buf_free(&h->spare);
	free(h);
}
