/* lf-cat: print, convert and re-batch lf streams, chunk files and JSON lines.
 *
 * lf-cat [-i msgpack|json] [-o json|ltsv|out_file|msgpack] [-t tag] [file ...]
 * (-o and --format take every lib/format format, with its options)
 * lf-cat --to unix:PATH|HOST:PORT [-i msgpack|json] [file ...]
 *
 * Input is read whole, message by message; a bad message or line is
 * reported with its byte offset or line number and skipped, and the exit
 * status says that something was bad (65) once everything else is out.
 * With --to, the events go over the acked hop (lib/hop) instead of to
 * stdout, and lf-cat exits 0 only once every one of them is acked. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "dial.h"
#include "format.h"
#include "hop.h"
#include "io.h"
#include "json.h"
#include "log.h"
#include "resolve.h"
#include "spool.h"
#include "stream.h"

#define USAGE "usage: lf-cat [-v] [-i msgpack|json] [-o json|ltsv|out_file|msgpack]\n" \
	"              [-o csv|tsv|single_value] [--format F] [format options]\n" \
	"              [-t tag] [--time-key key] [--time-format fmt] [--keep-time-key]\n" \
	"              [--utc] [--compress gzip] [--chunk] [--max-message-size size]\n" \
	"              [--max-decompressed-size size] [file ...]\n" \
	"       lf-cat [-v] --to unix:PATH|HOST:PORT [-i msgpack|json] [-t tag]\n" \
	"              [--batch-size size] [--window n] [--compress gzip]\n" \
	"              [--ack-response-timeout time] [--send-timeout time]\n" \
	"              [--connect-timeout time] [--retry-wait time]\n" \
	"              [--retry-max-interval time] [--retry-timeout time]\n" \
	"              [--retry-max-times n] [file ...]\n"

/* Text goes through lib/format; msgpack through the stream writer,
 * which batches per tag and can compress and add chunk ids. */
enum out_fmt { OUT_DEFAULT, OUT_TEXT, OUT_MSGPACK };

struct cat {
	int in_json;
	enum out_fmt out;
	const char *tag;
	struct json_in jin;
	struct format_conf fc;
	struct formatter *fmt;
	struct stream_limits lim;
	struct stream_writer w;
	struct buf text;	/* text output waiting to be written */
	int outfd;
	int bad;		/* some input was bad: exit 65 */
	int missing;		/* some input could not be opened: exit 66 */
	int ioerr;		/* some input could not be read: exit 74 */
	int live;		/* input is a pipe or terminal: flush per read */
	/* --to: the acked hop */
	const char *to;
	struct dial_addr addr;
	struct hop_conf hc;
	struct ev_loop *loop;
	struct hop *hop;
	struct resolve *res;	/* a host name, looked up off the loop */
	int room;		/* the hop has room again */
	int gaveup;		/* the hop gave batches up: exit 75 */
	unsigned long long events, acked; /* taken in, acknowledged */
	unsigned long lines;
};

/* Given up: the events taken in and not acknowledged are counted, the
 * rest of the input is left unread (lf-cat(1), EXIT STATUS). */
static void __attribute__((noreturn))
hop_gaveup_exit(struct cat *c)
{
	log_limit_summary();
	log_fatal(EX_TEMPFAIL, "%llu events not acknowledged",
	    c->events - c->acked);
}

/* Let the hop work (acks, reconnects) without waiting. */
static void
hop_poll(struct cat *c)
{
	if (c->hop == NULL)
		return;
	ev_run(c->loop, EVRUN_NOWAIT);
	if (c->gaveup)
		hop_gaveup_exit(c);
}

static void
input_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	*(int *)w->data = 1;
}

/* A live input may take its time: the hop goes on meanwhile. */
static void
hop_wait_input(struct cat *c, int fd)
{
	ev_io w;
	int ready = 0;

	if (c->hop == NULL)
		return;
	ev_io_init(&w, input_ready, fd, EV_READ);
	w.data = &ready;
	ev_io_start(c->loop, &w);
	while (!ready && !c->gaveup)
		ev_run(c->loop, EVRUN_ONCE);
	ev_io_stop(c->loop, &w);
	if (c->gaveup)
		hop_gaveup_exit(c);
}

static int
hop_out(void *ctx, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count)
{
	struct cat *c = ctx;
	int rc;

	while ((rc = hop_send(c->hop, tag, taglen, entries, len, count, NULL,
	    NULL)) == HOP_FULL) {
		c->room = 0;
		while (!c->room && !c->gaveup)
			ev_run(c->loop, EVRUN_ONCE);
		if (c->gaveup)
			hop_gaveup_exit(c);
	}
	if (rc == -1)
		log_fatal(errno == EMSGSIZE ? EX_DATAERR : EX_OSERR,
		    "cannot send a batch of %zu events of tag %.*s: %s", count,
		    (int)taglen, tag, strerror(errno));
	return 0;
}

static void
hop_acked(void *ctx, void *arg, size_t count)
{
	(void)arg;
	((struct cat *)ctx)->acked += count;
}

static void
hop_lost(void *ctx, void *arg, size_t count)
{
	(void)arg;
	(void)count;
	((struct cat *)ctx)->gaveup = 1;
}

static void
hop_room(void *ctx)
{
	((struct cat *)ctx)->room = 1;
}

static void
hop_start(struct cat *c)
{
	struct hop_cbs cbs = { c, hop_acked, hop_lost, hop_room };
	char err[256];

	if (hop_conf_check(&c->hc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	if ((c->loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		log_fatal(EX_OSERR, "cannot start the event loop");
	if (!c->addr.unix_) {
		struct resolve_conf rc;

		resolve_conf_default(&rc);
		if ((c->res = resolve_new(c->loop, &rc)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		c->addr.res = c->res;
	}
	if ((c->hop = hop_new(c->loop, &c->hc, &dial_sock_ops, &c->addr,
	    &cbs)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	c->w.batch = hop_out;
	c->w.ctx = c;
}

/* Everything is in the hop: wait for the last ack. */
static void
hop_finish(struct cat *c)
{
	if (c->hop == NULL)
		return;
	while (hop_batches(c->hop) > 0 && !c->gaveup)
		ev_run(c->loop, EVRUN_ONCE);
	if (c->gaveup)
		hop_gaveup_exit(c);
	hop_free(c->hop);
	c->hop = NULL;
	if (c->res)
		resolve_free(c->res);
	ev_loop_destroy(c->loop);
}

static void
text_flush(struct cat *c, int force)
{
	if (c->text.len == 0 || (!force && c->text.len < 65536))
		return;
	if (io_write_all(c->outfd, c->text.p, c->text.len) == -1)
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	buf_reset(&c->text);
}

/* An input that cannot be read is reported and skipped; what the other
 * inputs hold is still written, and the exit status says it (74). */
static void
read_failed(struct cat *c, const char *name)
{
	log_error("%s: read: %s", name, strerror(errno));
	c->ioerr = 1;
}

/* Output of a live pipe is written as each read is done, so that
 * `lf-tail ... | lf-cat` shows events as they come. */
static void
flush_all(struct cat *c)
{
	if (stream_writer_flush(&c->w) == -1)
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	text_flush(c, 1);
}

static void
emit_event(struct cat *c, const char *tag, size_t taglen,
    const struct stream_event *ev)
{
	int rc = 0;

	if (c->out == OUT_MSGPACK) {
		rc = stream_writer_add(&c->w, tag, taglen, ev->sec, ev->nsec,
		    ev->rec, ev->reclen);
		c->events++;
	} else
		rc = format_event(c->fmt, &c->text, tag, taglen, ev->sec,
		    ev->nsec, ev->rec, ev->reclen);
	if (rc == -1)
		log_fatal(EX_SOFTWARE, "cannot format an event of tag %.*s",
		    (int)taglen, tag);
	text_flush(c, 0);
}

static void
emit_batch(struct cat *c, const struct stream_batch *b)
{
	struct stream_iter it;
	struct stream_event ev;

	if (c->out == OUT_MSGPACK) {
		/* pass-through: the entries are re-batched as they are */
		if (stream_writer_add_entries(&c->w, b->tag, b->taglen, b->entries,
		    b->len, b->count) == -1)
			log_fatal(EX_IOERR, "write: %s", strerror(errno));
		c->events += b->count;
		return;
	}
	stream_iter_init(&it, b->entries, b->len);
	while (stream_iter_next(&it, &ev) == 1)
		emit_event(c, b->tag, b->taglen, &ev);
}

static void cat_chunk(struct cat *c, int fd, const char *name,
    const unsigned char *pre, size_t npre);

static void
cat_msgpack(struct cat *c, int fd, const char *name)
{
	struct stream_reader r;
	struct stream_batch b;
	unsigned char *p;
	size_t avail;
	ssize_t n;
	int rc;

	stream_reader_init(&r, &c->lim);
	for (;;) {
		while ((rc = stream_reader_next(&r, &b)) != 0) {
			if (rc == 1) {
				if (b.invalid) {
					c->bad = 1;
					LOG_WARN_LIMITED("%s: offset %llu: %zu invalid events dropped",
					    name, (unsigned long long)b.offset, b.invalid);
				}
				emit_batch(c, &b);
				continue;
			}
			c->bad = 1;
			if (rc == STREAM_EFRAME) {
				log_error("%s: offset %llu: %s", name,
				    (unsigned long long)r.err_off, r.err);
				goto out;
			}
			LOG_WARN_LIMITED("%s: offset %llu: %s", name,
			    (unsigned long long)r.err_off, r.err);
		}
		if ((p = stream_reader_space(&r, 65536, &avail)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		if (c->live) {
			/* what came so far goes out before waiting for more */
			flush_all(c);
			hop_wait_input(c, fd);
		} else {
			hop_poll(c);
		}
		if ((n = read(fd, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			read_failed(c, name);
			goto out;
		}
		if (n == 0)
			break;
		if (r.base == 0 && r.in.len == 0 && p[0] == 0xc1) {
			/* never msgpack either: the chunk magic (lf-spool(5)) */
			cat_chunk(c, fd, name, p, (size_t)n);
			goto out;
		}
		if (r.base == 0 && r.in.len == 0 && (p[0] == '{' || p[0] == '[')) {
			/* msgpack never starts a message with these bytes */
			c->bad = 1;
			log_error("%s: input is JSON text, not msgpack: use -i json", name);
			goto out;
		}
		stream_reader_wrote(&r, (size_t)n);
	}
	if (stream_reader_end(&r) != 0) {
		c->bad = 1;
		log_error("%s: offset %llu: %s", name,
		    (unsigned long long)r.err_off, r.err);
	}
out:
	stream_reader_free(&r);
}

/* Bytes read into f's buffer and not yet taken: while there are, a
 * line may be there without waiting.  Elsewhere than glibc, say 0: a
 * live input is then waited for in the loop before each line. */
static size_t
stdio_unread(FILE *f)
{
#ifdef __GLIBC__
	return (size_t)(f->_IO_read_end - f->_IO_read_ptr);
#else
	(void)f;
	return 0;
#endif
}

static void
cat_json(struct cat *c, int fd, const char *name)
{
	FILE *f = fdopen(dup(fd), "r");
	char *line = NULL, err[256];
	size_t cap = 0, lineno = 0;
	ssize_t n;
	struct buf tag = BUF_INIT, rec = BUF_INIT;
	struct stream_event ev;
	int has_time, rc;
	struct timespec now;

	if (f == NULL)
		log_fatal(EX_OSERR, "%s: %s", name, strerror(errno));
	for (;;) {
		if (c->live && stdio_unread(f) == 0)
			hop_wait_input(c, fileno(f));
		if ((n = getline(&line, &cap, f)) == -1)
			break;
		lineno++;
		if (strspn(line, " \t\r\n") == (size_t)n)
			continue;
		buf_reset(&tag);
		buf_reset(&rec);
		if (c->tag) {
			rc = json_parse_record(line, (size_t)n, &c->jin, &rec,
			    &ev.sec, &ev.nsec, &has_time, err, sizeof err);
			if (rc == 0 && !has_time) {
				clock_gettime(CLOCK_REALTIME, &now);
				ev.sec = (uint32_t)now.tv_sec;
				ev.nsec = (uint32_t)now.tv_nsec;
			}
			if (rc == 0)
				rc = buf_adds(&tag, c->tag);
		} else {
			rc = json_parse_event(line, (size_t)n, &tag, &rec, &ev.sec,
			    &ev.nsec, err, sizeof err);
		}
		if (rc == -1) {
			c->bad = 1;
			LOG_WARN_LIMITED("%s: line %zu: %s", name, lineno, err);
			continue;
		}
		ev.rec = rec.p;
		ev.reclen = rec.len;
		emit_event(c, (const char *)tag.p, tag.len, &ev);
		if (c->live)
			flush_all(c);
		else if (++c->lines % 1024 == 0)
			hop_poll(c);
	}
	if (ferror(f))
		read_failed(c, name);
	free(line);
	fclose(f);
	buf_free(&tag);
	buf_free(&rec);
}

/* A chunk file in memory, p[0..n): its header, then the committed body
 * checked as spool_chunk_verify checks it.  0, or -1 with a reason. */
static int
chunk_mem(const unsigned char *p, size_t n, struct chunk_head *h,
    const unsigned char **body, char *err, size_t errlen)
{
	struct stream_iter it;
	struct stream_event ev;
	uint64_t count = 0;
	int rc;

	if ((rc = chunk_head_decode(p, n, h, err, errlen)) == 1)
		snprintf(err, errlen, "chunk file is shorter than its header");
	if (rc != 0)
		return -1;
	if (h->bodylen > n - h->hlen) {
		snprintf(err, errlen, "chunk body is cut short: %llu of %llu bytes",
		    (unsigned long long)(n - h->hlen),
		    (unsigned long long)h->bodylen);
		return -1;
	}
	*body = p + h->hlen;
	if (chunk_crc(0, *body, h->bodylen) != h->bodycrc) {
		snprintf(err, errlen, "chunk body checksum mismatch");
		return -1;
	}
	stream_iter_init(&it, *body, h->bodylen);
	while ((rc = stream_iter_next(&it, &ev)) == 1)
		count++;
	if (rc == -1 || count != h->count) {
		snprintf(err, errlen, "chunk body holds %llu events before a bad "
		    "entry, header says %llu", (unsigned long long)count,
		    (unsigned long long)h->count);
		return -1;
	}
	return 0;
}

/* A chunk file that is a regular file, open as fd: checked whole first,
 * in bounded memory (lib/spool), so a corrupt chunk prints nothing, then
 * read again and written out piece by piece.  The msgpack writer takes a
 * chunk's entries as one batch, so for -o msgpack they are gathered, as
 * the writer holds them anyway.  0, or -1 with a reason. */
static int
chunk_file(struct cat *c, int fd, const char *name, char *err, size_t errlen)
{
	struct spool_chunk ch;
	struct spool_body body;
	struct stream_batch b;
	struct buf all = BUF_INIT;
	const unsigned char *p;
	uint64_t count;
	size_t n;
	int dfd, rc;

	/* the open file, not its name again: no race, and a symbolic link
	 * the user named is followed as any cat follows it */
	if ((dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (spool_chunk_fdopen(dfd, name, &ch, err, errlen) != 0)
		return -1;
	if (spool_chunk_verify(&ch, err, errlen) != 0) {
		spool_release(&ch);
		return -1;
	}
	memset(&b, 0, sizeof b);
	b.tag = ch.h.tag;
	b.taglen = ch.h.taglen;
	spool_body_init(&body, &ch);
	while ((rc = spool_body_next(&body, &p, &n, &count, err, errlen)) == 1) {
		if (c->out == OUT_MSGPACK) {
			if (buf_add(&all, p, n) == -1)
				log_fatal(EX_OSERR, "out of memory");
			continue;
		}
		b.entries = p;
		b.len = n;
		b.count = count;
		emit_batch(c, &b);
	}
	if (rc == 0 && c->out == OUT_MSGPACK) {
		b.entries = all.p;
		b.len = all.len;
		b.count = ch.h.count;
		emit_batch(c, &b);
	}
	buf_free(&all);
	spool_body_free(&body);
	spool_release(&ch);
	return rc == 0 ? 0 : -1;
}

/* A chunk file (lf-spool(5)), of which pre[0..npre) was read already:
 * its committed events, with its tag.  A regular file is read through its
 * descriptor as the spool tools read it; stdin or a pipe cannot be, so it
 * is read whole. */
static void
cat_chunk(struct cat *c, int fd, const char *name, const unsigned char *pre,
    size_t npre)
{
	struct stream_batch b;
	struct chunk_head h;
	struct buf in = BUF_INIT;
	const unsigned char *p;
	struct stat st;
	char err[256];
	ssize_t n;

	memset(&b, 0, sizeof b);
	if (fd != STDIN_FILENO && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (chunk_file(c, fd, name, err, sizeof err) == -1)
			goto bad;
		goto out;
	}
	if (buf_add(&in, pre, npre) == -1)
		log_fatal(EX_OSERR, "out of memory");
	for (;;) {
		if (buf_reserve(&in, 65536) == -1)
			log_fatal(EX_OSERR, "out of memory");
		if ((n = read(fd, in.p + in.len, in.cap - in.len)) == -1) {
			if (errno == EINTR)
				continue;
			read_failed(c, name);
			goto out;
		}
		if (n == 0)
			break;
		in.len += (size_t)n;
	}
	/* sealed chunks may come back to back, as from cat *.chunk; after a
	 * staged one come its uncommitted bytes, which are left out */
	for (size_t off = 0;;) {
		if (chunk_mem(in.p + off, in.len - off, &h, &p, err, sizeof err) == -1)
			goto bad;
		b.tag = h.tag;
		b.taglen = h.taglen;
		b.entries = p;
		b.len = h.bodylen;
		b.count = h.count;
		emit_batch(c, &b);
		off += h.hlen + h.bodylen;
		if (h.state != CHUNK_SEALED || off == in.len)
			break;
		if (in.len - off < 8 || memcmp(in.p + off, CHUNK_MAGIC, 8) != 0) {
			snprintf(err, sizeof err, "%zu bytes after a sealed chunk "
			    "are not a chunk", in.len - off);
			goto bad;
		}
	}
	goto out;
bad:
	c->bad = 1;
	log_error("%s: bad chunk file: %s", name, err);
out:
	buf_free(&in);
}

static void
cat_file(struct cat *c, int fd, const char *name)
{
	struct stat st;

	c->live = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
	if (c->in_json)
		cat_json(c, fd, name);
	else
		cat_msgpack(c, fd, name);
}

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (!code)
		fputs("format options:\n", stdout), fputs(format_usage, stdout);
	exit(code);
}


/* A size limit: at least a byte, and room to add to it */
static size_t
opt_limit(const char *opt, const char *arg)
{
	uint64_t v = conf_opt_size(opt, arg);

	if (v == 0 || v > SIZE_MAX / 4)
		log_fatal(EX_USAGE, "--%s: out of range \"%s\"", opt, arg);
	return (size_t)v;
}

static const struct conf_name in_formats[] = {
	{ "msgpack", 0 }, { "json", 1 }, { NULL, 0 },
};
/* -o: lf-cat's names; json is the envelope -i json reads back, the
 * rest are lib/format's */
static const struct conf_name out_formats[] = {
	{ "json", FORMAT_EVENT }, { "ltsv", FORMAT_LTSV },
	{ "out_file", FORMAT_OUT_FILE }, { "csv", FORMAT_CSV },
	{ "tsv", FORMAT_TSV }, { "single_value", FORMAT_SINGLE_VALUE },
	{ "msgpack", FORMAT_MSGPACK }, { NULL, 0 },
};

/* lf-cat's own options, then lib/format's; getopt_long takes the first
 * of a name given twice, so --time-key, --time-format and --utc stay
 * lf-cat's (the input's; --utc is both) */
static struct option *
all_options(const struct option *own, size_t nown)
{
	static struct option all[128];
	size_t n = 0, i;

	for (i = 0; i < nown && own[i].name != NULL; i++)
		all[n++] = own[i];
	for (i = 0; format_options[i].name != NULL; i++)
		if (n < sizeof all / sizeof *all - 1)
			all[n++] = format_options[i];
	memset(&all[n], 0, sizeof all[n]);
	return all;
}

/* The text formatter, once the options are known. */
static void
format_start(struct cat *c)
{
	char err[256];

	if (c->out != OUT_TEXT)
		return;
	if ((c->fmt = format_new(&c->fc, err, sizeof err)) == NULL)
		log_fatal(EX_USAGE, "%s", err);
}
static const struct conf_name compressions[] = {
	{ "text", 0 }, { "gzip", 1 }, { NULL, 0 },
};

static void
parse_args(struct cat *c, int argc, char **argv)
{
	enum { O_TIMEKEY = 256, O_TIMEFMT, O_KEEP, O_UTC, O_COMPRESS, O_CHUNK,
		O_MAXMSG, O_MAXDEC, O_VERSION, O_TO, O_BATCH, O_WINDOW, O_ACKTO,
		O_SENDTO, O_CONNTO, O_RWAIT, O_RMAXIV, O_RTIMEOUT, O_RMAXTIMES };
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "tag", required_argument, NULL, 't' },
		{ "time-key", required_argument, NULL, O_TIMEKEY },
		{ "time-format", required_argument, NULL, O_TIMEFMT },
		{ "keep-time-key", no_argument, NULL, O_KEEP },
		{ "utc", no_argument, NULL, O_UTC },
		{ "compress", required_argument, NULL, O_COMPRESS },
		{ "chunk", no_argument, NULL, O_CHUNK },
		{ "max-message-size", required_argument, NULL, O_MAXMSG },
		{ "max-decompressed-size", required_argument, NULL, O_MAXDEC },
		{ "to", required_argument, NULL, O_TO },
		{ "batch-size", required_argument, NULL, O_BATCH },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "ack-response-timeout", required_argument, NULL, O_ACKTO },
		{ "send-timeout", required_argument, NULL, O_SENDTO },
		{ "connect-timeout", required_argument, NULL, O_CONNTO },
		{ "retry-wait", required_argument, NULL, O_RWAIT },
		{ "retry-max-interval", required_argument, NULL, O_RMAXIV },
		{ "retry-timeout", required_argument, NULL, O_RTIMEOUT },
		{ "retry-max-times", required_argument, NULL, O_RMAXTIMES },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const struct option *all = all_options(opts, sizeof opts / sizeof *opts);
	char err[256];
	int ch, out_set = 0;

	while ((ch = getopt_long(argc, argv, "i:o:t:vh", all, NULL)) != -1) {
		if (ch >= FORMAT_OPT_BASE && ch < FORMAT_OPT_END) {
			if (format_option(&c->fc, ch, optarg, err,
			    sizeof err) == -1)
				log_fatal(EX_USAGE, "%s", err);
			if (ch == FORMAT_OPT_FORMAT) {
				out_set = 1;
				c->out = c->fc.type == FORMAT_MSGPACK ?
				    OUT_MSGPACK : OUT_TEXT;
			}
			continue;
		}
		switch (ch) {
		case 'i': c->in_json = conf_opt_enum("input", optarg, in_formats); break;
		case 'o':
			out_set = 1;
			c->fc.type = (enum format_type)conf_opt_enum("output",
			    optarg, out_formats);
			c->out = c->fc.type == FORMAT_MSGPACK ? OUT_MSGPACK :
			    OUT_TEXT;
			break;
		case 't': c->tag = optarg; break;
		case O_TIMEKEY: c->jin.time_key = optarg; break;
		case O_TIMEFMT: c->jin.time_format = optarg; break;
		case O_KEEP: c->jin.keep_time_key = 1; break;
		case O_UTC: c->fc.utc = c->jin.utc = 1; break;
		case O_COMPRESS: c->w.gzip = conf_opt_enum("compress", optarg, compressions); break;
		case O_CHUNK: c->w.chunk = 1; break;
		case O_MAXMSG: c->lim.max_message = opt_limit("max-message-size", optarg); break;
		case O_MAXDEC: c->lim.max_decompressed = opt_limit("max-decompressed-size", optarg); break;
		case O_TO:
			if (dial_parse(&c->addr, optarg, err, sizeof err) == -1)
				log_fatal(EX_USAGE, "--to: %s", err);
			c->to = optarg;
			break;
		case O_BATCH: c->w.flush_bytes = opt_limit("batch-size", optarg); break;
		case O_WINDOW:
			c->hc.window_batches = conf_opt_uint("window", optarg, 65536);
			break;
		case O_ACKTO: c->hc.ack_response_timeout = conf_opt_duration("ack-response-timeout", optarg); break;
		case O_SENDTO: c->hc.send_timeout = conf_opt_duration("send-timeout", optarg); break;
		case O_CONNTO: c->hc.connect_timeout = conf_opt_duration("connect-timeout", optarg); break;
		case O_RWAIT: c->hc.retry.wait = conf_opt_duration("retry-wait", optarg); break;
		case O_RMAXIV: c->hc.retry.max_interval = conf_opt_duration("retry-max-interval", optarg); break;
		case O_RTIMEOUT: c->hc.retry.timeout = conf_opt_duration("retry-timeout", optarg); break;
		case O_RMAXTIMES:
			c->hc.retry.max_times = (long long)conf_opt_uint("retry-max-times", optarg, 1u << 30);
			break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-cat " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (c->tag && !c->in_json)
		log_fatal(EX_USAGE, "-t is for -i json");
	if (c->to) {
		if (out_set)
			log_fatal(EX_USAGE, "--to sends the events: no -o");
		c->out = OUT_MSGPACK;
		c->hc.gzip = c->w.gzip;
		/* a batch grows to the batch size plus one input message;
		 * the window's byte bound (64m) lets a bigger one go alone */
		c->hc.max_message = c->w.flush_bytes + c->lim.max_message;
	}
	/* a converter: JSON lines become a stream, a stream becomes JSON */
	if (c->out == OUT_DEFAULT) {
		c->out = c->in_json ? OUT_MSGPACK : OUT_TEXT;
		c->fc.type = FORMAT_EVENT;
	}
	format_start(c);
}

int
main(int argc, char **argv)
{
	static struct cat c;
	int i, fd;

	log_init(argv[0]);
	c.outfd = STDOUT_FILENO;
	format_conf_default(&c.fc);
	c.fc.type = FORMAT_EVENT;
	stream_limits_default(&c.lim);
	stream_writer_init(&c.w, stream_out_fd, &c.outfd);
	c.jin.time_key = NULL;
	hop_conf_default(&c.hc);
	parse_args(&c, argc, argv);
	if (c.to)
		hop_start(&c);
	if (c.tag && c.jin.time_key == NULL)
		c.jin.time_key = "time";

	if (optind == argc)
		cat_file(&c, STDIN_FILENO, "stdin");
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			cat_file(&c, STDIN_FILENO, "stdin");
			continue;
		}
		if ((fd = open(argv[i], O_RDONLY | O_CLOEXEC)) == -1) {
			log_error("%s: %s", argv[i], strerror(errno));
			c.missing = 1;
			continue;
		}
		cat_file(&c, fd, argv[i]);
		close(fd);
	}
	if (stream_writer_flush(&c.w) == -1)
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	text_flush(&c, 1);
	hop_finish(&c);
	stream_writer_free(&c.w);
	buf_free(&c.text);
	format_free(c.fmt);
	log_limit_summary();
	return c.missing ? EX_NOINPUT : c.ioerr ? EX_IOERR : c.bad ? EX_DATAERR : 0;
}
