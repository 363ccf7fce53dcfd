/* tail: following files on a libev loop (Fluentd's in_tail without the
 * parsing; research/fluentd-semantics.md D.3, D.4).
 *
 * Targets are paths and glob(3) patterns.  A check (on inotify events
 * in the targets' folders, and on a timer as the fallback) stats every
 * followed file's name, reads what was appended, and notices rotation:
 *
 *   rename and create	the name now holds another inode (or none): the
 *			old file is read on through its open descriptor to
 *			its end, and closed only once it is at its end AND
 *			rotate_wait passed since it last grew (Fluentd
 *			closes it after rotate_wait even if unread:
 *			fluentd#1428); the new file is read from its head.
 *   copytruncate	same inode, size below what was read: from 0.
 *   deleted		as a rename: read to its end, then closed.
 *   renamed into a glob the inode is already followed: it goes on under
 *			its new name, never read again from its head
 *			(Fluentd without follow_inodes re-reads it).
 *   compressed		a file that starts with gzip, bzip2, xz or zstd
 *			magic is not followed (logrotate's compress turns
 *			app.log.1 into a new inode app.log.2.gz).
 *
 * A file is identified by device and inode.  Lines are handed to the
 * caller in blocks of whole lines with their file offsets; the caller
 * says how many bytes it took (at a line end), so it can cut batches
 * where it wants and apply back pressure (taking less pauses every file
 * until tail_resume).  A last line without its newline is held until the
 * newline comes, or until partial_flush seconds without growth (0:
 * never), or until a rotated file is closed: then it is handed over as a
 * line with TAIL_FLUSH.
 *
 * Positions are the caller's: the start callback says where a new file
 * is read from (posfile_start), and nothing here writes them. */
#ifndef LF_TAIL_H
#define LF_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "buf.h"

struct tail_conf {
	char	**paths;		/* paths and globs */
	size_t	npaths;
	char	**excludes;		/* globs, matched with fnmatch */
	size_t	nexcludes;
	double	refresh_interval;	/* 60 s: globs expanded again */
	double	rotate_wait;		/* 5 s */
	double	watch_interval;		/* 1 s: the fallback timer */
	double	limit_recently_modified; /* 0: none */
	double	partial_flush;		/* 0: never */
	int	read_from_head;
	int	skip_refresh_on_startup;
	int	open_on_every_update;
	size_t	max_line_size;		/* 1m; longer lines are skipped */
	size_t	read_size;		/* 256k per read(2) */
	size_t	bytes_per_second;	/* per file; 0: no limit */
};

void	tail_conf_default(struct tail_conf *c);

struct tail_file {
	char	*path;			/* the name it was found under */
	char	*target;		/* the path or glob that found it */
	uint64_t dev, ino, btime;	/* btime: statx birth time, or 0 */
	int	fd;			/* -1 between reads (open_on_every_update) */
	uint64_t off;			/* file offset of b.p[head] */
	struct buf b;			/* read, not yet taken */
	size_t	head;
	uint64_t size;			/* at the last check */
	int	rotated;		/* no longer under its name */
	int	at_eof;
	int	skipping;		/* dropping a line over max_line_size */
	double	grew;			/* when it last grew (or was found) */
	double	rotated_at;
	double	partial_since;
	size_t	sec_bytes;		/* read in the current second */
	double	sec_start;
	/* counters */
	unsigned long long bytes, rotations, skipped;
	void	*udata;			/* the caller's */
	struct tail_file *next;
};

enum {
	TAIL_EOF = 1,		/* nothing more to read for now */
	TAIL_FLUSH = 2,		/* the block ends with a line without its
				 * newline: take it as a line */
};

struct tail_cbs {
	void	*ctx;
	/* A new file: where to start (posfile_start).  startup is 1 in the
	 * first check (files found later are read from their head, as
	 * Fluentd does). */
	uint64_t (*start)(void *ctx, struct tail_file *f, int startup);
	/* p[0..n) are whole lines from file offset f->off.  Return the
	 * bytes taken, a prefix ending at a line end; less than n pauses. */
	size_t	(*lines)(void *ctx, struct tail_file *f, const char *p,
		    size_t n, int flags);
	/* n bytes at off were a line over max_line_size: dropped */
	void	(*skipped)(void *ctx, struct tail_file *f, uint64_t off,
		    uint64_t n);
	/* truncated (copytruncate): reading again from 0 */
	void	(*truncated)(void *ctx, struct tail_file *f);
	/* renamed, replaced or deleted */
	void	(*rotated)(void *ctx, struct tail_file *f);
	/* 1 while the caller must keep f (batches not yet acked) */
	int	(*busy)(void *ctx, struct tail_file *f);
	/* f is about to be freed */
	void	(*closed)(void *ctx, struct tail_file *f);
};

struct tail;

/* The paths are copied.  NULL with errno. */
struct tail *tail_new(struct ev_loop *loop, const struct tail_conf *c,
	    const struct tail_cbs *cbs);
/* The first check (now, or after refresh_interval with
 * skip_refresh_on_startup), then watching. */
int	tail_start(struct tail *t);
/* A check now (SIGUSR1, after a pause). */
void	tail_kick(struct tail *t);
/* Stop reading (pause) or go on. */
void	tail_pause(struct tail *t);
void	tail_resume(struct tail *t);
/* Every file followed, for positions and counters. */
struct tail_file *tail_files(struct tail *t);
void	tail_free(struct tail *t);

/* The magic of a compressed file at p[0..n): 1, else 0. */
int	tail_compressed(const unsigned char *p, size_t n);

#endif
