/* lf-exec: deliver each chunk of a spool to a command (Fluentd's out_exec,
 * qmail's delivery program).
 *
 * lf-exec [options] SPOOL [--] COMMAND [ARG...]
 *
 * lib/consume claims the chunks, oldest first, up to --flush-thread-count
 * at once; each one runs COMMAND once (lib/child: execvp, no shell unless
 * --shell), with the chunk's events on its standard input, written from
 * the loop as the command reads them: by default the chunk as one
 * lf-stream(5) PackedForward message, written from the chunk body as it
 * is, or any lib/format format (--format).  With --path-arg the events go
 * into a temporary file instead, whose path is the command's last
 * argument (what out_exec does).  LF_TAG, LF_CHUNK_ID, LF_EVENTS,
 * LF_TIMEKEY and LF_KEY_<NAME> describe the chunk in its environment.
 *
 * The exit status is the answer, qmail's rule:
 *	0			delivered: the chunk is deleted
 *	100, 64, 65, 77, 78	refused for good (qmail's hard codes that are
 *				sysexits' USAGE, DATAERR, NOPERM, CONFIG):
 *				dead/, with the tail of its stderr as reason
 *	anything else, a	retried with lib/consume's backoff: an
 *	signal, the timeout	unknown failure never loses a chunk
 * --command-timeout sends SIGTERM to the command's process group, then
 * SIGKILL after --kill-grace.
 *
 * Every second the counters replace SPOOL/state/exec (--state-file). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "child.h"
#include "chunk.h"
#include "conf.h"
#include "consume.h"
#include "format.h"
#include "io.h"
#include "json.h"
#include "log.h"
#include "mp.h"
#include "report.h"
#include "sig.h"
#include "spool.h"
#include "stream.h"

#define USAGE \
"usage: lf-exec [-v] [--shell] [--path-arg] [--format NAME] [format options]\n" \
"               [--command-timeout DUR] [--kill-grace DUR]\n" \
"               [--command-stdout stderr|null] [--stderr-tail SIZE]\n" \
"               [--tmp-dir DIR] [--shutdown-timeout DUR] [--state-file PATH]\n" \
"               [--notify-fd N] [--log-file FILE] [consume options]\n" \
"               SPOOL [--] COMMAND [ARG...]\n"

#define TMP_PREFIX	".lf-exec."	/* --path-arg files: .lf-exec.PID.ID */
#define MAXSIG		65

extern char **environ;

enum { STDOUT_NULL, STDOUT_STDERR };

struct ex {
	struct ev_loop *loop;
	struct spool spool;
	struct consume *consume;
	struct consume_conf cc;
	struct child_conf chc;
	struct format_conf fc;
	struct formatter *fmt;		/* NULL: the chunk as it is */
	char **cmd;			/* COMMAND [ARG...] */
	int ncmd, shell, path_arg, out_mode, notify_fd, devnull;
	const char *logfile, *tmpdir_arg;
	int tmpdir;
	char *tmpdir_path;
	char *state_file;
	ev_timer state_t;
	struct xjob *jobs;
	/* counters */
	unsigned long long chunks, events, bytes, runs, retries, dead;
	unsigned long long timeouts, by_code[256], by_sig[MAXSIG];
	char last_error[512];
	char name[64];			/* the command, for logs and reasons */
};

/* A chunk's input, produced a piece at a time. */
struct feed {
	struct ex *x;
	struct spool_chunk *c;
	int phase;			/* 0 head, 1 body, 2 options, 3 end */
	uint64_t off;			/* body bytes read */
	struct buf win;			/* formatted: entries not yet whole */
};

struct xjob {
	struct ex *x;
	struct consume_job *job;
	struct xjob *next, **prevp;
	struct child *child;
	struct feed feed;
	char tmpname[128];		/* --path-arg, in tmpdir */
	uint64_t filebytes;		/* written there */
	char id[33];
};

static struct log_limit line_limit;

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0) {
		fputs("\n"
"  --shell                    run COMMAND with /bin/sh -c (ARGs are $1...)\n"
"  --path-arg                 events in a file, its path the last argument\n"
"  --command-timeout DUR      then SIGTERM to its process group (270s)\n"
"  --kill-grace DUR           then SIGKILL (10s)\n"
"  --command-stdout WHERE     null (the default) or stderr\n"
"  --stderr-tail SIZE         bytes of its stderr kept for a reason (4k)\n"
"  --tmp-dir DIR              --path-arg files (SPOOL/tmp)\n"
"  --shutdown-timeout DUR     on TERM, wait this long for commands (30s)\n"
"  --state-file PATH          the counters (SPOOL/state/exec)\n"
"  --notify-fd N              write a newline to fd N once started\n"
"  --log-file FILE            log there (reopened on SIGHUP)\n"
"  -v, --verbose              log more\n"
"format options (the default: msgpack, the chunk as an lf-stream(5)):\n",
		    stdout);
		fputs(format_usage, stdout);
		fputs(CONSUME_USAGE, stdout);
	}
	exit(code);
}

/* ---- input ---- */

/* The chunk as one PackedForward message: its body is the entries, so
 * it is copied as it is, SPOOL_BLOCK at a time. */
static int
fill_raw(struct feed *f, struct buf *out)
{
	struct spool_chunk *c = f->c;
	size_t want;
	ssize_t got;

	switch (f->phase) {
	case 0:
		f->phase = 1;
		if (stream_pack_head(out, c->h.tag, c->h.taglen,
		    (size_t)c->h.bodylen) == -1)
			return -1;
		return 1;
	case 1:
		want = c->h.bodylen - f->off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(c->h.bodylen - f->off);
		if (want > 0) {
			if (buf_reserve(out, want) == -1)
				return -1;
			got = io_pread_all(c->fd, out->p + out->len, want,
			    (off_t)(c->h.hlen + f->off));
			if (got != (ssize_t)want) {
				if (got != -1)
					errno = EIO;
				return -1;
			}
			out->len += want;
			f->off += want;
		}
		if (f->off == c->h.bodylen)
			f->phase = 2;
		return 1;
	case 2:
		f->phase = 3;
		if (stream_pack_options(out, (size_t)c->h.count, NULL, 0) == -1)
			return -1;
		return 0;
	}
	return 0;
}

/* The whole entries at the front of win, formatted into out. */
static int
fill_format_run(struct feed *f, struct buf *out)
{
	struct spool_chunk *c = f->c;
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *end;
	size_t n = 0;

	stream_iter_init(&it, f->win.p, f->win.len);
	for (end = it.p; stream_iter_next(&it, &ev) == 1; end = it.p)
		n++;
	if (n > 0 && format_entries(f->x->fmt, out, c->h.tag, c->h.taglen,
	    f->win.p, (size_t)(end - f->win.p), n) == -1) {
		errno = EINVAL;
		return -1;
	}
	buf_consume(&f->win, (size_t)(end - f->win.p));
	return 0;
}

/* The events through lib/format.  consume verified the body under our
 * claim, and a sealed chunk is not written again, so the entries are
 * walked here without a second check (as lf-tdlog does). */
static int
fill_format(struct feed *f, struct buf *out)
{
	struct spool_chunk *c = f->c;
	size_t want;
	ssize_t got;

	if (f->phase == 3)
		return 0;
	want = c->h.bodylen - f->off > SPOOL_BLOCK ? SPOOL_BLOCK :
	    (size_t)(c->h.bodylen - f->off);
	if (want > 0) {
		if (buf_reserve(&f->win, want) == -1)
			return -1;
		got = io_pread_all(c->fd, f->win.p + f->win.len, want,
		    (off_t)(c->h.hlen + f->off));
		if (got != (ssize_t)want) {
			if (got != -1)
				errno = EIO;
			return -1;
		}
		f->win.len += want;
		f->off += want;
	}
	if (fill_format_run(f, out) == -1)
		return -1;
	if (f->off < c->h.bodylen)
		return 1;
	f->phase = 3;
	if (f->win.len > 0) {	/* changed since it was verified */
		errno = EIO;
		return -1;
	}
	buf_free(&f->win);
	return 0;
}

static int
fill_feed(struct feed *f, struct buf *out)
{
	return f->x->fmt ? fill_format(f, out) : fill_raw(f, out);
}

/* --path-arg: the whole input into a file of tmpdir, synchronously (a
 * local file: the same as lf-tdlog's gzip of a chunk).  0 or -1. */
static int
write_tmpfile(struct xjob *j)
{
	struct ex *x = j->x;
	struct buf out = BUF_INIT;
	int fd, rc, ret = -1;

	snprintf(j->tmpname, sizeof j->tmpname, TMP_PREFIX "%ld.%s",
	    (long)getpid(), j->id);
	if ((fd = openat(x->tmpdir, j->tmpname, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		j->tmpname[0] = '\0';
		return -1;
	}
	do {
		rc = fill_feed(&j->feed, &out);
		if (rc != -1 && out.len > 0 &&
		    io_write_all(fd, out.p, out.len) == -1)
			rc = -1;
		j->filebytes += out.len;
		out.len = 0;
	} while (rc == 1);
	if (close(fd) == -1)
		rc = -1;
	if (rc == 0)
		ret = 0;
	buf_free(&out);
	return ret;
}

/* Files of an earlier lf-exec that was killed: .lf-exec.PID.ID whose PID
 * is gone (another lf-exec on the same spool keeps its own). */
static void
sweep_tmp(struct ex *x)
{
	char name[PATH_MAX];
	DIR *d;
	struct dirent *de;
	long pid;
	int fd;

	if ((fd = dup(x->tmpdir)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		pid = strtol(de->d_name + strlen(TMP_PREFIX), NULL, 10);
		if (pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH)) {
			snprintf(name, sizeof name, "%s", de->d_name);
			if (unlinkat(x->tmpdir, name, 0) == 0)
				log_info("%s/%s: removed (left by a killed "
				    "lf-exec)", x->tmpdir_path, name);
		}
	}
	closedir(d);
}

/* ---- the command's environment and arguments ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static int
strv_add(struct strv *s, char *str)
{
	char **nv;

	if (str == NULL)
		return -1;
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		if ((nv = reallocarray(s->v, s->cap, sizeof *nv)) == NULL) {
			free(str);
			return -1;
		}
		s->v = nv;
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

static void
strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static char *
str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n == -1 ? NULL : s;
}

/* Ours, never inherited: a stale LF_KEY_X must not pass for this chunk's. */
static int
env_ours(const char *e)
{
	return strncmp(e, "LF_TAG=", 7) == 0 ||
	    strncmp(e, "LF_CHUNK_ID=", 12) == 0 ||
	    strncmp(e, "LF_EVENTS=", 10) == 0 ||
	    strncmp(e, "LF_TIMEKEY=", 11) == 0 ||
	    strncmp(e, "LF_KEY_", 7) == 0;
}

/* LF_KEY_<NAME>=value for one chunk key: the name upper-cased, anything
 * but a letter, digit or _ made _ (a shell can name it); a str value as
 * it is, nil empty, anything else (or a str with a NUL) its JSON text. */
static int
env_key(struct strv *env, const struct mp_obj *k, const unsigned char *v,
    const unsigned char *end)
{
	struct buf b = BUF_INIT;
	const unsigned char *p = v;
	struct mp_obj o;
	size_t used;
	int rc;

	if (buf_adds(&b, "LF_KEY_") == -1)
		goto fail;
	for (uint32_t i = 0; i < k->n; i++) {
		int ch = k->p[i];
		if (ch >= 'a' && ch <= 'z')
			ch -= 'a' - 'A';
		else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' &&
		    ch <= '9')))
			ch = '_';
		if (buf_addc(&b, ch) == -1)
			goto fail;
	}
	if (buf_addc(&b, '=') == -1 || mp_read(&p, end, &o) == -1)
		goto fail;
	if ((o.type == MP_STR || o.type == MP_BIN) &&
	    memchr(o.p, '\0', o.n) == NULL)
		rc = buf_add(&b, o.p, o.n);
	else if (o.type == MP_NIL)
		rc = 0;
	else
		rc = json_value(&b, v, (size_t)(end - v), &used);
	if (rc == -1 || buf_addc(&b, '\0') == -1)
		goto fail;
	return strv_add(env, (char *)b.p);
fail:
	buf_free(&b);
	return -1;
}

static int
env_keys(struct strv *env, const struct chunk_head *h)
{
	const unsigned char *p = h->vars, *end = h->vars + h->varslen;
	struct mp_obj m, k;

	if (h->vars == NULL)
		return 0;
	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return -1;
	for (uint32_t i = 0; i < m.n; i++) {
		if (mp_read(&p, end, &k) == -1)
			return -1;
		if ((k.type == MP_STR || k.type == MP_BIN) &&
		    env_key(env, &k, p, end) == -1)
			return -1;
		if (mp_pass(&p, end) == -1)
			return -1;
	}
	return 0;
}

static int
env_build(struct strv *env, struct xjob *j)
{
	const struct chunk_head *h = &j->job->chunk.h;
	char **e;

	for (e = environ; *e; e++)
		if (!env_ours(*e) && strv_add(env, strdup(*e)) == -1)
			return -1;
	if (memchr(h->tag, '\0', h->taglen) == NULL &&
	    strv_add(env, str_printf("LF_TAG=%.*s", (int)h->taglen,
	    h->tag)) == -1)
		return -1;
	if (strv_add(env, str_printf("LF_CHUNK_ID=%s", j->id)) == -1 ||
	    strv_add(env, str_printf("LF_EVENTS=%llu",
	    (unsigned long long)h->count)) == -1)
		return -1;
	if (h->has_timekey && strv_add(env, str_printf("LF_TIMEKEY=%lld",
	    (long long)h->timekey)) == -1)
		return -1;
	return env_keys(env, h);
}

static int
argv_build(struct strv *av, struct xjob *j)
{
	struct ex *x = j->x;
	int i = 0;

	if (x->shell) {
		if (strv_add(av, strdup("/bin/sh")) == -1 ||
		    strv_add(av, strdup("-c")) == -1 ||
		    strv_add(av, strdup(x->cmd[0])) == -1 ||
		    strv_add(av, strdup("lf-exec")) == -1)	/* $0 */
			return -1;
		i = 1;
	}
	for (; i < x->ncmd; i++)
		if (strv_add(av, strdup(x->cmd[i])) == -1)
			return -1;
	if (x->path_arg && strv_add(av, str_printf("%s/%s", x->tmpdir_path,
	    j->tmpname)) == -1)
		return -1;
	return 0;
}

/* ---- jobs ---- */

/* lib/child's fill: the job's input, the next piece. */
static int
fill(void *arg, struct buf *out)
{
	return fill_feed(&((struct xjob *)arg)->feed, out);
}

/* The command as a log names it: its first word, or the shell script,
 * cut short. */
static const char *
cmd_name(const struct ex *x)
{
	return x->name;
}

static void
name_set(struct ex *x)
{
	const char *c = x->cmd[0];
	size_t n = strcspn(c, "\n");

	if (!x->shell)
		snprintf(x->name, sizeof x->name, "%s", c);
	else if (n <= 40 && c[n] == '\0')
		snprintf(x->name, sizeof x->name, "sh -c '%s'", c);
	else
		snprintf(x->name, sizeof x->name, "sh -c '%.*s...'",
		    (int)(n < 40 ? n : 40), c);
}

/* Bytes of a command's stderr fit for a one-line reason or log: printable
 * ASCII kept, a newline as "\n", others as "\xNN"; at most max bytes of
 * out, "..." in front if the start was left out (the end says most). */
static void
vis_tail(struct buf *out, const char *p, size_t n, size_t max)
{
	size_t i, need = 0, start = 0;
	unsigned char ch;

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	for (i = n; i > 0; i--) {	/* how much of the end fits */
		ch = (unsigned char)p[i - 1];
		need += ch >= 0x20 && ch < 0x7f && ch != '\\' ? 1 :
		    ch == '\n' || ch == '\\' ? 2 : 4;
		if (need > max) {
			start = i;
			(void)buf_adds(out, "...");
			break;
		}
	}
	for (i = start; i < n; i++) {
		ch = (unsigned char)p[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			(void)buf_addc(out, ch);
		else if (ch == '\n')
			(void)buf_adds(out, "\\n");
		else if (ch == '\\')
			(void)buf_adds(out, "\\\\");
		else
			(void)buf_printf(out, "\\x%02x", ch);
	}
}

/* The last line of a tail. */
static void
last_line(const char *p, size_t n, const char **lp, size_t *ln)
{
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	*lp = p;
	*ln = n;
	for (size_t i = n; i > 0; i--)
		if (p[i - 1] == '\n') {
			*lp = p + i;
			*ln = n - i;
			break;
		}
}

static void
xjob_free(struct xjob *j)
{
	*j->prevp = j->next;
	if (j->next)
		j->next->prevp = j->prevp;
	if (j->tmpname[0] != '\0' && unlinkat(j->x->tmpdir, j->tmpname, 0) ==
	    -1 && errno != ENOENT)
		log_warn("%s/%s: %s", j->x->tmpdir_path, j->tmpname,
		    strerror(errno));
	buf_free(&j->feed.win);
	free(j);
}

static void
finish(struct xjob *j, enum consume_result r, const char *reason)
{
	struct ex *x = j->x;

	if (r == CONSUME_OK) {
		x->chunks++;
		x->events += j->job->chunk.h.count;
	} else {
		snprintf(x->last_error, sizeof x->last_error, "%s", reason);
		if (r == CONSUME_FAIL)
			x->dead++;
		else
			x->retries++;
	}
	consume_job_done(j->job, r, reason);
	xjob_free(j);
}

/* qmail's hard codes that are sysexits' (qmail-command(8)): the command
 * says the chunk itself is wrong, so trying again cannot help. */
static int
refused(int code)
{
	return code == 100 || code == 64 || code == 65 || code == 77 ||
	    code == 78;
}

static void
child_line(void *arg, const char *line, size_t n)
{
	struct xjob *j = arg;
	struct buf b = BUF_INIT;

	vis_tail(&b, line, n, 512);
	(void)buf_addc(&b, '\0');
	log_warn_limited(&line_limit, "%s: %s: %s", j->job->chunk.name,
	    cmd_name(j->x), b.p ? (char *)b.p : "");
	buf_free(&b);
}

static void
child_done(void *arg, const struct child_result *r)
{
	struct xjob *j = arg;
	struct ex *x = j->x;
	struct buf why = BUF_INIT;
	enum consume_result res = CONSUME_RETRY;
	const char *lp;
	size_t ln;

	j->child = NULL;
	x->bytes += r->written + j->filebytes;
	if (r->exited)
		x->by_code[r->code & 0xff]++;
	else if (r->signo > 0 && r->signo < MAXSIG)
		x->by_sig[r->signo]++;
	if (r->timed_out)
		x->timeouts++;
	if (r->input_errno && !(r->exited && r->code != 0)) {
		/* we could not give it the whole chunk: never a delivery */
		(void)buf_printf(&why, "cannot read %s for %s: %s",
		    j->job->chunk.name, cmd_name(x), strerror(r->input_errno));
	} else if (r->exited && r->code == 0 && !r->timed_out) {
		log_debug("%s: %llu events to %s in %.3fs (%llu bytes taken)",
		    j->job->chunk.name,
		    (unsigned long long)j->job->chunk.h.count, cmd_name(x),
		    r->elapsed, (unsigned long long)r->written);
		finish(j, CONSUME_OK, NULL);
		return;
	} else if (r->timed_out) {
		(void)buf_printf(&why, "%s timed out after %.3gs (%s)",
		    cmd_name(x), x->chc.timeout, r->exited ?
		    "exited after SIGTERM" : r->signo == SIGKILL ?
		    "killed with SIGKILL" : "killed with SIGTERM");
	} else if (r->exited) {
		res = refused(r->code) ? CONSUME_FAIL : CONSUME_RETRY;
		(void)buf_printf(&why, "%s exited %d", cmd_name(x), r->code);
	} else {
		(void)buf_printf(&why, "%s killed by signal %d (%s)",
		    cmd_name(x), r->signo, strsignal(r->signo));
	}
	if (r->taillen > 0) {
		(void)buf_adds(&why, ": ");
		if (res == CONSUME_FAIL) {
			vis_tail(&why, r->tail, r->taillen, x->chc.tail_max);
		} else {	/* a retry's log line: the last line is enough */
			last_line(r->tail, r->taillen, &lp, &ln);
			vis_tail(&why, lp, ln, 300);
		}
	}
	(void)buf_addc(&why, '\0');
	finish(j, res, why.p ? (char *)why.p : "out of memory");
	buf_free(&why);
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct ex *x = ctx;
	struct xjob *j;
	struct strv env = { 0 }, av = { 0 };
	char err[512];

	if ((j = calloc(1, sizeof *j)) == NULL) {
		consume_job_done(job, CONSUME_RETRY, "out of memory");
		return;
	}
	j->x = x;
	j->job = job;
	j->next = x->jobs;
	j->prevp = &x->jobs;
	if (x->jobs)
		x->jobs->prevp = &j->next;
	x->jobs = j;
	chunk_id_hex(job->chunk.h.id, j->id);
	j->feed.x = x;
	j->feed.c = &job->chunk;
	if (x->path_arg && write_tmpfile(j) == -1) {
		snprintf(err, sizeof err, "%s: cannot write the events for %s: "
		    "%s", x->tmpdir_path, cmd_name(x), strerror(errno));
		finish(j, CONSUME_RETRY, err);
		return;
	}
	if (env_build(&env, j) == -1 || argv_build(&av, j) == -1) {
		strv_free(&env);
		strv_free(&av);
		finish(j, CONSUME_RETRY, "out of memory");
		return;
	}
	j->child = child_spawn(x->loop, &x->chc, av.v, env.v,
	    x->path_arg ? NULL : fill, child_line, child_done, j);
	if (j->child == NULL) {
		snprintf(err, sizeof err, "cannot start %s: %s", cmd_name(x),
		    strerror(errno));
		strv_free(&env);
		strv_free(&av);
		finish(j, CONSUME_RETRY, err);
		return;
	}
	x->runs++;
	strv_free(&env);
	strv_free(&av);
}

/* The shutdown timeout: the command's group is killed and the chunk
 * stays in new/, to be run again by the next lf-exec. */
static void
cancel(void *ctx, struct consume_job *job)
{
	struct ex *x = ctx;
	struct xjob *j;

	for (j = x->jobs; j; j = j->next)
		if (j->job == job)
			break;
	if (j == NULL)
		return;
	child_cancel(j->child);
	xjob_free(j);
}

/* ---- --metrics-file: what lf-exec adds to consume's ---- */

static void
metrics_exec(void *ctx, struct metrics *m)
{
	const struct ex *x = ctx;

	metrics_one_u64(m, "lf_exec_commands_total", "counter",
	    "Commands run (one per chunk and attempt).", x->runs);
	metrics_one_u64(m, "lf_exec_timeouts_total", "counter",
	    "Commands killed at the --timeout.", x->timeouts);
	metrics_one_u64(m, "lf_exec_written_bytes_total", "counter",
	    "Bytes given to the commands, every attempt.", x->bytes);
	metrics_family(m, "lf_exec_exits_total", "counter",
	    "Commands that exited, by exit code.");
	metrics_by_index(m, "code", x->by_code, 256, 0);
	metrics_family(m, "lf_exec_signals_total", "counter",
	    "Commands killed by a signal, by its number.");
	metrics_by_index(m, "signal", x->by_sig, MAXSIG, 1);
	metrics_one_u64(m, "lf_exec_running", "gauge",
	    "Commands running now.", (uint64_t)child_running());
}

/* ---- the state file ---- */

static void
jtable(yajl_gen g, const char *key, const unsigned long long *v, int n,
    int from)
{
	char k[16];

	report_str(g, key);
	yajl_gen_map_open(g);
	for (int i = from; i < n; i++)
		if (v[i]) {
			snprintf(k, sizeof k, "%d", i);
			report_int(g, k, v[i]);
		}
	yajl_gen_map_close(g);
}

/* The counters for an operator, one JSON object replaced whole every
 * second and at exit (as lf-send's and lf-tdlog's): a report. */
static void
state_write(struct ex *x)
{
	yajl_gen g = report_new();

	if (g == NULL)
		return;
	report_str(g, "command");
	report_str(g, x->name);
	report_int(g, "chunks", x->chunks);
	report_int(g, "events", x->events);
	report_int(g, "bytes", x->bytes);
	report_int(g, "commands_run", x->runs);
	report_int(g, "retries", x->retries);
	report_int(g, "dead_letters", x->dead);
	report_int(g, "timeouts", x->timeouts);
	jtable(g, "exit_codes", x->by_code, 256, 0);
	jtable(g, "signals", x->by_sig, MAXSIG, 1);
	report_int(g, "in_flight", child_running());
	report_rusage(g);	/* lf-exec's own, not its commands' */
	report_strn(g, "last_error", x->last_error);
	report_write(g, x->state_file);
}

static void
state_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)revents;
	state_write(w->data);
}

/* ---- setup ---- */

static void
sig_term(void *ctx)
{
	consume_stop(((struct ex *)ctx)->consume);
}

static void
sig_now(void *ctx)
{
	consume_kick(((struct ex *)ctx)->consume);
}

static const struct sig_actions ex_sig_actions = { sig_term, sig_now, NULL };

static const struct conf_name stdout_modes[] = {
	{ "null", STDOUT_NULL },
	{ "stderr", STDOUT_STDERR },
	{ NULL, 0 }
};

/* Is name runnable as execvp would find it?  A missing command is a
 * configuration error at the start, not a chunk retried for ever. */
static int
runnable(const char *name)
{
	const char *path = getenv("PATH"), *p, *e;
	char full[PATH_MAX];

	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	if (path == NULL)
		path = "/bin:/usr/bin";
	for (p = path; ; p = e + 1) {
		e = strchrnul(p, ':');
		snprintf(full, sizeof full, "%.*s%s%s", (int)(e - p), p,
		    e > p ? "/" : "", name);
		if (access(full, X_OK) == 0)
			return 1;
		if (*e == '\0')
			return 0;
	}
}

static void
parse_args(struct ex *x, int argc, char **argv)
{
	enum { O_SHELL = 256, O_PATHARG, O_TIMEOUT, O_GRACE, O_STDOUT,
		O_TAIL, O_TMPDIR, O_SHUTTIME, O_STATE, O_NOTIFY, O_LOG,
		O_VERSION };
	static const struct option own[] = {
		{ "shell", no_argument, NULL, O_SHELL },
		{ "path-arg", no_argument, NULL, O_PATHARG },
		{ "command-timeout", required_argument, NULL, O_TIMEOUT },
		{ "kill-grace", required_argument, NULL, O_GRACE },
		{ "command-stdout", required_argument, NULL, O_STDOUT },
		{ "stderr-tail", required_argument, NULL, O_TAIL },
		{ "tmp-dir", required_argument, NULL, O_TMPDIR },
		{ "shutdown-timeout", required_argument, NULL, O_SHUTTIME },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "notify-fd", required_argument, NULL, O_NOTIFY },
		{ "log-file", required_argument, NULL, O_LOG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		CONSUME_LONG_OPTIONS,
	};
	struct option *opts;
	size_t nown = sizeof own / sizeof own[0], nf = 0;
	char err[256];
	int ch;

	while (format_options[nf].name)
		nf++;
	if ((opts = calloc(nown + nf + 1, sizeof *opts)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	memcpy(opts, own, sizeof own);
	memcpy(opts + nown, format_options, nf * sizeof *opts);
	/* "+": the options end at SPOOL; the rest is the command's */
	while ((ch = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		if (consume_opt(&x->cc, ch, optarg))
			continue;
		if (ch >= FORMAT_OPT_BASE && ch < FORMAT_OPT_END) {
			if (format_option(&x->fc, ch, optarg, err,
			    sizeof err) == -1)
				log_fatal(EX_USAGE, "%s", err);
			continue;
		}
		switch (ch) {
		case O_SHELL: x->shell = 1; break;
		case O_PATHARG: x->path_arg = 1; break;
		case O_TIMEOUT:
			x->chc.timeout = conf_opt_duration("command-timeout",
			    optarg);
			break;
		case O_GRACE:
			x->chc.kill_grace = conf_opt_duration("kill-grace",
			    optarg);
			break;
		case O_STDOUT:
			x->out_mode = conf_opt_enum("command-stdout", optarg,
			    stdout_modes);
			break;
		case O_TAIL:
			x->chc.tail_max = (size_t)conf_opt_size("stderr-tail",
			    optarg);
			break;
		case O_TMPDIR: x->tmpdir_arg = optarg; break;
		case O_SHUTTIME:
			x->cc.shutdown_timeout = conf_opt_duration(
			    "shutdown-timeout", optarg);
			break;
		case O_STATE:
			free(x->state_file);
			if ((x->state_file = strdup(optarg)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
			break;
		case O_NOTIFY:
			x->notify_fd = (int)conf_opt_uint("notify-fd", optarg,
			    INT_MAX);
			break;
		case O_LOG: x->logfile = optarg; break;
		case 'v': log_verbose++; break;
		case 'h': free(opts); usage(0); break;
		case O_VERSION: puts("lf-exec " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	free(opts);
	if (argc - optind < 2)
		usage(EX_USAGE);
	x->cmd = argv + optind + 1;
	x->ncmd = argc - optind - 1;
	if (strcmp(x->cmd[0], "--") == 0) {
		x->cmd++;
		x->ncmd--;
	} else if (x->cmd[0][0] == '-') {
		/* an option after SPOOL, most likely: say so, not "not found" */
		log_fatal(EX_USAGE, "%s: options go before SPOOL (a command "
		    "that starts with '-' goes after \"--\")", x->cmd[0]);
	}
	if (x->ncmd < 1 || x->cmd[0][0] == '\0')
		usage(EX_USAGE);
	if (x->chc.tail_max > (1u << 20))
		log_fatal(EX_USAGE, "--stderr-tail: at most 1m");
	if (consume_conf_check(&x->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	name_set(x);
	if (!x->shell && !runnable(x->cmd[0]))
		log_fatal(EX_CONFIG, "%s: %s", x->cmd[0], strchr(x->cmd[0],
		    '/') ? strerror(errno) : "not found in PATH");
}

/* The formatter, unless the events go as they are: msgpack without any
 * key injected is the chunk body itself. */
static void
formatter(struct ex *x)
{
	char err[256];

	if (x->fc.type == FORMAT_MSGPACK && !x->fc.include_time_key &&
	    !x->fc.include_tag_key)
		return;
	if ((x->fmt = format_new(&x->fc, err, sizeof err)) == NULL)
		log_fatal(EX_USAGE, "%s", err);
}

static void
open_tmpdir(struct ex *x)
{
	const char *d = x->tmpdir_arg;

	if (d == NULL) {
		if (asprintf(&x->tmpdir_path, "%s/tmp", x->spool.path) == -1)
			log_fatal(EX_OSERR, "out of memory");
		if ((x->tmpdir = dup(x->spool.tmp)) == -1)
			log_fatal(EX_OSERR, "dup: %s", strerror(errno));
		return;
	}
	if ((x->tmpdir_path = strdup(d)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	if ((x->tmpdir = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		log_fatal(EX_CANTCREAT, "--tmp-dir %s: %s", d, strerror(errno));
}

/* 0, 1 and 2 open, so that no pipe of a command lands on one of them
 * (a pipe on fd 1 would be overwritten by the command's stdout). */
static void
std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) == -1 &&
		    open("/dev/null", O_RDWR) == -1)
			exit(EX_OSERR);
}

int
main(int argc, char **argv)
{
	static struct ex x;
	struct sig sig;
	char err[512];
	int rc;

	log_init(argv[0]);
	std_fds();
	consume_conf_default(&x.cc);
	format_conf_default(&x.fc);
	x.fc.type = FORMAT_MSGPACK;
	x.chc.timeout = 270;		/* out_exec's command_timeout */
	x.chc.kill_grace = 10;		/* Fluentd's child_process TERM wait */
	x.chc.tail_max = 4096;
	x.notify_fd = -1;
	x.tmpdir = -1;
	parse_args(&x, argc, argv);
	if (x.logfile && log_open(x.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", x.logfile, strerror(errno));
	formatter(&x);
	if ((x.devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		log_fatal(EX_OSERR, "/dev/null: %s", strerror(errno));
	x.chc.out_fd = x.out_mode == STDOUT_STDERR ? 2 : x.devnull;
	x.chc.in_fd = x.devnull;
	if (spool_open(&x.spool, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	if (x.path_arg) {
		open_tmpdir(&x);
		sweep_tmp(&x);
	}
	if (x.state_file == NULL && asprintf(&x.state_file, "%s/state/exec",
	    x.spool.path) == -1)
		log_fatal(EX_OSERR, "out of memory");
	x.loop = EV_DEFAULT;
	if ((x.consume = consume_new(x.loop, &x.spool, &x.cc, deliver, cancel,
	    &x)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	consume_set_metrics(x.consume, "exec", metrics_exec);
	ev_timer_init(&x.state_t, state_timer, 0, 1);
	x.state_t.data = &x;
	ev_timer_again(x.loop, &x.state_t);
	sig_start(&sig, x.loop, &ex_sig_actions, &x);
	if (consume_start(x.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", x.spool.path);
	state_write(&x);
	if (x.notify_fd >= 0) {
		(void)!write(x.notify_fd, "\n", 1);
		close(x.notify_fd);
	}
	log_info("ready: %s to %s", x.spool.path, x.name);
	ev_run(x.loop, 0);
	rc = consume_status(x.consume);
	sig_stop(&sig);
	log_info("stats: chunks=%llu events=%llu bytes=%llu runs=%llu "
	    "retries=%llu dead=%llu timeouts=%llu", x.chunks, x.events,
	    x.bytes, x.runs, x.retries, x.dead, x.timeouts);
	log_limit_summary();
	ev_timer_stop(x.loop, &x.state_t);
	state_write(&x);
	while (x.jobs) {
		child_cancel(x.jobs->child);
		xjob_free(x.jobs);
	}
	consume_free(x.consume);
	spool_close(&x.spool);
	format_free(x.fmt);
	if (x.tmpdir != -1)
		close(x.tmpdir);
	close(x.devnull);
	free(x.tmpdir_path);
	free(x.state_file);
	return rc;
}
