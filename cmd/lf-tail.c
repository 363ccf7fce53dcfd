/* lf-tail: Fluentd's in_tail as a tool (lf-tail(1)).
 *
 * lf-tail [options] --tag TAG [--format none|json] [--pos-file FILE]
 *         [--to unix:PATH] PATH...
 *
 * lib/tail follows the files and hands over whole lines with their file
 * offsets; here they become records, batched per file into PackedForward
 * batches of canonical entries, written to stdout as a stream or sent
 * over the acknowledged hop (lib/hop) to lf-buffer.
 *
 * Exactly once from file to spool, with --to and --pos-file: a batch is
 * the lines of one byte range of one file, and its chunk id is derived
 * from the file's identity (device, inode, birth time) and that range,
 * so a batch sent again after a crash of either side is the same chunk
 * to lf-buffer's dedup window.  A position is saved only once every
 * batch before it was acked, so nothing unacked is ever skipped.  For
 * the ids to match, a batch made again must cover the same range as the
 * one sent before: the ranges sent and not yet acked are kept in a
 * journal beside the position file (FILE.sent), appended before each
 * send, and read at start so the first batches of a file are cut where
 * they were cut before.
 *
 * A truncated file (copytruncate) holds new lines at the byte ranges of
 * old ones: the same ids, which lf-buffer's dedup window would take for
 * resends and drop.  So each truncation seen (while running, or at start
 * as a file shorter than its position) starts an epoch, the time it was
 * seen in nanoseconds, which goes into the ids of the batches of the
 * new content and is kept in the journal (with every range, and on a
 * line of its own for each file with one) so that a run after a crash
 * resends with the same ids. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "conf.h"
#include "dial.h"
#include "hop.h"
#include "io.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "posfile.h"
#include "report.h"
#include "sig.h"
#include "stream.h"
#include "tail.h"
#include "tail_recode.h"

#define USAGE "usage: lf-tail [-v] -t tag [-f none|json] [--pos-file file]\n" \
	"               [--to unix:PATH|HOST:PORT] [--path-key key]\n" \
	"               [--exclude-path glob] [--refresh-interval dur]\n" \
	"               [--read-from-head] [--limit-recently-modified dur]\n" \
	"               [--follow-inodes] [--rotate-wait dur]\n" \
	"               [--skip-refresh-on-startup] [--open-on-every-update]\n" \
	"               [--max-line-size size] [--read-lines-limit n]\n" \
	"               [--read-bytes-limit-per-second size]\n" \
	"               [--partial-flush-interval dur] [--batch-size size]\n" \
	"               [--multiline-flush-interval dur]\n" \
	"               [--encoding enc [--from-encoding enc]]\n" \
	"               [--emit-unmatched-lines bool] [--time-key key]\n" \
	"               [--time-format fmt] [--keep-time-key] [--utc]\n" \
	"               [--pos-file-compaction-interval dur]\n" \
	"               [--shutdown-timeout dur] [--state-file file]\n" \
	"               [--notify-fd n] [--log-file file] [--exit-on-eof]\n" \
	"               [--window-bytes size] [--metrics-file file]\n" \
	"               [--metrics-interval dur]\n" \
	"               path ...\n"


struct sent {			/* a batch in flight */
	struct tail_file *f;
	uint64_t start, end, epoch;
	unsigned gen;
	int done;
	size_t lines;
	struct sent *next;
};

struct cut {			/* a range sent by an earlier run, or (start
				 * and end 0) the epoch of a file */
	uint64_t dev, ino, btime, start, end, epoch;
};

struct fstate {
	uint64_t acked;		/* the position: everything before is delivered */
	unsigned gen;		/* truncations seen */
	uint64_t epoch;		/* of the last truncation seen, or 0 */
	struct sent *q, **qtail;
	struct buf ents;	/* the batch being made */
	size_t count, lines;
	uint64_t bstart, bend;	/* its bytes: sent up to bstart, read to bend */
	uint64_t held;		/* multiline: where the held record starts */
	int holding;
	double last_line;	/* when a line was last read (ev_now) */
	int ready;		/* full: waiting for room in the hop */
	int truncated;		/* once the batch before it is sent */
	int journaled;
	struct parser *parser;	/* one a file: a multiline record is held */
	struct cut *cuts;	/* ends to cut at, from the journal */
	size_t ncuts, icut;
	char *tag;
	size_t taglen;
	unsigned long long nlines, errors;
};

struct rot {			/* rotations seen under a name followed */
	char *path;
	unsigned long long n;
	int seen;		/* followed at the last metrics write */
};

struct lt {
	struct ev_loop *loop;
	struct tail_conf tc;
	struct tail *tail;
	const char *tag;
	struct parse_conf pc;
	const char *path_key;
	int emit_unmatched;
	size_t lines_limit, batch_bytes;
	double ml_flush;	/* --multiline-flush-interval; 0: never */
	const char *encoding, *from_encoding;
	struct tail_recode *recode;	/* NULL: lines are passed as bytes */
	struct buf conv;		/* a line converted */
	unsigned long long replaced;	/* sequences replaced converting */
	ev_timer ml_t;
	/* positions */
	const char *pos_path;
	struct posfile pf;
	int dirty;
	ev_timer save_t, state_t, stop_t;
	char *jpath;
	int jfd;
	struct cut *cuts;
	size_t ncuts;
	/* output */
	const char *to;
	struct dial_addr addr;
	struct hop_conf hc;
	struct hop *hop;
	struct stream_writer w;
	int outfd;
	struct buf rec;
	uint32_t now_sec, now_nsec;
	/* run */
	const char *state_file, *logfile;
	int notify_fd;
	double shutdown_timeout, started, stop_at;
	int stopping, gaveup, exit_on_eof;
	ev_timer eof_t;
	unsigned long long lines, errors, batches, acked_lines;
	/* metrics: events made and their msgpack bytes, lines skipped */
	const char *metrics_path;
	double metrics_interval, last_event;
	struct metrics_writer mw;
	unsigned long long events, ev_bytes, skipped;
	struct rot *rots;
	size_t nrots;
};

/* ---- records ---- */

static int
mp_str(struct buf *b, const char *s, size_t n)
{
	unsigned char h[5];
	size_t hl;

	if (n < 32) {
		h[0] = 0xa0 | (unsigned char)n;
		hl = 1;
	} else if (n < 256) {
		h[0] = 0xd9;
		h[1] = (unsigned char)n;
		hl = 2;
	} else if (n < 65536) {
		h[0] = 0xda;
		h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)n;
		hl = 3;
	} else {
		h[0] = 0xdb;
		h[1] = (unsigned char)(n >> 24);
		h[2] = (unsigned char)(n >> 16);
		h[3] = (unsigned char)(n >> 8);
		h[4] = (unsigned char)n;
		hl = 5;
	}
	if (buf_add(b, h, hl) == -1)
		return -1;
	return buf_add(b, s, n);
}

/* One more key and str value at the end of the map in rec. */
static int
map_add(struct buf *rec, const char *key, const char *val)
{
	struct buf nb = BUF_INIT;
	unsigned char *p = rec->p;
	size_t hl, n;
	int rc;

	if (rec->len == 0)
		return -1;
	if ((p[0] & 0xf0) == 0x80) {
		n = p[0] & 0x0f;
		hl = 1;
	} else if (p[0] == 0xde && rec->len >= 3) {
		n = (size_t)p[1] << 8 | p[2];
		hl = 3;
	} else if (p[0] == 0xdf && rec->len >= 5) {
		n = (size_t)p[1] << 24 | (size_t)p[2] << 16 |
		    (size_t)p[3] << 8 | p[4];
		hl = 5;
	} else
		return -1;
	n++;
	if (n < 16)
		rc = buf_addc(&nb, 0x80 | (int)n);
	else if (n < 65536) {
		unsigned char h[3] = { 0xde, (unsigned char)(n >> 8),
		    (unsigned char)n };

		rc = buf_add(&nb, h, 3);
	} else {
		unsigned char h[5] = { 0xdf, (unsigned char)(n >> 24),
		    (unsigned char)(n >> 16), (unsigned char)(n >> 8),
		    (unsigned char)n };

		rc = buf_add(&nb, h, 5);
	}
	if (rc == -1 || buf_add(&nb, p + hl, rec->len - hl) == -1 ||
	    mp_str(&nb, key, strlen(key)) == -1 ||
	    mp_str(&nb, val, strlen(val)) == -1) {
		buf_free(&nb);
		return -1;
	}
	buf_free(rec);
	*rec = nb;
	return 0;
}

/* Fluentd's tag rule: the tag split at '*'; the path with '/' turned
 * into '.', runs of dots squeezed and a leading dot removed goes between
 * the first two parts (a part after a second '*' is dropped, as Ruby's
 * split and in_tail's two-part assignment drop it). */
static char *
expand_tag(const char *tag, const char *path)
{
	const char *star = strchr(tag, '*'), *suf, *end, *p;
	struct buf b = BUF_INIT;

	if (star == NULL)
		return strdup(tag);
	suf = star + 1;
	end = strchr(suf, '*');
	if (end == NULL)
		end = suf + strlen(suf);
	if (buf_add(&b, tag, (size_t)(star - tag)) == -1)
		goto fail;
	for (p = path; *p; p++) {
		char c = *p == '/' ? '.' : *p;

		if (c == '.' && (p == path || (b.len > (size_t)(star - tag) &&
		    b.p[b.len - 1] == '.') || b.len == (size_t)(star - tag)))
			continue;
		if (buf_addc(&b, c) == -1)
			goto fail;
	}
	if (buf_add(&b, suf, (size_t)(end - suf)) == -1 || buf_addc(&b, 0) == -1)
		goto fail;
	return (char *)b.p;
fail:
	buf_free(&b);
	return NULL;
}

/* ---- the journal of ranges sent (FILE.sent) ---- */

static int
jline(struct buf *b, const struct tail_file *f, uint64_t start, uint64_t end,
    uint64_t epoch)
{
	return buf_printf(b, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64
	    " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n", f->dev,
	    f->ino, f->btime, start, end, epoch);
}

static void
journal_load(struct lt *t)
{
	char line[128];
	struct cut c;
	FILE *fp;

	if ((fp = fopen(t->jpath, "re")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL) {
		struct cut *n;
		int nf;

		/* five fields: a journal from before epochs, epoch 0 */
		c.epoch = 0;
		nf = sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64
		    " %" SCNx64 " %" SCNx64, &c.dev, &c.ino, &c.btime,
		    &c.start, &c.end, &c.epoch);
		if (nf < 5 || strchr(line, '\n') == NULL ||
		    (c.end <= c.start && !(c.start == 0 && c.end == 0 &&
		    c.epoch != 0)))
			continue;	/* a torn last line */
		if ((n = reallocarray(t->cuts, t->ncuts + 1, sizeof *n)) == NULL)
			break;
		t->cuts = n;
		t->cuts[t->ncuts++] = c;
	}
	fclose(fp);
}

static void
journal_open(struct lt *t)
{
	if (t->jpath == NULL)
		return;
	if ((t->jfd = open(t->jpath, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0644)) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", t->jpath, strerror(errno));
}

/* Appended before the send.  A write(2) to the page cache outlives a
 * kill -9 of lf-tail; it is not synced, so after a crash of the machine
 * a range may be cut differently and stored twice, never lost. */
static int
journal_add(struct lt *t, const struct tail_file *f, uint64_t start,
    uint64_t end)
{
	struct buf b = BUF_INIT;
	int rc;

	if (t->jfd == -1)
		return 0;
	rc = jline(&b, f, start, end, ((struct fstate *)f->udata)->epoch) == 0 ?
	    io_write_all(t->jfd, b.p, b.len) : -1;
	buf_free(&b);
	return rc;
}

/* After the positions were saved: only the ranges still in flight. */
static void
journal_rewrite(struct lt *t)
{
	struct buf b = BUF_INIT;
	struct tail_file *f;
	struct sent *s;
	char tmp[PATH_MAX];
	int fd, ok = 0;

	if (t->jfd == -1)
		return;
	for (f = tail_files(t->tail); f; f = f->next) {
		struct fstate *fs = f->udata;

		if (fs->epoch != 0 && jline(&b, f, 0, 0, fs->epoch) == -1)
			goto out;
		for (s = fs->q; s; s = s->next)
			if (jline(&b, f, s->start, s->end, s->epoch) == -1)
				goto out;
		if (fs->journaled && jline(&b, f, fs->bstart, fs->bend,
		    fs->epoch) == -1)
			goto out;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", t->jpath);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1)
		goto out;
	ok = io_write_all(fd, b.p, b.len) == 0;
	ok = close(fd) == 0 && ok && rename(tmp, t->jpath) == 0;
	if (ok) {
		close(t->jfd);
		journal_open(t);
	}
out:
	if (!ok)
		LOG_WARN_LIMITED("%s: %s", t->jpath, strerror(errno));
	buf_free(&b);
}

/* ---- positions ---- */

/* Is f's name held by another file: one not rotated, or a rotated one
 * later in the list (rotated after f)? */
static int
named(struct lt *t, const struct tail_file *f)
{
	const struct tail_file *g;
	int after = 0;

	for (g = tail_files(t->tail); g; g = g->next) {
		if (g == f) {
			after = 1;
			continue;
		}
		if (strcmp(g->path, f->path) == 0 && (!g->rotated || after))
			return 1;
	}
	return 0;
}

static void
positions_save(struct lt *t)
{
	struct buf b = BUF_INIT;
	struct tail_file *f;
	size_t i;

	if (t->pos_path == NULL || !t->dirty)
		return;
	for (f = tail_files(t->tail); f; f = f->next) {
		struct fstate *fs = f->udata;

		/* by path, the name's entry is its present file's, or while
		 * none is there the rotated one's: its inode then tells the
		 * next run that a file under the name is new */
		if (!t->pf.by_inode && f->rotated && named(t, f))
			continue;
		if (posfile_line(&b, f->path, fs->acked, f->ino) == -1 &&
		    errno != EINVAL)
			goto fail;
	}
	/* skip_refresh_on_startup: entries not looked at yet are kept */
	for (i = 0; i < t->pf.n; i++)
		if (posfile_line(&b, t->pf.e[i].path, t->pf.e[i].pos,
		    t->pf.e[i].ino) == -1 && errno != EINVAL)
			goto fail;
	if (posfile_write(t->pos_path, b.p, b.len) == -1)
		goto fail;
	t->dirty = 0;
	buf_free(&b);
	journal_rewrite(t);
	return;
fail:
	LOG_WARN_LIMITED("%s: cannot save the positions: %s", t->pos_path,
	    strerror(errno));
	buf_free(&b);
}

static void
save_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lt *t = w->data;

	(void)loop;
	(void)revents;
	/* loaded entries are kept only until the files were looked for */
	if (t->pf.n > 0 && (!t->tc.skip_refresh_on_startup ||
	    ev_now(t->loop) - t->started > t->tc.refresh_interval + 1)) {
		posfile_clear(&t->pf);
		t->dirty = 1;
	}
	positions_save(t);
}

/* ---- batches ---- */

static void
advance(struct lt *t, struct tail_file *f)
{
	struct fstate *fs = f->udata;
	struct sent *s;

	while ((s = fs->q) != NULL && s->done) {
		if (s->gen == fs->gen)
			fs->acked = s->end;
		fs->q = s->next;
		if (fs->q == NULL)
			fs->qtail = &fs->q;
		free(s);
		t->dirty = 1;
	}
}

/* Where the batch may end: before a held multiline record. */
static uint64_t
send_end(const struct fstate *fs)
{
	return fs->holding ? fs->held : fs->bend;
}

static void
batch_reset(struct fstate *fs)
{
	fs->ents.len = 0;
	fs->count = fs->lines = 0;
	fs->journaled = 0;
	fs->ready = 0;
	fs->bstart = send_end(fs);
}

/* Send the batch being made: 0, or -1 when the hop is full (the batch is
 * kept, ready, and sent first next time). */
static int
batch_send(struct lt *t, struct tail_file *f)
{
	struct fstate *fs = f->udata;
	struct hop_id id;
	struct sent *s;
	unsigned char key[64 + 6 * 8];
	uint64_t end = send_end(fs);
	uint64_t v[6] = { f->dev, f->ino, f->btime, fs->bstart, end,
	    fs->epoch };
	size_t kl, i, j, nv = fs->epoch != 0 ? 6 : 5;
	int rc;

	if (end == fs->bstart)
		return 0;
	if (fs->count > 0 && t->hop == NULL) {
		if (stream_writer_add_entries(&t->w, fs->tag, fs->taglen,
		    fs->ents.p, fs->ents.len, fs->count) == -1 ||
		    stream_writer_flush(&t->w) == -1)
			log_fatal(EX_IOERR, "write: %s", strerror(errno));
	}
	if (fs->count == 0 || t->hop == NULL) {
		/* delivered (or nothing to deliver: skipped lines only) */
		if ((s = calloc(1, sizeof *s)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		*s = (struct sent){ f, fs->bstart, end, fs->epoch, fs->gen, 1, 0,
		    NULL };
		*fs->qtail = s;
		fs->qtail = &s->next;
		t->acked_lines += fs->lines;
		batch_reset(fs);
		advance(t, f);
		return 0;
	}
	/* the id: the tag as given (not as expanded: a file renamed keeps
	 * its batches' ids), the file's identity, the range, and after a
	 * truncation its epoch */
	kl = strlen(t->tag);
	if (kl > 64)
		kl = 64;
	memcpy(key, t->tag, kl);
	for (i = 0; i < nv; i++)
		for (j = 0; j < 8; j++)
			key[kl++] = (unsigned char)(v[i] >> (56 - 8 * j));
	if (hop_id_derive(&id, key, kl) == -1)
		log_fatal(EX_SOFTWARE, "cannot derive a chunk id");
	if (!fs->journaled) {
		if (journal_add(t, f, fs->bstart, end) == -1)
			log_fatal(EX_IOERR, "%s: %s", t->jpath, strerror(errno));
		fs->journaled = 1;
	}
	if ((s = calloc(1, sizeof *s)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	*s = (struct sent){ f, fs->bstart, end, fs->epoch, fs->gen, 0, fs->lines,
	    NULL };
	rc = hop_send(t->hop, fs->tag, fs->taglen, fs->ents.p, fs->ents.len,
	    fs->count, &id, s);
	if (rc == HOP_FULL) {
		free(s);
		fs->ready = 1;
		return -1;
	}
	if (rc == -1)
		log_fatal(errno == EMSGSIZE ? EX_DATAERR : EX_OSERR,
		    "cannot send a batch of %zu events: %s", fs->count,
		    strerror(errno));
	*fs->qtail = s;
	fs->qtail = &s->next;
	t->batches++;
	batch_reset(fs);
	return 0;
}

/* The next end an earlier run cut this file's batches at, past off. */
static const struct cut *
next_cut(struct fstate *fs, uint64_t off)
{
	while (fs->icut < fs->ncuts && fs->cuts[fs->icut].end <= off)
		fs->icut++;
	return fs->icut < fs->ncuts ? &fs->cuts[fs->icut] : NULL;
}

static void
drop_cuts(struct fstate *fs)
{
	free(fs->cuts);
	fs->cuts = NULL;
	fs->ncuts = fs->icut = 0;
}

/* A record out of the parser (rc) into the batch. */
static int
add_record(struct lt *t, struct tail_file *f, int rc, uint32_t sec,
    uint32_t nsec, const char *err)
{
	struct fstate *fs = f->udata;
	unsigned char h[STREAM_ENTRY_HEAD];
	const char *text;
	size_t len;

	if (rc == PARSE_MORE)
		return 0;
	if (rc == PARSE_ERR) {
		fs->errors++;
		t->errors++;
		LOG_WARN_LIMITED("%s: pattern not matched: %s", f->path, err);
		if (!t->emit_unmatched)
			return 0;
		text = parse_failed(fs->parser, &len);
		buf_reset(&t->rec);
		if (parse_unmatched(&t->rec, text, len) == -1)
			return -1;
	}
	if (rc != PARSE_OK) {
		sec = t->now_sec;
		nsec = t->now_nsec;
	}
	if (t->path_key && map_add(&t->rec, t->path_key, f->path) == -1)
		return -1;
	stream_entry_head(h, sec, nsec);
	if (buf_add(&fs->ents, h, sizeof h) == -1 ||
	    buf_add(&fs->ents, t->rec.p, t->rec.len) == -1)
		return -1;
	fs->count++;
	t->events++;
	t->ev_bytes += sizeof h + t->rec.len;
	t->last_event = ev_now(t->loop);
	return 0;
}

static int
add_line(struct lt *t, struct tail_file *f, const char *line, size_t len,
    uint64_t at)
{
	struct fstate *fs = f->udata;
	uint32_t sec = 0, nsec = 0;
	char err[160];
	int rc, was = parse_pending(fs->parser) > 0;

	if (len > 0 && line[len - 1] == '\r')	/* Ruby's chomp */
		len--;
	if (len > t->tc.max_line_size) {
		t->skipped++;
		LOG_WARN_LIMITED("%s: a line of %zu bytes skipped "
		    "(--max-line-size)", f->path, len);
		return 0;
	}
	if (t->recode) {
		if (tail_recode_line(t->recode, line, len, &t->conv,
		    &t->replaced) == -1)
			return -1;
		line = (const char *)t->conv.p;
		len = t->conv.len;
	}
	buf_reset(&t->rec);
	rc = parse_line(fs->parser, line, len, &t->rec, &sec, &nsec, err,
	    sizeof err);
	if (add_record(t, f, rc, sec, nsec, err) == -1)
		return -1;
	/* a record held from this line on: the batch ends before it */
	if (parse_pending(fs->parser) > 0) {
		if (!was || rc != PARSE_MORE) {
			fs->held = at;
			fs->holding = 1;
		}
	} else
		fs->holding = 0;
	return 0;
}

/* The held multiline record goes out now. */
static int
flush_held(struct lt *t, struct tail_file *f)
{
	struct fstate *fs = f->udata;
	uint32_t sec = 0, nsec = 0;
	char err[160];
	int rc;

	if (!fs->holding)
		return 0;
	buf_reset(&t->rec);
	rc = parse_flush(fs->parser, &t->rec, &sec, &nsec, err, sizeof err);
	fs->holding = 0;
	return add_record(t, f, rc, sec, nsec, err);
}

/* From the head again: a new generation of positions. */
/* A truncation seen: the epoch of the content from now on, the time in
 * nanoseconds (another than the last, should the clock not move). */
static void
new_epoch(struct fstate *fs)
{
	struct timespec ts;
	uint64_t e;

	clock_gettime(CLOCK_REALTIME, &ts);
	e = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	fs->epoch = e > fs->epoch ? e : fs->epoch + 1;
}

static void
restart(struct lt *t, struct fstate *fs)
{
	fs->truncated = 0;
	new_epoch(fs);
	fs->gen++;
	fs->acked = 0;
	drop_cuts(fs);
	batch_reset(fs);
	fs->bstart = fs->bend = 0;
	t->dirty = 1;
}

static void
clock_now(struct lt *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	t->now_sec = (uint32_t)ts.tv_sec;
	t->now_nsec = (uint32_t)ts.tv_nsec;
}

/* lib/tail's lines: whole lines from f->off.  Each line goes into the
 * file's batch; a batch is sent when it is full, when it reaches a cut
 * of an earlier run, or when the file is read to its end. */
static size_t
on_lines(void *ctx, struct tail_file *f, const char *p, size_t n, int flags)
{
	struct lt *t = ctx;
	struct fstate *fs = f->udata;
	const struct cut *c;
	size_t i = 0, len;
	const char *nl;

	if (t->stopping || (fs->ready && batch_send(t, f) == -1))
		return 0;
	if (fs->truncated)
		restart(t, fs);
	clock_now(t);
	if (n > 0)
		fs->last_line = ev_now(t->loop);
	/* a range must be contiguous: after a truncation or a skipped
	 * line, the batch so far goes first (a held record with it) */
	if (fs->bend != f->off) {
		if (flush_held(t, f) == -1)
			log_fatal(EX_OSERR, "out of memory");
		if (batch_send(t, f) == -1)
			return 0;
		fs->bstart = fs->bend = f->off;
	}
	while (i < n) {
		c = next_cut(fs, fs->bstart);
		if (!c && (fs->lines >= t->lines_limit ||
		    fs->ents.len >= t->batch_bytes) && batch_send(t, f) == -1)
			return i;
		nl = memchr(p + i, '\n', n - i);
		len = nl ? (size_t)(nl - (p + i)) : n - i;	/* TAIL_FLUSH */
		fs->journaled = 0;	/* the range grows past the record */
		if (add_line(t, f, p + i, len, f->off + i) == -1)
			log_fatal(EX_OSERR, "out of memory");
		i += len + (nl != NULL);
		fs->bend = f->off + i;
		fs->lines++;
		fs->nlines++;
		t->lines++;
		if (c && send_end(fs) >= c->end) {
			if (send_end(fs) > c->end)
				drop_cuts(fs);	/* not what that run read */
			else {
				fs->icut++;
				if (batch_send(t, f) == -1)
					return i;
			}
		}
	}
	if (flags & TAIL_FLUSH && flush_held(t, f) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (flags & (TAIL_EOF | TAIL_FLUSH)) {
		c = next_cut(fs, fs->bstart);
		if (c && (flags & TAIL_EOF) && c->end > f->size)
			drop_cuts(fs);	/* the file is shorter than it was */
		if (next_cut(fs, fs->bstart) == NULL)
			(void)batch_send(t, f);	/* full: sent on writable */
	}
	return n;
}

/* --multiline-flush-interval: a held record with no line read after it
 * for that long goes out (Fluentd's LineBufferTimerFlusher), and with it
 * the batch it ended, as at the end of a file.  Only at the end of what
 * was read: a file paused by back pressure has lines waiting that may
 * continue the record. */
static void
ml_flush_file(struct lt *t, struct tail_file *f, double now)
{
	struct fstate *fs = f->udata;
	const struct cut *c;

	if (!fs->holding || fs->ready || !f->at_eof || fs->bend != f->off ||
	    now - fs->last_line < t->ml_flush)
		return;
	clock_now(t);
	if (flush_held(t, f) == -1)
		log_fatal(EX_OSERR, "out of memory");
	/* a range an earlier run sent is sent again as it was cut */
	if ((c = next_cut(fs, fs->bstart)) != NULL) {
		if (send_end(fs) < c->end)
			return;		/* more lines to come in it */
		if (send_end(fs) > c->end)
			drop_cuts(fs);
		else
			fs->icut++;
	}
	(void)batch_send(t, f);		/* full: sent on room */
}

static void
ml_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lt *t = w->data;
	struct tail_file *f;

	(void)revents;
	if (t->stopping)
		return;
	for (f = tail_files(t->tail); f; f = f->next)
		ml_flush_file(t, f, ev_now(loop));
}

static uint64_t
on_start(void *ctx, struct tail_file *f, int startup)
{
	struct lt *t = ctx;
	struct fstate *fs;
	struct posfile_ent *e;
	uint64_t off;
	size_t i;

	if ((fs = calloc(1, sizeof *fs)) == NULL ||
	    (fs->tag = expand_tag(t->tag, f->path)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	fs->taglen = strlen(fs->tag);
	fs->qtail = &fs->q;
	{
		char err[256];

		if ((fs->parser = parse_new(&t->pc, err, sizeof err)) == NULL)
			log_fatal(EX_SOFTWARE, "%s", err);
	}
	f->udata = fs;
	e = posfile_find(&t->pf, f->path, f->ino);
	off = posfile_start(e, f->ino, f->size,
	    startup ? t->tc.read_from_head : 1);
	/* the file's epoch, from the journal */
	for (i = 0; i < t->ncuts; i++)
		if (t->cuts[i].dev == f->dev && t->cuts[i].ino == f->ino &&
		    t->cuts[i].btime == f->btime &&
		    t->cuts[i].epoch > fs->epoch)
			fs->epoch = t->cuts[i].epoch;
	/* truncated while lf-tail was down */
	if (e != NULL && e->ino == f->ino && f->size < e->pos) {
		new_epoch(fs);
		log_info("%s: shorter than its position, truncated: from its "
		    "head", f->path);
	}
	if (e != NULL) {	/* taken: the file's own entry from now on */
		free(e->path);
		*e = t->pf.e[--t->pf.n];
	}
	fs->acked = fs->bstart = fs->bend = off;
	fs->last_line = ev_now(t->loop);
	for (i = 0; i < t->ncuts; i++) {
		struct cut *c = &t->cuts[i], *nc;

		if (c->dev != f->dev || c->ino != f->ino ||
		    c->btime != f->btime || c->start < off ||
		    c->end == 0 || c->epoch != fs->epoch)
			continue;
		if ((nc = reallocarray(fs->cuts, fs->ncuts + 1,
		    sizeof *nc)) == NULL)
			break;
		fs->cuts = nc;
		fs->cuts[fs->ncuts++] = *c;
	}
	t->dirty = 1;
	log_info("%s: following from %" PRIu64 "%s", f->path, off,
	    fs->ncuts ? ", ranges in flight before resent as they were" : "");
	return off;
}

static void
on_skipped(void *ctx, struct tail_file *f, uint64_t off, uint64_t n)
{
	struct lt *t = ctx;

	t->skipped++;
	LOG_WARN_LIMITED("%s: a line over --max-line-size at offset %" PRIu64
	    " skipped (%" PRIu64 " bytes so far)", f->path, off, n);
}

/* The rotations (and truncations) of a name, counted here: a file's own
 * count goes when it is closed. */
static void
rot_count(struct lt *t, const char *path)
{
	struct rot *r;
	size_t i;

	if (t->metrics_path == NULL)
		return;		/* only the metrics read (and prune) it */
	for (i = 0; i < t->nrots; i++)
		if (strcmp(t->rots[i].path, path) == 0) {
			t->rots[i].n++;
			return;
		}
	if ((r = reallocarray(t->rots, t->nrots + 1, sizeof *r)) == NULL)
		return;		/* a counter, not a record */
	t->rots = r;
	if ((r[t->nrots].path = strdup(path)) == NULL)
		return;
	r[t->nrots].n = 1;
	r[t->nrots++].seen = 1;
}

static void
on_truncated(void *ctx, struct tail_file *f)
{
	struct lt *t = ctx;
	struct fstate *fs = f->udata;

	rot_count(t, f->path);
	log_info("%s: truncated, reading from its head", f->path);
	/* what was read before stays a batch of its own; if the hop is
	 * full it goes first, before any line of the new content */
	clock_now(t);
	if (flush_held(t, f) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (batch_send(t, f) == -1) {
		fs->truncated = 1;
		return;
	}
	restart(t, fs);
}

static void
on_rotated(void *ctx, struct tail_file *f)
{
	rot_count(ctx, f->path);
	log_info("%s: rotated (inode %" PRIu64 "), read on to its end",
	    f->path, f->ino);
}

static int
on_busy(void *ctx, struct tail_file *f)
{
	struct fstate *fs = f->udata;

	struct lt *t = ctx;

	/* a rotated file at its end: its held record is complete */
	if (f->rotated && f->at_eof && fs->holding && !t->stopping) {
		clock_now(t);
		if (flush_held(t, f) == -1)
			log_fatal(EX_OSERR, "out of memory");
	}
	if (fs->bend > fs->bstart && !fs->ready && !t->stopping)
		(void)batch_send(t, f);
	return fs->q != NULL || fs->bend > fs->bstart;
}

static void
on_closed(void *ctx, struct tail_file *f)
{
	struct lt *t = ctx;
	struct fstate *fs = f->udata;
	struct sent *s;

	while ((s = fs->q) != NULL) {	/* only at exit */
		fs->q = s->next;
		free(s);
	}
	buf_free(&fs->ents);
	parse_free(fs->parser);
	free(fs->cuts);
	free(fs->tag);
	free(fs);
	f->udata = NULL;
	t->dirty = 1;
}

/* ---- the hop ---- */

static void
hop_acked(void *ctx, void *arg, size_t count)
{
	struct lt *t = ctx;
	struct sent *s = arg;

	(void)count;
	s->done = 1;
	t->acked_lines += s->lines;
	advance(t, s->f);
}

static void
hop_lost(void *ctx, void *arg, size_t count)
{
	struct lt *t = ctx;

	(void)arg;
	(void)count;
	t->gaveup = 1;
	ev_break(t->loop, EVBREAK_ALL);
}

static void
hop_room(void *ctx)
{
	struct lt *t = ctx;
	struct tail_file *f;

	if (t->stopping)
		return;
	/* batches made at a file's end wait for no more lines */
	for (f = tail_files(t->tail); f; f = f->next) {
		struct fstate *fs = f->udata;

		if ((fs->ready || (fs->bend == f->off && f->at_eof &&
		    next_cut(fs, fs->bstart) == NULL)) &&
		    batch_send(t, f) == -1)
			return;
	}
	tail_resume(t->tail);
}

/* ---- the state file ---- */

/* A report for an operator, replaced whole every second and at exit;
 * not synced (as lf-send's). */
static void
state_write(struct lt *t)
{
	yajl_gen g;
	struct tail_file *f;

	if (t->state_file == NULL || (g = report_new()) == NULL)
		return;
	report_int(g, "lines", t->lines);
	report_int(g, "delivered_lines", t->acked_lines);
	report_int(g, "parse_errors", t->errors);
	report_int(g, "encoding_replacements", t->replaced);
	report_int(g, "batches", t->batches);
	report_int(g, "in_flight_batches", t->hop ? hop_batches(t->hop) : 0);
	report_str(g, "files");
	yajl_gen_array_open(g);
	for (f = tail_files(t->tail); f; f = f->next) {
		struct fstate *fs = f->udata;

		yajl_gen_map_open(g);
		report_str(g, "path");
		report_str(g, f->path);
		report_int(g, "inode", f->ino);
		report_int(g, "position", fs->acked);
		report_int(g, "read", f->off);
		report_int(g, "size", f->size);
		report_int(g, "lag_bytes", f->size > fs->acked ? f->size - fs->acked : 0);
		report_int(g, "lines", fs->nlines);
		report_int(g, "bytes", f->bytes);
		report_int(g, "parse_errors", fs->errors);
		report_int(g, "rotations", f->rotations);
		report_int(g, "skipped_long_lines", f->skipped);
		report_str(g, "rotated");
		yajl_gen_bool(g, f->rotated);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	report_write(g, t->state_file);
}

static void
state_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	state_write(w->data);
}

/* ---- metrics (lf(7), METRICS) ---- */

/* By name, the file under it before a rotated one still being read: a
 * name is one series, whose lag counts what is left of both. */
static int
by_name(const void *a, const void *b)
{
	const struct tail_file *f = *(struct tail_file *const *)a;
	const struct tail_file *g = *(struct tail_file *const *)b;
	int c = strcmp(f->path, g->path);

	return c ? c : f->rotated - g->rotated;
}

static uint64_t
lag(const struct tail_file *f)
{
	const struct fstate *fs = f->udata;

	return fs && f->size > fs->acked ? f->size - fs->acked : 0;
}

static unsigned long long
rotations(struct lt *t, const char *path)
{
	for (size_t i = 0; i < t->nrots; i++)
		if (strcmp(t->rots[i].path, path) == 0) {
			t->rots[i].seen = 1;
			return t->rots[i].n;
		}
	return 0;
}

/* The names no longer followed are forgotten (a name that comes back
 * starts again at 0: a counter reset). */
static void
rots_prune(struct lt *t)
{
	size_t i, j;

	for (i = j = 0; i < t->nrots; i++) {
		if (t->rots[i].seen) {
			t->rots[i].seen = 0;
			t->rots[j++] = t->rots[i];
		} else
			free(t->rots[i].path);
	}
	t->nrots = j;
}

enum file_val { FV_POS, FV_SIZE, FV_LAG, FV_ROT };

static void
put_files(struct lt *t, struct metrics *m, struct tail_file **v, size_t n)
{
	static const struct {
		const char *fam, *type, *help;
	} f[] = {
		{ "lf_tail_file_position_bytes", "gauge", "Offset read up to "
		    "and delivered (acked with --to)." },
		{ "lf_tail_file_size_bytes", "gauge", "File size at the last "
		    "look." },
		{ "lf_tail_file_lag_bytes", "gauge", "Bytes not yet delivered "
		    "(with those left in a rotated file still read)." },
		{ "lf_tail_file_rotations_total", "counter", "Rotations and "
		    "truncations seen." },
	};
	size_t i, j, k;
	uint64_t val;

	for (k = 0; n > 0 && k < sizeof f / sizeof f[0]; k++) {
		metrics_family(m, f[k].fam, f[k].type, f[k].help);
		for (i = 0; i < n; i = j) {
			const struct fstate *fs = v[i]->udata;

			val = 0;
			for (j = i; j < n && strcmp(v[j]->path, v[i]->path) == 0;
			    j++)
				val += lag(v[j]);
			if (k == FV_POS)
				val = fs ? fs->acked : 0;
			else if (k == FV_SIZE)
				val = v[i]->size;
			else if (k == FV_ROT)
				val = rotations(t, v[i]->path);
			metrics_u64(m, val, "path", v[i]->path, (char *)NULL);
		}
	}
	rots_prune(t);
}

static void
put_metrics(void *ctx, struct metrics *m)
{
	struct lt *t = ctx;
	struct metrics_io io = { 0 };
	struct tail_file *f, **v;
	size_t n = 0;

	io.input = 1;
	io.in_events = t->events;
	io.in_bytes = t->ev_bytes;
	io.in_errors = t->errors;
	io.in_dropped = t->skipped;
	io.last_event = t->last_event;
	metrics_put_io(m, &io);
	metrics_one_u64(m, "lf_tail_lines_total", "counter", "Lines read.",
	    t->lines);
	metrics_one_u64(m, "lf_tail_in_flight_batches", "gauge", "Batches "
	    "sent with --to, not yet acked.", t->hop ? hop_batches(t->hop) : 0);
	for (f = tail_files(t->tail); f; f = f->next)
		n++;
	if ((v = calloc(n ? n : 1, sizeof *v)) == NULL)
		return;		/* the per-file families next time */
	n = 0;
	for (f = tail_files(t->tail); f; f = f->next)
		v[n++] = f;
	qsort(v, n, sizeof *v, by_name);
	put_files(t, m, v, n);
	free(v);
}

/* ---- signals ---- */

static void
stop_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lt *t = w->data;

	(void)revents;
	if (t->hop == NULL || hop_batches(t->hop) == 0 ||
	    ev_now(loop) - t->stop_at >= t->shutdown_timeout)
		ev_break(loop, EVBREAK_ALL);
}

/* TERM: read no more; with --to, wait up to --shutdown-timeout for the
 * acks of what is in flight (what is not acked is read again next time,
 * and stored once). */
static void
sig_term(void *ctx)
{
	struct lt *t = ctx;

	if (t->stopping)
		return;
	t->stopping = 1;
	t->stop_at = ev_now(t->loop);
	tail_pause(t->tail);
	ev_timer_init(&t->stop_t, stop_wait, 0, 0.05);
	t->stop_t.data = t;
	ev_timer_start(t->loop, &t->stop_t);
}

static void
sig_now(void *ctx)
{
	struct lt *t = ctx;

	tail_kick(t->tail);
	t->dirty = 1;
	positions_save(t);
}

/* --exit-on-eof: every file read to its end, and delivered. */
static void
eof_check(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lt *t = w->data;
	struct tail_file *f;

	(void)loop;
	(void)revents;
	if (tail_files(t->tail) == NULL)
		return;
	for (f = tail_files(t->tail); f; f = f->next) {
		struct fstate *fs = f->udata;

		if (!f->at_eof || fs->q != NULL || fs->bend > fs->bstart ||
		    fs->holding)
			return;
	}
	sig_term(t);
}

static const struct sig_actions lt_sig = { sig_term, sig_now, NULL };

/* ---- arguments ---- */

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

static void
addv(char ***v, size_t *n, char *s)
{
	char **nv = reallocarray(*v, *n + 1, sizeof *nv);

	if (nv == NULL)
		log_fatal(EX_OSERR, "out of memory");
	nv[(*n)++] = s;
	*v = nv;
}

/* Fluentd's rules: from_encoding needs encoding; encoding alone names
 * the bytes' encoding and converts nothing (since Fluentd 1.19, #5010);
 * the two the same is no conversion, with a warning. */
static void
recode_args(struct lt *t)
{
	char err[256];

	if (t->from_encoding == NULL)
		return;
	if (t->encoding == NULL)
		log_fatal(EX_USAGE, "--from-encoding must be given with "
		    "--encoding");
	if (strcasecmp(t->encoding, t->from_encoding) == 0) {
		log_warn("--encoding and --from-encoding are the same "
		    "encoding: no effect");
		return;
	}
	if ((t->recode = tail_recode_new(t->from_encoding, t->encoding, err,
	    sizeof err)) == NULL)
		log_fatal(EX_USAGE, "--encoding, --from-encoding: %s", err);
}

static void
parse_args(struct lt *t, int argc, char **argv)
{
	enum { OPT_POS = 256, OPT_TO, OPT_PATHKEY, OPT_EXCL, OPT_REFRESH, OPT_HEAD,
		OPT_LRM, OPT_INODES, OPT_RWAIT, OPT_SKIPREF, OPT_OOEU, OPT_MAXLINE,
		OPT_LINES, OPT_BPS, OPT_PFLUSH, OPT_BATCH, OPT_UNMATCHED, OPT_TIMEKEY,
		OPT_TIMEFMT, OPT_KEEP, OPT_UTC, OPT_COMPACT, OPT_SHUT, OPT_STATE,
		OPT_NOTIFY, OPT_LOG, OPT_VERSION, OPT_EOF, OPT_WINDOW, OPT_MLFLUSH,
		OPT_ENC, OPT_FROMENC, OPT_METRICS, OPT_MINTERVAL };
	static const struct option mine[] = {
		{ "tag", required_argument, NULL, 't' },
		{ "pos-file", required_argument, NULL, OPT_POS },
		{ "to", required_argument, NULL, OPT_TO },
		{ "path-key", required_argument, NULL, OPT_PATHKEY },
		{ "exclude-path", required_argument, NULL, OPT_EXCL },
		{ "refresh-interval", required_argument, NULL, OPT_REFRESH },
		{ "read-from-head", no_argument, NULL, OPT_HEAD },
		{ "limit-recently-modified", required_argument, NULL, OPT_LRM },
		{ "follow-inodes", no_argument, NULL, OPT_INODES },
		{ "rotate-wait", required_argument, NULL, OPT_RWAIT },
		{ "skip-refresh-on-startup", no_argument, NULL, OPT_SKIPREF },
		{ "open-on-every-update", no_argument, NULL, OPT_OOEU },
		{ "max-line-size", required_argument, NULL, OPT_MAXLINE },
		{ "read-lines-limit", required_argument, NULL, OPT_LINES },
		{ "read-bytes-limit-per-second", required_argument, NULL, OPT_BPS },
		{ "partial-flush-interval", required_argument, NULL, OPT_PFLUSH },
		{ "multiline-flush-interval", required_argument, NULL, OPT_MLFLUSH },
		{ "encoding", required_argument, NULL, OPT_ENC },
		{ "from-encoding", required_argument, NULL, OPT_FROMENC },
		{ "batch-size", required_argument, NULL, OPT_BATCH },
		{ "pos-file-compaction-interval", required_argument, NULL, OPT_COMPACT },
		{ "shutdown-timeout", required_argument, NULL, OPT_SHUT },
		{ "state-file", required_argument, NULL, OPT_STATE },
		{ "notify-fd", required_argument, NULL, OPT_NOTIFY },
		{ "log-file", required_argument, NULL, OPT_LOG },
		{ "exit-on-eof", no_argument, NULL, OPT_EOF },
		{ "window-bytes", required_argument, NULL, OPT_WINDOW },
		{ "metrics-file", required_argument, NULL, OPT_METRICS },
		{ "metrics-interval", required_argument, NULL, OPT_MINTERVAL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct option opts[sizeof mine / sizeof mine[0] + PARSE_OPT_END -
	    PARSE_OPT_BASE];
	char err[256];
	size_t nm = sizeof mine / sizeof mine[0] - 1, np = 0;
	uint64_t v;
	int ch;

	/* the parser's options (lib/parse), then ours */
	while (parse_options[np].name != NULL)
		np++;
	memcpy(opts, parse_options, np * sizeof opts[0]);
	memcpy(opts + np, mine, (nm + 1) * sizeof opts[0]);
	while ((ch = getopt_long(argc, argv, "t:f:vh", opts, NULL)) != -1) {
		if (ch >= PARSE_OPT_BASE && ch < PARSE_OPT_END) {
			if (parse_option(&t->pc, ch, optarg, err,
			    sizeof err) == -1)
				log_fatal(EX_USAGE, "%s", err);
			continue;
		}
		switch (ch) {
		case 'f':
			if (parse_option(&t->pc, parse_options[0].val, optarg,
			    err, sizeof err) == -1)
				log_fatal(EX_USAGE, "%s", err);
			break;
		case 't': t->tag = optarg; break;
		case OPT_POS: t->pos_path = optarg; break;
		case OPT_TO:
			if (dial_parse(&t->addr, optarg, err, sizeof err) == -1)
				log_fatal(EX_USAGE, "--to: %s", err);
			t->to = optarg;
			break;
		case OPT_PATHKEY: t->path_key = optarg; break;
		case OPT_EXCL: addv(&t->tc.excludes, &t->tc.nexcludes, optarg); break;
		case OPT_REFRESH: t->tc.refresh_interval = conf_opt_duration("refresh-interval", optarg); break;
		case OPT_HEAD: t->tc.read_from_head = 1; break;
		case OPT_LRM: t->tc.limit_recently_modified = conf_opt_duration("limit-recently-modified", optarg); break;
		case OPT_INODES: t->pf.by_inode = 1; break;
		case OPT_RWAIT: t->tc.rotate_wait = conf_opt_duration("rotate-wait", optarg); break;
		case OPT_SKIPREF: t->tc.skip_refresh_on_startup = 1; break;
		case OPT_OOEU: t->tc.open_on_every_update = 1; break;
		case OPT_MAXLINE:
			if ((v = conf_opt_size("max-line-size", optarg)) == 0 ||
			    v > (1u << 30))
				log_fatal(EX_USAGE, "--max-line-size: out of range \"%s\"", optarg);
			t->tc.max_line_size = (size_t)v;
			break;
		case OPT_LINES:
			if ((t->lines_limit = conf_opt_uint("read-lines-limit", optarg, 1u << 24)) == 0)
				log_fatal(EX_USAGE, "--read-lines-limit: at least 1");
			break;
		case OPT_BPS:
			v = conf_opt_size("read-bytes-limit-per-second", optarg);
			/* Fluentd's floor: one read block */
			t->tc.bytes_per_second = v > 0 && v < 65536 ? 65536 : (size_t)v;
			break;
		case OPT_PFLUSH: t->tc.partial_flush = conf_opt_duration("partial-flush-interval", optarg); break;
		case OPT_MLFLUSH: t->ml_flush = conf_opt_duration("multiline-flush-interval", optarg); break;
		case OPT_ENC: t->encoding = optarg; break;
		case OPT_FROMENC: t->from_encoding = optarg; break;
		case OPT_BATCH:
			if ((v = conf_opt_size("batch-size", optarg)) == 0 || v > (64u << 20))
				log_fatal(EX_USAGE, "--batch-size: out of range \"%s\"", optarg);
			t->batch_bytes = (size_t)v;
			break;
		case OPT_COMPACT: (void)conf_opt_duration("pos-file-compaction-interval", optarg); break;
		case OPT_SHUT: t->shutdown_timeout = conf_opt_duration("shutdown-timeout", optarg); break;
		case OPT_STATE: t->state_file = optarg; break;
		case OPT_NOTIFY: t->notify_fd = (int)conf_opt_uint("notify-fd", optarg, INT_MAX); break;
		case OPT_LOG: t->logfile = optarg; break;
		case OPT_EOF: t->exit_on_eof = 1; break;
		case OPT_METRICS: t->metrics_path = optarg; break;
		case OPT_MINTERVAL: t->metrics_interval = metrics_interval_opt(optarg); break;
		case OPT_WINDOW:
			if ((t->hc.window_bytes = conf_opt_size("window-bytes", optarg)) == 0)
				log_fatal(EX_USAGE, "--window-bytes: at least 1");
			break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case OPT_VERSION: puts("lf-tail " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (t->tag == NULL)
		log_fatal(EX_USAGE, "--tag is required");
	/* lib/parse's msgpack reads one whole input as one map; binary
	 * msgpack has newlines in it, and lines are what is read here */
	if (t->pc.format == PARSE_FMT_MSGPACK)
		log_fatal(EX_USAGE, "--format msgpack: not a line format (lf-tail "
		    "cuts files at newlines; use lf-cat -i msgpack for a msgpack "
		    "stream)");
	t->emit_unmatched = t->pc.emit_unmatched_lines;
	if (optind == argc)
		log_fatal(EX_USAGE, "no path to follow");
	if (t->pf.by_inode && t->pos_path == NULL)
		log_fatal(EX_USAGE, "--follow-inodes needs --pos-file (Fluentd's rule)");
	for (; optind < argc; optind++)
		addv(&t->tc.paths, &t->tc.npaths, argv[optind]);
	recode_args(t);
}

static void
hop_start(struct lt *t)
{
	struct hop_cbs cbs = { t, hop_acked, hop_lost, hop_room, NULL };
	char err[256];

	t->hc.retry.forever = 1;	/* positions wait; nothing is given up */
	t->hc.max_message = t->batch_bytes + t->tc.max_line_size + 65536;
	if (hop_conf_check(&t->hc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	if ((t->hop = hop_new(t->loop, &t->hc, &dial_sock_ops, &t->addr,
	    &cbs)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
}

int
main(int argc, char **argv)
{
	static struct lt t;
	struct tail_cbs cbs = { &t, on_start, on_lines, on_skipped,
		on_truncated, on_rotated, on_busy, on_closed };
	struct sig sig;
	int rc = 0;

	log_init(argv[0]);
	tail_conf_default(&t.tc);
	hop_conf_default(&t.hc);
	/* in flight, the hop holds a copy of each batch: 4m keeps
	 * lf-buffer's group commits full (more measured no faster) and the
	 * peak RSS under 16m */
	t.hc.window_bytes = 4 << 20;
	parse_conf_default(&t.pc);
	/* lf's rule, not Fluentd's default: no line is dropped silently */
	t.pc.emit_unmatched_lines = 1;
	t.lines_limit = 1000;		/* Fluentd's read_lines_limit */
	t.batch_bytes = 1 << 20;
	t.shutdown_timeout = 5;		/* in_tail's SHUTDOWN_TIMEOUT */
	t.notify_fd = -1;
	t.jfd = -1;
	t.outfd = STDOUT_FILENO;
	t.metrics_interval = METRICS_INTERVAL;
	parse_args(&t, argc, argv);
	if (t.logfile && log_open(t.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", t.logfile, strerror(errno));
	{
		/* checked once here: a bad expression is a usage error */
		char err[256];
		struct parser *pp = parse_new(&t.pc, err, sizeof err);

		if (pp == NULL)
			log_fatal(EX_USAGE, "%s", err);
		parse_free(pp);
	}
	t.loop = EV_DEFAULT;
	stream_writer_init(&t.w, stream_out_fd, &t.outfd);
	if (t.pos_path) {
		if (posfile_load(&t.pf, t.pos_path) == -1)
			log_fatal(EX_NOINPUT, "%s: %s", t.pos_path, strerror(errno));
		if (t.pf.unparsable)
			log_warn("%s: %lu unparsable lines dropped", t.pos_path,
			    t.pf.unparsable);
		if (t.to) {
			if (asprintf(&t.jpath, "%s.sent", t.pos_path) == -1)
				log_fatal(EX_OSERR, "out of memory");
			journal_load(&t);
			journal_open(&t);
		}
	} else
		log_info("no --pos-file: positions are kept in memory only");
	if (t.to)
		hop_start(&t);
	if ((t.tail = tail_new(t.loop, &t.tc, &cbs)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	ev_timer_init(&t.save_t, save_timer, 1, 1);
	t.save_t.data = &t;
	ev_timer_start(t.loop, &t.save_t);
	ev_timer_init(&t.state_t, state_timer, 0, 1);
	t.state_t.data = &t;
	if (t.state_file)
		ev_timer_again(t.loop, &t.state_t);
	/* checked four times an interval (at most every second, at least
	 * every 10 ms): a record goes out within a quarter interval late */
	if (t.ml_flush > 0) {
		double every = t.ml_flush / 4;

		every = every > 1 ? 1 : every < 0.01 ? 0.01 : every;
		ev_timer_init(&t.ml_t, ml_timer, every, every);
		t.ml_t.data = &t;
		ev_timer_start(t.loop, &t.ml_t);
	}
	ev_timer_init(&t.eof_t, eof_check, 0.01, 0.01);
	t.eof_t.data = &t;
	if (t.exit_on_eof)
		ev_timer_start(t.loop, &t.eof_t);
	sig_start(&sig, t.loop, &lt_sig, &t);
	if (metrics_writer_start(&t.mw, t.loop, t.metrics_path, "lf-tail",
	    t.metrics_interval, put_metrics, &t) == -1)
		log_fatal(EX_OSERR, "out of memory");
	t.started = ev_now(t.loop);
	tail_start(t.tail);
	if (t.notify_fd >= 0) {
		(void)!write(t.notify_fd, "\n", 1);
		close(t.notify_fd);
	}
	ev_run(t.loop, 0);
	sig_stop(&sig);
	ev_timer_stop(t.loop, &t.save_t);
	ev_timer_stop(t.loop, &t.state_t);
	ev_timer_stop(t.loop, &t.stop_t);
	ev_timer_stop(t.loop, &t.eof_t);
	ev_timer_stop(t.loop, &t.ml_t);
	if (t.gaveup) {
		log_error("batches given up");
		rc = EX_TEMPFAIL;
	}
	t.dirty = 1;
	if (!t.stopping)	/* not by a signal: keep what was loaded */
		positions_save(&t);
	else {
		posfile_clear(&t.pf);
		positions_save(&t);
	}
	state_write(&t);
	metrics_writer_finish(&t.mw);
	log_info("stats: lines=%llu delivered=%llu parse_errors=%llu",
	    t.lines, t.acked_lines, t.errors);
	if (t.hop) {
		hop_take(t.hop, NULL, NULL);
		hop_free(t.hop);
	}
	tail_free(t.tail);
	if (t.jfd != -1)
		close(t.jfd);
	free(t.jpath);
	free(t.cuts);
	for (size_t i = 0; i < t.nrots; i++)
		free(t.rots[i].path);
	free(t.rots);
	posfile_free(&t.pf);
	stream_writer_free(&t.w);
	buf_free(&t.rec);
	buf_free(&t.conv);
	tail_recode_free(t.recode);
	free(t.tc.paths);
	free(t.tc.excludes);
	log_limit_summary();
	return rc;
}
