/* hop: the sending half of the acknowledged hop (DESIGN.md, "The
 * acknowledged hop"; research/forward-protocol.md section 6).
 *
 * A batch (a tag, canonical PackedForward entries and their count) goes
 * out as one PackedForward message [tag, bin entries, {"size": n,
 * "chunk": "<base64 id>"}] and is kept until the peer answers
 * {"ack": "<id>"}.  Several batches are in flight at once, up to a window
 * bounded in batches and in bytes; past it hop_send says HOP_FULL and the
 * writable callback fires once there is room again.
 *
 * An error, an end of file, a write that makes no progress for
 * send_timeout or a batch unacked for ack_response_timeout (Fluentd's
 * out_forward names) closes the connection.  It is opened again on the
 * retry schedule of lib/retry (Fluentd's retry_* rules and defaults), and
 * every unacked batch is sent again, in order, with its original id, so a
 * peer with a dedup window (lf-buffer) stores it once.  An ack resets the
 * schedule.  When the schedule hits its limit (retry_timeout,
 * retry_max_times) every unacked batch is given up, in order, through the
 * gaveup callback, and the schedule starts afresh with the next batch.
 *
 * A tool that can send elsewhere (lf-send, with several servers) sets
 * the failed callback: it hears why the connection failed, and may take
 * every unacked batch back with hop_take() instead of leaving it to this
 * hop's reconnect and retry schedule.
 *
 * A batch is in memory (hop_send: its bytes are copied) or backed by a
 * file (hop_send_file: a spool chunk's body, read with pread(2) in pieces
 * of 256 KiB as the socket takes them, so memory does not grow with the
 * batch).  With no_ack a batch counts as delivered once written whole
 * (at-most-once, out_forward without require_ack_response): the acked
 * callback is made then, from the loop, and the message has no "chunk"
 * option, so the peer sends no ack.
 *
 * A connection stays open while idle, unless close_idle or idle_timeout
 * say otherwise (hop_conf).
 * Everything runs in the caller's libev loop; nothing blocks in it (a
 * host name is looked up off the loop when the dial_addr has a
 * resolver, within connect_timeout: see dial.h).  Callbacks are only made
 * from the loop, never from inside hop_send; they may call hop_send, but
 * not hop_free. */
#ifndef LF_HOP_H
#define LF_HOP_H

#include <stddef.h>

#include <ev.h>

#include "dial.h"
#include "retry.h"

#define HOP_ID_B64	24	/* base64 of 16 bytes, no newline */

struct hop_id {
	unsigned char raw[16];
	char b64[HOP_ID_B64 + 1];
};

/* 16 random bytes, as lf has always sent. */
void	hop_id_random(struct hop_id *id);
/* The first 16 bytes of SHA-256 of key: the same key, the same id, so a
 * batch made again after a crash (lf-tail: a file's identity and byte
 * range) is the same chunk to the peer's dedup window.  0 or -1. */
int	hop_id_derive(struct hop_id *id, const void *key, size_t n);

struct hop_conf {
	size_t	window_batches;		/* 16 in flight */
	size_t	window_bytes;		/* 64m of messages in flight */
	size_t	max_message;		/* 256m: a bigger batch is refused */
	double	ack_response_timeout;	/* 190 s, out_forward's */
	double	send_timeout;		/* 60 s without write progress */
	double	connect_timeout;	/* 60 s */
	int	gzip;			/* CompressedPackedForward */
	int	no_ack;			/* done once written: no acks */
	/* An idle connection (nothing in flight) is closed at once with
	 * close_idle (out_forward without keepalive: a connection per
	 * flush), else after idle_timeout seconds (0: never, the
	 * default); the next batch opens a new one.  Not a failure. */
	int	close_idle;
	double	idle_timeout;
	struct retry_conf retry;	/* Fluentd's defaults */
};

void	hop_conf_default(struct hop_conf *c);
int	hop_conf_check(const struct hop_conf *c, char *err, size_t n);

struct hop_cbs {
	void	*ctx;
	/* batch arg was acknowledged / given up; count is its events */
	void	(*acked)(void *ctx, void *arg, size_t count);
	void	(*gaveup)(void *ctx, void *arg, size_t count);
	/* hop_send said HOP_FULL before, and there is room again */
	void	(*writable)(void *ctx);
	/* the connection failed (why: for a log line); NULL: retry here.
	 * local is 1 when the fault is ours, not the peer's: a file-backed
	 * batch could not be read. */
	void	(*failed)(void *ctx, const char *why, int local);
};

enum { HOP_OK = 0, HOP_FULL = 1 };

struct hop;

/* ops and dctx are the transport (dial.h); conf must have passed
 * hop_conf_check.  NULL with errno on failure. */
struct hop *hop_new(struct ev_loop *loop, const struct hop_conf *conf,
	    const struct dial_ops *ops, void *dctx, const struct hop_cbs *cbs);

/* Queue a batch: its bytes are copied.  id NULL takes a random id; arg is
 * handed back to the callbacks.  HOP_OK, HOP_FULL (nothing queued), or
 * -1 with errno (ENOMEM; EMSGSIZE over max_message). */
int	hop_send(struct hop *h, const char *tag, size_t taglen,
	    const void *entries, size_t len, size_t count,
	    const struct hop_id *id, void *arg);

/* A batch whose body is len bytes of fd from off, sent as they are (the
 * caller gzipped them if compressed is set: "compressed": "gzip" goes
 * into the options).  fd must stay open and unchanged until the batch is
 * acked, given up or taken back.  As hop_send otherwise; -1 with EIO
 * later (a failed connection) if the file cannot be read. */
int	hop_send_file(struct hop *h, const char *tag, size_t taglen, int fd,
	    off_t off, size_t len, size_t count, int compressed,
	    const struct hop_id *id, void *arg);

/* Take every unacked batch back, in order: fn (may be NULL) gets each
 * arg and count, and the batch is forgotten.  A connection with batches
 * on it is closed first, so no part of one is left on the wire.  May be
 * called from the callbacks. */
void	hop_take(struct hop *h, void (*fn)(void *ctx, void *arg, size_t count),
	    void *ctx);

size_t	hop_batches(const struct hop *h);	/* unacked batches */
size_t	hop_events(const struct hop *h);	/* unacked events */
int	hop_connected(const struct hop *h);

struct hop_stats {
	unsigned long long sent, acked, resent, gaveup;	/* batches */
	unsigned long long connects, failures, bogus_acks;
	unsigned long long established;	/* connections that came up */
};
void	hop_get_stats(const struct hop *h, struct hop_stats *st);

/* Close, and free every batch without a callback. */
void	hop_free(struct hop *h);

#endif
