/* posfile: Fluentd in_tail's position file (research/fluentd-semantics.md
 * D.1), read by Fluentd's rules and written so Fluentd reads it back.
 *
 * One entry a line: PATH TAB POS TAB INODE LF, POS and INODE each 16
 * lowercase hex digits ("%s\t%016x\t%016x\n").  A line is read as
 * Fluentd's regexp ^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+) reads it
 * (anything after the third field is ignored); other lines are
 * unparsable and dropped.  Reading compacts as Fluentd does at start:
 * entries at POSFILE_UNWATCHED are dropped, and of several entries with
 * one key (the path, or the inode with by_inode) the last one wins.
 *
 * Writing is never in place.  Fluentd overwrites the 16-digit fields
 * with pwrite and no fsync, so a crash can leave a field half old, half
 * new, or the whole file at a length the data never reached.  Here the
 * whole file is written to a temporary name, synced and renamed over the
 * old one (durable_replace): after a crash it holds the old or the new
 * entries, never a mix.  Every write is therefore a compaction: only the
 * entries given are written, no unwatched ones pile up. */
#ifndef LF_POSFILE_H
#define LF_POSFILE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define POSFILE_UNWATCHED	UINT64_MAX

struct posfile_ent {
	char *path;
	uint64_t pos, ino;
};

struct posfile {
	struct posfile_ent *e;
	size_t n, cap;
	int by_inode;		/* keyed by inode (--follow-inodes) */
	unsigned long unparsable;	/* lines dropped by the last parse */
};

/* Fluentd's rules, as above; entries are added to pf.  0, or -1 with
 * ENOMEM. */
int	posfile_parse(struct posfile *pf, const char *p, size_t n);
/* posfile_parse of the file at path; a missing file is empty.  0 or -1. */
int	posfile_load(struct posfile *pf, const char *path);
/* The entry for path (or for ino, by inode), or NULL. */
struct posfile_ent *posfile_find(struct posfile *pf, const char *path,
	    uint64_t ino);
/* Set the entry of the key, adding it if new.  0, or -1 with ENOMEM. */
int	posfile_set(struct posfile *pf, const char *path, uint64_t ino,
	    uint64_t pos);
void	posfile_clear(struct posfile *pf);
void	posfile_free(struct posfile *pf);

/* One entry's line, as Fluentd writes it; appended to out.  A path with
 * a TAB or a newline cannot be written in this format: -1 with EINVAL
 * (the caller keeps its position in memory only). */
int	posfile_line(struct buf *out, const char *path, uint64_t pos,
	    uint64_t ino);
/* Every entry, in order. */
int	posfile_format(const struct posfile *pf, struct buf *out);
/* Replace the file at path with bytes p, n (durable_replace in path's
 * folder).  0; 1 if replaced but the folder's sync failed; -1 with errno
 * and the file untouched. */
int	posfile_write(const char *path, const void *p, size_t n);

/* Where to start reading a file (D.3): its inode, its size, and the
 * entry found for it (NULL: none).  The same inode resumes at the saved
 * position, or at 0 if the file is now shorter (truncated while we were
 * down); another inode was rotated in while we were down and is read
 * from 0; without an entry, 0 with head, else the end. */
uint64_t posfile_start(const struct posfile_ent *e, uint64_t ino,
	    uint64_t size, int head);

#endif
