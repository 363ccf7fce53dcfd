/* ingest: the receiving side of the acknowledged hop.
 *
 * Connections (and a pipe on stdin) carry forward-protocol messages; each
 * batch is offered to the tool's function, which takes it, holds it (no
 * room yet: reading from that connection stops, which is back pressure to
 * the sender, and the batch is offered again by ingest_retry), or refuses
 * it (the connection is closed without an ack, as Fluentd's in_forward
 * does when its buffer raises).
 *
 * Inputs: any number of listeners, each of a transport (Unix or TCP
 * sockets here; a tool adds TLS by giving its own ingest_ops, whose open
 * makes the session and whose read, write and close go through it), and
 * pipes.  UDP heartbeats and HTTP are not byte streams of messages: a tool
 * serves them with watchers of its own on the same loop.
 *
 * Acks are deferred: while a batch is offered, ingest_ack_defer gives a
 * handle for its {"ack": chunk}; the tool releases it once the events are
 * durable (after its group commit, or once the next hop acked them), or
 * drops it.  A handle is an index and a generation, never a pointer: if
 * the client has gone meanwhile, releasing it does nothing.  Acks are
 * written to each connection in the order they are released, not the
 * order their messages came: Fluentd's out_forward (and lib/hop) match
 * acks by chunk id, so a tool may release them as its commits finish.
 *
 * What a client can make it hold is bounded: a connection owed more than
 * INGEST_OUT_MAX bytes of acks (released or not), or with INGEST_ACKS_MAX
 * acks not yet released, is not read until they go; all the
 * connections together hold at most max_memory (past it, only the
 * connection whose unfinished message is the oldest is read, so that one
 * message can always finish); a large message is decoded in steps, the
 * other inputs served in between; buffers are cut down after a large
 * message; a connection that stalls inside a message, or reads no acks,
 * for msg_timeout is closed; out of descriptors, accepting pauses. */
#ifndef LF_INGEST_H
#define LF_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ev.h>

#include "buf.h"
#include "stream.h"

enum { INGEST_TAKE = 0, INGEST_HOLD = 1, INGEST_REFUSE = -1 };

#define INGEST_OUT_MAX		(256u << 10)	/* acks owed to one connection */
#define INGEST_ACKS_MAX		8192u	/* acks deferred on one connection */
#define INGEST_MAX_MEMORY	((size_t)512 << 20)	/* two 256m messages */
#define INGEST_MSG_TIMEOUT	60.0
#define INGEST_ACCEPT_PAUSE	0.5	/* seconds, out of descriptors */

/* A transport: how a connection's bytes are read and written.  ctx is the
 * connection's (what open made; the listener's arg when there is no open).
 * open sees the peer's address first: -1 refuses the connection (it is
 * closed at once; open logs why, if it should).  finish, when given, runs
 * before any data, as often as it asks (a TLS handshake, the forward
 * protocol's HELO/PING/PONG): 0 done, 1 again once *events (EV_READ,
 * EV_WRITE) are ready, -1 drop the connection (finish logs why).  It
 * counts as being inside a message for msg_timeout.  read and write are
 * as read(2) and write(2) on a non-blocking descriptor (-1 with EAGAIN:
 * nothing now).  pending, when given, says bytes can be read without the
 * descriptor being readable (TLS records decrypted ahead).  close closes
 * fd.  The plain transports write(2): the tool ignores SIGPIPE. */
struct ingest_ops {
	const char *name;		/* "unix", "tcp" */
	int (*open)(void *arg, int fd, const struct sockaddr *peer,
	    socklen_t peerlen, void **ctx);	/* optional */
	int (*finish)(void *ctx, int fd, int *events);	/* optional */
	ssize_t (*read)(void *ctx, int fd, void *p, size_t n);
	ssize_t (*write)(void *ctx, int fd, const void *p, size_t n);
	int (*pending)(void *ctx);	/* optional */
	void (*close)(void *ctx, int fd);
};
extern const struct ingest_ops ingest_unix, ingest_tcp;

struct ingest_conn;
struct ingest_listener;
struct ingest_slot;
typedef int (*ingest_batch_fn)(void *ctx, struct stream_batch *b);

/* A deferred ack: 0 is none (a pipe, or a message without a chunk id). */
typedef uint64_t ingest_ack_t;

struct ingest {
	struct ev_loop *loop;
	struct stream_limits lim;
	ingest_batch_fn fn;
	void *ctx;
	struct ingest_conn *conns;
	struct ingest_conn *cur;	/* offering a batch */
	struct ingest_listener *listeners;
	struct ingest_slot *slots;	/* deferred acks, by handle index */
	uint32_t nslots, free_slot;
	size_t deferred;		/* handles outstanding */
	size_t nconns;			/* connections and pipes */
	size_t max_memory;		/* held for clients, all together */
	double msg_timeout;		/* stalled inside a message, acks unread */
	size_t mem;			/* held now */
	int over;			/* mem > max_memory: only eldest reads */
	struct ingest_conn *eldest;
	ev_tstamp eldest_since;		/* its turn began */
	unsigned long seq;		/* unfinished messages begun */
	ev_timer accept_wait, sweep;
	int paused, stopped;
	int one_message;		/* close after each connection's first */
	int pipes_open;			/* pipes not yet at EOF */
	unsigned long bad;		/* malformed messages seen */
	unsigned long held;		/* connections holding a batch */
};

/* What the tool may read of an ingest. */
struct ingest_stats {
	unsigned long bad;		/* malformed messages seen */
	unsigned long held;		/* connections holding a batch now */
	int pipes_open;			/* pipes not at their end yet */
	size_t conns;			/* connections and pipes open */
	size_t deferred;		/* acks deferred, not yet released */
	size_t mem;			/* bytes held for clients */
};

/* Where the batch being offered came from. */
struct ingest_peer {
	const struct ingest_listener *listener;	/* NULL: a pipe */
	const struct sockaddr *addr;		/* NULL: a pipe */
	socklen_t addrlen;
};

void ingest_init(struct ingest *in, struct ev_loop *loop,
    const struct stream_limits *lim, ingest_batch_fn fn, void *ctx);
/* The bounds on clients: before the first input. */
void ingest_set_bounds(struct ingest *in, size_t max_memory, double msg_timeout);

/* Accept connections on a listening socket lfd, read and written by ops
 * (arg is given to ops->open).  The listener, or NULL (errno). */
struct ingest_listener *ingest_listen(struct ingest *in, int lfd,
    const struct ingest_ops *ops, void *arg);
/* Listen on "unix:PATH" or "tcp:HOST:PORT" (see sock_listen); a Unix
 * socket file is removed when the ingest stops.  NULL with err. */
struct ingest_listener *ingest_listen_addr(struct ingest *in, const char *spec,
    char *err, size_t errlen);
/* "unix:PATH", "tcp:127.0.0.1:24224" (the port taken, if 0 was asked). */
const char *ingest_listener_name(const struct ingest_listener *l);
const struct ingest_ops *ingest_listener_ops(const struct ingest_listener *l);
/* Its connections open now. */
size_t ingest_listener_conns(const struct ingest_listener *l);

/* Close each connection after its first message (and its ack): in_forward's
 * deny_keepalive. */
void ingest_set_one_message(struct ingest *in, int on);

/* Read a pipe (no acks: what it carries is at-most-once in flight). */
int ingest_pipe(struct ingest *in, int fd);

/* Only inside the batch function: where the batch came from.  0, or -1
 * outside it. */
int ingest_peer(const struct ingest *in, struct ingest_peer *p);
/* The peer's numeric address ("192.0.2.1", "::1"; "" for a Unix socket
 * or a pipe), for a source_address key.  0 or -1. */
int ingest_peer_host(const struct ingest_peer *p, char *buf, size_t n);

/* Only inside the batch function: a handle for the batch's ack, to be
 * released (or dropped) later, in any order.  0: no ack is wanted.
 * -1 cast: out of memory (refuse the batch).  The ack's bytes count
 * against the connection's bounds until it is written. */
#define INGEST_ACK_FAIL ((ingest_ack_t)-1)
ingest_ack_t ingest_ack_defer(struct ingest *in, const struct stream_batch *b);
/* The events are durable: write the ack.  1 queued for writing, 0 the
 * client has gone (or h is 0 or stale), -1 out of memory (the connection
 * is closed: its sender re-sends). */
int ingest_ack_release(struct ingest *in, ingest_ack_t h);
/* Not durable after all: forget the ack (the sender will re-send). */
void ingest_ack_drop(struct ingest *in, ingest_ack_t h);
/* Write the acks released so far now rather than at the next turn of the
 * loop (after a group of releases, and before stopping). */
void ingest_flush(struct ingest *in);

void ingest_stats(const struct ingest *in, struct ingest_stats *st);
void ingest_pause(struct ingest *in);	/* stop reading every input */
void ingest_resume(struct ingest *in);
void ingest_retry(struct ingest *in);	/* offer held batches again */
void ingest_stop(struct ingest *in);	/* stop accepting and reading */
void ingest_free(struct ingest *in);

#endif
