#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chunk.h"
#include "durable.h"
#include "io.h"
#include "window.h"

static const unsigned char zero16[16];

void
window_hash(const unsigned char *tok, size_t n, unsigned char h[16])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	/* a cryptographic hash: a sender must not be able to forge another
	 * sender's id and have that sender's chunk taken as a duplicate */
	EVP_Digest(tok, n, md, &mdlen, EVP_sha256(), NULL);
	memcpy(h, md, 16);
	if (memcmp(h, zero16, 16) == 0)
		h[0] = 1;	/* all zeros marks an empty slot */
}

static size_t
slot(const unsigned char h[16], size_t nslots)
{
	uint64_t v;

	memcpy(&v, h, sizeof v);
	return (size_t)(v % nslots);
}

static int
set_has(const unsigned char *set, size_t nslots, const unsigned char h[16])
{
	for (size_t i = slot(h, nslots);; i = (i + 1) % nslots) {
		const unsigned char *e = set + 16 * i;
		if (memcmp(e, zero16, 16) == 0)
			return 0;
		if (memcmp(e, h, 16) == 0)
			return 1;
	}
}

/* Two generations of at most cap ids each: when the current one fills,
 * the older is forgotten.  Tables are half full at most. */
static void
insert(struct window *w, const unsigned char h[16])
{
	size_t nslots = 2 * w->cap;
	unsigned char *set;

	if (window_has(w, h))
		return;
	if (w->n[w->cur] == w->cap) {
		w->cur ^= 1;
		memset(w->set[w->cur], 0, 16 * nslots);
		w->n[w->cur] = 0;
	}
	set = w->set[w->cur];
	for (size_t i = slot(h, nslots);; i = (i + 1) % nslots) {
		if (memcmp(set + 16 * i, zero16, 16) == 0) {
			memcpy(set + 16 * i, h, 16);
			w->n[w->cur]++;
			return;
		}
	}
}

int
window_has(const struct window *w, const unsigned char h[16])
{
	return set_has(w->set[0], 2 * w->cap, h) || set_has(w->set[1], 2 * w->cap, h);
}

static void
put_rec(unsigned char r[WINDOW_REC], const unsigned char h[16],
    const unsigned char id[16], uint64_t len)
{
	uint32_t crc;

	memcpy(r, h, 16);
	memcpy(r + 16, id, 16);
	for (int i = 0; i < 8; i++)
		r[32 + i] = (unsigned char)(len >> (56 - 8 * i));
	crc = chunk_crc(0, r, 40);
	for (int i = 0; i < 4; i++)
		r[40 + i] = (unsigned char)(crc >> (24 - 8 * i));
	memset(r + 44, 0, 4);
}

static uint64_t
get_len(const unsigned char r[WINDOW_REC])
{
	uint64_t len = 0;

	for (int i = 0; i < 8; i++)
		len = len << 8 | r[32 + i];
	return len;
}

/* Read the log.  A record that fails its CRC (torn) or is void is
 * skipped; one whose chunk kept fewer bytes is voided where it is, which
 * needs no free space.  1 if some were voided, 0, or -1. */
static int
load(struct window *w, window_valid_fn valid, void *ctx)
{
	unsigned char r[WINDOW_REC];
	uint32_t crc;
	int n, voided = 0;

	for (off_t off = 0; off < w->end; off += WINDOW_REC) {
		if ((n = io_read_all(w->fd, r, sizeof r)) == -1)
			return -1;
		if (n < (int)sizeof r)
			break;
		w->filerecs++;
		crc = (uint32_t)r[40] << 24 | (uint32_t)r[41] << 16 |
		    (uint32_t)r[42] << 8 | r[43];
		if (crc != chunk_crc(0, r, 40) || memcmp(r, zero16, 16) == 0)
			continue;
		if (memcmp(r + 16, zero16, 16) != 0 &&
		    !valid(ctx, r + 16, get_len(r))) {
			/* its events were cut: it was never acked */
			put_rec(r, zero16, zero16, 0);
			if (durable_pwrite_all(w->fd, r, sizeof r, off) == -1)
				return -1;
			voided = 1;
			continue;
		}
		insert(w, r);
	}
	return voided;
}

int
window_open(struct window *w, int statedir, size_t cap,
    window_valid_fn valid, void *ctx)
{
	struct stat sb;
	int voided;

	memset(w, 0, sizeof *w);
	w->fd = -1;
	w->dirfd = statedir;
	w->cap = cap ? cap : 1;
	w->set[0] = calloc(2 * w->cap, 16);
	w->set[1] = calloc(2 * w->cap, 16);
	if (w->set[0] == NULL || w->set[1] == NULL)
		goto fail;
	/* O_NONBLOCK and O_NOFOLLOW: something else under its name (a FIFO,
	 * a link) is refused at once, never waited on or followed */
	w->fd = openat(statedir, "window", O_RDWR | O_CREAT | O_NONBLOCK |
	    O_NOFOLLOW | O_CLOEXEC, 0644);
	if (w->fd == -1 || fstat(w->fd, &sb) == -1)
		goto fail;
	if (!S_ISREG(sb.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	(void)fcntl(w->fd, F_SETFL, 0);
	/* the log is changed in place, never copied, so that a start works
	 * on a full disk: a torn last record is cut off, voided records are
	 * overwritten, and both are synced before the chunks they concern
	 * are sealed */
	w->end = sb.st_size - sb.st_size % WINDOW_REC;
	if (w->end != sb.st_size && ftruncate(w->fd, w->end) == -1)
		goto fail;
	if ((voided = load(w, valid, ctx)) == -1)
		goto fail;
	if ((voided || w->end != sb.st_size) && durable_fsync(w->fd) == -1)
		goto fail;
	/* a log longer than it needs be is compacted by the next sync */
	return 0;
fail:
	window_close(w);
	return -1;
}

void
window_close(struct window *w)
{
	if (w->fd != -1)
		close(w->fd);
	w->fd = -1;
	free(w->set[0]);
	free(w->set[1]);
	w->set[0] = w->set[1] = NULL;
	buf_free(&w->out);
	buf_free(&w->pending);
}

int
window_add(struct window *w, const unsigned char h[16],
    const unsigned char id[16], uint64_t len)
{
	unsigned char r[WINDOW_REC];

	put_rec(r, h, id, len);
	if (buf_add(&w->out, r, sizeof r) == -1 || buf_add(&w->pending, h, 16) == -1)
		return -1;
	return 0;
}

void
window_commit(struct window *w)
{
	for (size_t i = 0; i < w->pending.len; i += 16)
		insert(w, w->pending.p + i);
	buf_reset(&w->pending);
	buf_reset(&w->out);
	w->written = 0;
}

int
window_pending(const struct window *w, const unsigned char h[16])
{
	for (size_t i = 0; i < w->pending.len; i += 16)
		if (memcmp(w->pending.p + i, h, 16) == 0)
			return 1;
	return 0;
}

/* After a compaction: the new log, opened again by the next write if
 * this fails (out of descriptors). */
static int
reopen(struct window *w)
{
	if (w->fd == -1)
		w->fd = openat(w->dirfd, "window", O_RDWR | O_CLOEXEC);
	return w->fd == -1 ? -1 : 0;
}

int
window_write(struct window *w)
{
	size_t n = w->out.len - w->written;

	if (n == 0)
		return 0;
	if (reopen(w) == -1)
		return -1;
	if (w->written == 0)
		w->commit_off = w->end;
	if (durable_pwrite_all(w->fd, w->out.p + w->written, n, w->end) == -1) {
		/* no half record may stay: the log is read in whole records */
		int e = errno;
		(void)!ftruncate(w->fd, w->end);
		errno = e;
		return -1;
	}
	w->end += (off_t)n;
	w->written = w->out.len;
	w->filerecs += n / WINDOW_REC;
	w->unsynced = 1;
	return 0;
}

int
window_unwrite(struct window *w)
{
	if (w->written == 0)
		return 0;
	/* cutting a file needs no free space */
	if (ftruncate(w->fd, w->commit_off) == -1 || durable_fsync(w->fd) == -1)
		return -1;
	w->filerecs -= (size_t)(w->end - w->commit_off) / WINDOW_REC;
	w->end = w->commit_off;
	w->written = 0;
	w->unsynced = 0;
	return 0;
}

void
window_repoint(struct window *w, const unsigned char from[16],
    const unsigned char to[16], uint64_t delta)
{
	unsigned char h[16];

	for (size_t i = w->written; i + WINDOW_REC <= w->out.len; i += WINDOW_REC) {
		unsigned char *r = w->out.p + i;
		if (memcmp(r + 16, from, 16) != 0)
			continue;
		memcpy(h, r, 16);
		put_rec(r, h, to, get_len(r) - delta);
	}
}

/* The log holds every id of both generations, so it is rewritten from
 * them when it has grown past twice what they can hold. */
static int
compact(struct window *w)
{
	struct buf b = BUF_INIT;
	unsigned char r[WINDOW_REC];
	int rc = -1;

	for (int g = 0; g < 2; g++) {
		int gen = w->cur ^ 1 ^ g;	/* older generation first */
		for (size_t i = 0; i < 2 * w->cap; i++) {
			const unsigned char *e = w->set[gen] + 16 * i;
			if (memcmp(e, zero16, 16) == 0)
				continue;
			put_rec(r, e, zero16, 0);
			if (buf_add(&b, r, sizeof r) == -1)
				goto out;
		}
	}
	/* (1: replaced, only its folder is not synced: a crash may bring
	 * back the old log, which holds every id of the new one) */
	if (durable_replace(w->dirfd, "window", b.p, b.len) == -1)
		goto out;
	/* the old descriptor is of a file no longer named: never written */
	close(w->fd);
	w->fd = -1;
	w->end = (off_t)b.len;
	w->filerecs = b.len / WINDOW_REC;
	/* records of the commit under way are written again after these */
	w->written = 0;
	w->unsynced = 0;
	rc = reopen(w);
out:
	buf_free(&b);
	return rc;
}

int
window_sync(struct window *w)
{
	if (window_write(w) == -1)
		return -1;
	if (w->filerecs > 2 * w->cap)
		return compact(w);
	if (!w->unsynced)
		return 0;
	if (reopen(w) == -1 || durable_fsync(w->fd) == -1)
		return -1;
	w->unsynced = 0;
	return 0;
}
