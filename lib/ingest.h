/* ingest: the receiving side of the acknowledged hop.
 *
 * Connections (and a pipe on stdin) carry forward-protocol messages; each
 * batch is offered to the tool's function, which takes it, holds it (no
 * room yet: reading from that connection stops, which is back pressure to
 * the sender, and the batch is offered again by ingest_retry), or refuses
 * it (the connection is closed without an ack, as Fluentd's in_forward
 * does when its buffer raises).  Acks are queued per connection and sent,
 * in order, only when the tool says its commit is durable. */
#ifndef LF_INGEST_H
#define LF_INGEST_H

#include <ev.h>

#include "buf.h"
#include "stream.h"

enum { INGEST_TAKE = 0, INGEST_HOLD = 1, INGEST_REFUSE = -1 };

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
	int paused, stopped;
	int pipes_open;			/* pipes not yet at EOF */
	unsigned long bad;		/* malformed messages seen */
	unsigned long held;		/* connections holding a batch */
};

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
