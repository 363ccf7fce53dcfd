/* tail: following files; see tail.h. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tail.h"

#define TAIL_MAX_READS	16	/* reads of one file per check: fairness */
#define TAIL_IGNORED	64	/* compressed inodes remembered */

struct tail {
	struct ev_loop *loop;
	struct tail_conf c;
	struct tail_cbs cbs;
	struct tail_file *files;
	int ifd;			/* inotify, or -1 */
	ev_io in_w;
	ev_timer watch_t, refresh_t, kick_t;
	int paused, started, discovered, need_refresh, in_check;
	struct { uint64_t dev, ino; } ignored[TAIL_IGNORED];
	size_t nignored;
};

void
tail_conf_default(struct tail_conf *c)
{
	memset(c, 0, sizeof *c);
	c->refresh_interval = 60;
	c->rotate_wait = 5;
	c->watch_interval = 1;
	c->max_line_size = 1 << 20;
	c->read_size = 256 << 10;
}

int
tail_compressed(const unsigned char *p, size_t n)
{
	static const struct { const char *m; size_t n; } magic[] = {
		{ "\x1f\x8b", 2 },			/* gzip */
		{ "BZh", 3 },				/* bzip2 */
		{ "\xfd" "7zXZ\0", 6 },			/* xz */
		{ "\x28\xb5\x2f\xfd", 4 },		/* zstd */
		{ "\x04\x22\x4d\x18", 4 },		/* lz4 */
	};
	size_t i;

	for (i = 0; i < sizeof magic / sizeof magic[0]; i++)
		if (n >= magic[i].n && memcmp(p, magic[i].m, magic[i].n) == 0)
			return 1;
	return 0;
}

static int
has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Watch a folder for names coming and going and files growing. */
static void
watch_dir(struct tail *t, const char *path)
{
	char d[PATH_MAX];

	if (t->ifd == -1 || strlen(path) >= sizeof d)
		return;
	strcpy(d, path);
	/* a folder that does not exist yet is seen by the timer */
	(void)inotify_add_watch(t->ifd, dirname(d), IN_MODIFY | IN_CREATE |
	    IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE |
	    IN_ATTRIB | IN_ONLYDIR);
}

static void
kick(struct tail *t)
{
	if (!ev_is_active(&t->kick_t))
		ev_timer_start(t->loop, &t->kick_t);
}

static void
file_free(struct tail *t, struct tail_file *f)
{
	if (t->cbs.closed)
		t->cbs.closed(t->cbs.ctx, f);
	if (f->fd != -1)
		close(f->fd);
	buf_free(&f->b);
	free(f->path);
	free(f->target);
	free(f);
}

static struct tail_file *
find_inode(struct tail *t, uint64_t dev, uint64_t ino)
{
	struct tail_file *f;

	for (f = t->files; f; f = f->next)
		if (f->dev == dev && f->ino == ino)
			return f;
	return NULL;
}

static int
ignored(struct tail *t, uint64_t dev, uint64_t ino)
{
	size_t i;

	for (i = 0; i < t->nignored; i++)
		if (t->ignored[i].dev == dev && t->ignored[i].ino == ino)
			return 1;
	return 0;
}

static int
excluded(struct tail *t, const char *p)
{
	size_t i;

	for (i = 0; i < t->c.nexcludes; i++)
		if (fnmatch(t->c.excludes[i], p, FNM_PATHNAME) == 0)
			return 1;
	return 0;
}

static uint64_t
birth(int fd)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == -1 ||
	    !(sx.stx_mask & STATX_BTIME))
		return 0;
	return (uint64_t)sx.stx_btime.tv_sec * 1000000000u +
	    sx.stx_btime.tv_nsec;
}

/* Open a file found under name p.  NULL if it cannot be followed. */
static struct tail_file *
file_open(struct tail *t, const char *p, const char *target,
    const struct stat *st)
{
	struct tail_file *f, **pp;
	unsigned char m[6];
	struct stat fst;
	ssize_t n;
	int fd;

	if ((fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		LOG_WARN_LIMITED("%s: %s", p, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &fst) == -1 || fst.st_dev != st->st_dev ||
	    fst.st_ino != st->st_ino) {
		close(fd);	/* replaced meanwhile: the next check */
		return NULL;
	}
	if ((n = pread(fd, m, sizeof m, 0)) > 0 &&
	    tail_compressed(m, (size_t)n)) {
		log_info("%s: compressed, not followed", p);
		if (t->nignored < TAIL_IGNORED) {
			t->ignored[t->nignored].dev = (uint64_t)fst.st_dev;
			t->ignored[t->nignored++].ino = (uint64_t)fst.st_ino;
		}
		close(fd);
		return NULL;
	}
	if ((f = calloc(1, sizeof *f)) == NULL ||
	    (f->path = strdup(p)) == NULL ||
	    (f->target = strdup(target)) == NULL) {
		if (f)
			free(f->path);
		free(f);
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->dev = (uint64_t)fst.st_dev;
	f->ino = (uint64_t)fst.st_ino;
	f->btime = birth(fd);
	f->size = (uint64_t)fst.st_size;
	f->grew = ev_now(t->loop);
	/* with skip_refresh_on_startup no file is found "at start" */
	f->off = t->cbs.start(t->cbs.ctx, f, !t->discovered &&
	    !t->c.skip_refresh_on_startup);
	for (pp = &t->files; *pp; pp = &(*pp)->next)
		;
	*pp = f;
	/* a symbolic link: its target's folder sees the writes */
	{
		char real[PATH_MAX];

		if (realpath(p, real) != NULL && strcmp(real, p) != 0)
			watch_dir(t, real);
	}
	log_debug("%s: following from %llu", p, (unsigned long long)f->off);
	return f;
}

/* A name a target gave: a new file, a known one under a new name, or
 * nothing to do. */
static void
consider(struct tail *t, const char *p, const char *target, double now)
{
	struct tail_file *f;
	struct stat st;
	char *s;

	if (excluded(t, p) || stat(p, &st) == -1 || !S_ISREG(st.st_mode))
		return;
	if (t->c.limit_recently_modified > 0 &&
	    (double)st.st_mtime < now - t->c.limit_recently_modified)
		return;
	if ((f = find_inode(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino))) {
		/* renamed into a name we follow: go on under it */
		if (f->rotated && (s = strdup(p)) != NULL) {
			free(f->path);
			f->path = s;
			f->rotated = 0;
		}
		return;
	}
	if (ignored(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino))
		return;
	(void)file_open(t, p, target, &st);
}

struct found {
	char *path;
	time_t mtime;
};

static int
older(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* A glob's names, oldest first: after a restart, a rotated file (its
 * unread tail) is read before the file that replaced it. */
static void
consider_glob(struct tail *t, glob_t *g, const char *target, double now)
{
	struct found *v;
	struct stat st;
	size_t j;

	if ((v = calloc(g->gl_pathc, sizeof *v)) == NULL) {
		for (j = 0; j < g->gl_pathc; j++)
			consider(t, g->gl_pathv[j], target, now);
		return;
	}
	for (j = 0; j < g->gl_pathc; j++) {
		v[j].path = g->gl_pathv[j];
		v[j].mtime = stat(v[j].path, &st) == 0 ? st.st_mtime : 0;
	}
	qsort(v, g->gl_pathc, sizeof *v, older);
	for (j = 0; j < g->gl_pathc; j++)
		consider(t, v[j].path, target, now);
	free(v);
}

static void
discover(struct tail *t, int globs, double now)
{
	glob_t g;
	size_t i;

	for (i = 0; i < t->c.npaths; i++) {
		const char *p = t->c.paths[i];

		if (!has_glob(p)) {
			consider(t, p, p, now);
			continue;
		}
		if (!globs)
			continue;
		if (glob(p, 0, NULL, &g) != 0)
			continue;
		consider_glob(t, &g, p, now);
		globfree(&g);
	}
}

/* Has f's name gone to another file, or away?  Was it truncated? */
static void
check_file(struct tail *t, struct tail_file *f, double now)
{
	struct stat st;

	if (!f->rotated && (stat(f->path, &st) == -1 ||
	    (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino)) {
		f->rotated = 1;
		f->rotated_at = now;
		f->rotations++;
		t->need_refresh = 1;	/* renamed into a glob? */
		if (t->cbs.rotated)
			t->cbs.rotated(t->cbs.ctx, f);
	}
	if (f->fd == -1) {
		if (f->rotated)
			return;
		if ((f->fd = open(f->path, O_RDONLY | O_CLOEXEC |
		    O_NONBLOCK)) == -1)
			return;
	}
	if (fstat(f->fd, &st) == -1)
		return;
	f->size = (uint64_t)st.st_size;
	if (f->size < f->off + (f->b.len - f->head)) {
		/* copytruncate: what was not read is only in the copy */
		f->off = 0;
		f->head = f->b.len = 0;
		f->skipping = 0;
		f->partial_since = 0;
		f->rotations++;
		if (t->cbs.truncated)
			t->cbs.truncated(t->cbs.ctx, f);
	}
}

/* Hand the whole lines read to the caller; 0, or -1 when it paused. */
static int
deliver(struct tail *t, struct tail_file *f, int flush, double now)
{
	const char *p = (const char *)f->b.p + f->head, *nl;
	size_t avail = f->b.len - f->head, n, took;
	int flags = f->at_eof ? TAIL_EOF : 0;

	nl = avail ? memrchr(p, '\n', avail) : NULL;
	n = nl ? (size_t)(nl - p) + 1 : 0;
	if (flush && n < avail) {
		n = avail;
		flags |= TAIL_FLUSH;
	}
	if (n > 0 || (flags & TAIL_EOF)) {
		took = t->cbs.lines(t->cbs.ctx, f, p, n, flags);
		f->head += took;
		f->off += took;
		if (took < n) {
			t->paused = 1;
			return -1;
		}
	}
	if (f->head == f->b.len) {
		f->head = f->b.len = 0;
		f->partial_since = 0;
	} else if (f->partial_since == 0)
		f->partial_since = now;
	return 0;
}

/* Drop what is held of a line over max_line_size, and what follows of
 * it up to its newline. */
static void
skip_long(struct tail *t, struct tail_file *f)
{
	size_t avail = f->b.len - f->head;
	const char *p = (const char *)f->b.p + f->head;
	const char *nl = memchr(p, '\n', avail);
	size_t n = nl ? (size_t)(nl - p) + 1 : avail;

	if (t->cbs.skipped && n > 0)
		t->cbs.skipped(t->cbs.ctx, f, f->off, n);
	f->skipped++;
	f->head += n;
	f->off += n;
	f->skipping = nl == NULL;
	if (f->head == f->b.len)
		f->head = f->b.len = 0;
}

static void
read_file(struct tail *t, struct tail_file *f, double now)
{
	size_t room, want;
	ssize_t n;
	int reads = 0;

	if (f->fd == -1)
		return;
	if (deliver(t, f, 0, now) == -1)
		return;
	while (!t->paused) {
		if (t->c.bytes_per_second) {
			if (now - f->sec_start >= 1) {
				f->sec_start = now;
				f->sec_bytes = 0;
			}
			if (f->sec_bytes >= t->c.bytes_per_second)
				break;	/* the next second's timer */
		}
		if (reads++ == TAIL_MAX_READS) {
			kick(t);	/* more later, others first */
			break;
		}
		if (f->head > 0) {
			memmove(f->b.p, f->b.p + f->head, f->b.len - f->head);
			f->b.len -= f->head;
			f->head = 0;
		}
		if (f->b.len >= t->c.max_line_size)
			skip_long(t, f);
		want = t->c.read_size;
		if (buf_reserve(&f->b, want) == -1)
			break;
		room = f->b.cap - f->b.len;
		n = pread(f->fd, f->b.p + f->b.len, room,
		    (off_t)(f->off + (f->b.len - f->head)));
		if (n <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				LOG_WARN_LIMITED("%s: read: %s", f->path,
				    strerror(errno));
			f->at_eof = 1;
			break;
		}
		f->at_eof = 0;
		f->grew = now;
		f->bytes += (size_t)n;
		f->sec_bytes += (size_t)n;
		f->b.len += (size_t)n;
		if (f->skipping)
			skip_long(t, f);
		if (deliver(t, f, 0, now) == -1)
			return;
	}
	if (f->at_eof)
		(void)deliver(t, f, 0, now);	/* the caller's batch can go */
	if (t->c.open_on_every_update && f->at_eof && !f->rotated) {
		close(f->fd);
		f->fd = -1;
	}
}

/* A rotated file at its end, quiet for rotate_wait and released by the
 * caller: its last line goes out, then it is closed. */
static int
finished(struct tail *t, struct tail_file *f, double now)
{
	if (!f->rotated)
		return 0;
	if (f->fd != -1 && (!f->at_eof || now - f->grew < t->c.rotate_wait ||
	    now - f->rotated_at < t->c.rotate_wait))
		return 0;
	if (f->b.len > f->head && (t->paused ||
	    deliver(t, f, 1, now) == -1))
		return 0;
	return !(t->cbs.busy && t->cbs.busy(t->cbs.ctx, f));
}

static void
check(struct tail *t)
{
	struct tail_file *f, **pp;
	double now;

	if (t->paused || t->in_check)
		return;
	t->in_check = 1;
	ev_now_update(t->loop);
	now = ev_now(t->loop);
	for (f = t->files; f; f = f->next)
		check_file(t, f, now);
	if (t->discovered || !t->c.skip_refresh_on_startup ||
	    t->need_refresh) {
		discover(t, !t->discovered || t->need_refresh, now);
		t->need_refresh = 0;
		t->discovered = 1;
	}
	for (f = t->files; f && !t->paused; f = f->next) {
		read_file(t, f, now);
		if (!t->paused && t->c.partial_flush > 0 && f->at_eof &&
		    f->partial_since > 0 &&
		    now - f->partial_since >= t->c.partial_flush)
			(void)deliver(t, f, 1, now);
	}
	for (pp = &t->files; (f = *pp) != NULL; ) {
		if (finished(t, f, now)) {
			*pp = f->next;
			log_info("%s: rotated and read to its end, closed",
			    f->path);
			file_free(t, f);
		} else
			pp = &f->next;
	}
	t->in_check = 0;
}

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	check(w->data);
}

static void
watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tail *t = w->data;
	struct tail_file *f;

	(void)loop;
	(void)revents;
	check(t);
	/* an idle file gives its read buffer back */
	for (f = t->files; f; f = f->next)
		if (f->at_eof && f->b.len == 0)
			buf_free(&f->b);
}

static void
refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tail *t = w->data;

	(void)loop;
	(void)revents;
	t->need_refresh = 1;
	kick(t);
}

static void
inotify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tail *t = w->data;
	char b[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *e;
	ssize_t n;
	char *p;

	(void)loop;
	(void)revents;
	/* one read a wakeup: a folder written without pause (our own log
	 * file in it) must not keep the loop here */
	if ((n = read(t->ifd, b, sizeof b)) > 0) {
		for (p = b; p < b + n; p += sizeof *e + e->len) {
			e = (const struct inotify_event *)p;
			if (e->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
			    IN_DELETE | IN_Q_OVERFLOW))
				t->need_refresh = 1;
		}
	}
	kick(t);
}

struct tail *
tail_new(struct ev_loop *loop, const struct tail_conf *c,
    const struct tail_cbs *cbs)
{
	struct tail *t;

	if ((t = calloc(1, sizeof *t)) == NULL)
		return NULL;
	t->loop = loop;
	t->c = *c;
	t->cbs = *cbs;
	if (t->c.read_size < 4096)
		t->c.read_size = 4096;
	if (t->c.max_line_size < t->c.read_size)
		t->c.max_line_size = t->c.read_size;
	t->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ev_io_init(&t->in_w, inotify_cb, t->ifd, EV_READ);
	t->in_w.data = t;
	ev_timer_init(&t->watch_t, watch_cb, c->watch_interval,
	    c->watch_interval);
	t->watch_t.data = t;
	ev_timer_init(&t->refresh_t, refresh_cb, c->refresh_interval,
	    c->refresh_interval);
	t->refresh_t.data = t;
	ev_timer_init(&t->kick_t, kick_cb, 0, 0);
	t->kick_t.data = t;
	return t;
}

int
tail_start(struct tail *t)
{
	size_t i;

	for (i = 0; i < t->c.npaths; i++) {
		char d[PATH_MAX];

		watch_dir(t, t->c.paths[i]);
		if (strlen(t->c.paths[i]) < sizeof d) {
			strcpy(d, t->c.paths[i]);
			if (has_glob(dirname(d)))
				log_debug("%s: a glob folder, seen by the timer",
				    t->c.paths[i]);
		}
	}
	if (t->ifd != -1)
		ev_io_start(t->loop, &t->in_w);
	ev_timer_start(t->loop, &t->watch_t);
	ev_timer_start(t->loop, &t->refresh_t);
	t->started = 1;
	check(t);
	return 0;
}

void
tail_kick(struct tail *t)
{
	t->need_refresh = 1;
	kick(t);
}

void
tail_pause(struct tail *t)
{
	t->paused = 1;
}

void
tail_resume(struct tail *t)
{
	t->paused = 0;
	if (t->started)
		kick(t);
}

struct tail_file *
tail_files(struct tail *t)
{
	return t->files;
}

void
tail_free(struct tail *t)
{
	struct tail_file *f;

	if (t == NULL)
		return;
	while ((f = t->files) != NULL) {
		t->files = f->next;
		file_free(t, f);
	}
	ev_io_stop(t->loop, &t->in_w);
	ev_timer_stop(t->loop, &t->watch_t);
	ev_timer_stop(t->loop, &t->refresh_t);
	ev_timer_stop(t->loop, &t->kick_t);
	if (t->ifd != -1)
		close(t->ifd);
	free(t);
}
