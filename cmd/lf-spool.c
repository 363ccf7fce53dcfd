/* lf-spool: look after a spool directory (lf-spool(5)).
 *
 * lf-spool [-v] stat [--json] dir
 * lf-spool [-v] ls [--ready] [--staged] [--dead] dir
 * lf-spool [-v] requeue dir [chunk ...]
 * lf-spool [-v] fsck [-n] dir
 * lf-spool [-v] purge --dead dir [chunk ...]
 *
 * lf-buffer and the consumers may be running meanwhile: a chunk that goes
 * away between the listing and the look was delivered or sealed and is
 * passed over, a ready chunk is only changed under a consumer's claim, and
 * staged chunks are only ever read. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define LIBBSD_NETBSD_VIS	/* quiets <bsd/vis.h>; strnvisx is the same in both */
#include <bsd/vis.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "chunk.h"
#include "durable.h"
#include "log.h"
#include "retry.h"
#include "spool.h"

#define USAGE "usage: lf-spool [-v] stat [--json] dir\n" \
	"       lf-spool [-v] ls [--ready] [--staged] [--dead] dir\n" \
	"       lf-spool [-v] requeue dir [chunk ...]\n" \
	"       lf-spool [-v] fsck [-n] dir\n" \
	"       lf-spool [-v] purge --dead dir [chunk ...]\n"

enum { READY, STAGED, DEAD, NSTATES };
static const char *state_names[NSTATES] = { "ready", "staged", "dead" };
static const char *folders[NSTATES] = { "new", "tmp", "dead" };

struct opts {
	const char *cmd;
	const char *dir;
	char **args;		/* chunk names after dir */
	int nargs;
	int json, dry;
	int only[NSTATES];	/* ls filters; --dead for purge */
	int filtered;
};

static int status;		/* exit status: the worst seen */

static void
note_status(int code)
{
	static const int rank[] = { 0, EX_NOINPUT, EX_DATAERR, EX_IOERR };
	int a = 0, b = 0;

	for (int i = 0; i < 4; i++) {
		if (rank[i] == status)
			a = i;
		if (rank[i] == code)
			b = i;
	}
	if (b > a)
		status = code;
}

static int
folder_fd(const struct spool *s, int state)
{
	return state == READY ? s->new : state == STAGED ? s->tmp : s->dead;
}

/* A folder's chunk names, oldest first.  A name too long for the spool's
 * functions is not one lf wrote: it is left alone. */
static void
list_folder(const struct spool *s, int state, struct spool_list *l)
{
	size_t i, j;

	if (spool_list(folder_fd(s, state), l) == -1)
		log_fatal(EX_IOERR, "%s/%s: %s", s->path, folders[state],
		    strerror(errno));
	for (i = j = 0; i < l->n; i++) {
		if (strlen(l->names[i]) >= SPOOL_NAMELEN) {
			log_warn("%s/%s: name too long for a chunk, ignored",
			    folders[state], l->names[i]);
			free(l->names[i]);
			continue;
		}
		l->names[j++] = l->names[i];
	}
	l->n = j;
}

/* Open a chunk and read its header.  1 read, 0 gone (delivered, sealed or
 * requeued meanwhile), or as spool_chunk_open: -1 with a reason, SPOOL_EIO
 * or SPOOL_NOTFILE (never opened: lib/spool).  lf-buffer rewrites a
 * staged chunk's header in place on every commit, so a read may meet a
 * torn header: a staged one is tried again before it counts as bad. */
static int
chunk_look(int dirfd, const char *name, int staged, struct spool_chunk *c,
    char *err, size_t errlen)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	struct stat st;
	int rc;

	for (int tries = 0;; tries++) {
		if ((rc = spool_chunk_open(dirfd, name, c, err, errlen)) == 0)
			return 1;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno == ENOENT)
			return 0;
		if (!staged || tries == 4 || rc == SPOOL_NOTFILE)
			return rc;
		nanosleep(&pause, NULL);
	}
}

/* The size of what is not a readable chunk, if it is a file at all. */
static unsigned long long
file_bytes(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		return (unsigned long long)st.st_size;
	return 0;
}

/* The seal time a ready chunk's name starts with: 16 hex digits. */
static int
name_seal_us(const char *name, uint64_t *us)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		int ch = name[i], d;

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (name[16] != '.')
		return -1;
	*us = v;
	return 0;
}

static void
iso_utc(char out[32], uint64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "?");
}

static uint64_t
secs_us(double sec)
{
	return sec <= 0 ? 0 : (uint64_t)(sec * 1e6 + 0.5);
}

/* 42.0s, 3m05s, 2h03m05s, 4d02h03m05s */
static void
fmt_age(char *out, size_t n, double sec)
{
	unsigned long long s, d, h, m;

	if (sec < 0)
		sec = 0;
	if (sec < 60) {
		snprintf(out, n, "%.1fs", sec);
		return;
	}
	s = (unsigned long long)sec;
	d = s / 86400;
	h = s / 3600 % 24;
	m = s / 60 % 60;
	s %= 60;
	if (d)
		snprintf(out, n, "%llud%02lluh%02llum%02llus", d, h, m, s);
	else if (h)
		snprintf(out, n, "%lluh%02llum%02llus", h, m, s);
	else
		snprintf(out, n, "%llum%02llus", m, s);
}

/* Bytes made safe for a terminal and for awk: vis(3), white space too. */
static char *
visible(const char *p, size_t n, int flags)
{
	char *out = malloc(4 * n + 1);

	if (out == NULL)
		log_fatal(EX_OSERR, "out of memory");
	if (strnvisx(out, 4 * n + 1, p, n, VIS_CSTYLE | flags) == -1)
		snprintf(out, 4 * n + 1, "?");
	return out;
}

/* ---- stat ---- */

struct tally {
	unsigned long long chunks, events, bytes, unreadable;
};

/* state/retry: 1 and st, 0 if there is none, -1 with a reason. */
static int
read_retry(const struct spool *s, struct retry_state *st, char *err,
    size_t errlen)
{
	char line[RETRY_LINE_MAX + 1], why[128];
	int fd, n;

	if ((fd = spool_file_open(s->state, "retry", why, sizeof why)) < 0) {
		if (fd == -1 && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "state/retry: %s",
		    fd == -1 ? strerror(errno) : why);
		return -1;
	}
	n = durable_read_all(fd, line, sizeof line - 1);
	if (n == -1)
		snprintf(err, errlen, "state/retry: read: %s", strerror(errno));
	close(fd);
	if (n == -1)
		return -1;
	line[n] = '\0';
	if (strlen(line) != (size_t)n || retry_parse(st, line) == -1) {
		snprintf(err, errlen, "state/retry: not a retry state line");
		return -1;
	}
	return 1;
}

static void
js(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void
jnum(yajl_gen g, double v)
{
	char b[400];
	int n = snprintf(b, sizeof b, "%.6f", v);

	yajl_gen_number(g, b, (size_t)n);
}

static int
cmd_stat(struct spool *s, const struct opts *o)
{
	struct tally t[NSTATES];
	struct spool_list l;
	struct spool_chunk c;
	struct retry_state rs = RETRY_STATE_INIT;
	char err[256], oldest[SPOOL_NAMELEN] = "", when[32], age[64];
	uint64_t seal, oldest_us = 0, now_us = spool_now_us();
	double now = (double)now_us / 1e6;
	int rc, retry;

	memset(t, 0, sizeof t);
	for (int state = 0; state < NSTATES; state++) {
		list_folder(s, state, &l);
		for (size_t i = 0; i < l.n; i++) {
			const char *name = l.names[i];

			rc = chunk_look(folder_fd(s, state), name, state == STAGED,
			    &c, err, sizeof err);
			if (rc == 0)
				continue;
			t[state].chunks++;
			if (rc == 1) {
				t[state].events += c.h.count;
				t[state].bytes += c.size;
			} else {
				t[state].unreadable++;
				t[state].bytes += file_bytes(folder_fd(s, state), name);
				if (state != DEAD)
					log_warn("%s/%s: %s", folders[state], name, err);
			}
			/* its seal time, or if its name has none, its birth */
			if (state == READY && name_seal_us(name, &seal) == -1)
				seal = rc == 1 ? c.h.created_us : UINT64_MAX;
			if (state == READY && seal != UINT64_MAX &&
			    (oldest[0] == '\0' || seal < oldest_us)) {
				oldest_us = seal;
				snprintf(oldest, sizeof oldest, "%s", name);
			}
			if (rc == 1)
				spool_release(&c);
		}
		spool_list_free(&l);
	}
	if ((retry = read_retry(s, &rs, err, sizeof err)) == -1)
		log_warn("%s", err);

	if (o->json) {
		yajl_gen g = yajl_gen_alloc(NULL);
		const unsigned char *out;
		size_t outlen;

		if (g == NULL)
			log_fatal(EX_OSERR, "out of memory");
		yajl_gen_map_open(g);
		js(g, "spool");
		js(g, s->path);
		for (int state = 0; state < NSTATES; state++) {
			js(g, state_names[state]);
			yajl_gen_map_open(g);
			js(g, "chunks");
			yajl_gen_integer(g, (long long)t[state].chunks);
			js(g, "events");
			yajl_gen_integer(g, (long long)t[state].events);
			js(g, "bytes");
			yajl_gen_integer(g, (long long)t[state].bytes);
			js(g, "unreadable");
			yajl_gen_integer(g, (long long)t[state].unreadable);
			yajl_gen_map_close(g);
		}
		js(g, "oldest_ready");
		if (oldest[0]) {
			yajl_gen_map_open(g);
			js(g, "name");
			js(g, oldest);
			js(g, "sealed");
			jnum(g, (double)oldest_us / 1e6);
			js(g, "age");
			jnum(g, now_us > oldest_us ? (double)(now_us - oldest_us) / 1e6 : 0);
			yajl_gen_map_close(g);
		} else {
			yajl_gen_null(g);
		}
		js(g, "retry");
		if (retry == 0) {
			yajl_gen_null(g);
		} else {
			yajl_gen_map_open(g);
			if (retry == -1) {
				js(g, "error");
				js(g, err);
			} else {
				js(g, "active");
				yajl_gen_bool(g, rs.active);
			}
			if (retry == 1 && rs.active) {
				js(g, "start");
				jnum(g, rs.start);
				js(g, "steps");
				yajl_gen_integer(g, rs.steps);
				js(g, "next");
				jnum(g, rs.next_time);
				js(g, "next_in");
				jnum(g, rs.next_time > now ? rs.next_time - now : 0);
				js(g, "reached_timeout");
				yajl_gen_bool(g, rs.has_reached_timeout);
				js(g, "timed_out");
				yajl_gen_bool(g, rs.has_timed_out);
			}
			yajl_gen_map_close(g);
		}
		yajl_gen_map_close(g);
		yajl_gen_get_buf(g, &out, &outlen);
		printf("%.*s\n", (int)outlen, (const char *)out);
		yajl_gen_free(g);
		return 0;
	}

	printf("spool   %s\n", s->path);
	printf("%-6s %11s %11s %13s\n", "", "chunks", "events", "bytes");
	for (int state = 0; state < NSTATES; state++) {
		printf("%-6s %11llu %11llu %13llu", state_names[state],
		    t[state].chunks, t[state].events, t[state].bytes);
		if (t[state].unreadable)
			printf("  (%llu unreadable)", t[state].unreadable);
		putchar('\n');
	}
	if (oldest[0]) {
		iso_utc(when, oldest_us);
		fmt_age(age, sizeof age, now_us > oldest_us ?
		    (double)(now_us - oldest_us) / 1e6 : 0);
		printf("oldest  %s (sealed %s)\n", age, when);
	}
	if (retry == -1) {
		printf("retry   unreadable: %s\n", err);
	} else if (retry == 1 && !rs.active) {
		printf("retry   none\n");
	} else if (retry == 1) {
		char start[32];

		iso_utc(start, secs_us(rs.start));
		iso_utc(when, secs_us(rs.next_time));
		if (rs.next_time > now) {
			memcpy(age, "in ", 3);
			fmt_age(age + 3, sizeof age - 3, rs.next_time - now);
		} else {
			snprintf(age, sizeof age, "due");
		}
		printf("retry   %lld step%s since %s, next %s (%s)%s\n",
		    rs.steps, rs.steps == 1 ? "" : "s", start, when, age,
		    rs.has_timed_out ? ", timed out" :
		    rs.has_reached_timeout ? ", last try before the timeout" : "");
	}
	return 0;
}

/* ---- ls ---- */

struct row {
	int state;
	char *name, *tag, *events, *created, *note;
	unsigned long long bytes;
	uint64_t order;		/* staged chunks: created_us */
};

/* The first line of dead/NAME.reason, or NULL. */
static char *
read_reason(const struct spool *s, const char *name)
{
	char rname[SPOOL_NAMELEN + 8], text[1024];
	int fd, n;

	snprintf(rname, sizeof rname, "%s.reason", name);
	if ((fd = spool_file_open(s->dead, rname, text, sizeof text)) < 0)
		return NULL;
	n = durable_read_all(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if (text[0] == '\0')
		return NULL;
	return visible(text, strlen(text), VIS_TAB | VIS_NL);
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		log_fatal(EX_OSERR, "out of memory");
	return p;
}

static int
cmp_staged(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
cmd_ls(struct spool *s, const struct opts *o)
{
	struct row *rows = NULL, *r;
	size_t nrows = 0, first, w[4] = { 0, 0, 0, 0 };
	struct spool_list l;
	struct spool_chunk c;
	char err[256], num[32], when[32];
	int rc;

	for (int state = 0; state < NSTATES; state++) {
		if (o->filtered && !o->only[state])
			continue;
		list_folder(s, state, &l);
		if ((r = realloc(rows, (nrows + l.n + 1) * sizeof *rows)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		rows = r;
		first = nrows;
		for (size_t i = 0; i < l.n; i++) {
			rc = chunk_look(folder_fd(s, state), l.names[i],
			    state == STAGED, &c, err, sizeof err);
			if (rc == 0)
				continue;
			r = &rows[nrows++];
			memset(r, 0, sizeof *r);
			r->state = state;
			r->name = visible(l.names[i], strlen(l.names[i]), VIS_WHITE);
			if (rc == 1) {
				r->tag = visible(c.h.tag, c.h.taglen, VIS_WHITE);
				snprintf(num, sizeof num, "%llu",
				    (unsigned long long)c.h.count);
				r->events = xstrdup(num);
				iso_utc(when, c.h.created_us);
				r->created = xstrdup(when);
				r->bytes = c.size;
				r->order = c.h.created_us;
				spool_release(&c);
			} else {
				r->tag = xstrdup("?");
				r->events = xstrdup("?");
				r->created = xstrdup("?");
				r->bytes = file_bytes(folder_fd(s, state), l.names[i]);
				if (state != DEAD) {
					char *v = visible(err, strlen(err), VIS_TAB | VIS_NL);

					if (asprintf(&r->note, "unreadable: %s", v) == -1)
						log_fatal(EX_OSERR, "out of memory");
					free(v);
				}
			}
			if (state == DEAD && (r->note = read_reason(s, l.names[i])) == NULL)
				r->note = xstrdup("-");
		}
		/* staged chunks will be sealed in the order they were made */
		if (state == STAGED && nrows > first)
			qsort(rows + first, nrows - first, sizeof *rows, cmp_staged);
		spool_list_free(&l);
	}
	for (size_t i = 0; i < nrows; i++) {
		snprintf(num, sizeof num, "%llu", rows[i].bytes);
		if (strlen(rows[i].name) > w[0])
			w[0] = strlen(rows[i].name);
		if (strlen(rows[i].tag) > w[1])
			w[1] = strlen(rows[i].tag);
		if (strlen(rows[i].events) > w[2])
			w[2] = strlen(rows[i].events);
		if (strlen(num) > w[3])
			w[3] = strlen(num);
	}
	for (size_t i = 0; i < nrows; i++) {
		r = &rows[i];
		printf("%-6s  %-*s  %-*s  %*s  %*llu  ", state_names[r->state],
		    (int)w[0], r->name, (int)w[1], r->tag, (int)w[2], r->events,
		    (int)w[3], r->bytes);
		if (r->note)
			printf("%-20s  %s\n", r->created, r->note);
		else
			printf("%s\n", r->created);
		free(r->name);
		free(r->tag);
		free(r->events);
		free(r->created);
		free(r->note);
	}
	free(rows);
	return 0;
}

/* ---- requeue, purge ---- */

/* dead/name as a consumer would claim it: sealed, whole, sound.  0, -1
 * or SPOOL_EIO. */
static int
check_sound(const struct spool *s, const char *name, char *err, size_t errlen)
{
	struct spool_chunk c;
	int rc = -1;

	if ((rc = spool_chunk_open(s->dead, name, &c, err, errlen)) != 0)
		return rc == SPOOL_EIO ? rc : -1;
	rc = -1;
	if (c.h.state != CHUNK_SEALED)
		snprintf(err, errlen, "the chunk was never sealed");
	else if (c.size != c.h.hlen + c.h.bodylen)
		snprintf(err, errlen, "chunk file is %llu bytes, header says %llu",
		    (unsigned long long)c.size,
		    (unsigned long long)(c.h.hlen + c.h.bodylen));
	else
		rc = spool_chunk_verify(&c, err, errlen);
	spool_release(&c);
	return rc == 0 || rc == SPOOL_EIO ? rc : -1;
}

/* The chunk names to work on: those given (any path to them), or every
 * dead chunk. */
static void
dead_names(const struct spool *s, const struct opts *o, struct spool_list *l)
{
	if (o->nargs == 0) {
		list_folder(s, DEAD, l);
		return;
	}
	l->n = 0;
	if ((l->names = calloc((size_t)o->nargs, sizeof *l->names)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (int i = 0; i < o->nargs; i++) {
		const char *b = strrchr(o->args[i], '/');

		l->names[l->n++] = xstrdup(b ? b + 1 : o->args[i]);
	}
}

static int
cmd_requeue(struct spool *s, const struct opts *o)
{
	struct spool_list l;
	struct stat st;
	char err[256];
	int rc;

	dead_names(s, o, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *name = l.names[i];

		if (fstatat(s->dead, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			log_error("dead/%s: %s", name, strerror(errno));
			note_status(errno == ENOENT ? EX_NOINPUT : EX_IOERR);
			continue;
		}
		if (fstatat(s->new, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			log_error("dead/%s: not requeued: new/%s is there already",
			    name, name);
			note_status(EX_DATAERR);
			continue;
		}
		if ((rc = check_sound(s, name, err, sizeof err)) != 0) {
			log_error("dead/%s: not requeued: %s", name, err);
			note_status(rc == SPOOL_EIO ? EX_IOERR : EX_DATAERR);
			continue;
		}
		if (spool_requeue(s, name) == -1) {
			log_error("dead/%s: requeue: %s", name, strerror(errno));
			note_status(EX_IOERR);
			continue;
		}
		printf("requeued %s\n", name);
	}
	spool_list_free(&l);
	return status;
}

static int
cmd_purge(struct spool *s, const struct opts *o)
{
	struct spool_list l;
	char rname[SPOOL_NAMELEN + 8];
	int removed = 0;

	dead_names(s, o, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *name = l.names[i];

		/* a directory set aside (lf-spool(5)) goes too, if empty */
		if (unlinkat(s->dead, name, 0) == -1 && (errno != EISDIR ||
		    unlinkat(s->dead, name, AT_REMOVEDIR) == -1)) {
			log_error("dead/%s: %s", name, strerror(errno));
			note_status(errno == ENOENT ? EX_NOINPUT : EX_IOERR);
			continue;
		}
		removed = 1;
		printf("removed dead/%s\n", name);
		snprintf(rname, sizeof rname, "%s.reason", name);
		if (unlinkat(s->dead, rname, 0) == 0) {
			printf("removed dead/%s\n", rname);
		} else if (errno != ENOENT) {
			log_error("dead/%s: %s", rname, strerror(errno));
			note_status(EX_IOERR);
		}
	}
	spool_list_free(&l);
	if (removed && durable_fsync(s->dead) == -1) {
		log_error("%s/dead: fsync: %s", s->path, strerror(errno));
		note_status(EX_IOERR);
	}
	return status;
}

/* ---- fsck ---- */

struct fsck_count {
	unsigned long checked, corrupt, skipped;
};

/* Move folder/name to dead/ (under a claim if it is a chunk: lib/spool)
 * and say so; with -n only say it. */
static void
set_aside(struct spool *s, const struct opts *o, int state, const char *name,
    int rc, const char *err)
{
	const char *what = rc == SPOOL_NOTFILE ? "not a chunk" : "corrupt";
	struct buf reason = BUF_INIT;

	if (o->dry) {
		printf("%s/%s: %s: %s; not moved (dry run)\n", folders[state],
		    name, what, err);
		return;
	}
	if (buf_printf(&reason, "lf-spool fsck: %s%s", rc == SPOOL_NOTFILE ?
	    "not a chunk: " : "", err) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (spool_bury(s, folder_fd(s, state), name, (const char *)reason.p) == 0) {
		printf("%s/%s: %s: %s; moved to dead/\n", folders[state], name,
		    what, err);
	} else if (errno != ENOENT || rc != SPOOL_NOTFILE) {
		/* (what is not a chunk is not claimed: a consumer may have
		 * moved it first) */
		log_error("%s/%s: %s (%s), cannot move it to dead/: %s",
		    folders[state], name, what, err, strerror(errno));
		note_status(EX_IOERR);
	}
	buf_free(&reason);
}

static void
fsck_ready(struct spool *s, const struct opts *o, struct fsck_count *n)
{
	struct spool_list l;
	struct spool_chunk c;
	struct stat st;
	char err[256];
	int rc;

	list_folder(s, READY, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *name = l.names[i];

		/* a consumer's claim: never under the feet of one */
		rc = spool_claim(s, name, &c, err, sizeof err);
		if (rc == 0) {
			if (fstatat(s->new, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				printf("new/%s: in delivery, skipped\n", name);
				n->skipped++;
			}
			continue;
		}
		n->checked++;
		if (rc == 1) {
			int brc = spool_chunk_verify(&c, err, sizeof err);
			if (brc != 0)
				rc = brc;
		}
		if (rc == 1) {
			if (log_verbose)
				printf("new/%s: ok\n", name);
			spool_release(&c);
			continue;
		}
		if (rc == SPOOL_EIO) {
			/* not known to be bad: never buried for a failed read */
			log_error("new/%s: cannot check: %s", name, err);
			note_status(EX_IOERR);
			spool_release(&c);
			continue;
		}
		n->corrupt++;
		set_aside(s, o, READY, name, rc, err);
		spool_release(&c);
	}
	spool_list_free(&l);
}

/* Staged chunks: lf-buffer, if it runs, is writing them, so only their
 * headers can be checked; if it does not, their committed bodies too.
 * Either way they are only reported: lf-buffer recovers them on start.
 * What is not a regular file is no staged chunk (lf-buffer makes them
 * with O_EXCL), whoever made it: it goes to dead/ as from new/. */
static void
fsck_staged(struct spool *s, const struct opts *o, struct fsck_count *n,
    int *headers_only)
{
	struct spool_list l;
	struct spool_chunk c;
	char err[256];
	int rc, brc, locked;

	if (spool_lock(s) == 0) {
		locked = 1;
		*headers_only = 0;
	} else {
		locked = 0;
		*headers_only = errno == EWOULDBLOCK ? 1 : 2;
		if (errno != EWOULDBLOCK)
			log_warn("%s/lock: %s; checking the headers of staged chunks only",
			    s->path, strerror(errno));
	}
	list_folder(s, STAGED, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *name = l.names[i];

		rc = chunk_look(s->tmp, name, 1, &c, err, sizeof err);
		if (rc == 0)
			continue;
		n->checked++;
		if (rc == SPOOL_NOTFILE) {
			n->corrupt++;
			set_aside(s, o, STAGED, name, rc, err);
			continue;
		}
		if (rc == 1 && locked && (brc = spool_chunk_verify(&c, err,
		    sizeof err)) != 0)
			rc = brc;
		if (rc == SPOOL_EIO) {
			log_error("tmp/%s: cannot check: %s", name, err);
			note_status(EX_IOERR);
			spool_release(&c);
			continue;
		}
		if (rc == -1) {
			n->corrupt++;
			printf("tmp/%s: corrupt: %s\n", name, err);
			if (c.fd != -1)
				spool_release(&c);
			continue;
		}
		if (log_verbose) {
			uint64_t end = c.h.hlen + c.h.bodylen;

			printf("tmp/%s: ok%s", name, locked ? "" : " (header)");
			if (locked && c.size > end)
				printf(", %llu bytes after the committed body",
				    (unsigned long long)(c.size - end));
			if (c.h.state == CHUNK_SEALED)
				printf(", sealed but not moved to new/");
			putchar('\n');
		}
		spool_release(&c);
	}
	if (locked)
		flock(s->lockfd, LOCK_UN);
	spool_list_free(&l);
}

static void
fsck_dead(struct spool *s, const struct spool_list *l, struct fsck_count *n)
{
	struct spool_chunk c;
	char err[256];
	int rc, brc;

	for (size_t i = 0; i < l->n; i++) {
		const char *name = l->names[i];

		if ((rc = chunk_look(s->dead, name, 0, &c, err, sizeof err)) == 0)
			continue;
		n->checked++;
		if (rc == 1 && (brc = spool_chunk_verify(&c, err, sizeof err)) != 0)
			rc = brc;
		if (rc == SPOOL_EIO) {
			log_error("dead/%s: cannot check: %s", name, err);
			note_status(EX_IOERR);
			spool_release(&c);
			continue;
		}
		if (rc == 1) {
			if (log_verbose)
				printf("dead/%s: ok\n", name);
			spool_release(&c);
			continue;
		}
		n->corrupt++;
		printf("dead/%s: %s: %s\n", name, rc == SPOOL_NOTFILE ?
		    "not a chunk" : "corrupt", err);
		if (c.fd != -1)
			spool_release(&c);
	}
}

static int
cmd_fsck(struct spool *s, const struct opts *o)
{
	struct fsck_count n[NSTATES];
	struct spool_list dead;
	int headers_only;

	memset(n, 0, sizeof n);
	/* the dead letters as they were before this run added any */
	list_folder(s, DEAD, &dead);
	fsck_ready(s, o, &n[READY]);
	fsck_staged(s, o, &n[STAGED], &headers_only);
	fsck_dead(s, &dead, &n[DEAD]);
	spool_list_free(&dead);

	printf("ready   %lu checked, %lu corrupt, %lu in delivery\n",
	    n[READY].checked, n[READY].corrupt, n[READY].skipped);
	printf("staged  %lu checked, %lu corrupt%s\n", n[STAGED].checked,
	    n[STAGED].corrupt, headers_only == 1 ?
	    " (headers only: lf-buffer is running)" :
	    headers_only ? " (headers only)" : "");
	printf("dead    %lu checked, %lu corrupt\n", n[DEAD].checked,
	    n[DEAD].corrupt);
	if (n[READY].corrupt || n[STAGED].corrupt)
		note_status(EX_DATAERR);
	return status;
}

/* ---- main ---- */

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

static void
parse_args(struct opts *o, int argc, char **argv)
{
	enum { O_JSON = 256, O_READY, O_STAGED, O_DEAD, O_VERSION };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "ready", no_argument, NULL, O_READY },
		{ "staged", no_argument, NULL, O_STAGED },
		{ "dead", no_argument, NULL, O_DEAD },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int ch, dir_args;

	while ((ch = getopt_long(argc, argv, "nvh", opts, NULL)) != -1) {
		switch (ch) {
		case O_JSON: o->json = 1; break;
		case O_READY: o->only[READY] = o->filtered = 1; break;
		case O_STAGED: o->only[STAGED] = o->filtered = 1; break;
		case O_DEAD: o->only[DEAD] = o->filtered = 1; break;
		case 'n': o->dry = 1; break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-spool " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind == argc) {
		log_error("no command given");
		usage(EX_USAGE);
	}
	o->cmd = argv[optind++];
	if (strcmp(o->cmd, "stat") && strcmp(o->cmd, "ls") &&
	    strcmp(o->cmd, "requeue") && strcmp(o->cmd, "fsck") &&
	    strcmp(o->cmd, "purge")) {
		log_error("unknown command \"%s\"", o->cmd);
		usage(EX_USAGE);
	}
	if (optind == argc) {
		log_error("%s: no spool directory given", o->cmd);
		usage(EX_USAGE);
	}
	o->dir = argv[optind++];
	o->args = argv + optind;
	o->nargs = argc - optind;

	dir_args = !strcmp(o->cmd, "requeue") || !strcmp(o->cmd, "purge");
	if (o->nargs && !dir_args)
		log_fatal(EX_USAGE, "%s: one spool directory only", o->cmd);
	if (o->json && strcmp(o->cmd, "stat"))
		log_fatal(EX_USAGE, "--json is for stat");
	if (o->dry && strcmp(o->cmd, "fsck"))
		log_fatal(EX_USAGE, "-n is for fsck");
	if ((o->only[READY] || o->only[STAGED]) && strcmp(o->cmd, "ls"))
		log_fatal(EX_USAGE, "--ready and --staged are for ls");
	if (o->only[DEAD] && strcmp(o->cmd, "ls") && strcmp(o->cmd, "purge"))
		log_fatal(EX_USAGE, "--dead is for ls and purge");
	if (!strcmp(o->cmd, "purge") && !o->only[DEAD])
		log_fatal(EX_USAGE, "purge removes dead chunks only: say --dead");
	for (int i = 0; i < o->nargs; i++) {
		const char *b = strrchr(o->args[i], '/');

		b = b ? b + 1 : o->args[i];
		if (!spool_is_chunk_name(b) || strlen(b) >= SPOOL_NAMELEN)
			log_fatal(EX_USAGE, "%s: not a chunk name", o->args[i]);
	}
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct spool s;
	char err[512];
	int rc;

	log_init(argv[0]);
	memset(&o, 0, sizeof o);
	parse_args(&o, argc, argv);
	if (spool_open(&s, o.dir, 0, err, sizeof err) == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			log_fatal(EX_NOINPUT, "%s: no such spool (%s)", o.dir, err);
		log_fatal(EX_IOERR, "%s", err);
	}
	if (!strcmp(o.cmd, "stat"))
		rc = cmd_stat(&s, &o);
	else if (!strcmp(o.cmd, "ls"))
		rc = cmd_ls(&s, &o);
	else if (!strcmp(o.cmd, "requeue"))
		rc = cmd_requeue(&s, &o);
	else if (!strcmp(o.cmd, "fsck"))
		rc = cmd_fsck(&s, &o);
	else
		rc = cmd_purge(&s, &o);
	spool_close(&s);
	if (fflush(stdout) == EOF || ferror(stdout))
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	return rc;
}
