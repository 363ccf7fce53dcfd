#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"
#include "log.h"
#include "spool.h"
#include "stream.h"

static const char *spool_dirs[] = { "tmp", "new", "dead", "state" };

uint64_t
spool_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int
opendirat(int at, const char *name, int create)
{
	int fd;

	if (create && mkdirat(at, name, 0755) == -1 && errno != EEXIST)
		return -1;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd;
}

int
spool_open(struct spool *s, const char *path, int create, char *err,
    size_t errlen)
{
	int *fds[] = { &s->tmp, &s->new, &s->dead, &s->state };
	struct stat top, st;
	size_t i;

	memset(s, 0, sizeof *s);
	s->fd = s->tmp = s->new = s->dead = s->state = s->lockfd = -1;
	if ((s->path = strdup(path)) == NULL)
		goto fail;
	if (create && mkdir(path, 0755) == -1 && errno != EEXIST)
		goto fail;
	if ((s->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if (fstat(s->fd, &top) == -1)
		goto fail;
	for (i = 0; i < 4; i++) {
		if ((*fds[i] = opendirat(s->fd, spool_dirs[i], create)) == -1) {
			snprintf(err, errlen, "%s/%s: %s", path, spool_dirs[i],
			    strerror(errno));
			spool_close(s);
			return -1;
		}
		/* rename(2) between these folders needs one filesystem */
		if (fstat(*fds[i], &st) == -1)
			goto fail;
		if (st.st_dev != top.st_dev) {
			snprintf(err, errlen, "%s/%s is on another filesystem than %s",
			    path, spool_dirs[i], path);
			spool_close(s);
			return -1;
		}
	}
	if (create && durable_fsync(s->fd) == -1)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	spool_close(s);
	return -1;
}

void
spool_close(struct spool *s)
{
	int fds[] = { s->fd, s->tmp, s->new, s->dead, s->state, s->lockfd };

	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(s->path);
	s->path = NULL;
	s->fd = s->tmp = s->new = s->dead = s->state = s->lockfd = -1;
}

int
spool_lock(struct spool *s)
{
	if (s->lockfd == -1 &&
	    (s->lockfd = openat(s->fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		return -1;
	return flock(s->lockfd, LOCK_EX | LOCK_NB);
}

int
spool_is_chunk_name(const char *name)
{
	size_t n = strlen(name);

	/* names longer than lf makes are not chunks of a spool */
	return name[0] != '.' && n > 6 && n < SPOOL_NAMELEN &&
	    strcmp(name + n - 6, ".chunk") == 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_list(int dirfd, struct spool_list *l)
{
	DIR *d;
	struct dirent *e;
	size_t cap = 0;
	char **names;
	int fd;

	l->names = NULL;
	l->n = 0;
	if ((fd = dup(dirfd)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		if ((e = readdir(d)) == NULL) {
			if (errno != 0)
				goto fail;	/* a short listing must not look whole */
			break;
		}
		if (!spool_is_chunk_name(e->d_name))
			continue;
		if (l->n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((names = realloc(l->names, cap * sizeof *names)) == NULL)
				goto fail;
			l->names = names;
		}
		if ((l->names[l->n] = strdup(e->d_name)) == NULL)
			goto fail;
		l->n++;
	}
	closedir(d);
	if (l->n)
		qsort(l->names, l->n, sizeof *l->names, cmp_names);
	return 0;
fail:
	closedir(d);
	spool_list_free(l);
	return -1;
}

void
spool_list_free(struct spool_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	l->names = NULL;
	l->n = 0;
}

void
spool_ready_name(char name[SPOOL_NAMELEN], uint64_t seal_us,
    const unsigned char id[16])
{
	char hex[33];

	chunk_id_hex(id, hex);
	snprintf(name, SPOOL_NAMELEN, "%016llx.%s.chunk",
	    (unsigned long long)seal_us, hex);
}

static const char *
file_kind(mode_t m)
{
	static const struct { mode_t type; const char *what; } kinds[] = {
		{ S_IFDIR, "a directory" }, { S_IFIFO, "a FIFO" },
		{ S_IFLNK, "a symbolic link" }, { S_IFSOCK, "a socket" },
		{ S_IFCHR, "a character device" }, { S_IFBLK, "a block device" },
	};

	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if ((m & S_IFMT) == kinds[i].type)
			return kinds[i].what;
	return "of an unknown type";
}

static int
not_file(mode_t m, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s, not a regular file", file_kind(m));
	return SPOOL_NOTFILE;
}

int
spool_file_open(int dirfd, const char *name, char *err, size_t errlen)
{
	struct stat st;
	int fd, e;

	/* look first: opening a device, or a FIFO without O_NONBLOCK, can
	 * do things or wait for ever; a symbolic link could lead anywhere */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (!S_ISREG(st.st_mode))
		return not_file(st.st_mode, err, errlen);
	/* and after: it may have been swapped meanwhile */
	fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ELOOP ? not_file(S_IFLNK, err, errlen) : -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		e = errno;
		close(fd);
		errno = e;
		return S_ISREG(st.st_mode) ? -1 : not_file(st.st_mode, err, errlen);
	}
	/* a plain descriptor for the tools from now on; a regular file
	 * ignores O_NONBLOCK when it reads, so a failure here changes nothing */
	(void)fcntl(fd, F_SETFL, 0);
	return fd;
}

/* Read and decode the header of an open chunk file. */
static int
read_head(struct spool_chunk *c, char *err, size_t errlen)
{
	struct stat st;
	size_t want = 4096;
	int n, rc;

	if (fstat(c->fd, &st) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		return SPOOL_EIO;
	}
	if (!S_ISREG(st.st_mode))
		return not_file(st.st_mode, err, errlen);
	c->size = (uint64_t)st.st_size;
	for (;;) {
		buf_reset(&c->head);
		if (buf_reserve(&c->head, want) == -1) {
			snprintf(err, errlen, "out of memory");
			return SPOOL_EIO;
		}
		while ((n = (int)pread(c->fd, c->head.p, want, 0)) == -1 && errno == EINTR)
			;
		if (n == -1) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return SPOOL_EIO;
		}
		c->head.len = (size_t)n;
		rc = chunk_head_decode(c->head.p, c->head.len, &c->h, err, errlen);
		if (rc != 1)
			return rc;
		if ((size_t)n < want || c->h.hlen <= want) {
			snprintf(err, errlen, "chunk file is shorter than its header");
			return -1;
		}
		want = c->h.hlen;
	}
}

static void
chunk_init(struct spool_chunk *c, int dirfd, const char *name)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->dirfd = dirfd;
	snprintf(c->name, sizeof c->name, "%s", name);
}

/* Release c on failure, keeping errno for the caller. */
static int
chunk_failed(struct spool_chunk *c, int rc)
{
	int e = errno;

	spool_release(c);
	errno = e;
	return rc;
}

int
spool_chunk_fdopen(int fd, const char *name, struct spool_chunk *c,
    char *err, size_t errlen)
{
	int rc;

	chunk_init(c, AT_FDCWD, name);
	c->fd = fd;
	if ((rc = read_head(c, err, errlen)) < 0)
		return chunk_failed(c, rc);
	return 0;
}

int
spool_chunk_open(int dirfd, const char *name, struct spool_chunk *c,
    char *err, size_t errlen)
{
	int fd, rc, e;

	chunk_init(c, dirfd, name);
	if ((fd = spool_file_open(dirfd, name, err, errlen)) < 0) {
		if (fd == SPOOL_NOTFILE)
			return fd;
		e = errno;
		snprintf(err, errlen, "%s", strerror(e));
		errno = e;
		return SPOOL_EIO;
	}
	if ((rc = spool_chunk_fdopen(fd, name, c, err, errlen)) == 0)
		c->dirfd = dirfd;
	return rc;
}

int
spool_claim(struct spool *s, const char *name, struct spool_chunk *c,
    char *err, size_t errlen)
{
	struct stat a, b;
	int rc;

	chunk_init(c, s->new, name);
	if ((c->fd = spool_file_open(s->new, name, err, errlen)) < 0) {
		rc = c->fd;
		c->fd = -1;
		if (rc == SPOOL_NOTFILE)
			return rc;	/* no claim: nothing lf wrote */
		if (errno == ENOENT)
			return 0;	/* delivered by another consumer */
		snprintf(err, errlen, "open: %s", strerror(errno));
		return SPOOL_EIO;
	}
	if (flock(c->fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			goto taken;
		/* no locks here (NFS?): say so, never skip it in silence */
		snprintf(err, errlen, "flock: %s", strerror(errno));
		return chunk_failed(c, SPOOL_EIO);
	}
	/* the holder before us may have delivered and unlinked it */
	if (fstat(c->fd, &a) == -1 ||
	    fstatat(s->new, name, &b, AT_SYMLINK_NOFOLLOW) == -1 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		goto taken;
	if ((rc = read_head(c, err, errlen)) < 0)
		return rc;
	if (c->h.state != CHUNK_SEALED) {
		snprintf(err, errlen, "chunk in new/ is not sealed");
		return -1;
	}
	if (c->size < c->h.hlen || c->h.bodylen != c->size - c->h.hlen) {
		snprintf(err, errlen, "chunk file is %llu bytes, header says %llu",
		    (unsigned long long)c->size,
		    (unsigned long long)(c->h.hlen + c->h.bodylen));
		return -1;
	}
	return 1;
taken:
	spool_release(c);
	return 0;
}

/* ---- reading a body in bounded memory ---- */

void
spool_body_init(struct spool_body *b, struct spool_chunk *c)
{
	memset(b, 0, sizeof *b);
	b->c = c;
}

void
spool_body_free(struct spool_body *b)
{
	buf_free(&b->win);
}

/* The next block of the body into win, and into the CRC. */
static int
read_block(struct spool_body *b, char *err, size_t errlen)
{
	struct spool_chunk *c = b->c;
	uint64_t left = c->h.bodylen - b->off;
	size_t want = left < SPOOL_BLOCK ? (size_t)left : SPOOL_BLOCK;
	ssize_t got;

	if (buf_reserve(&b->win, want) == -1) {
		snprintf(err, errlen, "out of memory");
		return SPOOL_EIO;
	}
	while ((got = pread(c->fd, b->win.p + b->win.len, want,
	    (off_t)(c->h.hlen + b->off))) == -1 && errno == EINTR)
		;
	if (got <= 0) {
		snprintf(err, errlen, "cannot read the chunk body: %s",
		    got == 0 ? "file shrank" : strerror(errno));
		return SPOOL_EIO;
	}
	b->crc = chunk_crc(b->crc, b->win.p + b->win.len, (size_t)got);
	b->off += (uint64_t)got;
	b->win.len += (size_t)got;
	return 0;
}

/* The head of an entry as stream_iter_next takes it: a 2-element array,
 * then an EventTime as fixext8.  1 and its length, 0 if p[0..n) is too
 * short to tell, -1 if it is not one. */
static int
entry_head(const unsigned char *p, size_t n, size_t *len)
{
	size_t a = p[0] == 0x92 ? 1 : p[0] == 0xdc ? 3 : p[0] == 0xdd ? 5 : 0;

	if (a == 0)
		return -1;
	if (n < a + 10)
		return 0;
	if ((a == 3 && memcmp(p + 1, "\0\2", 2) != 0) ||
	    (a == 5 && memcmp(p + 1, "\0\0\0\2", 4) != 0) ||
	    p[a] != 0xd7 || p[a + 1] != 0)
		return -1;
	*len = a + 10;
	return 1;
}

/* Step pos over the whole entries in win, and return how many.  An entry
 * is tried in place first, as a whole body would be; one that fails may
 * only be cut by the end of the block, so its record is scanned (mp_scan
 * goes on from where it stopped as blocks come, with the depth bound
 * stream_iter_next gives a record) until its end is known, then the
 * entry is tried again. */
static uint64_t
walk(struct spool_body *b)
{
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *e;
	uint64_t n = 0;
	size_t len, have;
	int rc;

	while (b->pos < b->win.len) {
		e = b->win.p + b->pos;
		have = b->win.len - b->pos;
		if (b->head == 0) {
			stream_iter_init(&it, e, have);
			if (stream_iter_next(&it, &ev) == 1) {
				b->pos += (size_t)(it.p - e);
				n++;
				continue;
			}
			if ((rc = entry_head(e, have, &b->head)) <= 0) {
				b->bad = rc == -1;
				break;
			}
			/* a record cannot run past the body: one whose
			 * header claims more is bad at once, and never
			 * makes win hold the rest of the body */
			mp_scan_init(&b->scan, MP_MAXDEPTH, (size_t)(b->c->h.bodylen -
			    (b->off - b->win.len + b->pos) - b->head));
		}
		rc = mp_scan(&b->scan, e + b->head, have - b->head, &len);
		if (rc == MP_MORE)
			break;
		len += b->head;
		stream_iter_init(&it, e, rc == MP_OK ? len : 0);
		if (rc != MP_OK || stream_iter_next(&it, &ev) != 1 ||
		    it.p != e + len) {
			b->bad = 1;
			break;
		}
		b->head = 0;
		b->pos += len;
		n++;
	}
	b->count += n;
	return n;
}

/* At the end of the body: which check failed, as spool_chunk_verify has
 * always said it: the CRC first, then the entries, then their count. */
static int
body_end(struct spool_body *b, char *err, size_t errlen)
{
	if (b->crc != b->c->h.bodycrc) {
		snprintf(err, errlen, "chunk body checksum mismatch");
		return -1;
	}
	if (b->bad || b->win.len > 0) {
		snprintf(err, errlen, "chunk body has a bad entry after %llu events",
		    (unsigned long long)b->count);
		return -1;
	}
	if (b->count != b->c->h.count) {
		snprintf(err, errlen, "chunk body holds %llu events, header says %llu",
		    (unsigned long long)b->count, (unsigned long long)b->c->h.count);
		return -1;
	}
	return 0;
}

int
spool_body_next(struct spool_body *b, const unsigned char **p, size_t *n,
    uint64_t *count, char *err, size_t errlen)
{
	struct spool_chunk *c = b->c;
	int rc;

	if (b->off == 0 && b->win.len == 0 && (c->size < c->h.hlen ||
	    c->h.bodylen > c->size - c->h.hlen)) {
		snprintf(err, errlen, "chunk body is cut short: %llu of %llu bytes",
		    (unsigned long long)(c->size < c->h.hlen ? 0 : c->size - c->h.hlen),
		    (unsigned long long)c->h.bodylen);
		return -1;
	}
	for (;;) {
		/* drop what was given out; keep the entry it cut */
		buf_consume(&b->win, b->pos);
		b->pos = 0;
		if (b->off == c->h.bodylen)
			return body_end(b, err, errlen);
		if ((rc = read_block(b, err, errlen)) != 0)
			return rc;
		if (b->bad) {
			b->win.len = 0;		/* only the CRC is wanted now */
			continue;
		}
		if ((*count = walk(b)) > 0) {
			*p = b->win.p;
			*n = b->pos;
			return 1;
		}
	}
}

int
spool_chunk_verify(struct spool_chunk *c, char *err, size_t errlen)
{
	struct spool_body b;
	const unsigned char *p;
	size_t n;
	uint64_t count;
	int rc;

	spool_body_init(&b, c);
	while ((rc = spool_body_next(&b, &p, &n, &count, err, errlen)) == 1)
		;
	spool_body_free(&b);
	return rc;
}

int
spool_done(struct spool *s, struct spool_chunk *c)
{
	int rc = unlinkat(s->new, c->name, 0), e = errno;

	spool_release(c);
	errno = e;
	return rc;
}

void
spool_release(struct spool_chunk *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->head);
}

int
spool_bury(struct spool *s, int dirfd, const char *name, const char *reason)
{
	char rname[SPOOL_NAMELEN + 8];
	struct buf r = BUF_INIT;
	struct stat st;
	int rc, e;

	snprintf(rname, sizeof rname, "%s.reason", name);
	if (buf_printf(&r, "%s\n", reason) == -1)
		return -1;
	rc = durable_replace(s->dead, rname, r.p, r.len);
	buf_free(&r);
	if (rc == -1)
		return -1;
	/* never over a dead letter of the same name */
	switch (durable_commit(-1, NULL, 0, 0, dirfd, name, s->dead, name,
	    RENAME_NOREPLACE)) {
	case DURABLE_NOT_MOVED:
		e = errno;
		/* a dead letter of that name (another process buried it
		 * first) keeps a reason beside it */
		if (fstatat(s->dead, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			unlinkat(s->dead, rname, 0);
		errno = e;
		return -1;
	case DURABLE_MOVED_UNSYNCED:
		/* moved: a crash may only undo the move, and the chunk is
		 * checked and buried again */
		log_warn("dead/%s: cannot sync dead/ or the folder it came "
		    "from: %s", name, strerror(errno));
		break;
	case DURABLE_DONE:
		break;
	}
	return 0;
}

int
spool_requeue(struct spool *s, const char *name)
{
	char rname[SPOOL_NAMELEN + 8];
	int rc = 0, e = 0;

	/* never over a chunk of the same name already queued */
	switch (durable_commit(-1, NULL, 0, 0, s->dead, name, s->new, name,
	    RENAME_NOREPLACE)) {
	case DURABLE_NOT_MOVED:
		return -1;
	case DURABLE_MOVED_UNSYNCED:
		/* queued: a crash may only put it back in dead/ */
		e = errno;
		log_warn("new/%s: requeued, but cannot sync new/ or dead/: %s",
		    name, strerror(e));
		rc = 1;
		break;
	case DURABLE_DONE:
		break;
	}
	snprintf(rname, sizeof rname, "%s.reason", name);
	if ((unlinkat(s->dead, rname, 0) == -1 && errno != ENOENT) ||
	    durable_fsync(s->dead) == -1)
		log_warn("dead/%s: reason not removed for sure: %s", rname,
		    strerror(errno));
	errno = e;
	return rc;
}
