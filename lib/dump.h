/* dump: events held in memory on their way out, and the file they are
 * written to when they cannot be delivered (lf-send's stdin mode).
 *
 * A pool batches canonical PackedForward entries per tag; a tag's batch
 * is closed once it holds flush_bytes (or on dump_pool_close_all) and
 * queued, in order, for the tool to take.  The pool counts every byte it
 * handed out until the tool gives the batch back with dump_batch_free,
 * so dump_pool_full tells the tool to stop reading its input: memory
 * stays bounded by limit plus one read's worth.
 *
 * A dump file is an lf-stream(5) file of PackedForward messages (no
 * "chunk" option: a replay makes its own ids), written under a
 * temporary name, fsync'd, renamed RENAME_NOREPLACE to
 * dump-YYYYmmddTHHMMSS.uuuuuuZ-PID-N.lf and the folder fsync'd
 * (lib/durable): a file of that name is whole, and the names sort by
 * time, so a cron job can replay them oldest first. */
#ifndef LF_DUMP_H
#define LF_DUMP_H

#include <stddef.h>

struct dump_batch {
	struct dump_batch *next;	/* in the queue, or the tool's */
	char *tag;
	size_t taglen;
	unsigned char *ents;
	size_t len, cap, count;
	void *arg;			/* the tool's */
};

struct dump_pool {
	size_t limit;		/* held bytes past which the input waits */
	size_t flush_bytes;	/* close a tag's batch at this size */
	size_t bytes;		/* memory held by batches, open, queued or taken */
	size_t batches;		/* held, open, queued or taken */
	struct dump_batch **open;	/* per tag */
	size_t nopen, capopen;
	struct dump_batch *head, **tail;	/* closed, not yet taken */
};

void	dump_pool_init(struct dump_pool *p, size_t limit, size_t flush_bytes);
/* Add entries (count events) to tag's batch: 0, or -1 with ENOMEM. */
int	dump_pool_add(struct dump_pool *p, const char *tag, size_t taglen,
	    const unsigned char *ents, size_t len, size_t count);
void	dump_pool_close_all(struct dump_pool *p);
/* The oldest closed batch, now the caller's, or NULL. */
struct dump_batch *dump_pool_take(struct dump_pool *p);
int	dump_pool_full(const struct dump_pool *p);
void	dump_batch_free(struct dump_pool *p, struct dump_batch *b);
/* Free every batch still in the pool (not those taken). */
void	dump_pool_free(struct dump_pool *p);

struct dump_file {
	int dirfd, fd;
	char tmp[64], name[96];
	size_t messages, events;
	unsigned long long bytes;
};

/* Open a new dump file in dir: 0, or -1 with a reason in err. */
int	dump_open(struct dump_file *f, const char *dir, char *err, size_t n);
/* Append b as one PackedForward message: 0, or -1 with errno. */
int	dump_add(struct dump_file *f, const struct dump_batch *b);
/* Sync and name it: 0 (f->name is its name); 1 if it was named but the
 * folder's fsync failed (a reason in err: the file is whole, its name
 * may not survive a crash); -1 with a reason in err, the file removed. */
int	dump_commit(struct dump_file *f, char *err, size_t n);
/* Throw an unfinished dump file away. */
void	dump_abort(struct dump_file *f);

#endif
