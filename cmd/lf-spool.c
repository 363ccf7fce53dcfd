/* lf-spool: look after a spool directory (lf-spool(5)).
 *
 * lf-spool [-v] stat [--json] dir
 * lf-spool [-v] stat --prometheus dir ...
 * lf-spool check [--max-age DUR] [--max-dead N] [--max-idle DUR]
 *                [--warn-age DUR] [--warn-dead N] dir
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
#include <stdarg.h>
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
#include <yajl/yajl_tree.h>

#include "buf.h"
#include "chunk.h"
#include "conf.h"
#include "durable.h"
#include "io.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"
#include "spool.h"

#define USAGE "usage: lf-spool [-v] stat [--json] dir\n" \
	"       lf-spool [-v] stat --prometheus dir ...\n" \
	"       lf-spool check [--max-age DUR] [--max-dead N] [--max-idle DUR]\n" \
	"                      [--warn-age DUR] [--warn-dead N] dir\n" \
	"       lf-spool [-v] ls [--ready] [--staged] [--dead] dir\n" \
	"       lf-spool [-v] requeue dir [chunk ...]\n" \
	"       lf-spool [-v] fsck [-n] dir\n" \
	"       lf-spool [-v] purge --dead dir [chunk ...]\n"

/* The options, as bits: the states first, so that 1 << state is --state. */
enum {
	F_READY = 1 << SPOOL_READY, F_STAGED = 1 << SPOOL_STAGED,
	F_DEAD = 1 << SPOOL_DEAD, F_STATES = F_READY | F_STAGED | F_DEAD,
	F_JSON = 1 << 3, F_DRY = 1 << 4, F_PROM = 1 << 5, F_LIMITS = 1 << 6
};

/* check's thresholds, as given (for the message) and as numbers; a
 * negative number is no threshold. */
struct limit {
	const char *text;
	double v;
};
static struct limit max_age = { NULL, -1 }, warn_age = { NULL, -1 };
static struct limit max_dead = { NULL, -1 }, warn_dead = { NULL, -1 };
static struct limit max_idle = { NULL, -1 };

struct opts {
	const char *dir;
	char **args;		/* chunk names after dir */
	int nargs;
	unsigned flags;		/* F_* given */
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

static void
list_folder(const struct spool *s, int state, struct spool_list *l)
{
	char err[512];

	if (spool_list_state(s, state, l, err, sizeof err) == -1)
		log_fatal(EX_IOERR, "%s", err);
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

struct stat_report {
	yajl_val send;		/* SPOOL/state/send, parsed, or NULL */
	struct spool_stat st;
	struct retry_state rs;
	int retry;		/* as spool_retry_read */
	char err[256];		/* why not, if retry is -1 */
	uint64_t now_us;
};

/* ---- SPOOL/state/send, lf-send's state for an operator ---- */

#define SEND_STATE_MAX	(1 << 20)	/* bytes: 32 servers take ~16k */

/* The parsed state, NULL when there is none (no lf-send on this spool)
 * or it cannot be read (a warning says why). */
static yajl_val
send_read(const struct spool *s)
{
	char path[4096], err[256], *b;
	yajl_val v;
	int fd, n;

	snprintf(path, sizeof path, "%s/state/send", s->path);
	/* never a wait on a FIFO there, as for state/retry */
	if ((fd = spool_file_open(s->state, "send", err, sizeof err)) < 0) {
		if (fd != -1 || errno != ENOENT)
			log_warn("%s: %s", path, fd == -1 ? strerror(errno) : err);
		return NULL;
	}
	if ((b = malloc(SEND_STATE_MAX + 1)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	n = io_read_all(fd, b, SEND_STATE_MAX + 1);
	close(fd);
	if (n < 0 || n > SEND_STATE_MAX) {
		log_warn("%s: %s", path, n < 0 ? strerror(errno) : "too big");
		free(b);
		return NULL;
	}
	b[n] = '\0';
	if ((v = yajl_tree_parse(b, err, sizeof err)) == NULL ||
	    !YAJL_IS_OBJECT(v)) {
		log_warn("%s: not lf-send's state: %s", path,
		    v == NULL ? err : "not an object");
		yajl_tree_free(v);
		v = NULL;
	}
	free(b);
	return v;
}

static yajl_val
jget(yajl_val o, const char *key)
{
	const char *path[] = { key, NULL };

	return o ? yajl_tree_get(o, path, yajl_t_any) : NULL;
}

static double
jd(yajl_val o, const char *key)
{
	yajl_val v = jget(o, key);

	return v && YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : 0;
}

static unsigned long long
ju(yajl_val o, const char *key)
{
	yajl_val v = jget(o, key);

	return v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) > 0 ?
	    (unsigned long long)YAJL_GET_INTEGER(v) : 0;
}

static const char *
jstr(yajl_val o, const char *key)
{
	yajl_val v = jget(o, key);

	return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* A parsed value back out through g, as it was. */
static void
jcopy(yajl_gen g, yajl_val v)
{
	size_t i;

	if (v == NULL || YAJL_IS_NULL(v))
		yajl_gen_null(g);
	else if (YAJL_IS_TRUE(v))
		yajl_gen_bool(g, 1);
	else if (YAJL_IS_FALSE(v))
		yajl_gen_bool(g, 0);
	else if (YAJL_IS_STRING(v))
		js(g, YAJL_GET_STRING(v));
	else if (YAJL_IS_NUMBER(v))
		yajl_gen_number(g, YAJL_GET_NUMBER(v),
		    strlen(YAJL_GET_NUMBER(v)));
	else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (i = 0; i < v->u.array.len; i++)
			jcopy(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else {
		yajl_gen_map_open(g);
		for (i = 0; i < v->u.object.len; i++) {
			js(g, v->u.object.keys[i]);
			jcopy(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	}
}

/* Made printable for a terminal: a last error holds a peer's words. */
static void
send_text(yajl_val v, uint64_t now_us)
{
	yajl_val srv = jget(v, "servers");
	char age[64], buf[1024];
	const char *e, *name;
	double t = jd(v, "time"), now = (double)now_us / 1e6;
	size_t i;

	fmt_age(age, sizeof age, now > t ? now - t : 0);
	printf("send    pid %llu, written %s ago: %llu chunks, %llu events, "
	    "%llu bytes, %llu retries\n", ju(v, "pid"), age, ju(v, "chunks"),
	    ju(v, "events"), ju(v, "bytes"), ju(v, "retries"));
	if (srv == NULL || !YAJL_IS_ARRAY(srv))
		return;
	for (i = 0; i < srv->u.array.len; i++) {
		yajl_val o = srv->u.array.values[i];

		name = jstr(o, "name");
		strnvis(buf, sizeof buf, name ? name : "?", VIS_OCTAL | VIS_NL | VIS_TAB);
		printf("server  %s%s: %s, phi %.2f, in flight %llu chunks "
		    "(%llu events), delivered %llu chunks (%llu events, %llu bytes), "
		    "%llu retries\n", buf,
		    jget(o, "standby") && YAJL_IS_TRUE(jget(o, "standby")) ?
		    " (standby)" : "",
		    jget(o, "up") && YAJL_IS_TRUE(jget(o, "up")) ? "up" : "down",
		    jd(o, "phi"), ju(o, "in_flight_chunks"),
		    ju(o, "in_flight_events"), ju(o, "chunks"), ju(o, "events"),
		    ju(o, "bytes"), ju(o, "retries"));
		if ((e = jstr(o, "last_error")) != NULL) {
			strnvis(buf, sizeof buf, e, VIS_OCTAL | VIS_NL | VIS_TAB);
			printf("        last error: %s\n", buf);
		}
	}
}

static void
stat_json(const struct spool *s, const struct stat_report *r)
{
	const struct spool_stat *st = &r->st;
	const struct retry_state *rs = &r->rs;
	double now = (double)r->now_us / 1e6;
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t outlen;

	if (g == NULL)
		log_fatal(EX_OSERR, "out of memory");
	yajl_gen_map_open(g);
	js(g, "spool");
	js(g, s->path);
	for (int state = 0; state < SPOOL_NSTATES; state++) {
		js(g, spool_state_names[state]);
		yajl_gen_map_open(g);
		js(g, "chunks");
		yajl_gen_integer(g, (long long)st->t[state].chunks);
		js(g, "events");
		yajl_gen_integer(g, (long long)st->t[state].events);
		js(g, "bytes");
		yajl_gen_integer(g, (long long)st->t[state].bytes);
		js(g, "unreadable");
		yajl_gen_integer(g, (long long)st->t[state].unreadable);
		yajl_gen_map_close(g);
	}
	js(g, "oldest_ready");
	if (st->oldest[0]) {
		yajl_gen_map_open(g);
		js(g, "name");
		js(g, st->oldest);
		js(g, "sealed");
		jnum(g, (double)st->oldest_us / 1e6);
		js(g, "age");
		jnum(g, r->now_us > st->oldest_us ?
		    (double)(r->now_us - st->oldest_us) / 1e6 : 0);
		yajl_gen_map_close(g);
	} else {
		yajl_gen_null(g);
	}
	js(g, "retry");
	if (r->retry == 0) {
		yajl_gen_null(g);
	} else {
		yajl_gen_map_open(g);
		if (r->retry == -1) {
			js(g, "error");
			js(g, r->err);
		} else {
			js(g, "active");
			yajl_gen_bool(g, rs->active);
		}
		if (r->retry == 1 && rs->active) {
			js(g, "start");
			jnum(g, rs->start);
			js(g, "steps");
			yajl_gen_integer(g, rs->steps);
			js(g, "next");
			jnum(g, rs->next_time);
			js(g, "next_in");
			jnum(g, rs->next_time > now ? rs->next_time - now : 0);
			js(g, "reached_timeout");
			yajl_gen_bool(g, rs->has_reached_timeout);
			js(g, "timed_out");
			yajl_gen_bool(g, rs->has_timed_out);
		}
		yajl_gen_map_close(g);
	}
	if (r->send != NULL) {
		js(g, "send");
		jcopy(g, r->send);
	}
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &out, &outlen);
	printf("%.*s\n", (int)outlen, (const char *)out);
	yajl_gen_free(g);
}

static void
stat_text(const struct spool *s, const struct stat_report *r)
{
	const struct spool_stat *st = &r->st;
	const struct retry_state *rs = &r->rs;
	double now = (double)r->now_us / 1e6;
	char when[32], age[64], start[32];

	printf("spool   %s\n", s->path);
	printf("%-6s %11s %11s %13s\n", "", "chunks", "events", "bytes");
	for (int state = 0; state < SPOOL_NSTATES; state++) {
		printf("%-6s %11llu %11llu %13llu", spool_state_names[state],
		    st->t[state].chunks, st->t[state].events, st->t[state].bytes);
		if (st->t[state].unreadable)
			printf("  (%llu unreadable)", st->t[state].unreadable);
		putchar('\n');
	}
	if (st->oldest[0]) {
		iso_utc(when, st->oldest_us);
		fmt_age(age, sizeof age, r->now_us > st->oldest_us ?
		    (double)(r->now_us - st->oldest_us) / 1e6 : 0);
		printf("oldest  %s (sealed %s)\n", age, when);
	}
	if (r->retry == -1) {
		printf("retry   unreadable: %s\n", r->err);
	} else if (r->retry == 1 && !rs->active) {
		printf("retry   none\n");
	} else if (r->retry == 1) {
		iso_utc(start, secs_us(rs->start));
		iso_utc(when, secs_us(rs->next_time));
		if (rs->next_time > now) {
			memcpy(age, "in ", 3);
			fmt_age(age + 3, sizeof age - 3, rs->next_time - now);
		} else {
			snprintf(age, sizeof age, "due");
		}
		printf("retry   %lld step%s since %s, next %s (%s)%s\n",
		    rs->steps, rs->steps == 1 ? "" : "s", start, when, age,
		    rs->has_timed_out ? ", timed out" :
		    rs->has_reached_timeout ? ", last try before the timeout" : "");
	}
	if (r->send != NULL)
		send_text(r->send, r->now_us);
}

static int
cmd_stat(struct spool *s, const struct opts *o)
{
	struct stat_report r = { .rs = RETRY_STATE_INIT };
	char err[512];

	r.now_us = spool_now_us();
	if (spool_stat(s, &r.st, err, sizeof err) == -1)
		log_fatal(EX_IOERR, "%s", err);
	if ((r.retry = spool_retry_read(s, &r.rs, r.err, sizeof r.err)) == -1)
		log_warn("%s", r.err);
	r.send = send_read(s);
	if (o->flags & F_JSON)
		stat_json(s, &r);
	else
		stat_text(s, &r);
	yajl_tree_free(r.send);
	return 0;
}

/* ---- stat --prometheus ---- */

/* The gauges of lf-spool(5)'s folders, one family at a time over every
 * spool given, each spool under its own name label (its base name). */
static int
stat_prometheus(const struct opts *o)
{
	int n = 1 + o->nargs;
	struct spool *sp = calloc((size_t)n, sizeof *sp);
	struct metrics_spool *ms = calloc((size_t)n, sizeof *ms);
	struct metrics *m = metrics_new(o->dir, "lf-spool");
	const char *dir, *text;
	char err[512];
	size_t len;
	int i, got = 0;

	if (sp == NULL || ms == NULL || m == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (i = 0; i < n; i++) {
		dir = i == 0 ? o->dir : o->args[i - 1];
		if (spool_open(&sp[got], dir, 0, err, sizeof err) == -1 ||
		    metrics_spool_read(&sp[got], &ms[got], err, sizeof err) == -1) {
			log_error("%s", err);
			note_status(errno == ENOENT ? EX_NOINPUT : EX_IOERR);
			continue;
		}
		ms[got].path = dir;	/* as given, as lf-buffer's label */
		ms[got].name = dir;	/* its base name, in lib/metrics */
		got++;
	}
	metrics_reset(m);
	metrics_put_spools(m, ms, got, NULL);
	if ((text = metrics_text(m, &len)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	fwrite(text, 1, len, stdout);
	for (i = 0; i < got; i++)
		spool_close(&sp[i]);
	metrics_free(m);
	free(ms);
	free(sp);
	return status;
}

/* ---- check: a health check with nagios' exit codes ---- */

enum { NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN };

/* The time since anything last happened in new/ (a chunk sealed into it,
 * or delivered out of it): its modification time. */
static double
new_idle(const struct spool *s)
{
	struct stat st;
	struct timespec now;

	if (fstat(s->new, &st) == -1)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	return (double)(now.tv_sec - st.st_mtim.tv_sec) +
	    (now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
}

/* One threshold passed: the reason, and the level it sets. */
static void
over(struct buf *why, int *level, int at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
over(struct buf *why, int *level, int at, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (at > *level) {	/* the worst reason first */
		buf_reset(why);
		*level = at;
	} else if (at < *level)
		return;
	if ((why->len && buf_adds(why, ", ") == -1) || buf_adds(why, line) == -1)
		log_fatal(EX_OSERR, "out of memory");
}

/* The limit a value is over, the critical one first, and its level;
 * NULL if none. */
static const struct limit *
passed(double v, const struct limit *crit, const struct limit *warn,
    int *at)
{
	if (crit->v >= 0 && v > crit->v) {
		*at = NAGIOS_CRITICAL;
		return crit;
	}
	if (warn->v >= 0 && v > warn->v) {
		*at = NAGIOS_WARNING;
		return warn;
	}
	return NULL;
}

static void
check_age(const struct metrics_spool *ms, struct buf *why, int *level)
{
	const struct limit *l;
	char age[32];
	int at;

	if (ms->ready_chunks == 0 ||
	    (l = passed(ms->oldest_age, &max_age, &warn_age, &at)) == NULL)
		return;
	fmt_age(age, sizeof age, ms->oldest_age);
	over(why, level, at, "oldest ready chunk is %s old (limit %s)", age,
	    l->text);
}

static void
check_dead(const struct metrics_spool *ms, struct buf *why, int *level)
{
	const struct limit *l;
	int at;

	if ((l = passed((double)ms->dead_chunks, &max_dead, &warn_dead,
	    &at)) != NULL)
		over(why, level, at, "%llu dead chunk%s (limit %s)",
		    (unsigned long long)ms->dead_chunks,
		    ms->dead_chunks == 1 ? "" : "s", l->text);
}

static int
cmd_check(struct spool *s, const struct opts *o)
{
	static const char *const word[] = { "OK", "WARNING", "CRITICAL",
	    "UNKNOWN" };
	struct metrics_spool ms;
	struct buf why = BUF_INIT;
	char err[512], age[32], idle[32];
	double quiet;
	int level = NAGIOS_OK;

	if (metrics_spool_read(s, &ms, err, sizeof err) == -1) {
		printf("UNKNOWN: %s\n", err);
		return NAGIOS_UNKNOWN;
	}
	check_age(&ms, &why, &level);
	check_dead(&ms, &why, &level);
	quiet = new_idle(s);
	fmt_age(idle, sizeof idle, quiet);
	if (max_idle.v >= 0 && ms.ready_chunks && quiet > max_idle.v)
		over(&why, &level, NAGIOS_CRITICAL, "no chunk delivered for %s "
		    "with %llu ready (limit %s)", idle,
		    (unsigned long long)ms.ready_chunks, max_idle.text);
	fmt_age(age, sizeof age, ms.oldest_age);
	if (level == NAGIOS_OK && buf_printf(&why, "%llu ready chunk%s, "
	    "oldest %s, %llu dead", (unsigned long long)ms.ready_chunks,
	    ms.ready_chunks == 1 ? "" : "s", age,
	    (unsigned long long)ms.dead_chunks) == -1)
		log_fatal(EX_OSERR, "out of memory");
	/* nagios' performance data after the |, for graphs */
	printf("%s: %s: %.*s | ready_chunks=%llu ready_bytes=%lluB "
	    "staged_chunks=%llu dead_chunks=%llu oldest_age=%.3fs\n",
	    word[level], o->dir, (int)why.len, (const char *)why.p,
	    (unsigned long long)ms.ready_chunks,
	    (unsigned long long)ms.ready_bytes,
	    (unsigned long long)ms.staged_chunks,
	    (unsigned long long)ms.dead_chunks, ms.oldest_age);
	buf_free(&why);
	return level;
}

/* ---- ls ---- */

struct row {
	int state;
	char *name, *tag, *events, *created, *note;
	unsigned long long bytes;
	uint64_t order;		/* staged chunks: created_us */
};

/* The first line of dead/NAME.reason, made visible, or NULL. */
static char *
read_reason(const struct spool *s, const char *name)
{
	char text[1024];

	if (!spool_reason_read(s, name, text, sizeof text))
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

	for (int state = 0; state < SPOOL_NSTATES; state++) {
		if ((o->flags & F_STATES) && !(o->flags & 1u << state))
			continue;
		list_folder(s, state, &l);
		if ((r = realloc(rows, (nrows + l.n + 1) * sizeof *rows)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		rows = r;
		first = nrows;
		for (size_t i = 0; i < l.n; i++) {
			rc = spool_chunk_look(spool_folder_fd(s, state), l.names[i],
			    state == SPOOL_STAGED, &c, err, sizeof err);
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
				r->bytes = spool_file_bytes(spool_folder_fd(s, state), l.names[i]);
				if (state != SPOOL_DEAD) {
					char *v = visible(err, strlen(err), VIS_TAB | VIS_NL);

					if (asprintf(&r->note, "unreadable: %s", v) == -1)
						log_fatal(EX_OSERR, "out of memory");
					free(v);
				}
			}
			if (state == SPOOL_DEAD && (r->note = read_reason(s, l.names[i])) == NULL)
				r->note = xstrdup("-");
		}
		/* staged chunks will be sealed in the order they were made */
		if (state == SPOOL_STAGED && nrows > first)
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
		printf("%-6s  %-*s  %-*s  %*s  %*llu  ", spool_state_names[r->state],
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

/* The chunk names to work on: those given (any path to them), or every
 * dead chunk. */
static void
dead_names(const struct spool *s, const struct opts *o, struct spool_list *l)
{
	if (o->nargs == 0) {
		list_folder(s, SPOOL_DEAD, l);
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
		if ((rc = spool_chunk_sound(s->dead, name, err, sizeof err)) != 0) {
			log_error("dead/%s: not requeued: %s", name, err);
			note_status(rc == SPOOL_EIO ? EX_IOERR : EX_DATAERR);
			continue;
		}
		if ((rc = spool_requeue(s, name)) == -1) {
			log_error("dead/%s: requeue: %s", name, strerror(errno));
			note_status(EX_IOERR);
			continue;
		}
		printf("requeued %s\n", name);
		if (rc == 1)	/* queued, but a folder sync failed (logged) */
			note_status(EX_IOERR);
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

	if (o->flags & F_DRY) {
		printf("%s/%s: %s: %s; not moved (dry run)\n", spool_folders[state],
		    name, what, err);
		return;
	}
	if (buf_printf(&reason, "lf-spool fsck: %s%s", rc == SPOOL_NOTFILE ?
	    "not a chunk: " : "", err) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (spool_bury(s, spool_folder_fd(s, state), name, (const char *)reason.p) == 0) {
		printf("%s/%s: %s: %s; moved to dead/\n", spool_folders[state], name,
		    what, err);
	} else if (errno != ENOENT || rc != SPOOL_NOTFILE) {
		/* (what is not a chunk is not claimed: a consumer may have
		 * moved it first) */
		log_error("%s/%s: %s (%s), cannot move it to dead/: %s",
		    spool_folders[state], name, what, err, strerror(errno));
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

	list_folder(s, SPOOL_READY, &l);
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
		set_aside(s, o, SPOOL_READY, name, rc, err);
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
	list_folder(s, SPOOL_STAGED, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *name = l.names[i];

		rc = spool_chunk_look(s->tmp, name, 1, &c, err, sizeof err);
		if (rc == 0)
			continue;
		n->checked++;
		if (rc == SPOOL_NOTFILE) {
			n->corrupt++;
			set_aside(s, o, SPOOL_STAGED, name, rc, err);
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

		if ((rc = spool_chunk_look(s->dead, name, 0, &c, err, sizeof err)) == 0)
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
	struct fsck_count n[SPOOL_NSTATES];
	struct spool_list dead;
	int headers_only;

	memset(n, 0, sizeof n);
	/* the dead letters as they were before this run added any */
	list_folder(s, SPOOL_DEAD, &dead);
	fsck_ready(s, o, &n[SPOOL_READY]);
	fsck_staged(s, o, &n[SPOOL_STAGED], &headers_only);
	fsck_dead(s, &dead, &n[SPOOL_DEAD]);
	spool_list_free(&dead);

	printf("ready   %lu checked, %lu corrupt, %lu in delivery\n",
	    n[SPOOL_READY].checked, n[SPOOL_READY].corrupt, n[SPOOL_READY].skipped);
	printf("staged  %lu checked, %lu corrupt%s\n", n[SPOOL_STAGED].checked,
	    n[SPOOL_STAGED].corrupt, headers_only == 1 ?
	    " (headers only: lf-buffer is running)" :
	    headers_only ? " (headers only)" : "");
	printf("dead    %lu checked, %lu corrupt\n", n[SPOOL_DEAD].checked,
	    n[SPOOL_DEAD].corrupt);
	if (n[SPOOL_READY].corrupt || n[SPOOL_STAGED].corrupt)
		note_status(EX_DATAERR);
	return status;
}

/* ---- main ---- */

/* The commands: what each takes, after the spool directory. */
static const struct command {
	const char *name;
	int (*run)(struct spool *, const struct opts *);
	unsigned flags;		/* the options it takes */
	int chunks;		/* chunk names after dir */
} commands[] = {
	{ "stat", cmd_stat, F_JSON | F_PROM, 0 },
	{ "check", cmd_check, F_LIMITS, 0 },
	{ "ls", cmd_ls, F_STATES, 0 },
	{ "requeue", cmd_requeue, 0, 1 },
	{ "fsck", cmd_fsck, F_DRY, 0 },
	{ "purge", cmd_purge, F_DEAD, 1 },
};

/* An option given to a command that does not take it, in this order. */
static const struct {
	unsigned flags;
	const char *msg;
} misplaced[] = {
	{ F_JSON, "--json is for stat" },
	{ F_PROM, "--prometheus is for stat" },
	{ F_LIMITS, "--max-age, --max-dead, --max-idle, --warn-age and "
	    "--warn-dead are for check" },
	{ F_DRY, "-n is for fsck" },
	{ F_READY | F_STAGED, "--ready and --staged are for ls" },
	{ F_DEAD, "--dead is for ls and purge" },
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

/* A threshold of check, kept as typed for its message. */
static unsigned
set_age(struct limit *l, const char *opt)
{
	l->v = conf_opt_duration(opt, optarg);
	l->text = optarg;
	return F_LIMITS;
}

static unsigned
set_count(struct limit *l, const char *opt)
{
	l->v = (double)conf_opt_uint(opt, optarg, 1ull << 52);
	l->text = optarg;
	return F_LIMITS;
}

static unsigned
parse_flags(int argc, char **argv)
{
	enum { O_JSON = 256, O_READY, O_STAGED, O_DEAD, O_VERSION, O_PROM,
	    O_MAX_AGE, O_MAX_DEAD, O_MAX_IDLE, O_WARN_AGE, O_WARN_DEAD };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "prometheus", no_argument, NULL, O_PROM },
		{ "max-age", required_argument, NULL, O_MAX_AGE },
		{ "max-dead", required_argument, NULL, O_MAX_DEAD },
		{ "max-idle", required_argument, NULL, O_MAX_IDLE },
		{ "warn-age", required_argument, NULL, O_WARN_AGE },
		{ "warn-dead", required_argument, NULL, O_WARN_DEAD },
		{ "ready", no_argument, NULL, O_READY },
		{ "staged", no_argument, NULL, O_STAGED },
		{ "dead", no_argument, NULL, O_DEAD },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	unsigned flags = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "nvh", opts, NULL)) != -1) {
		switch (ch) {
		case O_JSON: flags |= F_JSON; break;
		case O_PROM: flags |= F_PROM; break;
		case O_MAX_AGE: flags |= set_age(&max_age, "max-age"); break;
		case O_WARN_AGE: flags |= set_age(&warn_age, "warn-age"); break;
		case O_MAX_IDLE: flags |= set_age(&max_idle, "max-idle"); break;
		case O_MAX_DEAD: flags |= set_count(&max_dead, "max-dead"); break;
		case O_WARN_DEAD: flags |= set_count(&warn_dead, "warn-dead"); break;
		case O_READY: flags |= F_READY; break;
		case O_STAGED: flags |= F_STAGED; break;
		case O_DEAD: flags |= F_DEAD; break;
		case 'n': flags |= F_DRY; break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-spool " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	return flags;
}

static const struct command *
parse_args(struct opts *o, int argc, char **argv)
{
	const struct command *cmd = NULL;
	const char *name;

	o->flags = parse_flags(argc, argv);
	if (optind == argc) {
		log_error("no command given");
		usage(EX_USAGE);
	}
	name = argv[optind++];
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(name, commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		log_error("unknown command \"%s\"", name);
		usage(EX_USAGE);
	}
	if (optind == argc) {
		log_error("%s: no spool directory given", name);
		usage(EX_USAGE);
	}
	o->dir = argv[optind++];
	o->args = argv + optind;
	o->nargs = argc - optind;
	if (o->nargs && !cmd->chunks && !(o->flags & F_PROM))
		log_fatal(EX_USAGE, "%s: one spool directory only", name);
	for (size_t i = 0; i < sizeof misplaced / sizeof *misplaced; i++)
		if (o->flags & misplaced[i].flags & ~cmd->flags)
			log_fatal(EX_USAGE, "%s", misplaced[i].msg);
	if (cmd->run == cmd_purge && !(o->flags & F_DEAD))
		log_fatal(EX_USAGE, "purge removes dead chunks only: say --dead");
	for (int i = 0; i < o->nargs && !(o->flags & F_PROM); i++) {
		const char *b = strrchr(o->args[i], '/');

		b = b ? b + 1 : o->args[i];
		if (!spool_is_chunk_name(b) || strlen(b) >= SPOOL_NAMELEN)
			log_fatal(EX_USAGE, "%s: not a chunk name", o->args[i]);
	}
	return cmd;
}

int
main(int argc, char **argv)
{
	const struct command *cmd;
	struct opts o = { 0 };
	struct spool s;
	char err[512];
	int rc;

	log_init(argv[0]);
	cmd = parse_args(&o, argc, argv);
	if (o.flags & F_PROM) {
		if (o.flags & F_JSON)
			log_fatal(EX_USAGE, "--json or --prometheus, not both");
		rc = stat_prometheus(&o);
		goto out;
	}
	if (spool_open(&s, o.dir, 0, err, sizeof err) == -1) {
		if (cmd->run == cmd_check) {	/* nagios: UNKNOWN */
			printf("UNKNOWN: %s\n", err);
			return NAGIOS_UNKNOWN;
		}
		if (errno == ENOENT || errno == ENOTDIR)
			log_fatal(EX_NOINPUT, "%s: no such spool (%s)", o.dir, err);
		log_fatal(EX_IOERR, "%s", err);
	}
	rc = cmd->run(&s, &o);
	spool_close(&s);
out:
	if (fflush(stdout) == EOF || ferror(stdout))
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	return rc;
}
