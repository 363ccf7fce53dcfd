/* fakedest: a fake destination for the tests of lib/consume; not a tool.
 *
 *   fakedest [consume options] [--script FILE] [--log OUT] [--attempts FILE]
 *            [--noop] [--shutdown-timeout DUR] [--rescan-interval DUR]
 *            [-v] SPOOL
 *
 * Each chunk handed over takes the next line of the script as its outcome
 * (blank lines and # comments skipped; when the script is used up, ok):
 *
 *   ok                        delivered
 *   retry REASON              a temporary failure
 *   fail REASON               refused for good
 *   delay-ms N [OUTCOME]      answer OUTCOME (ok, retry R, fail R) N ms
 *                             later, from an ev_timer
 *   hang                      never answer (for kill -9 tests)
 *
 * A chunk answered ok is first read through as a delivering tool reads
 * it, in bounded pieces (spool_body_next), and written to OUT as "IDHEX
 * TAG COUNT\n", COUNT the events read; OUT is fsync'd before consume
 * hears "ok", so whatever was acknowledged is in OUT.  --attempts FILE gets "TIME IDHEX OUTCOME\n" for every chunk handed
 * over (TIME: wall clock, seconds).  --noop answers ok at once and writes
 * nothing (for the drain benchmark).  The exit code is consume's. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "consume.h"
#include "durable.h"
#include "log.h"
#include "spool.h"

enum kind { K_OK, K_RETRY, K_FAIL, K_DELAY, K_HANG };

struct step {
	enum kind kind, then;	/* then: the outcome of a delay */
	long ms;
	const char *reason;
};

/* A delayed answer. */
struct pending {
	ev_timer t;
	struct fake *f;
	struct consume_job *job;
	struct step st;
	struct pending *next, *prev;
};

struct fake {
	struct ev_loop *loop;
	char **lines;
	size_t n, next;
	int outfd, attfd;
	int noop;
	struct pending *pending;
	struct buf text;	/* the script; lines point into it */
};

enum {
	OPT_SCRIPT = 0x100, OPT_LOG, OPT_ATTEMPTS, OPT_NOOP,
	OPT_SHUTDOWN_TIMEOUT, OPT_RESCAN_INTERVAL, OPT_HELP
};

static const struct option longopts[] = {
	CONSUME_LONG_OPTIONS,
	{ "script", required_argument, NULL, OPT_SCRIPT },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "attempts", required_argument, NULL, OPT_ATTEMPTS },
	{ "noop", no_argument, NULL, OPT_NOOP },
	{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
	{ "rescan-interval", required_argument, NULL, OPT_RESCAN_INTERVAL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 }
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: fakedest [options] [--script FILE] [--log OUT] "
	    "[--attempts FILE] [--noop]\n"
	    "                [--shutdown-timeout DUR] [--rescan-interval DUR] "
	    "[-v] SPOOL\n%s", CONSUME_USAGE);
}

/* "retry some reason" -> kind, reason. */
static int
parse_outcome(const char *s, enum kind *kind, const char **reason)
{
	static const struct { const char *w; enum kind k; } words[] = {
		{ "ok", K_OK }, { "retry", K_RETRY }, { "fail", K_FAIL },
		{ "hang", K_HANG },
	};
	size_t w = strcspn(s, " ");

	for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
		if (strlen(words[i].w) != w || strncmp(s, words[i].w, w) != 0)
			continue;
		*kind = words[i].k;
		*reason = s[w] ? s + w + 1 : "scripted";
		return 0;
	}
	return -1;
}

static int
parse_step(const char *line, struct step *st)
{
	char *end;

	memset(st, 0, sizeof *st);
	if (strncmp(line, "delay-ms ", 9) != 0)
		return parse_outcome(line, &st->kind, &st->reason);
	st->kind = K_DELAY;
	errno = 0;
	st->ms = strtol(line + 9, &end, 10);
	if (errno || end == line + 9 || st->ms < 0)
		return -1;
	while (*end == ' ')
		end++;
	st->then = K_OK;
	st->reason = "scripted";
	if (*end && (parse_outcome(end, &st->then, &st->reason) == -1 ||
	    st->then == K_HANG))
		return -1;
	return 0;
}

static void
load_script(struct fake *f, const char *path)
{
	char chunk[4096], *p, *nl;
	size_t cap = 0;
	int fd, n;
	struct step st;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		log_fatal(EX_NOINPUT, "%s: %s", path, strerror(errno));
	while ((n = durable_read_all(fd, chunk, sizeof chunk)) > 0)
		if (buf_add(&f->text, chunk, (size_t)n) == -1)
			log_fatal(EX_OSERR, "out of memory");
	close(fd);
	if (n < 0 || buf_addc(&f->text, '\0') == -1)
		log_fatal(EX_IOERR, "%s: cannot read", path);
	for (p = (char *)f->text.p; *p; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p) - 1, nl[1] = '\0';
		else
			*nl = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		if (parse_step(p, &st) == -1)
			log_fatal(EX_DATAERR, "%s: bad line: %s", path, p);
		if (f->n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((f->lines = realloc(f->lines, cap * sizeof *f->lines)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
		}
		f->lines[f->n++] = p;
	}
}

static const char *
kind_word(enum kind k)
{
	static const char *w[] = { "ok", "retry", "fail", "delay", "hang" };

	return w[k];
}

static void
attempt(struct fake *f, struct consume_job *job, const struct step *st)
{
	char hex[33], line[128];
	int n;

	if (f->attfd == -1)
		return;
	chunk_id_hex(job->chunk.h.id, hex);
	n = snprintf(line, sizeof line, "%.6f %s %s\n", ev_time(), hex,
	    kind_word(st->kind == K_DELAY ? st->then : st->kind));
	if (durable_write_all(f->attfd, line, (size_t)n) == -1)
		log_fatal(EX_IOERR, "attempts: %s", strerror(errno));
}

/* The events of a job's body, read as lib/consume.h tells a tool to. */
static uint64_t
read_body(struct consume_job *job)
{
	struct spool_body b;
	const unsigned char *p;
	size_t n;
	uint64_t count, events = 0;
	char err[256];
	int rc;

	spool_body_init(&b, &job->chunk);
	while ((rc = spool_body_next(&b, &p, &n, &count, err, sizeof err)) == 1)
		events += count;
	spool_body_free(&b);
	if (rc != 0)
		log_fatal(EX_SOFTWARE, "%s: verified, then: %s", job->chunk.name, err);
	return events;
}

/* OUT is fsync'd before the ack: what consume deletes is in OUT. */
static void
answer(struct fake *f, struct consume_job *job, enum kind k,
    const char *reason)
{
	struct buf line = BUF_INIT;
	char hex[33];

	if (k == K_OK && f->outfd != -1) {
		chunk_id_hex(job->chunk.h.id, hex);
		if (buf_printf(&line, "%s %.*s %llu\n", hex,
		    (int)job->chunk.h.taglen, job->chunk.h.tag,
		    (unsigned long long)read_body(job)) == -1 ||
		    durable_write_all(f->outfd, line.p, line.len) == -1 ||
		    durable_fsync(f->outfd) == -1)
			log_fatal(EX_IOERR, "log: %s", strerror(errno));
		buf_free(&line);
	}
	consume_job_done(job, k == K_OK ? CONSUME_OK :
	    k == K_RETRY ? CONSUME_RETRY : CONSUME_FAIL, reason);
}

static void
unlink_pending(struct fake *f, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		f->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	ev_timer_stop(f->loop, &p->t);
	free(p);
}

static void
delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = (struct pending *)w;
	struct fake *f = p->f;
	struct consume_job *job = p->job;
	struct step st = p->st;

	(void)loop, (void)revents;
	job->data = NULL;
	unlink_pending(f, p);
	answer(f, job, st.then, st.reason);
}

static void
delay(struct fake *f, struct consume_job *job, const struct step *st)
{
	struct pending *p;

	if ((p = calloc(1, sizeof *p)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	p->f = f;
	p->job = job;
	p->st = *st;
	if ((p->next = f->pending) != NULL)
		p->next->prev = p;
	f->pending = p;
	job->data = p;
	ev_timer_init(&p->t, delay_cb, (double)st->ms / 1000, 0.);
	ev_timer_start(f->loop, &p->t);
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct fake *f = ctx;
	struct step st = { K_OK, K_OK, 0, "scripted" };

	if (f->noop) {
		consume_job_done(job, CONSUME_OK, NULL);
		return;
	}
	if (f->next < f->n)
		parse_step(f->lines[f->next++], &st);	/* checked at load */
	attempt(f, job, &st);
	switch (st.kind) {
	case K_DELAY:
		delay(f, job, &st);
		break;
	case K_HANG:
		log_info("hanging on %s", job->chunk.name);
		break;
	default:
		answer(f, job, st.kind, st.reason);
		break;
	}
}

static void
cancel(void *ctx, struct consume_job *job)
{
	if (job->data)
		unlink_pending(ctx, job->data);
	job->data = NULL;
}

static int
open_out(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", path, strerror(errno));
	return fd;
}

static void
parse_args(int argc, char **argv, struct fake *f, struct consume_conf *conf)
{
	char err[256];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		if ((rc = consume_opt(conf, opt, optarg, err, sizeof err)) == 1)
			continue;
		if (rc == -1)
			log_fatal(EX_USAGE, "%s", err);
		switch (opt) {
		case OPT_SCRIPT: load_script(f, optarg); break;
		case OPT_LOG: f->outfd = open_out(optarg); break;
		case OPT_ATTEMPTS: f->attfd = open_out(optarg); break;
		case OPT_NOOP: f->noop = 1; break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (conf_duration(optarg, &conf->shutdown_timeout) == -1)
				log_fatal(EX_USAGE, "--shutdown-timeout: '%s'", optarg);
			break;
		case OPT_RESCAN_INTERVAL:
			if (conf_duration(optarg, &conf->rescan_interval) == -1)
				log_fatal(EX_USAGE, "--rescan-interval: '%s'", optarg);
			break;
		case 'v': log_verbose++; break;
		case OPT_HELP: usage(stdout); exit(0);
		default: usage(stderr); exit(EX_USAGE);
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		exit(EX_USAGE);
	}
	if (consume_conf_check(conf, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
}

int
main(int argc, char **argv)
{
	struct fake f = { .outfd = -1, .attfd = -1 };
	struct consume_conf conf;
	struct consume *c;
	struct spool s;
	char err[512];
	int rc;

	log_init(argv[0]);
	consume_conf_default(&conf);
	parse_args(argc, argv, &f, &conf);
	if (spool_open(&s, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	f.loop = EV_DEFAULT;
	if ((c = consume_new(f.loop, &s, &conf, deliver, cancel, &f)) == NULL)
		return EX_OSERR;
	if (consume_start(c) == -1)
		return EX_IOERR;
	ev_run(f.loop, 0);
	rc = consume_status(c);
	consume_free(c);
	while (f.pending)
		unlink_pending(&f, f.pending);
	spool_close(&s);
	free(f.lines);
	buf_free(&f.text);
	if (f.outfd != -1)
		close(f.outfd);
	if (f.attfd != -1)
		close(f.attfd);
	ev_loop_destroy(f.loop);
	log_limit_summary();
	return rc;
}
