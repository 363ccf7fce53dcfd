/* buffer: Fluentd's <buffer> on one spool: events placed into staged
 * chunks by their chunk keys, chunks sealed by size, count, interval or
 * time slice, the spool kept within its total size.  lf-buffer runs one
 * per spool argument (several spools are out_copy). */
#ifndef LF_BUFFER_H
#define LF_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"
#include "stage.h"
#include "window.h"

enum buffer_flush { FLUSH_DEFAULT, FLUSH_INTERVAL, FLUSH_IMMEDIATE, FLUSH_LAZY };
enum buffer_overflow { OVERFLOW_THROW, OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST };

#define BUFFER_MAXKEYS 8

struct mark;

struct buffer_conf {
	uint64_t chunk_limit_size;	/* 256m, as Fluentd's file buffer */
	uint64_t chunk_limit_records;	/* 0: none */
	double chunk_full_threshold;	/* 0.95 */
	uint64_t total_limit_size;	/* 64g */
	enum buffer_flush flush_mode;	/* default: lazy with timekey, else interval */
	double flush_interval;		/* 60 s */
	int flush_at_shutdown;		/* yes */
	uint64_t queued_chunks_limit_size;	/* 1 */
	double timekey;			/* 0: time is not a chunk key */
	double timekey_wait;		/* 600 s */
	int timekey_use_utc;
	const char *keys[BUFFER_MAXKEYS];	/* record keys */
	int nkeys;
	enum buffer_overflow overflow;	/* throw_exception */
	size_t dedup_window;		/* ids remembered: 65536 */
};

struct buffer {
	struct spool spool;
	const struct buffer_conf *conf;
	struct stage *stages;		/* NEW or STAGED, oldest first */
	struct stage *renamed;		/* sealed, new/ or tmp/ not synced */
	struct window window;
	uint64_t bytes;			/* tmp/ and new/, as last counted + added */
	uint64_t ready;			/* chunks in new/, as last counted */
	unsigned long dropped_chunks, dropped_events, oversize_events;
	unsigned long syncs;		/* fdatasyncs by commits */
	uint64_t sealed_chunks, sealed_events, sealed_bytes;	/* into new/ */
	struct buf keys;		/* scratch: chunk keys of one event */
	struct buf vars;		/* scratch: its record-key values */
	struct mark *marks;		/* scratch: what an add may undo */
	size_t nmarks;
	struct buf spare;		/* a sealed stage's wbuf, for the next */
	int spare_used;			/* taken since the last recount */
};

#define BUFFER_SPARE (16u << 20)	/* the largest wbuf kept for the next */

void buffer_conf_default(struct buffer_conf *c);
/* The effective flush mode, as Fluentd resolves "default". */
enum buffer_flush buffer_flush_mode(const struct buffer_conf *c);
/* After the options: 0, or -1 with a message naming the option. */
int buffer_conf_check(const struct buffer_conf *c, char *err, size_t errlen);

#define BUFFER_LOCKED (-2)

/* Open path, take its writer lock, recover staged chunks, load the window.
 * 0, BUFFER_LOCKED if another lf-buffer has it, or -1, with err. */
int buffer_open(struct buffer *b, const char *path, const struct buffer_conf *c,
    char *err, size_t errlen);
void buffer_close(struct buffer *b);

/* Is the chunk id hash h committed, or in the commit under way? */
int buffer_seen(struct buffer *b, const unsigned char h[16]);

/* Room for n more bytes within total_limit_size, dropping the oldest
 * ready chunks if that is the overflow action.  1 or 0. */
int buffer_room(struct buffer *b, uint64_t n);

/* Place a batch of canonical entries (h: its chunk id hash, or NULL).
 * The events are in memory until buffer_commit.  0 or -1 (errno). */
int buffer_add(struct buffer *b, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count,
    const unsigned char *h);

/* Make everything added durable (sync: fdatasync; without, it is only
 * written, for a pipe that has no one to ack).  0, or -1 with nothing
 * lost: call again later.  Then seal what is full or due.  On a full
 * disk (ENOSPC, EDQUOT) the committed part of every staged chunk is
 * sealed, so that consumers can free space. */
int buffer_commit(struct buffer *b, int sync);
/* Events added but not committed. */
uint64_t buffer_uncommitted(const struct buffer *b);
/* Sync new/ and tmp/ again after chunks were renamed into new/ without
 * (durable_commit's DURABLE_MOVED_UNSYNCED).  0, or -1: some are left. */
int buffer_sync_dirs(struct buffer *b);

/* Seal the chunks whose flush time has come (force: all of them). */
int buffer_flush(struct buffer *b, int force);
/* Count tmp/ and new/ again (consumers delete what they deliver); and,
 * called each tick, give back the write buffer kept for the next stage
 * if none took it since the last call. */
void buffer_recount(struct buffer *b);

/* What a tool may read of a buffer, rather than its fields. */
struct buffer_stats {
	unsigned long syncs;		/* fdatasyncs by commits */
	unsigned long dropped_chunks, dropped_events, oversize_events;
	/* chunks sealed into new/ (ready), their events and body bytes */
	uint64_t sealed_chunks, sealed_events, sealed_bytes;
};
const char *buffer_path(const struct buffer *b);
void buffer_stats(const struct buffer *b, struct buffer_stats *st);
/* fsync the window's log (each tick and at exit).  0 or -1. */
int buffer_sync_window(struct buffer *b);

#endif
