/* window: the ids of recently committed forward chunks, so a chunk that a
 * sender re-sends (no ack reached it) is acked again, not stored twice.
 *
 * state/window is a log of 48-byte records: SHA-256 of the chunk option's
 * msgpack bytes (first 16 bytes), the id of the staged chunk its events
 * went to, that chunk's committed length after them (both zero when
 * unknown), a CRC-32 of the 40 bytes before, and 4 zero bytes.  Records
 * are written before the commit's header, so after a crash a record whose
 * chunk kept fewer bytes is dropped: its events were never acked.
 * The log is written with write(2) but fsync'd lazily (each second and at
 * exit): a process crash keeps every record; a power loss may forget the
 * last ones, which can only make a re-sent chunk be stored twice.
 * A record whose id is all zeros is void: skipped, as is one failing its
 * CRC (torn).  At start a record whose chunk kept fewer bytes is voided
 * in place, so starting needs no free space; the log is compacted (a
 * new file replaces it) only when it has grown past twice the window. */
#ifndef LF_WINDOW_H
#define LF_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define WINDOW_REC 48

struct window {
	int fd;			/* state/window, or -1 */
	int dirfd;
	size_t cap;		/* ids per generation */
	size_t n[2];		/* ids in each generation */
	unsigned char *set[2];	/* open-addressing tables, 2*cap slots */
	int cur;
	size_t filerecs;
	off_t end;		/* length of the log: whole records */
	off_t commit_off;	/* where the commit under way's records start */
	struct buf out;		/* records of the commit under way */
	size_t written;		/* bytes of out in the log */
	struct buf pending;	/* ids of the commit under way */
	int unsynced;
};

typedef int (*window_valid_fn)(void *ctx, const unsigned char id[16], uint64_t len);

int window_open(struct window *w, int statedir, size_t cap,
    window_valid_fn valid, void *ctx);
void window_close(struct window *w);
void window_hash(const unsigned char *tok, size_t n, unsigned char h[16]);
int window_has(const struct window *w, const unsigned char h[16]);
/* An id whose events go into the commit under way; it counts as seen
 * only once window_commit says the commit is durable. */
int window_add(struct window *w, const unsigned char h[16],
    const unsigned char id[16], uint64_t len);
void window_commit(struct window *w);
int window_pending(const struct window *w, const unsigned char h[16]);
int window_write(struct window *w);	/* write(2) the new records */
/* Take the commit under way's records out of the log again, durably
 * (cutting a file needs no free space): before a chunk they name is
 * sealed short of them.  They are written again by the next write. */
int window_unwrite(struct window *w);
/* Records of the commit under way not yet written that name chunk from:
 * name chunk to instead, delta bytes shorter (its successor). */
void window_repoint(struct window *w, const unsigned char from[16],
    const unsigned char to[16], uint64_t delta);
int window_sync(struct window *w);	/* fsync, and compact a long log */

#endif
