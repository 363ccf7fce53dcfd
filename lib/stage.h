/* stage: one staged chunk of lf-buffer, from creation to sealing.
 *
 * A stage is a file in tmp/ that grows by commits.  Appended entries wait
 * in memory (wbuf) until the group commit writes them after the committed
 * bytes, rewrites the header's length, count and CRC, and fdatasyncs the
 * file: the header and the bytes it describes become durable together.
 * A failed commit leaves the committed part as it was and keeps wbuf, so
 * the same commit can be tried again (a full disk blocks, it never loses):
 * the retry writes the bytes and the header again before it syncs, so it
 * never counts on pages a failed fdatasync may have dropped.  (Bytes of
 * earlier commits made without fdatasync, for a pipe, are not written
 * again: a failed sync may lose them as a power loss would, which is all
 * lf-buffer(1) promises for them; a recovery cuts them off.)
 *
 * A stage goes through these states, and only forward:
 *   NEW       in memory only; its file is made by stage_create before
 *             anything names it (a window record) or is written to it
 *   STAGED    its file is in tmp/
 *   RENAMED   sealed and renamed into new/, but a folder's fsync failed:
 *             its bytes are durable (synced before the rename), a crash
 *             can only move it back to tmp/, where the next start seals it
 *             again; it is never written again, its descriptor is closed
 *   SEALED    renamed and both folders synced (or, empty, removed)
 * A failed folder fsync is not fatal, as a failed fsync is to PostgreSQL:
 * PostgreSQL must crash to rewrite from its WAL the pages the kernel may
 * have dropped, whereas a chunk's pages were synced before its rename, so
 * nothing needs rewriting, and a restart would read the same page cache.
 * Only the folder sync is tried again (stage_seal on a RENAMED stage). */
#ifndef LF_STAGE_H
#define LF_STAGE_H

#include <stdint.h>

#include "buf.h"
#include "chunk.h"
#include "durable.h"
#include "spool.h"

enum stage_state { STAGE_NEW, STAGE_STAGED, STAGE_RENAMED, STAGE_SEALED };

struct stage {
	struct stage *next;
	enum stage_state state;
	int fd;				/* while STAGED */
	char name[SPOOL_NAMELEN];	/* in tmp/ */
	char ready[SPOOL_NAMELEN];	/* in new/, once renamed */
	struct buf key;			/* identity: the encoded chunk keys */
	struct buf head;		/* encoded header */
	uint32_t hlen;
	unsigned char id[16];
	uint64_t created_us;
	int has_timekey;
	int64_t timekey;
	uint64_t committed, count;	/* committed body bytes and events */
	uint32_t crc;			/* CRC-32 of the committed body */
	uint32_t wcrc;			/* and with wbuf, once written */
	struct buf wbuf;		/* appended, not yet committed */
	uint64_t wcount;
	int written;			/* wbuf is in the file, not committed */
	int dirty_head;			/* header in the file is behind */
	int retired;			/* full: sealed by the next commit */
};

/* A NEW stage for the chunk keys keys[0..keyslen): memory only.  NULL on
 * error (out of memory). */
struct stage *stage_new(const unsigned char *keys, size_t keyslen,
    int has_timekey, int64_t timekey);
/* Make the file of a NEW stage in s's tmp/: create it, write the header,
 * fdatasync, fsync tmp/.  0 (STAGED), or -1 (still NEW, nothing left). */
int stage_create(struct spool *s, struct stage *st);

int stage_append(struct stage *st, const unsigned char *entries, size_t len,
    uint64_t count);

static inline uint64_t
stage_size(const struct stage *st)
{
	return st->hlen + st->committed + st->wbuf.len;
}
static inline uint64_t
stage_events(const struct stage *st)
{
	return st->count + st->wcount;
}

/* Commit in two steps so the dedup window can be written between them:
 * stage_write puts wbuf into the file and the new header in place;
 * stage_sync makes both durable (sync=0 skips the fdatasync) and moves
 * them into the committed state.  On error the stage is rolled back to
 * its committed state with wbuf kept; errno is set.  Only a STAGED stage
 * is written (a NEW one with entries is an error: EBADF). */
int stage_write(struct stage *st);
int stage_sync(struct stage *st, int sync);

/* Seal the committed part of a STAGED stage (what is in wbuf stays
 * there): mark it sealed,
 * fdatasync, rename into new/ under its ready name, fsync new/ and tmp/,
 * through durable_commit, whose outcome it returns:
 *   DURABLE_NOT_MOVED       still STAGED and whole (errno set)
 *   DURABLE_MOVED_UNSYNCED  RENAMED: stored; call again to retry the
 *                           folder sync only (errno set)
 *   DURABLE_DONE            SEALED
 * A stage with no committed event is removed instead (a NEW one has
 * nothing to remove).  To seal wbuf too, commit it first. */
enum durable_outcome stage_seal(struct spool *s, struct stage *st);
void stage_free(struct stage *st);

/* Recovery at start, in two passes.  The first (seal = 0) cuts every
 * chunk left in tmp/ back to what was committed: bytes past the committed
 * length go, and a body failing its CRC is cut back to its last whole
 * entry; the header says so, durably.  fn learns each chunk's id and the
 * body length kept, so window records beyond it can be dropped.  Only
 * once the window is changed and synced does the second pass (seal = 1) seal them
 * into new/.  A chunk whose header is unreadable is moved to dead/ with
 * the reason.  Neither pass needs free space: both only rewrite headers,
 * cut files and rename them. */
typedef void (*stage_kept_fn)(void *ctx, const unsigned char id[16], uint64_t kept);
int stage_recover(struct spool *s, stage_kept_fn fn, void *ctx, int seal);

#endif
