/* lf-file: write a spool's events to files (Fluentd's out_file as a tool),
 * exactly once.
 *
 * lf-file [options] --path TEMPLATE SPOOL
 *
 * lib/consume claims the chunks, oldest first, one at a time.  Each
 * chunk's events are formatted (lib/format) and appended to the file its
 * keys name through the template (Fluentd's extract_placeholders:
 * strftime of the chunk's time slice, then ${tag}, ${tag[N]}, ${KEY},
 * ${chunk_id}), one file per chunk (path_N) or, with --append, one per
 * slice.
 *
 * Exactly once: before a chunk's bytes go to its file, a state record
 * (SPOOL/state/file) is replaced, durably, with "pending: chunk id, file,
 * offset it starts at, whether the file is new"; then the bytes are
 * written and fdatasync'd; then the record says "done: chunk id" (the
 * last DONE_MAX ids are kept), and only then is the chunk deleted.  A
 * pending record found later (after a kill, a failed write or sync, a
 * full disk) is undone first: the file is cut back to its offset, or
 * removed if the chunk made it, so a chunk is written whole, again, never
 * twice; a chunk whose id is done is deleted without being written. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "chunk.h"
#include "conf.h"
#include "consume.h"
#include "durable.h"
#include "format.h"
#include "io.h"
#include "json.h"
#include "log.h"
#include "mp.h"
#include "sig.h"
#include "spool.h"
#include "stream.h"
#include "tdlog.h"

#define USAGE \
"usage: lf-file [-v] --path TEMPLATE [--append[=BOOL]] [--compress text|gzip]\n" \
"               [--timekey DUR] [--timekey-use-utc] [--chunk-key KEY,..]\n" \
"               [--path-suffix S] [--add-path-suffix BOOL]\n" \
"               [--symlink-path PATH] [--file-mode MODE] [--dir-mode MODE]\n" \
"               [--state-file PATH] [--notify-fd N] [format options]\n" \
"               [consume options] SPOOL\n"

#define DONE_MAX	64		/* chunk ids remembered as written */
#define WRITE_STEP	(1u << 20)	/* formatted bytes written at once */
#define STATE_MAGIC	"lf-file 1\n"
#define SLOT		16384		/* bytes of one state slot */
#define SLOT_HEAD	20		/* "LFFS", seq, length, CRC */

struct fstate {
	int pending;
	unsigned char id[16];
	uint64_t start;
	int created;
	char path[PATH_MAX];
	unsigned char done[DONE_MAX][16];	/* newest first */
	size_t ndone;
};

struct lfile {
	struct spool spool;
	struct consume_conf cc;
	struct consume *consume;
	struct ev_loop *loop;
	struct format_conf fc;
	struct formatter *fmt;
	const char *path_arg;
	char *tmpl;		/* the template after out_file's rules */
	int tmpl_time;		/* it has strftime fields */
	double timekey;		/* the spool's --timekey; 0: none */
	int timekey_use_utc;
	char *keytext;		/* --chunk-key, NUL-separated */
	const char *keys[32];
	size_t nkeys;
	int append, gzip, level;
	const char *path_suffix;
	int add_path_suffix;
	const char *symlink;
	mode_t file_mode, dir_mode;
	char *state_file;
	int state_fd;
	uint64_t state_seq;	/* of the newest slot written */
	int notify_fd;
	struct fstate st;
	struct buf out, win;
	unsigned long long chunks, events, bytes, skipped, retries;
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (!code)
		fputs(format_usage, stdout), fputs(CONSUME_USAGE, stdout);
	exit(code);
}

/* ---- the state record ---- */

static int
state_find_done(const struct fstate *s, const unsigned char id[16])
{
	size_t i;

	for (i = 0; i < s->ndone; i++)
		if (memcmp(s->done[i], id, 16) == 0)
			return 1;
	return 0;
}

static void
state_push_done(struct fstate *s, const unsigned char id[16])
{
	if (s->ndone == DONE_MAX)
		s->ndone--;
	memmove(s->done[1], s->done[0], s->ndone * 16);
	memcpy(s->done[0], id, 16);
	s->ndone++;
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/* The record is kept in two slots of the state file, written in turn,
 * each with a sequence number and a CRC: an update is one pwrite and one
 * fdatasync (no rename, no folder sync), and a write torn by a crash
 * leaves the other slot, the one before, to be read.  The text can be
 * read by eye:
 *	lf-file 1
 *	pending ID START CREATED LEN
 *	PATH
 *	done ID	(newest first) */
static int
state_save(struct lfile *f)
{
	struct fstate *s = &f->st;
	struct buf b = BUF_INIT;
	uint64_t seq = f->state_seq + 1;
	char hex[33];
	size_t i;
	int rc = -1;

	if (buf_add(&b, "LFFS\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", SLOT_HEAD)
	    == -1 || buf_adds(&b, STATE_MAGIC) == -1)
		goto out;
	if (s->pending) {
		chunk_id_hex(s->id, hex);
		if (buf_printf(&b, "pending %s %" PRIu64 " %d %zu\n%s\n", hex,
		    s->start, s->created, strlen(s->path), s->path) == -1)
			goto out;
	}
	for (i = 0; i < s->ndone; i++) {
		chunk_id_hex(s->done[i], hex);
		if (buf_printf(&b, "done %s\n", hex) == -1)
			goto out;
	}
	if (b.len > SLOT) {
		errno = ENAMETOOLONG;
		goto out;
	}
	put_be(b.p + 4, seq, 8);
	put_be(b.p + 12, b.len - SLOT_HEAD, 4);
	put_be(b.p + 16, chunk_crc(0, b.p + SLOT_HEAD, b.len - SLOT_HEAD), 4);
	if (durable_pwrite_all(f->state_fd, b.p, b.len,
	    (off_t)(seq & 1) * SLOT) == -1 || durable_fdatasync(f->state_fd) == -1)
		goto out;
	f->state_seq = seq;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

/* The text of the newest whole slot into text; 0, or 1 if there is
 * none (a new file); a file with slots but no whole one is fatal. */
static int
state_slot(struct lfile *f, char *text)
{
	unsigned char h[SLOT];
	uint64_t best = 0, seq;
	size_t len;
	ssize_t n;
	int i, found = 0, any = 0;

	for (i = 0; i < 2; i++) {
		n = io_pread_all(f->state_fd, h, SLOT, (off_t)i * SLOT);
		if (n == -1)
			log_fatal(EX_IOERR, "%s: %s", f->state_file,
			    strerror(errno));
		if (n == 0)
			continue;
		any = 1;
		if (n < SLOT_HEAD || memcmp(h, "LFFS", 4) != 0)
			continue;
		seq = get_be(h + 4, 8);
		len = (size_t)get_be(h + 12, 4);
		if (len > (size_t)n - SLOT_HEAD || (uint32_t)get_be(h + 16, 4) !=
		    chunk_crc(0, h + SLOT_HEAD, len) || (found && seq <= best))
			continue;
		found = 1;
		best = seq;
		memcpy(text, h + SLOT_HEAD, len);
		text[len] = '\0';
	}
	if (!found && any)
		log_fatal(EX_DATAERR, "%s: not lf-file's state record (move "
		    "it away only if no chunk is half written)", f->state_file);
	f->state_seq = best;
	return !found;
}

static void
state_load(struct lfile *f)
{
	struct fstate *s = &f->st;
	char text[SLOT + 1], hex[40], *p, *nl;
	size_t len;
	int used;

	memset(s, 0, sizeof *s);
	if (state_slot(f, text) == 1)
		return;
	if (strncmp(text, STATE_MAGIC, strlen(STATE_MAGIC)) != 0)
		goto bad;
	p = text + strlen(STATE_MAGIC);
	if (sscanf(p, "pending %32s %" SCNu64 " %d %zu\n%n", hex, &s->start,
	    &s->created, &len, &used) == 4) {
		if (chunk_id_parse(hex, s->id) == -1 || len >= PATH_MAX ||
		    strlen(p + used) < len + 1 || p[used + len] != '\n')
			goto bad;
		memcpy(s->path, p + used, len);
		s->path[len] = '\0';
		s->pending = 1;
		p += used + len + 1;
	}
	while (*p != '\0') {
		if ((nl = strchr(p, '\n')) == NULL ||
		    sscanf(p, "done %32s", hex) != 1 || s->ndone == DONE_MAX ||
		    chunk_id_parse(hex, s->done[s->ndone]) == -1)
			goto bad;
		s->ndone++;
		p = nl + 1;
	}
	return;
bad:
	log_fatal(EX_DATAERR, "%s: a bad state record", f->state_file);
}

/* A pending record undone: the file cut back to where the chunk began,
 * or removed if the chunk made it.  0, or -1 with err. */
static int
resolve_pending(struct lfile *f, char *err, size_t errlen)
{
	struct fstate *s = &f->st;
	int fd;

	if (!s->pending)
		return 0;
	if (s->created) {
		if (unlink(s->path) == -1 && errno != ENOENT)
			goto fail;
	} else if ((fd = open(s->path, O_WRONLY | O_CLOEXEC)) != -1) {
		if (ftruncate(fd, (off_t)s->start) == -1 ||
		    durable_fsync(fd) == -1) {
			close(fd);
			goto fail;
		}
		close(fd);
	} else if (errno != ENOENT)
		goto fail;
	s->pending = 0;
	if (state_save(f) == -1) {
		s->pending = 1;
		snprintf(err, errlen, "%s: %s", f->state_file, strerror(errno));
		return -1;
	}
	log_info("%s: undid a chunk written in part (cut back to %" PRIu64
	    " bytes)", s->path, s->start);
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot undo a chunk written in part: %s",
	    s->path, strerror(errno));
	return -1;
}

/* ---- the path ---- */

static const char *
timekey_format(double timekey)
{
	if (timekey < 60)
		return "%Y%m%d%H%M%S";
	if (timekey < 3600)
		return "%Y%m%d%H%M";
	if (timekey < 86400)
		return "%Y%m%d%H";
	return "%Y%m%d";
}

/* Any strftime conversion but %%. */
static int
has_time_fields(const char *s)
{
	for (; *s != '\0'; s++)
		if (s[0] == '%') {
			if (s[1] != '%' && s[1] != '\0')
				return 1;
			if (s[1] == '%')
				s++;
		}
	return 0;
}

/* out_file's generate_path_template: the '*' or a time suffix, the
 * index placeholder "_**" unless appending, the path suffix, ".gz". */
static void
make_template(struct lfile *f)
{
	const char *tf = timekey_format(f->timekey), *p = f->path_arg, *q;
	const char *idx = f->append ? "" : "_**";
	const char *suf = f->add_path_suffix ? f->path_suffix : "";
	const char *gz = f->gzip ? ".gz" : "";
	struct buf b = BUF_INIT;
	int any = 0, all = 1;

	if (strchr(p, '*') != NULL) {
		if (f->timekey <= 0)
			log_fatal(EX_USAGE, "--path: a '*' needs --timekey "
			    "(the spool's time slices)");
		for (; *p != '\0'; p++)
			if (*p == '*' ? buf_printf(&b, "%s%s", tf, idx) == -1 :
			    buf_addc(&b, *p) == -1)
				log_fatal(EX_OSERR, "out of memory");
		if (buf_printf(&b, "%s", gz) == -1)
			log_fatal(EX_OSERR, "out of memory");
	} else if (f->timekey > 0) {
		for (q = tf; *q != '\0'; q += 2) {
			if (strstr(p, (char[3]){ q[0], q[1], '\0' }) != NULL)
				any = 1;
			else
				all = 0;
		}
		if (any && !all)
			log_fatal(EX_USAGE, "--path: insufficient timestamp "
			    "placeholders for --timekey: %s needs all of %s",
			    p, tf);
		if ((any ? buf_printf(&b, "%s%s%s%s", p, idx, suf, gz) :
		    buf_printf(&b, "%s.%s%s%s%s", p, tf, idx, suf, gz)) == -1)
			log_fatal(EX_OSERR, "out of memory");
	} else if (buf_printf(&b, "%s%s%s%s", p, idx, suf, gz) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (buf_addc(&b, '\0') == -1)
		log_fatal(EX_OSERR, "out of memory");
	f->tmpl = (char *)b.p;
	f->tmpl_time = has_time_fields(f->tmpl);
	if (f->tmpl_time && f->timekey <= 0)
		log_fatal(EX_USAGE, "--path: %s has time fields, but the "
		    "chunks are not keyed by time (no --timekey)", f->tmpl);
}

static int
key_known(const struct lfile *f, const char *name, size_t n)
{
	size_t i;
	char *end;

	if ((n == 3 && memcmp(name, "tag", 3) == 0) ||
	    (n == 8 && memcmp(name, "chunk_id", 8) == 0))
		return 1;
	if (n > 5 && memcmp(name, "tag[", 4) == 0 && name[n - 1] == ']') {
		(void)strtol(name + 4, &end, 10);
		return end == name + n - 1 && end > name + 4;
	}
	for (i = 0; i < f->nkeys; i++)
		if (strlen(f->keys[i]) == n && memcmp(f->keys[i], name, n) == 0)
			return 1;
	return 0;
}

/* Every ${NAME} must be one the chunks are keyed by (Fluentd's
 * placeholder_validate!). */
static void
check_placeholders(const struct lfile *f, const char *t, const char *what)
{
	const char *p, *e;

	for (p = t; (p = strstr(p, "${")) != NULL; p = e + 1) {
		if ((e = strchr(p + 2, '}')) == NULL)
			log_fatal(EX_USAGE, "%s: an unclosed ${ in %s", what, t);
		if (!key_known(f, p + 2, (size_t)(e - p - 2)))
			log_fatal(EX_USAGE, "%s: ${%.*s}: the chunks are not "
			    "keyed by %.*s (lf-buffer --chunk-key, and lf-file's "
			    "--chunk-key to match)", what, (int)(e - p - 2),
			    p + 2, (int)(e - p - 2), p + 2);
	}
}

/* A value put into a path must not climb out of it (Fluentd 1.19). */
static int
value_safe(const char *v, size_t n)
{
	size_t i;

	if (n > 0 && v[0] == '/')
		return 0;
	if (memchr(v, '\0', n) != NULL || (n == 2 && memcmp(v, "..", 2) == 0))
		return 0;
	for (i = 0; i + 3 <= n; i++)
		if (memcmp(v + i, "../", 3) == 0)
			return 0;
	return n < 3 || memcmp(v + n - 3, "/..", 3) != 0;
}

/* The value of ${NAME} for chunk h, appended to b.  0; 1 if the chunk
 * is not keyed by it (a usage error); -1 (err) if it cannot be used. */
static int
placeholder(struct buf *b, const struct chunk_head *h, const char *name,
    size_t n, char *err, size_t errlen)
{
	const unsigned char *p, *end;
	const char *t = h->tag, *part;
	struct mp_obj m, k;
	char hex[33];
	size_t np = 0, i;
	long idx;
	uint32_t j;

	if (n == 3 && memcmp(name, "tag", 3) == 0)
		return buf_add(b, h->tag, h->taglen);
	if (n == 8 && memcmp(name, "chunk_id", 8) == 0) {
		chunk_id_hex(h->id, hex);
		return buf_add(b, hex, 32);
	}
	if (n > 5 && memcmp(name, "tag[", 4) == 0) {
		idx = strtol(name + 4, NULL, 10);
		for (i = 0; i <= h->taglen; i++)
			np += i == h->taglen || t[i] == '.';
		if (idx < 0)
			idx += (long)np;
		if (idx < 0 || (size_t)idx >= np) {
			snprintf(err, errlen, "${%.*s}: tag %.*s has %zu parts",
			    (int)n, name, (int)h->taglen, h->tag, np);
			return -1;
		}
		for (part = t; idx > 0; idx--)
			part = memchr(part, '.', h->taglen - (size_t)(part - t)) + 1;
		end = memchr(part, '.', h->taglen - (size_t)(part - t));
		return buf_add(b, part, end ? (size_t)((const char *)end - part) :
		    h->taglen - (size_t)(part - t));
	}
	if (h->vars == NULL)
		return 1;
	p = h->vars;
	end = p + h->varslen;
	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return 1;
	for (j = 0; j < m.n; j++) {
		if (mp_read(&p, end, &k) == -1)
			return 1;
		if (k.type == MP_STR && k.n == n && memcmp(k.p, name, n) == 0)
			return json_text(b, p, (size_t)(end - p), NULL) == -1 ?
			    (snprintf(err, errlen, "${%.*s}: a bad value",
			    (int)n, name), -1) : 0;
		if (mp_pass(&p, end) == -1)
			return 1;
	}
	return 1;
}

/* The template made a path for chunk h (index placeholder left in).
 * 0; 1 if the chunk lacks a key the template names; -1 with err. */
static int
expand(struct lfile *f, const struct chunk_head *h, struct buf *b, char *err,
    size_t errlen)
{
	char tbuf[PATH_MAX];
	const char *p, *e;
	time_t t = (time_t)h->timekey;
	struct tm tm;
	size_t start;
	int rc;

	buf_reset(b);
	if (f->tmpl_time && !h->has_timekey) {
		snprintf(err, errlen, "the chunk has no time slice, and --path "
		    "%s has time fields", f->path_arg);
		return 1;
	}
	/* strftime first, as Fluentd's: a '%' in a tag stays a '%' */
	if ((f->timekey_use_utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) ==
	    NULL || strftime(tbuf, sizeof tbuf, f->tmpl, &tm) == 0) {
		snprintf(err, errlen, "--path: too long");
		return -1;
	}
	for (p = tbuf; (e = strstr(p, "${")) != NULL; p = strchr(e, '}') + 1) {
		if (buf_add(b, p, (size_t)(e - p)) == -1)
			goto nomem;
		start = b->len;
		rc = placeholder(b, h, e + 2, (size_t)(strchr(e, '}') - e - 2),
		    err, errlen);
		if (rc == 1) {
			snprintf(err, errlen, "the chunk is not keyed by %.*s, "
			    "which --path names", (int)(strchr(e, '}') - e - 2),
			    e + 2);
			return 1;
		}
		if (rc == -1)
			return -1;
		if (!value_safe((char *)b->p + start, b->len - start)) {
			snprintf(err, errlen, "unsafe value for a path: %.*s",
			    (int)(b->len - start), (char *)b->p + start);
			return -1;
		}
	}
	if (buf_adds(b, p) == -1 || buf_addc(b, '\0') == -1)
		goto nomem;
	if (b->len > PATH_MAX) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* mkdir -p of path's folder, new folders given dir_mode exactly. */
static int
make_dirs(struct lfile *f, const char *path)
{
	char d[PATH_MAX], *s, c;
	struct stat sb;

	snprintf(d, sizeof d, "%s", path);
	if ((s = strrchr(d, '/')) == NULL || s == d)
		return 0;
	*s = '\0';
	if (stat(d, &sb) == 0 && S_ISDIR(sb.st_mode))
		return 0;
	for (s = d + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(d, f->dir_mode) == 0) {
			if (chmod(d, f->dir_mode) == -1)
				return -1;
		} else if (errno != EEXIST)
			return -1;
		if (c == '\0')
			return 0;
		*s = c;
	}
}

/* Where the chunk goes: pending set to path and start (before the file
 * is touched, so that a kill leaves nothing the record does not name). */
static int
choose_file(struct lfile *f, const char *p, char *err, size_t errlen)
{
	struct fstate *s = &f->st;
	const char *idx = f->append ? NULL : strstr(p, "_**");
	struct stat sb;
	int i;

	for (i = 0; ; i++) {
		if (idx != NULL)
			snprintf(s->path, sizeof s->path, "%.*s_%d%s",
			    (int)(idx - p), p, i, idx + 3);
		else
			snprintf(s->path, sizeof s->path, "%s", p);
		if (stat(s->path, &sb) == -1) {
			if (errno != ENOENT)
				break;
			s->created = 1;
			s->start = 0;
			return 0;
		}
		if (idx == NULL) {
			s->created = 0;
			s->start = (uint64_t)sb.st_size;
			return 0;
		}
	}
	snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
	return -1;
}

/* ---- writing ---- */

struct wctx {
	struct lfile *f;
	int fd;
	uint64_t off;
	struct tdlog_gz gz;
};

static int
put(struct wctx *w, int last)
{
	struct buf *o = &w->f->out;

	if (w->f->gzip) {
		if (buf_add(&w->gz.in, o->p, o->len) == -1)
			return -1;
		o->len = 0;
		if (tdlog_gz_run(&w->gz, last) == -1)
			return -1;
		o = &w->gz.out;
	}
	if (o->len > 0 && durable_pwrite_all(w->fd, o->p, o->len,
	    (off_t)w->off) == -1)
		return -1;
	w->off += o->len;
	o->len = 0;
	return 0;
}

/* One window of whole entries formatted into f->out; the bytes of
 * entries used in *used. */
static int
format_window(struct lfile *f, const struct spool_chunk *c,
    const unsigned char *p, size_t n, size_t *used, uint64_t *events)
{
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *ent;
	size_t count = 0;
	int binary = format_binary(f->fmt);

	stream_iter_init(&it, p, n);
	for (ent = it.p; stream_iter_next(&it, &ev) == 1; ent = it.p) {
		count++;
		if (!binary && format_event(f->fmt, &f->out, c->h.tag,
		    c->h.taglen, ev.sec, ev.nsec, ev.rec, ev.reclen) == -1)
			return -1;
	}
	*used = (size_t)(ent - p);
	*events += count;
	if (binary && count > 0 && format_entries(f->fmt, &f->out, c->h.tag,
	    c->h.taglen, p, *used, count) == -1)
		return -1;
	return 0;
}

/* The chunk's lines into fd from f->st.start, synced.  0, or -1 with
 * err; *len is the bytes written. */
static int
write_chunk(struct lfile *f, const struct spool_chunk *c, int fd,
    uint64_t *len, char *err, size_t errlen)
{
	struct wctx w;
	uint64_t off = 0, events = 0;
	size_t want, used;
	ssize_t got;
	int ret = -1;

	memset(&w, 0, sizeof w);
	w.f = f;
	w.fd = fd;
	w.off = f->st.start;
	if (f->gzip && tdlog_gz_init(&w.gz, f->level) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	buf_reset(&f->win);
	buf_reset(&f->out);
	while (off < c->h.bodylen) {
		want = c->h.bodylen - off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(c->h.bodylen - off);
		if (buf_reserve(&f->win, want) == -1)
			goto nomem;
		got = io_pread_all(c->fd, f->win.p + f->win.len, want,
		    (off_t)(c->h.hlen + off));
		if (got != (ssize_t)want) {
			snprintf(err, errlen, "%s: read: %s", c->name,
			    got == -1 ? strerror(errno) : "short read");
			goto out;
		}
		f->win.len += want;
		off += want;
		if (format_window(f, c, f->win.p, f->win.len, &used,
		    &events) == -1) {
			snprintf(err, errlen, "%s: an event will not format "
			    "(or out of memory)", c->name);
			goto out;
		}
		buf_consume(&f->win, used);
		if (f->out.len >= WRITE_STEP && put(&w, 0) == -1)
			goto wfail;
	}
	if (f->win.len > 0 || events != c->h.count) {
		snprintf(err, errlen, "%s: changed since it was verified",
		    c->name);
		goto out;
	}
	if (put(&w, 1) == -1)
		goto wfail;
	if (durable_fdatasync(fd) == -1)
		goto wfail;
	*len = w.off - f->st.start;
	f->events += events;
	ret = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
	goto out;
wfail:
	snprintf(err, errlen, "%s: %s", f->st.path, strerror(errno));
out:
	if (f->gzip)
		tdlog_gz_free(&w.gz);
	buf_shrink(&f->win, SPOOL_BLOCK * 2);
	buf_shrink(&f->out, WRITE_STEP * 2);
	return ret;
}

/* fsync of the folder holding path, which now has a new name in it. */
static int
sync_parent(const char *path)
{
	char d[PATH_MAX], *s;
	int fd, rc;

	snprintf(d, sizeof d, "%s", path);
	if ((s = strrchr(d, '/')) == NULL)
		snprintf(d, sizeof d, ".");
	else if (s == d)
		d[1] = '\0';
	else
		*s = '\0';
	if ((fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = durable_fsync(fd);
	close(fd);
	return rc;
}

/* --symlink-path made to point at path: a new link renamed over it. */
static void
symlink_update(struct lfile *f, const char *path)
{
	char tmp[PATH_MAX], abs[PATH_MAX];

	if (f->symlink == NULL)
		return;
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", f->symlink, (long)getpid());
	(void)unlink(tmp);
	/* absolute, so that the link works wherever it is */
	if (realpath(path, abs) == NULL || make_dirs(f, f->symlink) == -1 ||
	    symlink(abs, tmp) == -1 ||
	    rename(tmp, f->symlink) == -1) {
		LOG_WARN_LIMITED("%s: cannot link to %s: %s", f->symlink, path,
		    strerror(errno));
		(void)unlink(tmp);
	}
}

/* --metrics-file: what lf-file adds to consume's. */
static void
metrics_file(void *ctx, struct metrics *m)
{
	const struct lfile *f = ctx;

	metrics_one_u64(m, "lf_file_written_bytes_total", "counter",
	    "Bytes written to the files (formatted, gzipped with --compress).",
	    f->bytes);
	metrics_one_u64(m, "lf_file_skipped_chunks_total", "counter",
	    "Chunks found written before (a crash after the write) and not "
	    "written again.", f->skipped);
}

/* The chunk, written once.  CONSUME_OK, or RETRY/FAIL with err. */
static enum consume_result
deliver_chunk(struct lfile *f, const struct spool_chunk *c, char *err,
    size_t errlen)
{
	struct fstate *s = &f->st;
	struct buf path = BUF_INIT;
	uint64_t len = 0;
	int fd = -1, rc;
	enum consume_result r = CONSUME_RETRY;

	if (resolve_pending(f, err, errlen) == -1)
		return CONSUME_RETRY;
	if (state_find_done(s, c->h.id)) {
		log_info("%s: written before: deleted now", c->name);
		f->skipped++;
		return CONSUME_OK;
	}
	if ((rc = expand(f, &c->h, &path, err, errlen)) == 1)
		log_fatal(EX_USAGE, "%s: %s", c->name, err);
	if (rc == -1) {
		r = CONSUME_FAIL;
		goto out;
	}
	if (make_dirs(f, (char *)path.p) == -1) {
		snprintf(err, errlen, "%s: cannot make its folder: %s",
		    (char *)path.p, strerror(errno));
		goto out;
	}
	if (choose_file(f, (char *)path.p, err, errlen) == -1)
		goto out;
	memcpy(s->id, c->h.id, 16);
	s->pending = 1;
	if (state_save(f) == -1) {
		s->pending = 0;
		snprintf(err, errlen, "%s: %s", f->state_file, strerror(errno));
		goto out;
	}
	fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    (s->created ? O_EXCL : 0), f->file_mode);
	if (fd == -1 || (s->created && fchmod(fd, f->file_mode) == -1)) {
		snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
		goto out;
	}
	if (write_chunk(f, c, fd, &len, err, errlen) == -1)
		goto out;
	if (s->created && sync_parent(s->path) == -1) {
		snprintf(err, errlen, "%s: fsync of its folder: %s", s->path,
		    strerror(errno));
		goto out;
	}
	/* written and synced: now it is done, and then it may go */
	s->pending = 0;
	state_push_done(s, c->h.id);
	if (state_save(f) == -1) {
		s->pending = 1;
		s->ndone--;
		memmove(s->done[0], s->done[1], s->ndone * 16);
		snprintf(err, errlen, "%s: %s", f->state_file, strerror(errno));
		goto out;
	}
	f->chunks++;
	f->bytes += len;
	symlink_update(f, s->path);
	log_debug("%s: %" PRIu64 " events, %" PRIu64 " bytes to %s", c->name,
	    c->h.count, len, s->path);
	r = CONSUME_OK;
out:
	if (fd != -1)
		close(fd);
	buf_free(&path);
	return r;
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct lfile *f = ctx;
	char err[PATH_MAX + 256];
	enum consume_result r;

	r = deliver_chunk(f, &job->chunk, err, sizeof err);
	if (r == CONSUME_RETRY) {
		f->retries++;
		LOG_WARN_LIMITED("%s: %s (retrying)", job->chunk.name, err);
	}
	consume_job_done(job, r, r == CONSUME_OK ? NULL : err);
}

/* ---- options ---- */

static mode_t
opt_mode(const char *opt, const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 8);
	if (errno || *arg == '\0' || *end != '\0' || v < 0 || v > 07777)
		log_fatal(EX_USAGE, "--%s: an octal mode, not %s", opt, arg);
	return (mode_t)v;
}

static void
opt_keys(struct lfile *f, const char *arg)
{
	char *p, *e;

	free(f->keytext);
	f->nkeys = 0;
	if ((f->keytext = strdup(arg)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (p = f->keytext; p != NULL; p = e) {
		if ((e = strchr(p, ',')) != NULL)
			*e++ = '\0';
		if (*p == '\0' || strcmp(p, "tag") == 0 ||
		    strcmp(p, "time") == 0)
			continue;
		if (f->nkeys == sizeof f->keys / sizeof *f->keys)
			log_fatal(EX_USAGE, "--chunk-key: too many keys");
		f->keys[f->nkeys++] = p;
	}
}

static const struct conf_name compressions[] = {
	{ "text", 0 }, { "gzip", 1 }, { "gz", 1 }, { NULL, 0 },
};

static struct option *
all_options(const struct option *own)
{
	static struct option all[128];
	size_t n = 0, i;

	for (i = 0; own[i].name != NULL; i++)
		all[n++] = own[i];
	for (i = 0; format_options[i].name != NULL; i++)
		all[n++] = format_options[i];
	memset(&all[n], 0, sizeof all[n]);
	return all;
}

static void
parse_args(struct lfile *f, int argc, char **argv)
{
	enum { OPT_PATH = 256, OPT_APPEND, OPT_COMPRESS, OPT_LEVEL,
		OPT_TIMEKEY, OPT_TKUTC, OPT_CHUNKKEY, OPT_SUFFIX, OPT_ADDSUFFIX,
		OPT_SYMLINK, OPT_FMODE, OPT_DMODE, OPT_STATE, OPT_NOTIFY,
		OPT_SHUTTIME, OPT_VERSION };
	static const struct option opts[] = {
		{ "path", required_argument, NULL, OPT_PATH },
		{ "append", optional_argument, NULL, OPT_APPEND },
		{ "compress", required_argument, NULL, OPT_COMPRESS },
		{ "compression-level", required_argument, NULL, OPT_LEVEL },
		{ "timekey", required_argument, NULL, OPT_TIMEKEY },
		{ "timekey-use-utc", optional_argument, NULL, OPT_TKUTC },
		{ "chunk-key", required_argument, NULL, OPT_CHUNKKEY },
		{ "path-suffix", required_argument, NULL, OPT_SUFFIX },
		{ "add-path-suffix", required_argument, NULL, OPT_ADDSUFFIX },
		{ "symlink-path", required_argument, NULL, OPT_SYMLINK },
		{ "file-mode", required_argument, NULL, OPT_FMODE },
		{ "dir-mode", required_argument, NULL, OPT_DMODE },
		{ "state-file", required_argument, NULL, OPT_STATE },
		{ "notify-fd", required_argument, NULL, OPT_NOTIFY },
		{ "shutdown-timeout", required_argument, NULL, OPT_SHUTTIME },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		CONSUME_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	const struct option *all = all_options(opts);
	char err[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "vh", all, NULL)) != -1) {
		if (consume_opt(&f->cc, ch, optarg))
			continue;
		if (ch >= FORMAT_OPT_BASE && ch < FORMAT_OPT_END) {
			if (format_option(&f->fc, ch, optarg, err,
			    sizeof err) == -1)
				log_fatal(EX_USAGE, "%s", err);
			continue;
		}
		switch (ch) {
		case OPT_PATH: f->path_arg = optarg; break;
		case OPT_APPEND:
			f->append = optarg ? conf_opt_bool("append", optarg) : 1;
			break;
		case OPT_COMPRESS:
			f->gzip = conf_opt_enum("compress", optarg, compressions);
			break;
		case OPT_LEVEL:
			f->level = (int)conf_opt_uint("compression-level",
			    optarg, 9);
			break;
		case OPT_TIMEKEY:
			f->timekey = conf_opt_duration("timekey", optarg);
			break;
		case OPT_TKUTC:
			f->timekey_use_utc = optarg ?
			    conf_opt_bool("timekey-use-utc", optarg) : 1;
			break;
		case OPT_CHUNKKEY: opt_keys(f, optarg); break;
		case OPT_SUFFIX: f->path_suffix = optarg; break;
		case OPT_ADDSUFFIX:
			f->add_path_suffix = conf_opt_bool("add-path-suffix",
			    optarg);
			break;
		case OPT_SYMLINK: f->symlink = optarg; break;
		case OPT_FMODE: f->file_mode = opt_mode("file-mode", optarg); break;
		case OPT_DMODE: f->dir_mode = opt_mode("dir-mode", optarg); break;
		case OPT_STATE: f->state_file = optarg; break;
		case OPT_NOTIFY:
			f->notify_fd = (int)conf_opt_uint("notify-fd", optarg,
			    INT_MAX);
			break;
		case OPT_SHUTTIME:
			f->cc.shutdown_timeout = conf_opt_duration(
			    "shutdown-timeout", optarg);
			break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case OPT_VERSION: puts("lf-file " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc - 1 || f->path_arg == NULL)
		usage(EX_USAGE);
	if (f->level < 1)
		log_fatal(EX_USAGE, "--compression-level: 1 to 9");
	if (f->timekey > 0 && f->timekey < 1)
		log_fatal(EX_USAGE, "--timekey: at least 1s");
	if (consume_conf_check(&f->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	/* one chunk at a time: the state record has one pending chunk */
	f->cc.flush_thread_count = 1;
	make_template(f);
	check_placeholders(f, f->tmpl, "--path");
	if (f->symlink && (has_time_fields(f->symlink) ||
	    strstr(f->symlink, "${") != NULL))
		log_fatal(EX_USAGE, "--symlink-path: a plain path (it points "
		    "at the newest file)");
	if ((f->fmt = format_new(&f->fc, err, sizeof err)) == NULL)
		log_fatal(EX_USAGE, "%s", err);
}

static void
state_open(struct lfile *f)
{
	char *d, *s;
	int dfd;

	if (f->state_file == NULL) {
		if (asprintf(&d, "%s/state/file", f->spool.path) == -1)
			log_fatal(EX_OSERR, "out of memory");
		f->state_file = d;
	} else if ((f->state_file = strdup(f->state_file)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	f->state_fd = open(f->state_file, O_RDWR | O_CLOEXEC);
	if (f->state_fd == -1 && errno == ENOENT) {
		/* new: its name made durable once, here */
		f->state_fd = open(f->state_file, O_RDWR | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0644);
		if ((d = strdup(f->state_file)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		if ((s = strrchr(d, '/')) != NULL)
			s[s == d] = '\0';
		if ((dfd = open(s ? d : ".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1 || durable_fsync(dfd) == -1)
			log_fatal(EX_CANTCREAT, "%s: %s", d, strerror(errno));
		close(dfd);
		free(d);
	}
	if (f->state_fd == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", f->state_file,
		    strerror(errno));
	state_load(f);
}

static void
sig_term(void *ctx)
{
	consume_stop(((struct lfile *)ctx)->consume);
}

static void
sig_now(void *ctx)
{
	consume_kick(((struct lfile *)ctx)->consume);
}

static const struct sig_actions file_sig_actions = { sig_term, sig_now, NULL };

int
main(int argc, char **argv)
{
	static struct lfile f;
	struct sig sig;
	char err[PATH_MAX + 256];
	int rc;

	log_init(argv[0]);
	consume_conf_default(&f.cc);
	format_conf_default(&f.fc);
	f.level = 6;			/* Zlib::GzipWriter's default */
	f.path_suffix = ".log";
	f.add_path_suffix = 1;
	f.file_mode = 0644;		/* Fluentd's DEFAULT_FILE_PERMISSION */
	f.dir_mode = 0755;		/* and DEFAULT_DIR_PERMISSION */
	f.notify_fd = -1;
	parse_args(&f, argc, argv);
	if (spool_open(&f.spool, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	state_open(&f);
	if (resolve_pending(&f, err, sizeof err) == -1)
		log_warn("%s (undone before the next chunk)", err);
	f.loop = EV_DEFAULT;
	if ((f.consume = consume_new(f.loop, &f.spool, &f.cc, deliver, NULL,
	    &f)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	consume_set_metrics(f.consume, "file", metrics_file);
	sig_start(&sig, f.loop, &file_sig_actions, &f);
	if (consume_start(f.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", f.spool.path);
	if (f.notify_fd >= 0) {
		(void)!write(f.notify_fd, "\n", 1);
		close(f.notify_fd);
	}
	log_info("ready: %s to %s", f.spool.path, f.tmpl);
	ev_run(f.loop, 0);
	rc = consume_status(f.consume);
	sig_stop(&sig);
	log_info("stats: chunks=%llu events=%llu bytes=%llu skipped=%llu "
	    "retries=%llu", f.chunks, f.events, f.bytes, f.skipped,
	    f.retries);
	log_limit_summary();
	consume_free(f.consume);
	spool_close(&f.spool);
	format_free(f.fmt);
	buf_free(&f.out);
	buf_free(&f.win);
	free(f.tmpl);
	free(f.keytext);
	free(f.state_file);
	close(f.state_fd);
	return rc;
}
