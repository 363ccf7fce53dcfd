/* lf-top: a live view of lf's tools and spools on this host.
 *
 * lf-top [-v] [--once] [--interval secs] [path ...]
 *
 * Each path is a metrics file (--metrics-file of a long-running tool,
 * Prometheus text), a folder of them (node_exporter's textfile folder,
 * where a spool directory inside is shown too), or a spool directory.
 * A row per tool instance (the name label), a row per server of an
 * lf-send, a row per spool.  Rates come from the counters of two
 * versions of a file and the time between them (their mtimes), so they
 * do not jump when a tool writes every 5 s and lf-top looks every 1 s.
 *
 * On a terminal it redraws every interval with plain ANSI escapes until
 * q, ^C or a signal; otherwise, or with --once, it prints one frame of
 * plain text.  Nothing is written to any file or spool: a spool is read
 * as lf-spool stat reads it, without a lock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LIBBSD_NETBSD_VIS	/* quiets <bsd/vis.h>; strnvisx is the same in both */
#include <bsd/vis.h>

#include "buf.h"
#include "io.h"
#include "log.h"
#include "prom.h"
#include "retry.h"
#include "spool.h"

#define USAGE "usage: lf-top [-v] [--once] [--interval secs] [path ...]\n"

#define SOURCES_MAX	1024	/* files and spools shown */
#define INSTS_MAX	64	/* tool instances in one file */
#define SERVERS_MAX	64	/* servers of one lf-send */
#define STALE_MIN	15.0	/* seconds: a file older is stale */
#define NAME_MIN	12	/* the NAME column, on a narrow terminal */

/* The figures of a tool instance, summed over its series (its spools);
 * NAN when the file has none. */
enum {
	V_IN, V_OUT, V_QCHUNKS, V_QBYTES, V_STAGED, V_OLDEST, V_RETRIES,
	V_SPOOLDEAD, V_OUTDEAD, V_NVALS
};

static const struct {
	const char *metric;
	int v;
} metric_vals[] = {
	{ "lf_input_events_total", V_IN },
	{ "lf_output_events_total", V_OUT },
	{ "lf_spool_queue_chunks", V_QCHUNKS },
	{ "lf_spool_queue_bytes", V_QBYTES },
	{ "lf_spool_staged_chunks", V_STAGED },
	{ "lf_spool_oldest_chunk_age_seconds", V_OLDEST },
	{ "lf_output_retries_total", V_RETRIES },
	{ "lf_spool_dead_chunks", V_SPOOLDEAD },
	{ "lf_output_dead_chunks_total", V_OUTDEAD },
};

enum { S_UP, S_PHI, S_INFLIGHT, S_EVENTS, S_RETRIES, S_NVALS };

static const char *const server_metrics[S_NVALS] = {
	"lf_server_up", "lf_server_phi", "lf_server_in_flight_events",
	"lf_server_events_total", "lf_server_retries_total",
};

struct server {
	char *addr;
	int standby;
	double v[S_NVALS];
	double rate;		/* events/s, NAN if not known */
};

struct inst {
	char *name, *tool;
	double v[V_NVALS];
	double in_rate, out_rate;
	struct server *srv;
	size_t nsrv;
};

enum { SRC_FILE, SRC_SPOOL, SRC_BAD };	/* BAD: cannot be looked at */

struct source {
	char *path;
	int kind;
	int given;		/* named on the command line */
	/* a file: the version read, and what it said */
	int have;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct inst *inst;
	size_t ninst;
	/* a spool */
	struct spool_stat st;
	long long retry_steps;	/* -1: none known */
	char err[512];		/* why it cannot be shown, or "" */
	int code;		/* EX_* for err */
};

struct top {
	char **paths;
	int npaths;
	double interval;
	int interval_given, once;
	struct source **src;
	size_t nsrc;
	int status;		/* worst EX_* seen, for --once */
	unsigned long frames;
};

/* ---- small things ---- */

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		log_fatal(EX_OSERR, "out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		log_fatal(EX_OSERR, "out of memory");
	return p;
}

/* Bytes from a file or a command line made safe for a terminal, and
 * one word (no blank) for awk. */
static char *
visible(const char *s)
{
	size_t n = strlen(s);
	char *out = xcalloc(4 * n + 1, 1);

	if (strnvis(out, 4 * n + 1, s, VIS_CSTYLE | VIS_WHITE | VIS_OCTAL) == -1)
		snprintf(out, 4 * n + 1, "?");
	return out;
}

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
ts_secs(struct timespec ts)
{
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
note_status(struct top *t, int code)
{
	static const int rank[] = { 0, EX_NOINPUT, EX_DATAERR, EX_IOERR };
	int a = 0, b = 0;

	for (int i = 0; i < 4; i++) {
		if (rank[i] == t->status)
			a = i;
		if (rank[i] == code)
			b = i;
	}
	if (b > a)
		t->status = code;
}

static void
set_err(struct source *s, int code, const char *why)
{
	snprintf(s->err, sizeof s->err, "%s", why);
	s->code = code;
}

/* ---- human units ---- */

static int
odd(double v)
{
	return !isfinite(v) || v < 0;
}

/* 999, 9999, 12k, 1.2M: counts and rates (rates below 10 keep a
 * decimal). */
static void
fmt_num(char *out, size_t n, double v, int is_rate)
{
	static const char units[] = "kMGTPE";
	int u = -1;

	if (isnan(v))
		snprintf(out, n, "-");
	else if (odd(v))
		snprintf(out, n, "?");
	else if (is_rate && v < 9.95)
		snprintf(out, n, "%.1f", v);
	else if (v < 9999.5)
		snprintf(out, n, "%.0f", v);
	else {
		while (v >= 999.5 && u < 5) {
			v /= 1000;
			u++;
		}
		snprintf(out, n, v < 9.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
	}
}

/* 512B, 1.5KiB, 12MiB */
static void
fmt_bytes(char *out, size_t n, double v)
{
	static const char *const units[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	int u = -1;

	if (isnan(v)) {
		snprintf(out, n, "-");
		return;
	}
	if (odd(v)) {
		snprintf(out, n, "?");
		return;
	}
	if (v < 1024) {
		snprintf(out, n, "%.0fB", v);
		return;
	}
	while (v >= 1023.5 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(out, n, v < 9.95 ? "%.1f%s" : "%.0f%s", v, units[u]);
}

/* 4.2s, 3m05s, 2h03m, 4d02h */
static void
fmt_age(char *out, size_t n, double sec)
{
	unsigned long long s;

	if (isnan(sec)) {
		snprintf(out, n, "-");
		return;
	}
	if (odd(sec) || sec > 1e15) {
		snprintf(out, n, "?");
		return;
	}
	if (sec < 59.95) {
		snprintf(out, n, "%.1fs", sec);
		return;
	}
	s = (unsigned long long)sec;
	if (s < 3600)
		snprintf(out, n, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, n, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(out, n, "%llud%02lluh", s / 86400, s / 3600 % 24);
}

/* ---- reading a metrics file ---- */

static void
vals_clear(double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = NAN;
}

static void
val_add(double *v, double x, int max)
{
	if (isnan(*v))
		*v = x;
	else if (max)
		*v = x > *v ? x : *v;
	else
		*v += x;
}

static void
insts_free(struct inst *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < in[i].nsrv; k++)
			free(in[i].srv[k].addr);
		free(in[i].srv);
		free(in[i].name);
		free(in[i].tool);
	}
	free(in);
}

static struct inst *
inst_get(struct inst *in, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(in[i].name, name) == 0)
			return &in[i];
	if (*n == INSTS_MAX)
		return NULL;
	in += (*n)++;
	in->name = xstrdup(name);
	in->srv = xcalloc(SERVERS_MAX, sizeof *in->srv);
	vals_clear(in->v, V_NVALS);
	in->in_rate = in->out_rate = NAN;
	return in;
}

static struct server *
server_get(struct inst *in, const char *addr)
{
	struct server *sv;

	for (size_t i = 0; i < in->nsrv; i++)
		if (strcmp(in->srv[i].addr, addr) == 0)
			return &in->srv[i];
	if (in->nsrv == SERVERS_MAX)
		return NULL;
	sv = &in->srv[in->nsrv++];
	sv->addr = xstrdup(addr);
	vals_clear(sv->v, S_NVALS);
	sv->rate = NAN;
	return sv;
}

static void
take_server(struct inst *in, const struct prom_doc *d,
    const struct prom_sample *s, int which)
{
	const char *addr = prom_label(d, s, "server"), *sb;
	struct server *sv;

	if (addr == NULL || (sv = server_get(in, addr)) == NULL)
		return;
	if ((sb = prom_label(d, s, "standby")) != NULL)
		sv->standby = strcmp(sb, "true") == 0;
	val_add(&sv->v[which], s->value, 0);
}

/* One lf_* sample into the instance its name label says. */
static void
take_sample(struct inst *in, size_t *nin, const struct prom_doc *d,
    const struct prom_sample *s)
{
	const char *name = prom_label(d, s, "name"), *tool;
	struct inst *i;

	if (name == NULL || (i = inst_get(in, nin, name)) == NULL)
		return;
	if (i->tool == NULL && (tool = prom_label(d, s, "tool")) != NULL)
		i->tool = xstrdup(tool);
	for (size_t k = 0; k < sizeof metric_vals / sizeof *metric_vals; k++)
		if (strcmp(s->name, metric_vals[k].metric) == 0)
			val_add(&i->v[metric_vals[k].v], s->value,
			    metric_vals[k].v == V_OLDEST);
	for (int k = 0; k < S_NVALS; k++)
		if (strcmp(s->name, server_metrics[k]) == 0)
			take_server(i, d, s, k);
}

/* (now - before) / dt, or NAN if either is not known or the counter
 * went back (the tool started again). */
static double
rate(double now, double before, double dt)
{
	if (isnan(now) || isnan(before) || dt <= 0 || now < before)
		return NAN;
	return (now - before) / dt;
}

static void
rates(struct inst *in, size_t n, const struct source *old, double dt)
{
	for (size_t i = 0; i < n; i++) {
		const struct inst *o = NULL;

		for (size_t k = 0; k < old->ninst && o == NULL; k++)
			if (strcmp(old->inst[k].name, in[i].name) == 0)
				o = &old->inst[k];
		if (o == NULL)
			continue;
		in[i].in_rate = rate(in[i].v[V_IN], o->v[V_IN], dt);
		in[i].out_rate = rate(in[i].v[V_OUT], o->v[V_OUT], dt);
		for (size_t s = 0; s < in[i].nsrv; s++)
			for (size_t k = 0; k < o->nsrv; k++)
				if (strcmp(o->srv[k].addr, in[i].srv[s].addr) == 0)
					in[i].srv[s].rate = rate(
					    in[i].srv[s].v[S_EVENTS],
					    o->srv[k].v[S_EVENTS], dt);
	}
}

/* The whole file, at most PROM_TEXT_MAX bytes: its length, or -1 with
 * s->err set. */
static ssize_t
file_read(struct source *s, int fd, char **text)
{
	ssize_t n;

	*text = xcalloc(PROM_TEXT_MAX + 1, 1);
	if ((n = io_read_all(fd, *text, PROM_TEXT_MAX + 1)) < 0) {
		set_err(s, EX_IOERR, strerror(errno));
		free(*text);
		return -1;
	}
	if (n > (ssize_t)PROM_TEXT_MAX) {
		snprintf(s->err, sizeof s->err, "more than %u bytes: not a "
		    "metrics file", PROM_TEXT_MAX);
		s->code = EX_DATAERR;
		free(*text);
		return -1;
	}
	return n;
}

static void
file_parse(struct source *s, const char *text, size_t len, struct stat *st)
{
	struct prom_doc d;
	struct inst *in;
	size_t nin = 0;
	char err[256];

	if (prom_parse(&d, text, len, err, sizeof err) == -1) {
		set_err(s, EX_DATAERR, err);
		insts_free(s->inst, s->ninst);
		s->inst = NULL;
		s->ninst = 0;
		s->have = 0;
		return;
	}
	in = xcalloc(INSTS_MAX, sizeof *in);
	for (size_t i = 0; i < d.nsamples; i++)
		if (strncmp(d.samples[i].name, "lf_", 3) == 0)
			take_sample(in, &nin, &d, &d.samples[i]);
	prom_free(&d);
	if (s->have)
		rates(in, nin, s, ts_secs(st->st_mtim) - ts_secs(s->mtime));
	insts_free(s->inst, s->ninst);
	s->inst = in;
	s->ninst = nin;
	s->have = 1;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
}

/* Read the file again if it is a new version (atomic rewrites give it
 * a new inode; in-place ones a new mtime or size). */
static void
file_update(struct source *s)
{
	struct stat st;
	char *text;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO put there never makes lf-top wait */
	if ((fd = open(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) == -1) {
		set_err(s, errno == ENOENT ? EX_NOINPUT : EX_IOERR,
		    strerror(errno));
		s->have = 0;
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		set_err(s, EX_DATAERR, "not a regular file");
		s->have = 0;
		close(fd);
		return;
	}
	if (s->have && st.st_dev == s->dev && st.st_ino == s->ino &&
	    st.st_size == s->size && st.st_mtim.tv_sec == s->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == s->mtime.tv_nsec) {
		close(fd);
		return;
	}
	s->err[0] = '\0';
	n = file_read(s, fd, &text);
	close(fd);
	if (n < 0) {
		s->have = 0;
		return;
	}
	file_parse(s, text, (size_t)n, &st);
	free(text);
}

/* ---- a spool ---- */

static int
is_spool(const char *path)
{
	static const char *const parts[] = { "new", "tmp", "dead", "state" };
	char p[4096];
	struct stat st;

	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
		if ((size_t)snprintf(p, sizeof p, "%s/%s", path, parts[i]) >=
		    sizeof p || stat(p, &st) == -1 || !S_ISDIR(st.st_mode))
			return 0;
	}
	return 1;
}

static void
spool_update(struct source *s)
{
	struct retry_state rs = RETRY_STATE_INIT;
	struct spool sp;
	char err[512];

	s->err[0] = '\0';
	s->retry_steps = -1;
	if (spool_open(&sp, s->path, 0, err, sizeof err) == -1) {
		set_err(s, errno == ENOENT ? EX_NOINPUT : EX_IOERR, err);
		return;
	}
	if (spool_stat(&sp, &s->st, err, sizeof err) == -1)
		set_err(s, EX_IOERR, err);
	else if (spool_retry_read(&sp, &rs, err, sizeof err) == 1)
		s->retry_steps = rs.active ? rs.steps : 0;
	spool_close(&sp);
}

/* ---- the sources of a frame ---- */

static void
source_free(struct source *s)
{
	insts_free(s->inst, s->ninst);
	free(s->path);
	free(s);
}

/* The source of that path from the last frame (taken out of old), or a
 * new one. */
static struct source *
source_get(struct source **old, size_t nold, const char *path, int kind)
{
	struct source *s;

	for (size_t i = 0; i < nold; i++)
		if (old[i] && old[i]->kind == kind &&
		    strcmp(old[i]->path, path) == 0) {
			s = old[i];
			old[i] = NULL;
			return s;
		}
	s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	s->kind = kind;
	s->retry_steps = -1;
	return s;
}

struct walk {
	struct source **old, **src;
	size_t nold, nsrc;
	int capped;
};

static struct source *
walk_add(struct walk *w, const char *path, int kind, int given)
{
	struct source *s;

	if (w->nsrc == SOURCES_MAX) {
		w->capped = 1;
		return NULL;
	}
	s = source_get(w->old, w->nold, path, kind);
	s->given = given;
	w->src[w->nsrc++] = s;
	return s;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
is_prom_name(const char *n)
{
	size_t len = strlen(n);

	return n[0] != '.' && len > 5 && strcmp(n + len - 5, ".prom") == 0;
}

/* A folder: its *.prom files, and the spools in it, by name. */
static void
walk_folder(struct walk *w, const char *dir)
{
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		struct source *s = walk_add(w, dir, SRC_BAD, 1);

		if (s)
			set_err(s, EX_IOERR, strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL && n < SOURCES_MAX) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if ((names = realloc(names, cap * sizeof *names)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
		}
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_names);
	for (size_t i = 0; i < n; i++) {
		if ((size_t)snprintf(path, sizeof path, "%s%s%s", dir,
		    dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]) <
		    sizeof path) {
			if (is_prom_name(names[i]))
				walk_add(w, path, SRC_FILE, 0);
			else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
			    is_spool(path))
				walk_add(w, path, SRC_SPOOL, 0);
		}
		free(names[i]);
	}
	free(names);
}

static void
walk_path(struct walk *w, const char *path)
{
	struct stat st;
	struct source *s;

	if (stat(path, &st) == -1) {
		if ((s = walk_add(w, path, SRC_BAD, 1)) != NULL)
			set_err(s, errno == ENOENT ? EX_NOINPUT : EX_IOERR,
			    strerror(errno));
	} else if (!S_ISDIR(st.st_mode))
		walk_add(w, path, SRC_FILE, 1);
	else if (is_spool(path))
		walk_add(w, path, SRC_SPOOL, 1);
	else
		walk_folder(w, path);
}

/* Find the sources again (files come and go in a folder) and read them. */
static void
refresh(struct top *t)
{
	struct walk w = { .old = t->src, .nold = t->nsrc };

	w.src = xcalloc(SOURCES_MAX, sizeof *w.src);
	for (int i = 0; i < t->npaths; i++)
		walk_path(&w, t->paths[i]);
	for (size_t i = 0; i < w.nold; i++)
		if (w.old[i])
			source_free(w.old[i]);
	free(w.old);
	t->src = w.src;
	t->nsrc = w.nsrc;
	for (size_t i = 0; i < t->nsrc; i++) {
		struct source *s = t->src[i];

		if (s->kind == SRC_SPOOL)
			spool_update(s);
		else if (s->kind == SRC_FILE)
			file_update(s);
		/* a file gone from a folder since it was listed is no error */
		if (s->err[0] && (s->given || s->code != EX_NOINPUT))
			note_status(t, s->code);
	}
	t->frames++;
	log_info("frame %lu: %zu sources%s", t->frames, t->nsrc,
	    w.capped ? " (more left out)" : "");
}

/* ---- a frame, as rows of cells ---- */

enum {
	C_NAME, C_TOOL, C_IN, C_OUT, C_QUEUE, C_BYTES, C_STAGED, C_OLDEST,
	C_RETRIES, C_DEAD, C_STATUS, C_NCOLS
};

static const char *const col_names[C_NCOLS] = {
	"NAME", "TOOL", "IN/s", "OUT/s", "QUEUE", "BYTES", "STAGED", "OLDEST",
	"RETRIES", "DEAD", "STATUS"
};

struct row {
	char *cell[C_NCOLS];
};

struct frame {
	struct row *rows;
	size_t nrows, cap;
	struct buf notes;	/* "error: ..." lines, after the table */
	size_t nnotes;
	int tools, spools;
};

static struct row *
row_new(struct frame *f)
{
	struct row *r;

	if (f->nrows == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 32;
		if ((f->rows = realloc(f->rows, f->cap * sizeof *f->rows)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
	}
	r = &f->rows[f->nrows++];
	memset(r, 0, sizeof *r);
	return r;
}

static void
cell(struct row *r, int c, const char *s)
{
	free(r->cell[c]);
	r->cell[c] = xstrdup(s);
}

static void
cell_num(struct row *r, int c, double v, int is_rate)
{
	char b[32];

	fmt_num(b, sizeof b, v, is_rate);
	cell(r, c, b);
}

static void
note(struct frame *f, const char *kind, const char *path, const char *why)
{
	size_t n = 4 * strlen(why) + 1;
	char *p = visible(path), *w = xcalloc(n, 1);

	/* the reason keeps its blanks: it is the end of the line */
	strnvis(w, n, why, VIS_CSTYLE | VIS_OCTAL | VIS_TAB | VIS_NL);
	if (buf_printf(&f->notes, "%s: %s: %s\n", kind, p, w) == -1)
		log_fatal(EX_OSERR, "out of memory");
	f->nnotes++;
	free(p);
	free(w);
}

static void
server_row(struct frame *f, const struct server *sv, int stale)
{
	struct row *r = row_new(f);
	char name[1024], st[128], phi[32];
	char *a = visible(sv->addr);

	snprintf(name, sizeof name, "  %s", a);
	free(a);
	cell(r, C_NAME, name);
	cell(r, C_TOOL, isnan(sv->v[S_UP]) ? "-" : sv->v[S_UP] > 0 ? "up" :
	    "down");
	cell_num(r, C_OUT, stale ? NAN : sv->rate, 1);
	cell_num(r, C_RETRIES, sv->v[S_RETRIES], 0);
	if (isnan(sv->v[S_PHI]))
		snprintf(phi, sizeof phi, "-");
	else
		snprintf(phi, sizeof phi, "%.2f", sv->v[S_PHI]);
	snprintf(st, sizeof st, "%sphi %s", sv->standby ? "standby, " : "", phi);
	if (!isnan(sv->v[S_INFLIGHT]) && sv->v[S_INFLIGHT] > 0) {
		char n[32];

		fmt_num(n, sizeof n, sv->v[S_INFLIGHT], 0);
		snprintf(st + strlen(st), sizeof st - strlen(st),
		    ", %s in flight", n);
	}
	cell(r, C_STATUS, st);
}

static void
inst_rows(struct frame *f, const struct inst *in, double age, int stale)
{
	struct row *r = row_new(f);
	char b[64], *v;
	double dead, oldest;

	v = visible(in->name);
	cell(r, C_NAME, v);
	free(v);
	v = visible(in->tool ? in->tool : "?");
	cell(r, C_TOOL, v);
	free(v);
	cell_num(r, C_IN, stale ? NAN : in->in_rate, 1);
	cell_num(r, C_OUT, stale ? NAN : in->out_rate, 1);
	cell_num(r, C_QUEUE, in->v[V_QCHUNKS], 0);
	fmt_bytes(b, sizeof b, in->v[V_QBYTES]);
	cell(r, C_BYTES, b);
	cell_num(r, C_STAGED, in->v[V_STAGED], 0);
	/* the age when the file was written, and it has aged since */
	oldest = in->v[V_OLDEST];
	if (!isnan(oldest) && oldest > 0)
		oldest += age;
	fmt_age(b, sizeof b, oldest);
	cell(r, C_OLDEST, b);
	cell_num(r, C_RETRIES, in->v[V_RETRIES], 0);
	dead = isnan(in->v[V_SPOOLDEAD]) ? in->v[V_OUTDEAD] : in->v[V_SPOOLDEAD];
	cell_num(r, C_DEAD, dead, 0);
	if (stale) {
		char st[96];

		fmt_age(b, sizeof b, age);
		snprintf(st, sizeof st, "stale, written %s ago", b);
		cell(r, C_STATUS, st);
	}
	for (size_t i = 0; i < in->nsrv; i++)
		server_row(f, &in->srv[i], stale);
	f->tools++;
}

static void
spool_row(struct frame *f, const struct source *s)
{
	const struct spool_stat *st = &s->st;
	struct row *r = row_new(f);
	unsigned long long bad = 0;
	char b[64], *v = visible(s->path);

	cell(r, C_NAME, v);
	free(v);
	cell(r, C_TOOL, "spool");
	cell_num(r, C_QUEUE, (double)st->t[SPOOL_READY].chunks, 0);
	fmt_bytes(b, sizeof b, (double)st->t[SPOOL_READY].bytes);
	cell(r, C_BYTES, b);
	cell_num(r, C_STAGED, (double)st->t[SPOOL_STAGED].chunks, 0);
	if (st->oldest[0]) {
		uint64_t now = spool_now_us();

		fmt_age(b, sizeof b, now > st->oldest_us ?
		    (double)(now - st->oldest_us) / 1e6 : 0);
	} else
		snprintf(b, sizeof b, "0.0s");
	cell(r, C_OLDEST, b);
	cell_num(r, C_RETRIES, s->retry_steps < 0 ? NAN :
	    (double)s->retry_steps, 0);
	cell_num(r, C_DEAD, (double)st->t[SPOOL_DEAD].chunks, 0);
	for (int i = 0; i < SPOOL_NSTATES; i++)
		bad += st->t[i].unreadable;
	if (bad) {
		snprintf(b, sizeof b, "%llu unreadable", bad);
		cell(r, C_STATUS, b);
	}
	f->spools++;
}

static void
build(const struct top *t, struct frame *f)
{
	double now = now_real();
	double stale_after = 3 * t->interval > STALE_MIN ? 3 * t->interval :
	    STALE_MIN;

	for (size_t i = 0; i < t->nsrc; i++) {
		const struct source *s = t->src[i];
		double age;

		if (s->err[0]) {
			if (s->code != EX_NOINPUT || s->given)
				note(f, "error", s->path, s->err);
			continue;
		}
		if (s->kind == SRC_SPOOL) {
			spool_row(f, s);
			continue;
		}
		if (!s->have)
			continue;
		age = now - ts_secs(s->mtime);
		if (age < 0)
			age = 0;
		for (size_t k = 0; k < s->ninst; k++)
			inst_rows(f, &s->inst[k], age, age > stale_after);
		if (s->ninst == 0 && s->given)
			note(f, "note", s->path, "no lf metrics in it");
	}
}

static void
frame_free(struct frame *f)
{
	for (size_t i = 0; i < f->nrows; i++)
		for (int c = 0; c < C_NCOLS; c++)
			free(f->rows[i].cell[c]);
	free(f->rows);
	buf_free(&f->notes);
}

/* ---- writing a frame out ---- */

static const char *
cell_text(const struct row *r, int c)
{
	return r->cell[c] ? r->cell[c] : c == C_STATUS ? "" : "-";
}

/* The table's lines, each ending in LF, into out; NAME no wider than
 * namemax (0: any width). */
static void
widths(const struct frame *f, size_t w[C_NCOLS])
{
	for (int c = 0; c < C_NCOLS; c++) {
		w[c] = strlen(col_names[c]);
		for (size_t i = 0; i < f->nrows; i++)
			if (strlen(cell_text(&f->rows[i], c)) > w[c])
				w[c] = strlen(cell_text(&f->rows[i], c));
	}
}

static void
table(const struct frame *f, size_t namemax, struct buf *out)
{
	size_t w[C_NCOLS];
	struct row head = { 0 };

	for (int c = 0; c < C_NCOLS; c++)
		head.cell[c] = (char *)col_names[c];
	widths(f, w);
	if (namemax && w[C_NAME] > namemax)
		w[C_NAME] = namemax < 3 ? 3 : namemax;
	for (size_t i = 0; i <= f->nrows; i++) {
		const struct row *r = i == 0 ? &head : &f->rows[i - 1];
		const char *name = cell_text(r, C_NAME);
		size_t len = strlen(name);

		/* a long name keeps its end: the file or spool it names */
		if (len > w[C_NAME])
			buf_printf(out, "..%s", name + len - w[C_NAME] + 2);
		else
			buf_printf(out, "%-*s", (int)w[C_NAME], name);
		buf_printf(out, " %-*s", (int)w[C_TOOL], cell_text(r, C_TOOL));
		for (int c = C_IN; c < C_STATUS; c++)
			buf_printf(out, " %*s", (int)w[c], cell_text(r, c));
		if (*cell_text(r, C_STATUS))
			buf_printf(out, "  %s", cell_text(r, C_STATUS));
		buf_addc(out, '\n');
	}
}

static void
plain(const struct top *t, const struct frame *f)
{
	struct buf out = BUF_INIT;

	table(f, 0, &out);
	if (f->nrows == 0)
		buf_printf(&out, "(no lf metrics files or spools in %s%s)\n",
		    t->paths[0], t->npaths > 1 ? " and the rest" : "");
	buf_add(&out, f->notes.p, f->notes.len);
	if (out.p == NULL || io_write_all(STDOUT_FILENO, out.p, out.len) == -1)
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	buf_free(&out);
}

/* ---- the terminal ---- */

static struct termios tty_saved;
static int tty_raw;		/* tty_saved holds the mode to restore */
static int tty_on;		/* the alternate screen is shown */
static int err_saved = -1;	/* stderr, while /dev/null stands in */
static volatile sig_atomic_t got_stop, got_winch, got_tstp;

static void
on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else if (sig == SIGTSTP)
		got_tstp = 1;
	else
		got_stop = sig;
}

static void
signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
		SIGWINCH, SIGTSTP };
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

#define SCREEN_ON	"\033[?1049h\033[?25l"	/* alternate screen, no cursor */
#define SCREEN_OFF	"\033[?25h\033[?1049l"

/* Every way out comes here (atexit too): the terminal as it was. */
static void
tty_leave(void)
{
	if (tty_on) {
		io_write_all(STDOUT_FILENO, SCREEN_OFF, strlen(SCREEN_OFF));
		tty_on = 0;
	}
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
		tty_raw = 0;
	}
	if (err_saved != -1) {
		dup2(err_saved, STDERR_FILENO);
		close(err_saved);
		err_saved = -1;
	}
}

/* Keys one at a time, no echo; ^C still a signal.  Warnings (a corrupt
 * chunk in a spool) would scribble on the screen every second: they go
 * to /dev/null while it is shown, if stderr is the terminal. */
static void
tty_enter(void)
{
	struct termios raw;
	int null;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &tty_saved) == 0) {
		raw = tty_saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			tty_raw = 1;
	}
	if (isatty(STDERR_FILENO) && err_saved == -1 &&
	    (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) != -1) {
		if ((err_saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) != -1)
			dup2(null, STDERR_FILENO);
		close(null);
	}
	io_write_all(STDOUT_FILENO, SCREEN_ON, strlen(SCREEN_ON));
	tty_on = 1;
}

static void
tty_size(int *rows, int *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* The columns but NAME take this much of a line (table's layout). */
static size_t
rest_width(const struct frame *f)
{
	size_t w[C_NCOLS], n = 0;

	widths(f, w);
	for (int c = C_TOOL; c < C_STATUS; c++)
		n += 1 + w[c];
	for (size_t i = 0; i < f->nrows; i++)
		if (f->rows[i].cell[C_STATUS])
			return n + 2 + w[C_STATUS];
	return n;
}

/* Line i of text (its LF not counted) to the screen's row i, cut to
 * cols; each line is cleared first, so nothing is left from the last
 * frame, and the cursor never sits in the last column. */
static void
screen(const struct top *t, const struct frame *f)
{
	struct buf text = BUF_INIT, out = BUF_INIT;
	int rows, cols, row = 0;
	size_t rest, namemax, pos = 0;
	char clock[16];
	time_t now = time(NULL);
	struct tm tm;

	tty_size(&rows, &cols);
	rest = rest_width(f);
	namemax = (size_t)cols > rest + NAME_MIN ? (size_t)cols - rest : NAME_MIN;
	localtime_r(&now, &tm);
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	buf_printf(&text, "lf-top  %s  every %gs  %d tool%s, %d spool%s  "
	    "(q quits)\n\n", clock, t->interval, f->tools, f->tools == 1 ? "" :
	    "s", f->spools, f->spools == 1 ? "" : "s");
	table(f, namemax, &text);
	if (f->nrows == 0)
		buf_printf(&text, "(no lf metrics files or spools in %s%s)\n",
		    t->paths[0], t->npaths > 1 ? " and the rest" : "");
	buf_add(&text, f->notes.p, f->notes.len);
	while (pos < text.len && row < rows) {
		unsigned char *nl = memchr(text.p + pos, '\n', text.len - pos);
		size_t len = (size_t)(nl - (text.p + pos));

		if (row == rows - 1 && nl + 1 < text.p + text.len) {
			buf_printf(&out, "\033[%d;1H\033[2K(more below: a taller "
			    "terminal shows it)", row + 1);
			row++;
			break;
		}
		buf_printf(&out, "\033[%d;1H\033[2K%.*s", row + 1,
		    (int)(len < (size_t)cols - 1 ? len : (size_t)cols - 1),
		    (const char *)text.p + pos);
		pos += len + 1;
		row++;
	}
	buf_printf(&out, "\033[%d;1H\033[J", row + 1);
	if (out.p == NULL || io_write_all(STDOUT_FILENO, out.p, out.len) == -1) {
		tty_leave();
		log_fatal(EX_IOERR, "write: %s", strerror(errno));
	}
	buf_free(&text);
	buf_free(&out);
}

static void
show(struct top *t, int interactive)
{
	struct frame f = { 0 };

	build(t, &f);
	if (interactive)
		screen(t, &f);
	else
		plain(t, &f);
	frame_free(&f);
}

/* ^Z: the terminal as it was while stopped, lf-top's again after. */
static void
suspend(void)
{
	got_tstp = 0;
	tty_leave();
	signal(SIGTSTP, SIG_DFL);
	raise(SIGTSTP);
	signals();
	tty_enter();
}

/* Keys typed: 1 to quit, 0 to draw again now; -1 at the end of the
 * input (it is not read again). */
static int
keys(void)
{
	char b[64];
	ssize_t n = read(STDIN_FILENO, b, sizeof b);

	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		return -1;
	for (ssize_t i = 0; i < n; i++)
		if (b[i] == 'q' || b[i] == 'Q' || b[i] == 3)
			return 1;
	return 0;
}

/* Until the next frame is due, a key or a signal.  1 to quit. */
static int
wait_frame(double due, int *input)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	double left;
	int k;

	while (!got_stop) {
		if (got_tstp)
			suspend();
		if (got_winch) {
			got_winch = 0;
			return 0;
		}
		if ((left = due - now_mono()) <= 0)
			return 0;
		if (poll(&p, *input ? 1 : 0, (int)(left * 1000) + 1) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if ((k = keys()) == 1)
				return 1;
			if (k == -1 || (p.revents & POLLNVAL))
				*input = 0;
			if (k == 0)
				return 0;
		}
	}
	return 1;
}

static void
interactive(struct top *t)
{
	int input = 1;
	double due;

	signals();
	atexit(tty_leave);
	tty_enter();
	for (;;) {
		due = now_mono() + t->interval;
		refresh(t);
		show(t, 1);
		if (wait_frame(due, &input))
			break;
	}
	tty_leave();
}

/* ---- the command line ---- */

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

static double
parse_interval(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno || !(v >= 0.1 && v <= 3600))
		log_fatal(EX_USAGE, "--interval %s: seconds from 0.1 to 3600", s);
	return v;
}

static void
parse_args(struct top *t, int argc, char **argv)
{
	enum { O_ONCE = 256, O_INTERVAL, O_VERSION };
	static const struct option opts[] = {
		{ "once", no_argument, NULL, O_ONCE },
		{ "interval", required_argument, NULL, O_INTERVAL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	static char *here[1];
	const char *env;
	int ch;

	t->interval = 1;
	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (ch) {
		case O_ONCE: t->once = 1; break;
		case O_INTERVAL:
			t->interval = parse_interval(optarg);
			t->interval_given = 1;
			break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-top " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	t->paths = argv + optind;
	t->npaths = argc - optind;
	if (t->npaths == 0) {
		env = getenv("LF_METRICS_DIR");
		here[0] = (char *)(env && *env ? env : ".");
		t->paths = here;
		t->npaths = 1;
	}
	for (int i = 0; i < t->npaths; i++)
		if (t->paths[i][0] == '\0')
			log_fatal(EX_USAGE, "an empty path");
}

/* One frame of plain text; with --interval, the second of two, so that
 * it has rates. */
static int
once(struct top *t)
{
	struct timespec pause;

	refresh(t);
	if (t->interval_given) {
		pause.tv_sec = (time_t)t->interval;
		pause.tv_nsec = (long)((t->interval - (double)pause.tv_sec) * 1e9);
		while (nanosleep(&pause, &pause) == -1 && errno == EINTR)
			;
		t->status = 0;
		refresh(t);
	}
	show(t, 0);
	return t->status;
}

int
main(int argc, char **argv)
{
	struct top t = { 0 };
	int rc = 0;

	log_init(argv[0]);
	parse_args(&t, argc, argv);
	if (t.once || !isatty(STDOUT_FILENO))
		rc = once(&t);
	else
		interactive(&t);
	for (size_t i = 0; i < t.nsrc; i++)
		source_free(t.src[i]);
	free(t.src);
	return rc;
}
