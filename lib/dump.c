/* dump: see dump.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dump.h"
#include "durable.h"
#include "io.h"
#include "stream.h"

void
dump_pool_init(struct dump_pool *p, size_t limit, size_t flush_bytes)
{
	memset(p, 0, sizeof *p);
	p->limit = limit;
	p->flush_bytes = flush_bytes;
	p->tail = &p->head;
}

static void
pool_queue(struct dump_pool *p, size_t i)
{
	struct dump_batch *b = p->open[i];

	b->next = NULL;
	*p->tail = b;
	p->tail = &b->next;
	p->open[i] = p->open[--p->nopen];
}

int
dump_pool_add(struct dump_pool *p, const char *tag, size_t taglen,
    const unsigned char *ents, size_t len, size_t count)
{
	struct dump_batch *b, **o;
	unsigned char *e;
	size_t i, cap;

	for (i = 0; i < p->nopen; i++)
		if (p->open[i]->taglen == taglen &&
		    memcmp(p->open[i]->tag, tag, taglen) == 0)
			break;
	if (i == p->nopen) {
		if (p->nopen == p->capopen) {
			cap = p->capopen ? p->capopen * 2 : 8;
			if ((o = reallocarray(p->open, cap, sizeof *o)) == NULL)
				return -1;
			p->open = o;
			p->capopen = cap;
		}
		if ((b = calloc(1, sizeof *b)) == NULL ||
		    (b->tag = malloc(taglen + 1)) == NULL) {
			free(b);
			return -1;
		}
		memcpy(b->tag, tag, taglen);
		b->tag[taglen] = '\0';
		b->taglen = taglen;
		/* what is held is what is allocated: many tiny batches of
		 * many tags must not hide behind the bytes of their events */
		p->bytes += sizeof *b + taglen + 1;
		p->open[p->nopen++] = b;
		p->batches++;
	}
	b = p->open[i];
	if (b->len + len > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		if ((e = realloc(b->ents, cap)) == NULL)
			return -1;
		p->bytes += cap - b->cap;
		b->ents = e;
		b->cap = cap;
	}
	memcpy(b->ents + b->len, ents, len);
	b->len += len;
	b->count += count;
	if (b->len >= p->flush_bytes)
		pool_queue(p, i);
	return 0;
}

void
dump_pool_close_all(struct dump_pool *p)
{
	while (p->nopen > 0)
		pool_queue(p, 0);
}

struct dump_batch *
dump_pool_take(struct dump_pool *p)
{
	struct dump_batch *b = p->head;

	if (b == NULL)
		return NULL;
	if ((p->head = b->next) == NULL)
		p->tail = &p->head;
	b->next = NULL;
	return b;
}

int
dump_pool_full(const struct dump_pool *p)
{
	return p->bytes >= p->limit;
}

void
dump_batch_free(struct dump_pool *p, struct dump_batch *b)
{
	p->bytes -= sizeof *b + b->taglen + 1 + b->cap;
	p->batches--;
	free(b->ents);
	free(b->tag);
	free(b);
}

void
dump_pool_free(struct dump_pool *p)
{
	struct dump_batch *b;

	dump_pool_close_all(p);
	while ((b = dump_pool_take(p)) != NULL)
		dump_batch_free(p, b);
	free(p->open);
	p->open = NULL;
	p->capopen = 0;
}

/* ---- dump files ---- */

int
dump_open(struct dump_file *f, const char *dir, char *err, size_t n)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	if ((f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, n, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(f->tmp, sizeof f->tmp, ".dump.%ld.tmp", (long)getpid());
	f->fd = openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0644);
	if (f->fd == -1) {
		snprintf(err, n, "%s/%s: %s", dir, f->tmp, strerror(errno));
		close(f->dirfd);
		return -1;
	}
	return 0;
}

int
dump_add(struct dump_file *f, const struct dump_batch *b)
{
	struct buf head = BUF_INIT, opts = BUF_INIT;
	struct iovec iov[3];
	int rc = -1;

	if (stream_pack_head(&head, b->tag, b->taglen, b->len) == -1 ||
	    stream_pack_options(&opts, b->count, NULL, 0) == -1)
		goto out;
	iov[0].iov_base = head.p;
	iov[0].iov_len = head.len;
	iov[1].iov_base = b->ents;
	iov[1].iov_len = b->len;
	iov[2].iov_base = opts.p;
	iov[2].iov_len = opts.len;
	if (io_writev_all(f->fd, iov, 3) == -1)
		goto out;
	f->messages++;
	f->events += b->count;
	f->bytes += head.len + b->len + opts.len;
	rc = 0;
out:
	buf_free(&head);
	buf_free(&opts);
	return rc;
}

int
dump_commit(struct dump_file *f, char *err, size_t n)
{
	static unsigned seq;
	struct timeval tv;
	struct tm tm;
	char ts[32];
	enum durable_outcome o;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
		snprintf(f->name, sizeof f->name, "dump-%s.%06ldZ-%ld-%u.lf",
		    ts, (long)tv.tv_usec, (long)getpid(), seq++);
		o = durable_commit(f->fd, NULL, 0, 0, f->dirfd, f->tmp,
		    f->dirfd, f->name, RENAME_NOREPLACE);
		if (o != DURABLE_NOT_MOVED || errno != EEXIST)
			break;
	}
	close(f->fd);
	f->fd = -1;
	if (o == DURABLE_NOT_MOVED) {
		snprintf(err, n, "%s: %s", f->tmp, strerror(errno));
		unlinkat(f->dirfd, f->tmp, 0);
		close(f->dirfd);
		return -1;
	}
	close(f->dirfd);
	if (o == DURABLE_MOVED_UNSYNCED) {
		snprintf(err, n, "%s: the folder's fsync failed: %s", f->name,
		    strerror(errno));
		return 1;
	}
	return 0;
}

void
dump_abort(struct dump_file *f)
{
	if (f->fd != -1)
		close(f->fd);
	unlinkat(f->dirfd, f->tmp, 0);
	close(f->dirfd);
	f->fd = -1;
}
