#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "log.h"
#include "mp.h"
#include "stream.h"

static const unsigned char zero16[16];

void
buffer_conf_default(struct buffer_conf *c)
{
	memset(c, 0, sizeof *c);
	c->chunk_limit_size = 256ull << 20;
	c->chunk_full_threshold = 0.95;
	c->total_limit_size = 64ull << 30;
	c->flush_mode = FLUSH_DEFAULT;
	c->flush_interval = 60;
	c->flush_at_shutdown = 1;
	c->queued_chunks_limit_size = 1;
	c->timekey_wait = 600;
	c->overflow = OVERFLOW_THROW;
	c->dedup_window = 65536;
}

enum buffer_flush
buffer_flush_mode(const struct buffer_conf *c)
{
	if (c->flush_mode != FLUSH_DEFAULT)
		return c->flush_mode;
	return c->timekey > 0 ? FLUSH_LAZY : FLUSH_INTERVAL;
}

static int
conf_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

int
buffer_conf_check(const struct buffer_conf *c, char *err, size_t errlen)
{
	if (c->timekey > 0 && c->timekey < 1)
		return conf_err(err, errlen, "--timekey: at least 1s", NULL);
	if (c->chunk_limit_size < 1024)
		return conf_err(err, errlen, "--chunk-limit-size: at least 1k", NULL);
	if (c->dedup_window == 0)
		return conf_err(err, errlen, "--dedup-window: at least 1", NULL);
	if (c->nkeys > BUFFER_MAXKEYS)
		return conf_err(err, errlen, "--chunk-key: at most 8 keys", NULL);
	for (int i = 0; i < c->nkeys; i++) {
		const char *k = c->keys[i];
		/* a key names a part of the chunk's file name: kept plain */
		if (*k == '\0' || strlen(k) > 31 ||
		    strspn(k, "-_.@abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != strlen(k))
			return conf_err(err, errlen, "--chunk-key: bad key \"%s\"", k);
	}
	return 0;
}

/* ---- opening: recovery, then the window ---- */

struct kept {
	unsigned char (*id)[16];
	uint64_t *len;
	size_t n, cap;
	int failed;		/* out of memory: the window cannot be checked */
};

static void
kept_add(void *ctx, const unsigned char id[16], uint64_t len)
{
	struct kept *k = ctx;

	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 16;
		void *a = realloc(k->id, cap * 16), *b;
		if (a == NULL) {
			k->failed = 1;
			return;
		}
		k->id = a;
		if ((b = realloc(k->len, cap * sizeof *k->len)) == NULL) {
			k->failed = 1;
			return;
		}
		k->len = b;
		k->cap = cap;
	}
	memcpy(k->id[k->n], id, 16);
	k->len[k->n++] = len;
}

/* A window record is good unless it names a recovered chunk that kept
 * fewer bytes than the record's commit had: that commit never finished. */
static int
kept_valid(void *ctx, const unsigned char id[16], uint64_t len)
{
	struct kept *k = ctx;

	for (size_t i = 0; i < k->n; i++)
		if (memcmp(k->id[i], id, 16) == 0)
			return len <= k->len[i];
	return 1;
}

int
buffer_open(struct buffer *b, const char *path, const struct buffer_conf *c,
    char *err, size_t errlen)
{
	struct kept k = { 0 };
	int rc = -1;

	memset(b, 0, sizeof *b);
	b->conf = c;
	b->window.fd = -1;
	if (spool_open(&b->spool, path, 1, err, errlen) == -1)
		return -1;
	if (spool_lock(&b->spool) == -1) {
		if (errno == EWOULDBLOCK)
			rc = BUFFER_LOCKED;
		snprintf(err, errlen, "%s: %s", path, errno == EWOULDBLOCK ?
		    "another lf-buffer is writing this spool" : strerror(errno));
		goto out;
	}
	/* cut, void the window records of cut events, and only then let
	 * recovered chunks go */
	if (stage_recover(&b->spool, kept_add, &k, 0) == -1 || k.failed) {
		snprintf(err, errlen, "%s: cannot recover staged chunks", path);
		goto out;
	}
	if (window_open(&b->window, b->spool.state, c->dedup_window, kept_valid, &k) == -1) {
		if (errno == EINVAL || errno == ELOOP)	/* a FIFO, a link ... */
			snprintf(err, errlen, "%s/state/window is not a regular "
			    "file: move it away (a new one is made)", path);
		else
			snprintf(err, errlen, "%s/state/window: %s", path,
			    strerror(errno));
		goto out;
	}
	if (stage_recover(&b->spool, NULL, NULL, 1) == -1) {
		snprintf(err, errlen, "%s: cannot seal recovered chunks", path);
		goto out;
	}
	buffer_recount(b);
	rc = 0;
out:
	free(k.id);
	free(k.len);
	if (rc != 0)
		spool_close(&b->spool);
	return rc;
}

static void
free_list(struct stage **list)
{
	struct stage *st, *next;

	for (st = *list; st; st = next) {
		next = st->next;
		stage_free(st);
	}
	*list = NULL;
}

void
buffer_close(struct buffer *b)
{
	free_list(&b->stages);
	free_list(&b->renamed);
	window_close(&b->window);
	spool_close(&b->spool);
	buf_free(&b->keys);
	buf_free(&b->vars);
	buf_free(&b->spare);
	free(b->marks);
	b->marks = NULL;
}

/* ---- accounting ---- */

static uint64_t
dir_bytes(int dirfd, uint64_t *n)
{
	struct spool_list l;
	struct stat st;
	uint64_t sum = 0;

	*n = 0;
	if (spool_list(dirfd, &l) == -1)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		/* a symbolic link's target is not the spool's: not counted */
		if (fstatat(dirfd, l.names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			sum += (uint64_t)st.st_size;
			(*n)++;
		}
	}
	spool_list_free(&l);
	return sum;
}

void
buffer_recount(struct buffer *b)
{
	uint64_t nt, bytes;

	bytes = dir_bytes(b->spool.tmp, &nt) + dir_bytes(b->spool.new, &b->ready);
	for (struct stage *st = b->stages; st; st = st->next)
		bytes += st->wbuf.len + (st->state == STAGE_NEW ? st->hlen : 0);
	b->bytes = bytes;
	if (!b->spare_used)
		buf_free(&b->spare);
	b->spare_used = 0;
}

/* Drop the oldest ready chunk no consumer is delivering.  1, or 0 if none. */
static int
drop_oldest(struct buffer *b)
{
	struct spool_list l;
	struct spool_chunk c;
	char err[256];
	int rc = 0;

	if (spool_list(b->spool.new, &l) == -1)
		return 0;
	for (size_t i = 0; i < l.n && !rc; i++) {
		int got = spool_claim(&b->spool, l.names[i], &c, err, sizeof err);
		if (got != 1) {
			if (got < 0) {	/* corrupt or unreadable: the consumer's */
				LOG_WARN_LIMITED("%s: new/%s: not dropped: %s",
				    b->spool.path, l.names[i], err);
				spool_release(&c);
			}
			continue;
		}
		LOG_WARN_LIMITED("%s: spool full: dropped the oldest chunk new/%s (%llu events)",
		    b->spool.path, l.names[i], (unsigned long long)c.h.count);
		b->dropped_chunks++;
		b->dropped_events += c.h.count;
		spool_done(&b->spool, &c);
		rc = 1;
	}
	spool_list_free(&l);
	return rc;
}

int
buffer_room(struct buffer *b, uint64_t n)
{
	uint64_t limit = b->conf->total_limit_size;

	if (b->bytes + n <= limit)
		return 1;
	buffer_recount(b);
	while (b->bytes + n > limit) {
		if (b->conf->overflow != OVERFLOW_DROP_OLDEST || !drop_oldest(b))
			return 0;
		buffer_recount(b);
	}
	return 1;
}

/* ---- placing events ---- */

static int add(struct buffer *b, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count,
    const unsigned char *h);

static int64_t
time_slice(const struct buffer_conf *c, uint32_t sec)
{
	int64_t t = sec, k = (int64_t)c->timekey, off = 0;
	struct tm tm;
	time_t tt = (time_t)sec;

	if (!c->timekey_use_utc && localtime_r(&tt, &tm) != NULL)
		off = tm.tm_gmtoff;
	return t - (((t + off) % k) + k) % k;
}

/* The value of record key name in the map rec, as msgpack bytes; nil if
 * absent.  Only top-level keys. */
static int
record_value(struct buf *out, const unsigned char *rec, size_t reclen,
    const char *name)
{
	const unsigned char *p = rec, *end = rec + reclen, *v;
	struct mp_obj m, k;

	if (mp_read(&p, end, &m) == 0 && m.type == MP_MAP) {
		for (uint32_t i = 0; i < m.n; i++) {
			if (mp_read(&p, end, &k) == -1)
				break;
			v = p;
			if (mp_pass(&p, end) == -1)
				break;
			if (k.type == MP_STR && mp_streq(&k, name))
				return buf_add(out, v, (size_t)(p - v));
		}
	}
	return buf_addc(out, 0xc0);
}

static struct stage *
find_stage(struct buffer *b, const unsigned char *keys, size_t keyslen)
{
	for (struct stage *st = b->stages; st; st = st->next)
		if (!st->retired && st->key.len == keyslen &&
		    memcmp(st->key.p, keys, keyslen) == 0)
			return st;
	return NULL;
}

/* Make the files of the NEW stages that have entries: a chunk's file is
 * in tmp/ before any window record names it, since at start a record is
 * checked only against the chunks found there. */
static int
make_files(struct buffer *b)
{
	for (struct stage *st = b->stages; st; st = st->next)
		if (st->state == STAGE_NEW && st->wbuf.len > 0 &&
		    stage_create(&b->spool, st) == -1)
			return -1;
	return 0;
}

/* A sealed stage's write buffer is kept for the next stage.  When a
 * message fills a chunk by itself, as lf-send's chunks passed on by
 * lf-recv do, each stage's buffer would otherwise grow into fresh pages,
 * whose faults cost more than the copy: with chunks of 8 MiB on both
 * sides, lf-buffer behind lf-recv spent half its CPU on them
 * (bench/topology.sh).  At most BUFFER_SPARE bytes, and only until a
 * tick finds it unused (buffer_recount). */
static void
spare_keep(struct buffer *b, struct stage *st)
{
	if (st->wbuf.len != 0 || st->wbuf.cap > BUFFER_SPARE ||
	    st->wbuf.cap <= b->spare.cap)
		return;
	buf_free(&b->spare);
	b->spare = st->wbuf;
	st->wbuf = (struct buf)BUF_INIT;
}

static void
spare_take(struct buffer *b, struct stage *st)
{
	if (b->spare.cap == 0 || st->wbuf.cap != 0)
		return;
	st->wbuf = b->spare;
	b->spare = (struct buf)BUF_INIT;
	b->spare_used = 1;
}

/* A stage renamed into new/ leaves the list of stages; one whose folders
 * could not be synced waits in b->renamed for a sync that covers it. */
static void
sealed(struct buffer *b, struct stage *st, enum durable_outcome o)
{
	if (st->count > 0) {
		b->ready++;
		b->sealed_chunks++;
		b->sealed_events += st->count;
		b->sealed_bytes += st->committed;
	}
	if (o == DURABLE_MOVED_UNSYNCED) {
		LOG_WARN_LIMITED("%s: new/%s: sealed, but cannot sync new/ or "
		    "tmp/: %s (its events are stored; a crash may put it back "
		    "in tmp/, to be sealed again)", b->spool.path, st->ready,
		    strerror(errno));
		buf_free(&st->wbuf);
		st->next = b->renamed;
		b->renamed = st;
		return;
	}
	if (st->count > 0 && b->renamed) {
		/* this sync of new/ and tmp/ covers every rename before it */
		log_warn("%s: new/ and tmp/ synced again", b->spool.path);
		free_list(&b->renamed);
	}
	spare_keep(b, st);
	stage_free(st);
}

int
buffer_sync_dirs(struct buffer *b)
{
	if (b->renamed == NULL)
		return 0;
	if (stage_seal(&b->spool, b->renamed) != DURABLE_DONE)
		return -1;
	log_warn("%s: new/ and tmp/ synced again", b->spool.path);
	free_list(&b->renamed);
	return 0;
}

static int
seal_stage(struct buffer *b, struct stage *st)
{
	struct stage **pp;
	enum durable_outcome o;

	if (st->wbuf.len > 0 || st->dirty_head) {
		/* window records go to the log before any header that covers
		 * them; the seal's fdatasync makes these bytes durable */
		if (make_files(b) == -1 || window_write(&b->window) == -1 ||
		    stage_write(st) == -1 || stage_sync(st, 0) == -1)
			return -1;
	}
	if ((o = stage_seal(&b->spool, st)) == DURABLE_NOT_MOVED)
		return -1;
	for (pp = &b->stages; *pp != st; pp = &(*pp)->next)
		;
	*pp = st->next;
	log_debug("%s: sealed chunk of %llu events", b->spool.path,
	    (unsigned long long)st->count);
	sealed(b, st, o);
	return 0;
}

/* The disk is full: seal the committed part of every staged chunk, so
 * that consumers can deliver them and free space, since a chunk that
 * filled the disk alone would never be full nor sealed.  The entries of
 * the failed commit go on in a successor, whose file the next commit
 * makes; the window records that named the chunk as it would have been
 * after the commit are taken out of the log and name the successor. */
static void
seal_committed(struct buffer *b)
{
	struct stage **pp, *st, *succ;
	enum durable_outcome o;
	unsigned long n = 0;
	uint64_t events = 0;

	if (window_unwrite(&b->window) == -1) {
		LOG_WARN_LIMITED("%s: state/window: %s: staged chunks not sealed",
		    b->spool.path, strerror(errno));
		return;
	}
	for (pp = &b->stages; (st = *pp) != NULL; ) {
		succ = NULL;
		if (st->state != STAGE_STAGED || st->count == 0 || (st->wbuf.len &&
		    (succ = stage_new(st->key.p, st->key.len, st->has_timekey,
		    st->timekey)) == NULL)) {
			pp = &st->next;
			continue;
		}
		if ((o = stage_seal(&b->spool, st)) == DURABLE_NOT_MOVED) {
			LOG_WARN_LIMITED("%s: tmp/%s: cannot seal: %s", b->spool.path,
			    st->name, strerror(errno));
			stage_free(succ);
			pp = &st->next;
			continue;
		}
		n++;
		events += st->count;
		if (succ) {
			struct buf w = succ->wbuf;
			window_repoint(&b->window, st->id, succ->id, st->committed);
			succ->wbuf = st->wbuf;
			st->wbuf = w;
			succ->wcount = st->wcount;
			st->wcount = 0;
			succ->next = st->next;
			*pp = succ;
			pp = &succ->next;
		} else {
			*pp = st->next;
		}
		sealed(b, st, o);
	}
	if (n > 0)
		log_warn("%s: disk full: sealed %lu staged chunks (%llu events) "
		    "for the consumers to deliver", b->spool.path, n,
		    (unsigned long long)events);
}

static int
fits(const struct buffer_conf *c, const struct stage *st, size_t len, size_t count)
{
	if (stage_events(st) == 0)
		return 1;
	if (stage_size(st) + len > c->chunk_limit_size)
		return 0;
	return c->chunk_limit_records == 0 ||
	    stage_events(st) + count <= c->chunk_limit_records;
}

/* Append entries to the stage for keys, sealing it first if they do not
 * fit; entries too big for any chunk are split, one event at a time. */
static struct stage *
place(struct buffer *b, const unsigned char *keys, size_t keyslen, int has_tk,
    int64_t tk, const unsigned char *entries, size_t len, size_t count)
{
	const struct buffer_conf *c = b->conf;
	struct stage *st = find_stage(b, keys, keyslen);

	if (st && !fits(c, st, len, count)) {
		/* not sealed here: the events of the message being placed may
		 * be in it, and their window record is written by the commit */
		st->retired = 1;
		st = NULL;
	}
	if (st == NULL) {
		struct stage **pp;
		/* its file is made by the commit: adding does no I/O */
		if ((st = stage_new(keys, keyslen, has_tk, tk)) == NULL)
			return NULL;
		spare_take(b, st);
		/* kept in creation order, so a forced flush seals oldest first */
		for (pp = &b->stages; *pp; pp = &(*pp)->next)
			;
		*pp = st;
		b->bytes += st->hlen;
	}
	if (count > 1 && (st->hlen + len > c->chunk_limit_size ||
	    (c->chunk_limit_records && count > c->chunk_limit_records))) {
		struct stream_iter it;
		struct stream_event ev;
		const unsigned char *e = entries;
		stream_iter_init(&it, entries, len);
		while (stream_iter_next(&it, &ev) == 1) {
			st = place(b, keys, keyslen, has_tk, tk, e, (size_t)(it.p - e), 1);
			if (st == NULL)
				return NULL;
			e = it.p;
		}
		return st;
	}
	if (st->hlen + len > c->chunk_limit_size) {
		/* Fluentd skips a record over chunk_limit_size and keeps the rest */
		b->oversize_events++;
		LOG_WARN_LIMITED("%s: dropped an event of %zu bytes: over "
		    "chunk_limit_size", b->spool.path, len);
		return st;
	}
	if (stage_append(st, entries, len, count) == -1)
		return NULL;
	b->bytes += len;
	return st;
}

/* Chunk keys of one event: tag, time slice, record values. */
static int
event_keys(struct buffer *b, const char *tag, size_t taglen,
    const struct stream_event *ev, int64_t *tk)
{
	const struct buffer_conf *c = b->conf;
	struct buf *v = &b->vars;

	/* scratch buffers of the buffer: no allocation per event */
	buf_reset(&b->keys);
	buf_reset(v);
	if (c->nkeys > 0) {
		if (buf_addc(v, 0x80 | c->nkeys) == -1)
			return -1;
		for (int i = 0; i < c->nkeys; i++) {
			size_t n = strlen(c->keys[i]);
			/* names are < 32 bytes (checked by the option parser) */
			if (buf_addc(v, 0xa0 | (int)n) == -1 ||
			    buf_add(v, c->keys[i], n) == -1 ||
			    record_value(v, ev->rec, ev->reclen, c->keys[i]) == -1)
				return -1;
		}
	}
	*tk = c->timekey > 0 ? time_slice(c, ev->sec) : 0;
	return chunk_keys_encode(&b->keys, tag, taglen, c->timekey > 0, *tk,
	    c->nkeys ? v->p : NULL, v->len);
}

/* What buffer_add changes, so a failed add can be undone: a batch held
 * and offered again must not leave its first part stored twice.  (A
 * chunk that fills up is only retired during an add, never sealed, so
 * every change is in memory and can be undone.) */
struct mark {
	struct stage *st;
	unsigned char id[16];	/* the pointer alone may be a new stage's */
	size_t len;
	uint64_t count;
	int retired;
};

static struct mark *
mark_stages(struct buffer *b, size_t *n)
{
	struct mark *m;
	size_t i = 0;

	*n = 0;
	for (const struct stage *st = b->stages; st; st = st->next)
		(*n)++;
	/* kept between adds: no allocation per message */
	if (*n + 1 > b->nmarks) {
		if ((m = realloc(b->marks, (*n + 1) * sizeof *m)) == NULL)
			return NULL;
		b->marks = m;
		b->nmarks = *n + 1;
	}
	m = b->marks;
	for (struct stage *st = b->stages; st; st = st->next, i++) {
		m[i].st = st;
		memcpy(m[i].id, st->id, 16);
		m[i].len = st->wbuf.len;
		m[i].count = st->wcount;
		m[i].retired = st->retired;
	}
	return m;
}

static void
undo(struct buffer *b, const struct mark *m, size_t n)
{
	for (struct stage *st = b->stages; st; st = st->next) {
		size_t i;
		for (i = 0; i < n && (m[i].st != st || memcmp(m[i].id, st->id, 16)); i++)
			;
		if (i == n) {		/* made by this add: empty it */
			b->bytes -= st->wbuf.len;
			buf_reset(&st->wbuf);
			st->wcount = 0;
		} else if (st->wbuf.len >= m[i].len) {
			b->bytes -= st->wbuf.len - m[i].len;
			st->wbuf.len = m[i].len;
			st->wcount = m[i].count;
			st->retired = m[i].retired;
		}
	}
}

int
buffer_add(struct buffer *b, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count,
    const unsigned char *h)
{
	struct mark *m;
	size_t n;
	int rc, e;

	if ((m = mark_stages(b, &n)) == NULL)
		return -1;
	if ((rc = add(b, tag, taglen, entries, len, count, h)) == -1) {
		e = errno;
		undo(b, m, n);
		errno = e;
	}
	return rc;
}

static int
add(struct buffer *b, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count,
    const unsigned char *h)
{
	const struct buffer_conf *c = b->conf;
	struct stage *st = NULL;
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *e;
	int64_t tk;

	if (count == 0) {
		/* nothing to store, but the id is remembered: a re-send is acked */
	} else if (c->nkeys == 0 && c->timekey <= 0) {
		buf_reset(&b->keys);
		if (chunk_keys_encode(&b->keys, tag, taglen, 0, 0, NULL, 0) == -1)
			return -1;
		st = place(b, b->keys.p, b->keys.len, 0, 0, entries, len, count);
		if (st == NULL)
			return -1;
	} else {
		stream_iter_init(&it, entries, len);
		for (e = entries; stream_iter_next(&it, &ev) == 1; e = it.p) {
			if (event_keys(b, tag, taglen, &ev, &tk) == -1)
				return -1;
			st = place(b, b->keys.p, b->keys.len, c->timekey > 0, tk,
			    e, (size_t)(it.p - e), 1);
			if (st == NULL)
				return -1;
		}
	}
	if (h == NULL)
		return 0;
	return window_add(&b->window, h, st ? st->id : zero16,
	    st ? st->committed + st->wbuf.len : 0);
}

int
buffer_seen(struct buffer *b, const unsigned char h[16])
{
	return window_has(&b->window, h) || window_pending(&b->window, h);
}

static int
is_full(const struct buffer_conf *c, const struct stage *st)
{
	double t = c->chunk_full_threshold;

	return stage_size(st) >= (double)c->chunk_limit_size * t ||
	    (c->chunk_limit_records &&
	    stage_events(st) >= (double)c->chunk_limit_records * t);
}

static int
commit(struct buffer *b, int sync)
{
	struct stage *st;

	if (make_files(b) == -1 || window_write(&b->window) == -1)
		return -1;
	for (st = b->stages; st; st = st->next)
		if (stage_write(st) == -1)
			return -1;
	for (st = b->stages; st; st = st->next) {
		int dirty = st->dirty_head;
		if (stage_sync(st, sync) == -1)
			return -1;
		b->syncs += sync && dirty;
	}
	window_commit(&b->window);
	return 0;
}

int
buffer_commit(struct buffer *b, int sync)
{
	struct stage *st, *next;
	int e;

	if (commit(b, sync) == -1) {
		e = errno;
		if (e == ENOSPC || e == EDQUOT)
			seal_committed(b);
		errno = e;
		return -1;
	}
	for (st = b->stages; st; st = next) {
		next = st->next;
		if (st->count == 0)
			continue;
		if (buffer_flush_mode(b->conf) == FLUSH_IMMEDIATE || st->retired ||
		    is_full(b->conf, st))
			if (seal_stage(b, st) == -1)
				return -1;
	}
	return 0;
}

uint64_t
buffer_uncommitted(const struct buffer *b)
{
	uint64_t n = 0;

	for (const struct stage *st = b->stages; st; st = st->next)
		n += st->wcount;
	return n;
}

/* When a stage is due to be sealed, in microseconds since the epoch;
 * UINT64_MAX if only fullness, a signal or shutdown seals it. */
static uint64_t
due_us(const struct buffer_conf *c, const struct stage *st)
{
	uint64_t due = UINT64_MAX;

	if (buffer_flush_mode(c) == FLUSH_INTERVAL)
		due = st->created_us + (uint64_t)(c->flush_interval * 1e6);
	if (st->has_timekey) {
		/* Fluentd: a time slice closes timekey_wait after it ends */
		double end = (double)st->timekey + c->timekey + c->timekey_wait;
		uint64_t t = end > 0 ? (uint64_t)(end * 1e6) : 0;
		if (t < due)
			due = t;
	}
	return due;
}

int
buffer_flush(struct buffer *b, int force)
{
	uint64_t now = spool_now_us();
	struct stage *st, *next;
	int rc = 0;

	for (st = b->stages; st; st = next) {
		next = st->next;
		if (!force && !(st->retired && st->wbuf.len == 0)) {
			if (due_us(b->conf, st) > now || stage_events(st) == 0)
				continue;
			/* Fluentd's queued_chunks_limit_size holds back timed
			 * sealing while the queue is long; full chunks still go */
			if (!st->has_timekey && b->ready >= b->conf->queued_chunks_limit_size)
				continue;
			if (st->wbuf.len)	/* sealed by the next commit */
				continue;
		}
		if (seal_stage(b, st) == -1)
			rc = -1;
	}
	return rc;
}

/* ---- what a tool may read ---- */

const char *
buffer_path(const struct buffer *b)
{
	return b->spool.path;
}

void
buffer_stats(const struct buffer *b, struct buffer_stats *st)
{
	st->syncs = b->syncs;
	st->dropped_chunks = b->dropped_chunks;
	st->dropped_events = b->dropped_events;
	st->oversize_events = b->oversize_events;
	st->sealed_chunks = b->sealed_chunks;
	st->sealed_events = b->sealed_events;
	st->sealed_bytes = b->sealed_bytes;
}

int
buffer_sync_window(struct buffer *b)
{
	/* window_sync writes the records of a commit under way too, and
	 * they name its staged chunks: one whose file a failed commit could
	 * not make (ENOSPC) would be taken at the next start for a chunk
	 * sealed and delivered since, and a re-send of its events acked as
	 * a duplicate, the events lost.  So its file first (make_files'
	 * rule), or no records. */
	if (make_files(b) == -1)
		return -1;
	return window_sync(&b->window);
}
