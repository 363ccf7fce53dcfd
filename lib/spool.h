/* spool: the spool directory (lf-spool(5)), the durable queue between
 * lf-buffer, its one writer, and the consumers (lf-send, lf-tdlog).
 *
 *   SPOOL/lock            flock'd by the lf-buffer that writes the spool
 *   SPOOL/tmp/ID.chunk    staged chunks, still being written
 *   SPOOL/new/NAME        sealed chunks, ready; NAME sorts in FIFO order
 *   SPOOL/dead/NAME       dead letters, with NAME.reason beside each
 *   SPOOL/state/          window (lf-buffer's committed chunk ids),
 *                         retry (the consumers' retry state)
 *
 * NAME is <seal time: 16 hex digits of microseconds>.<chunk id: 32 hex>.chunk
 *
 * A chunk becomes ready by fsync, rename from tmp/ to new/, fsync of new/.
 * A consumer claims a ready chunk with flock(2) on the chunk file itself,
 * so a claim dies with its process and no orphan can outlive it. */
#ifndef LF_SPOOL_H
#define LF_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chunk.h"
#include "mp.h"

#define SPOOL_NAMELEN 64
#define SPOOL_EIO (-2)	/* a system call failed: the chunk may be fine */
#define SPOOL_NOTFILE (-3)	/* not a regular file: never a chunk */
#ifndef SPOOL_BLOCK		/* a test build may make it tiny */
#define SPOOL_BLOCK (256u << 10)	/* bytes read at once from a chunk body */
#endif

struct spool {
	char *path;
	int fd, tmp, new, dead, state;	/* directory descriptors */
	int lockfd;
};

/* Open (and with create, make) a spool; every part must be on one
 * filesystem.  0, or -1 with a reason in err. */
int spool_open(struct spool *s, const char *path, int create, char *err,
    size_t errlen);
void spool_close(struct spool *s);

/* The writer's lock.  0, or -1 (errno EWOULDBLOCK: another writer). */
int spool_lock(struct spool *s);

/* Chunk names in a folder, sorted (oldest first); dotfiles, .reason and
 * .tmp files are left out. */
struct spool_list {
	char **names;
	size_t n;
};
int spool_list(int dirfd, struct spool_list *l);
void spool_list_free(struct spool_list *l);
int spool_is_chunk_name(const char *name);

/* Open dirfd/name read-only if it is a regular file, without following a
 * symbolic link, waiting on a FIFO or opening a device (lf-spool(5): only
 * regular files are chunks).  An fd; -1 with errno if it cannot be
 * opened; SPOOL_NOTFILE if it is something else, which err names ("a FIFO,
 * not a regular file").  It is opened with O_NONBLOCK, so that a FIFO
 * swapped in or a lease held never makes it wait, then cleared. */
int spool_file_open(int dirfd, const char *name, char *err, size_t errlen);

void spool_ready_name(char name[SPOOL_NAMELEN], uint64_t seal_us,
    const unsigned char id[16]);

/* A chunk file opened and read: its header decoded. */
struct spool_chunk {
	int fd;
	int dirfd;			/* the folder it is in */
	char name[SPOOL_NAMELEN];
	uint64_t size;			/* file size */
	struct chunk_head h;
	struct buf head;		/* header bytes; h points into them */
};

/* Every open of a chunk file goes through spool_file_open, so an odd file
 * with a chunk's name (FIFO, directory, socket, device, symbolic link)
 * never hangs or stops a tool: it is SPOOL_NOTFILE, and is set aside to
 * dead/ like a corrupt chunk by those that set chunks aside. */

/* Claim new/name: open, flock without waiting, check it is still there and
 * that its header is sound.  1 claimed; 0 taken by another consumer or
 * gone; -1 with a reason in err if it is corrupt (still claimed: the
 * caller buries it and releases it); SPOOL_NOTFILE with a reason if it is
 * not a regular file (not claimed: the caller buries it); SPOOL_EIO if it
 * could not be opened or read (the caller releases it and tries again
 * later: it is not known bad; errno says why). */
int spool_claim(struct spool *s, const char *name, struct spool_chunk *c,
    char *err, size_t errlen);

/* Open any chunk file for reading (lf-cat, lf-spool), without a claim.
 * 0, -1 with a reason if it is not a sound chunk, SPOOL_NOTFILE, or
 * SPOOL_EIO (errno says why). */
int spool_chunk_open(int dirfd, const char *name, struct spool_chunk *c,
    char *err, size_t errlen);

/* The same for a file already open (lf-cat's arguments); c owns fd from
 * then on, even on failure. */
int spool_chunk_fdopen(int fd, const char *name, struct spool_chunk *c,
    char *err, size_t errlen);

/* A chunk body read in bounded memory: SPOOL_BLOCK bytes at a time, given
 * out as runs of whole entries, while its CRC, entries and count are
 * checked.  At most SPOOL_BLOCK plus the largest entry is held, never the
 * body.  Entries are given out before the CRC at the end is known: a
 * caller that must not act on a corrupt body runs spool_chunk_verify
 * first (a second reading that fails means the file changed). */
struct spool_body {
	struct spool_chunk *c;
	struct buf win;		/* body bytes read, not yet given out */
	size_t pos;		/* win.p[0..pos) was given out last */
	struct mp_scan scan;	/* the record of the entry after them */
	size_t head;		/* that entry's head length, once known */
	int bad;		/* an entry was bad: read on for the CRC only */
	uint64_t off;		/* body bytes read */
	uint64_t count;		/* whole entries seen */
	uint32_t crc;
};

void spool_body_init(struct spool_body *b, struct spool_chunk *c);
/* The next run of whole entries: 1 with p[0..n) holding count entries
 * (valid until the next call); 0 at the end of a sound body; -1 with a
 * reason if the body is corrupt (cut short, CRC, a bad entry, the count),
 * SPOOL_EIO if it could not be read. */
int spool_body_next(struct spool_body *b, const unsigned char **p, size_t *n,
    uint64_t *count, char *err, size_t errlen);
void spool_body_free(struct spool_body *b);

/* Read the whole body as above and check it.  0, -1 if it is corrupt,
 * SPOOL_EIO if it could not be read. */
int spool_chunk_verify(struct spool_chunk *c, char *err, size_t errlen);

/* Delivered: unlink it (the caller fsyncs new/ when it likes; a lost
 * unlink only means a duplicate).  Then release. */
int spool_done(struct spool *s, struct spool_chunk *c);
void spool_release(struct spool_chunk *c);

/* Move dirfd/name to dead/ with reason written beside it (NAME.reason is
 * made durable first, then the rename, then dead/ and the source folder
 * are fsync'd).  0 or -1. */
int spool_bury(struct spool *s, int dirfd, const char *name, const char *reason);

/* dead/name back to new/ (and its reason removed).  0 or -1. */
int spool_requeue(struct spool *s, const char *name);

uint64_t spool_now_us(void);

#endif
