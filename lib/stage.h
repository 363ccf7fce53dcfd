/* stage: one staged chunk of lf-buffer, from creation to sealing.
 *
 * A stage is a file in tmp/ that grows by commits.  Appended entries wait
 * in memory (wbuf) until the group commit writes them after the committed
 * bytes, rewrites the header's length, count and CRC, and fdatasyncs the
 * file: the header and the bytes it describes become durable together.
 * A failed commit leaves the committed part as it was and keeps wbuf, so
 * the same commit can be tried again (a full disk blocks, it never loses). */
#ifndef LF_STAGE_H
#define LF_STAGE_H

#include <stdint.h>

#include "buf.h"
#include "chunk.h"
#include "spool.h"

struct stage {
	struct stage *next;
	int fd;
	char name[SPOOL_NAMELEN];	/* in tmp/ */
	struct buf key;			/* identity: the encoded chunk keys */
	struct buf head;		/* encoded header */
	uint32_t hlen;
	unsigned char id[16];
	uint64_t created_us;
	int has_timekey;
	int64_t timekey;
	uint64_t committed, count;	/* durable body bytes and events */
	uint32_t crc;			/* CRC-32 of the committed body */
	struct buf wbuf;		/* appended, not yet committed */
	uint64_t wcount;
	int dirty_head;			/* header in the file is behind */
	int retired;			/* full: sealed by the next commit */
};

/* Make a new stage in s's tmp/ for the chunk keys keys[0..keyslen):
 * create, write the header, fdatasync, fsync tmp/.  NULL on error. */
struct stage *stage_create(struct spool *s, const unsigned char *keys,
    size_t keyslen, int has_timekey, int64_t timekey);

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
 * its committed state with wbuf kept; errno is set. */
int stage_write(struct stage *st);
int stage_sync(struct stage *st, int sync);
void stage_rollback(struct stage *st);

/* Commit what is pending, mark sealed, fdatasync, rename into new/ under
 * its ready name, fsync new/ and tmp/.  An empty stage is just removed.
 * 0, or -1 (the stage is still staged and whole). */
int stage_seal(struct spool *s, struct stage *st);
void stage_free(struct stage *st);

/* Recovery at start, in two passes.  The first (seal = 0) cuts every
 * chunk left in tmp/ back to what was committed: bytes past the committed
 * length go, and a body failing its CRC is cut back to its last whole
 * entry; the header says so, durably.  fn learns each chunk's id and the
 * body length kept, so window records beyond it can be dropped.  Only
 * once the window is rewritten does the second pass (seal = 1) seal them
 * into new/.  A chunk whose header is unreadable is moved to dead/ with
 * the reason. */
typedef void (*stage_kept_fn)(void *ctx, const unsigned char id[16], uint64_t kept);
int stage_recover(struct spool *s, stage_kept_fn fn, void *ctx, int seal);

#endif
