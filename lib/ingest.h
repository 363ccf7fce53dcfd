/* ingest: the receiving side of the acknowledged hop.
 *
 * Connections (and a pipe on stdin) carry forward-protocol messages; each
 * batch is offered to the tool's function, which takes it, holds it (no
 * room yet: reading from that connection stops, which is back pressure to
 * the sender, and the batch is offered again by ingest_retry), or refuses
 * it (the connection is closed without an ack, as Fluentd's in_forward
 * does when its buffer raises).  Acks are queued per connection and sent,
 * in order, only when the tool says its commit is durable.
 *
 * What a client can make it hold is bounded: a connection owed more than
 * INGEST_OUT_MAX bytes of acks is not read until it reads them; all the
 * connections together hold at most max_memory (past it, only the
 * connection whose unfinished message is the oldest is read, so that one
 * message can always finish); a large message is decoded in steps, the
 * other inputs served in between; buffers are cut down after a large
 * message; a connection that stalls inside a message, or reads no acks,
 * for msg_timeout is closed; out of descriptors, accepting pauses. */
#ifndef LF_INGEST_H
#define LF_INGEST_H

#include <ev.h>

#include "buf.h"
#include "stream.h"

enum { INGEST_TAKE = 0, INGEST_HOLD = 1, INGEST_REFUSE = -1 };

#define INGEST_OUT_MAX		(256u << 10)	/* acks owed to one connection */
#define INGEST_MAX_MEMORY	((size_t)512 << 20)	/* two 256m messages */
#define INGEST_MSG_TIMEOUT	60.0
#define INGEST_ACCEPT_PAUSE	0.5	/* seconds, out of descriptors */

struct ingest_conn;
typedef int (*ingest_batch_fn)(void *ctx, struct stream_batch *b);

struct ingest_ack {
	struct ingest_conn *c;
	size_t off, len;		/* the token, in ingest.toks */
};

struct ingest {
	struct ev_loop *loop;
	struct stream_limits lim;
	ingest_batch_fn fn;
	void *ctx;
	struct ingest_conn *conns;
	int lfd;
	ev_io lio;
	struct buf toks;
	struct ingest_ack *acks;
	size_t nacks, capacks;
	size_t max_memory;		/* held for clients, all together */
	double msg_timeout;		/* stalled inside a message, acks unread */
	size_t mem;			/* held now */
	int over;			/* mem > max_memory: only eldest reads */
	struct ingest_conn *eldest;
	ev_tstamp eldest_since;		/* its turn began */
	unsigned long seq;		/* unfinished messages begun */
	ev_timer accept_wait, sweep;
	int paused, stopped;
	int pipes_open;			/* pipes not yet at EOF */
	unsigned long bad;		/* malformed messages seen */
	unsigned long held;		/* connections holding a batch */
};

/* max_memory and msg_timeout get their defaults: set them before
 * ingest_listen to change them. */
void ingest_init(struct ingest *in, struct ev_loop *loop,
    const struct stream_limits *lim, ingest_batch_fn fn, void *ctx);
int ingest_listen(struct ingest *in, int lfd);
/* Read a pipe (no acks: what it carries is at-most-once in flight). */
int ingest_pipe(struct ingest *in, int fd);
/* Queue {"ack": token} for the connection of the batch being offered. */
int ingest_ack(struct ingest *in, const struct stream_batch *b);
size_t ingest_acks_waiting(const struct ingest *in);
void ingest_send_acks(struct ingest *in);
void ingest_pause(struct ingest *in);	/* stop reading every input */
void ingest_resume(struct ingest *in);
void ingest_retry(struct ingest *in);	/* offer held batches again */
void ingest_stop(struct ingest *in);	/* stop accepting and reading */
void ingest_free(struct ingest *in);

#endif
