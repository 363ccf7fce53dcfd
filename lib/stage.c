#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/stdlib.h>

#include "durable.h"
#include "io.h"
#include "log.h"
#include "stage.h"
#include "stream.h"

struct stage *
stage_new(const unsigned char *keys, size_t keyslen, int has_timekey,
    int64_t timekey)
{
	struct stage *st;
	struct chunk_head h;
	char hex[33];

	if ((st = calloc(1, sizeof *st)) == NULL)
		return NULL;
	st->fd = -1;
	st->state = STAGE_NEW;
	memset(&h, 0, sizeof h);
	h.state = CHUNK_STAGED;
	arc4random_buf(st->id, sizeof st->id);
	memcpy(h.id, st->id, 16);
	h.created_us = st->created_us = spool_now_us();
	st->has_timekey = has_timekey;
	st->timekey = timekey;
	if (buf_add(&st->key, keys, keyslen) == -1 ||
	    chunk_head_encode(&st->head, &h, keys, keyslen) == -1) {
		stage_free(st);
		return NULL;
	}
	st->hlen = h.hlen;
	chunk_id_hex(st->id, hex);
	snprintf(st->name, sizeof st->name, "%s.chunk", hex);
	return st;
}

int
stage_create(struct spool *s, struct stage *st)
{
	int e;

	st->fd = openat(s->tmp, st->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (st->fd == -1)
		return -1;
	/* the file and its name must be durable before anything in it is acked */
	if (durable_pwrite_all(st->fd, st->head.p, st->head.len, 0) == -1 ||
	    durable_fdatasync(st->fd) == -1 || durable_fsync(s->tmp) == -1) {
		e = errno;
		unlinkat(s->tmp, st->name, 0);
		close(st->fd);
		st->fd = -1;
		errno = e;
		return -1;
	}
	st->state = STAGE_STAGED;
	return 0;
}

void
stage_free(struct stage *st)
{
	if (st == NULL)
		return;
	if (st->fd != -1)
		close(st->fd);
	buf_free(&st->key);
	buf_free(&st->head);
	buf_free(&st->wbuf);
	free(st);
}

int
stage_append(struct stage *st, const unsigned char *entries, size_t len,
    uint64_t count)
{
	if (buf_add(&st->wbuf, entries, len) == -1)
		return -1;
	st->wcount += count;
	return 0;
}

static void rollback(struct stage *);

/* Put the header's mutable bytes in the file. */
static int
write_head(struct stage *st, int state, uint64_t len, uint64_t count, uint32_t crc)
{
	chunk_head_update(st->head.p, st->hlen, state, len, count, crc);
	/* the fixed part is within one sector: it is written whole */
	return durable_pwrite_all(st->fd, st->head.p, CHUNK_FIXED, 0);
}

int
stage_write(struct stage *st)
{
	uint32_t crc;

	if (st->wbuf.len == 0 && !st->dirty_head)
		return 0;
	if (st->state != STAGE_STAGED) {
		errno = EBADF;	/* never through a renamed file's descriptor */
		return -1;
	}
	/* even a write that fails may leave bytes past the committed ones */
	st->written = 1;
	if (durable_pwrite_all(st->fd, st->wbuf.p, st->wbuf.len,
	    (off_t)(st->hlen + st->committed)) == -1)
		goto fail;
	/* kept for stage_sync: one pass of the CRC over each byte */
	st->wcrc = crc = chunk_crc(st->crc, st->wbuf.p, st->wbuf.len);
	if (write_head(st, CHUNK_STAGED, st->committed + st->wbuf.len,
	    st->count + st->wcount, crc) == -1)
		goto fail;
	st->dirty_head = 1;
	return 0;
fail:
	rollback(st);
	return -1;
}

int
stage_sync(struct stage *st, int sync)
{
	if (!st->dirty_head)
		return 0;
	if (sync && durable_fdatasync(st->fd) == -1) {
		rollback(st);
		return -1;
	}
	if (st->written)
		st->crc = st->wcrc;	/* wbuf's, from stage_write */
	st->committed += st->wbuf.len;
	st->count += st->wcount;
	buf_reset(&st->wbuf);
	st->wcount = 0;
	st->written = 0;
	/* unsynced bytes are in the page cache: a process crash keeps them
	 * with their header; the next fdatasync makes them durable */
	st->dirty_head = !sync;
	return 0;
}

/* Back to the committed state.  The bytes past it in the file, and a
 * header page the failed fdatasync may have dropped, are rewritten. */
static void
rollback(struct stage *st)
{
	int e = errno;

	if (ftruncate(st->fd, (off_t)(st->hlen + st->committed)) == -1 ||
	    write_head(st, CHUNK_STAGED, st->committed, st->count, st->crc) == -1)
		log_warn("tmp/%s: cannot roll back: %s (will retry)", st->name,
		    strerror(errno));
	else
		st->written = 0;
	st->dirty_head = 1;
	errno = e;
}

enum durable_outcome
stage_seal(struct spool *s, struct stage *st)
{
	enum durable_outcome o;
	int e;

	if (st->state == STAGE_NEW && st->wbuf.len == 0) {
		/* no file: nothing was ever committed */
		st->state = STAGE_SEALED;
		return DURABLE_DONE;
	}
	if (st->state == STAGE_RENAMED) {
		/* only the folders: the file is in new/, and synced */
		if (durable_sync_dirs(s->new, s->tmp) == -1)
			return DURABLE_MOVED_UNSYNCED;
		st->state = STAGE_SEALED;
		return DURABLE_DONE;
	}
	/* only the committed part: bytes a failed commit left go */
	if (st->written) {
		rollback(st);
		if (st->written)
			return DURABLE_NOT_MOVED;
	}
	if (st->count == 0) {
		/* nothing was ever committed here: there is nothing to keep */
		if (unlinkat(s->tmp, st->name, 0) == -1)
			return DURABLE_NOT_MOVED;
		o = DURABLE_DONE;
		goto moved;
	}
	chunk_head_update(st->head.p, st->hlen, CHUNK_SEALED, st->committed,
	    st->count, st->crc);
	spool_ready_name(st->ready, spool_now_us(), st->id);
	o = durable_commit(st->fd, st->head.p, CHUNK_FIXED, 0, s->tmp, st->name,
	    s->new, st->ready, 0);
	if (o == DURABLE_NOT_MOVED) {
		e = errno;
		write_head(st, CHUNK_STAGED, st->committed, st->count, st->crc);
		st->dirty_head = 1;
		errno = e;
		return o;
	}
moved:
	/* in a consumer's hands now: the descriptor is of no more use */
	e = errno;
	close(st->fd);
	st->fd = -1;
	st->dirty_head = 0;
	st->state = o == DURABLE_DONE ? STAGE_SEALED : STAGE_RENAMED;
	errno = e;
	return o;
}

/* ---- recovery ---- */

/* The longest prefix of body[0..n) made of whole, valid entries. */
static uint64_t
whole_entries(const unsigned char *body, size_t n, uint64_t *count, uint32_t *crc)
{
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *last = body;

	*count = 0;
	stream_iter_init(&it, body, n);
	while (stream_iter_next(&it, &ev) == 1) {
		(*count)++;
		last = it.p;
	}
	*crc = chunk_crc(0, body, (size_t)(last - body));
	return (uint64_t)(last - body);
}

/* A staged chunk whose header cannot be read (rc and errno as
 * spool_chunk_open left them).  A file cut below its header may have held
 * acked events, so nothing is deleted unless it is provably empty: a
 * zero-length file, cut before stage_create wrote its header.  What
 * cannot be opened for good (EACCES) or is not a regular file goes to
 * dead/ with the rest, so that lf-buffer starts; a failed read may be
 * passing, and stops the start instead.  0 or -1. */
static int
recover_unreadable(struct spool *s, const char *name, int rc, int e,
    const char *err)
{
	char reason[512];
	struct stat sb;

	if (rc == SPOOL_EIO && e != EACCES && e != EPERM) {
		log_warn("tmp/%s: cannot read: %s (left for the next start)", name, err);
		return -1;
	}
	if (rc == -1 && fstatat(s->tmp, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(sb.st_mode) && sb.st_size == 0) {
		if (unlinkat(s->tmp, name, 0) == -1) {
			log_warn("tmp/%s: cannot remove an empty file: %s", name,
			    strerror(errno));
			return -1;
		}
		log_info("tmp/%s: removed an empty file (no header was written)", name);
		return 0;
	}
	snprintf(reason, sizeof reason, "%s: %s", rc == SPOOL_NOTFILE ?
	    "not a staged chunk" : rc == SPOOL_EIO ?
	    "staged chunk that cannot be opened" :
	    "staged chunk with a bad header", err);
	if (spool_bury(s, s->tmp, name, reason) == -1) {
		log_warn("tmp/%s: %s; cannot move it to dead/: %s", name, reason,
		    strerror(errno));
		return -1;
	}
	log_warn("tmp/%s: %s: moved to dead/", name, reason);
	return 0;
}

/* Seal one chunk left in tmp/.  Returns the body length kept. */
static int
recover_one(struct spool *s, const char *name, stage_kept_fn fn, void *ctx,
    int seal)
{
	struct spool_chunk c;
	struct stage st;
	struct buf body = BUF_INIT;
	char err[256];
	uint64_t have, kept, count;
	uint32_t crc;
	ssize_t n;
	int rc;
	enum durable_outcome o;

	if ((rc = spool_chunk_open(s->tmp, name, &c, err, sizeof err)) < 0)
		return recover_unreadable(s, name, rc, errno, err);
	memset(&st, 0, sizeof st);
	st.fd = -1;
	st.state = STAGE_STAGED;
	have = c.size - c.h.hlen;
	kept = c.h.bodylen;
	count = c.h.count;
	crc = c.h.bodycrc;
	if (buf_reserve(&body, have) == -1)
		goto fail;
	/* read whole: a short read is a file that shrank under us */
	if ((n = io_pread_all(c.fd, body.p, have, c.h.hlen)) != (ssize_t)have) {
		if (n >= 0)
			errno = EIO;
		goto fail;
	}
	if (kept > have || chunk_crc(0, body.p, kept) != crc) {
		/* the committed bytes did not all reach the disk: keep what is whole */
		kept = whole_entries(body.p, kept < have ? kept : have, &count, &crc);
		log_warn("tmp/%s: body fails its checksum: kept %llu whole events "
		    "(%llu bytes) of %llu", name, (unsigned long long)count,
		    (unsigned long long)kept, (unsigned long long)c.h.count);
	} else if (kept < have) {
		log_info("tmp/%s: cut %llu uncommitted bytes", name,
		    (unsigned long long)(have - kept));
	}
	if (fn)
		fn(ctx, c.h.id, kept);

	snprintf(st.name, sizeof st.name, "%s", name);
	memcpy(st.id, c.h.id, 16);
	st.hlen = c.h.hlen;
	st.committed = kept;
	st.count = count;
	st.crc = crc;
	if (buf_add(&st.head, c.head.p, c.h.hlen) == -1)
		goto fail;
	if ((st.fd = openat(s->tmp, name, O_RDWR | O_CLOEXEC)) == -1 ||
	    ftruncate(st.fd, (off_t)(st.hlen + kept)) == -1)
		goto fail;
	if (!seal) {
		/* cut, and say so in the header, durably, before anything
		 * that trusted the old length (the window) is rewritten */
		if (write_head(&st, CHUNK_STAGED, kept, count, crc) == -1 ||
		    durable_fdatasync(st.fd) == -1)
			goto fail;
	} else if ((o = stage_seal(s, &st)) == DURABLE_NOT_MOVED) {
		goto fail;
	} else if (o == DURABLE_MOVED_UNSYNCED) {
		/* stored: see stage.h; the next seal or start syncs them */
		log_warn("tmp/%s: sealed %llu events left staged, but cannot "
		    "sync new/ or tmp/: %s", name, (unsigned long long)count,
		    strerror(errno));
	} else {
		log_info("tmp/%s: sealed %llu events left staged", name,
		    (unsigned long long)count);
	}
	if (st.fd != -1)
		close(st.fd);
	buf_free(&st.head);
	buf_free(&body);
	spool_release(&c);
	return 0;
fail:
	log_warn("tmp/%s: cannot recover: %s", name, strerror(errno));
	if (st.fd != -1)
		close(st.fd);
	buf_free(&st.head);
	buf_free(&body);
	spool_release(&c);
	return -1;
}

int
stage_recover(struct spool *s, stage_kept_fn fn, void *ctx, int seal)
{
	struct spool_list l;
	int rc = 0;

	if (spool_list(s->tmp, &l) == -1)
		return -1;
	for (size_t i = 0; i < l.n; i++)
		if (recover_one(s, l.names[i], fn, ctx, seal) == -1)
			rc = -1;
	spool_list_free(&l);
	return rc;
}
