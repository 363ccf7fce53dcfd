/* lf-buffer: write events durably into one or more spools.
 *
 * lf-buffer [options] [--listen unix:PATH ... [--stdin]] [PATTERN=]SPOOL...
 *
 * Reads forward-protocol messages from stdin and/or Unix sockets, puts their
 * events into staged chunks, and commits them in groups: one write and
 * one fdatasync per staged chunk for everything read since the last
 * commit, then the acks for all of it (deferred acks of lib/ingest,
 * released after the commit).  Several spools are out_copy; a spool with
 * a pattern (lib/match) takes only the tags it matches. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>

#include "buffer.h"
#include "conf.h"
#include "ingest.h"
#include "log.h"
#include "match.h"
#include "metrics.h"
#include "sig.h"
#include "window.h"

#define USAGE "usage: lf-buffer [-v] [--listen unix:PATH ... [--stdin]] [--notify-fd N]\n" \
	"                 [--chunk-limit-size SIZE] [--chunk-limit-records N]\n" \
	"                 [--total-limit-size SIZE] [--flush-mode MODE]\n" \
	"                 [--flush-interval TIME] [--flush-at-shutdown BOOL]\n" \
	"                 [--queued-chunks-limit-size N] [--timekey TIME]\n" \
	"                 [--timekey-wait TIME] [--timekey-use-utc] [--chunk-key KEY]\n" \
	"                 [--overflow-action block|throw_exception|drop_oldest_chunk]\n" \
	"                 [--commit-wait TIME] [--dedup-window N]\n" \
	"                 [--max-message-size SIZE] [--max-client-memory SIZE]\n" \
	"                 [--message-timeout TIME] [--log-file PATH]\n" \
	"                 [--metrics-file PATH] [--metrics-interval TIME]\n" \
	"                 [PATTERN=]SPOOL ...\n"

struct lfb {
	struct ev_loop *loop;
	struct buffer_conf conf;
	struct buffer *spools;
	int nspools;
	struct match_rules routes;	/* rule i: spool i's pattern, or none */
	struct ingest in;
	struct stream_limits lim;
	const char **listen, *logfile;	/* --listen addresses */
	const char *metrics_path;
	double metrics_interval;
	struct metrics_writer mw;
	int nlisten;
	int use_stdin, notify_fd;
	double commit_wait;
	size_t max_client_memory;
	double message_timeout;
	int dirty;			/* added since the last commit */
	int stuck;			/* a commit failed: inputs paused */
	int blocked;			/* overflow_action block is holding input */
	int stopping;
	int exit_code;
	unsigned long events, dups, commits;
	unsigned long unmatched, unmatched_events;	/* dropped: no spool's tag */
	/* for the metrics: taken, then counted in by the commit that acks */
	uint64_t pend_events, pend_bytes, in_events, in_bytes, dup_events;
	unsigned long refused, invalid, commit_fails;
	double commit_seconds, last_event;
	ingest_ack_t *acks;		/* deferred until the commit */
	size_t nacks, capacks;
	ev_prepare prep;
	ev_timer commit_timer, tick;
	struct sig sig;
};

/* Room for one more deferred ack, so that keeping it cannot fail. */
static int
ack_room(struct lfb *x)
{
	size_t cap;
	ingest_ack_t *a;

	if (x->nacks < x->capacks)
		return 0;
	cap = x->capacks ? 2 * x->capacks : 64;
	if ((a = reallocarray(x->acks, cap, sizeof *a)) == NULL)
		return -1;
	x->acks = a;
	x->capacks = cap;
	return 0;
}

/* A batch whose tag no spool's pattern matches is dropped and counted,
 * and still acked (after the commit, in the order of the messages), so
 * that a client does not send it again forever.  It is logged as
 * Fluentd logs "no patterns matched": the 1st, 2nd, 4th ... 256th time,
 * then every 512th (the count is in the stats line at exit). */
static int
unmatched(struct lfb *x, struct stream_batch *b)
{
	char tag[LOG_TAG_MAX];
	ingest_ack_t a;
	unsigned long c;

	if ((a = ingest_ack_defer(&x->in, b)) == INGEST_ACK_FAIL)
		return INGEST_REFUSE;
	if (a != 0) {
		x->acks[x->nacks++] = a;
		x->dirty = 1;		/* the next commit releases it */
	}
	c = ++x->unmatched;
	x->unmatched_events += b->count;
	if (!log_nth(c))
		return INGEST_TAKE;
	log_tag(tag, b->tag, b->taglen);
	log_warn("no patterns matched tag=\"%s\": %zu events dropped "
	    "(%lu messages, %lu events so far)", tag, b->count, c,
	    x->unmatched_events);
	return INGEST_TAKE;
}

/* Take a batch into every spool whose pattern matches its tag and that
 * has not got it yet: a batch held and offered again is not stored
 * twice in the spools that took it. */
static int
store(struct lfb *x, struct stream_batch *b)
{
	unsigned char h[16];
	ingest_ack_t a;
	uint64_t to;
	int i, seen = 0;

	if (x->stuck)
		return INGEST_HOLD;
	if (ack_room(x) == -1)
		return INGEST_HOLD;	/* out of memory: offered again later */
	if ((to = match_rules_all(&x->routes, b->tag, b->taglen)) == 0)
		return unmatched(x, b);
	if (b->chunk)
		window_hash(b->chunk, b->chunklen, h);
	for (i = 0; i < x->nspools; i++) {
		struct buffer *bf = &x->spools[i];
		if (!(to >> i & 1))
			continue;
		if (b->chunk && buffer_seen(bf, h)) {
			seen++;
			continue;
		}
		if (b->taken >> i & 1)
			continue;
		if (!buffer_room(bf, b->len)) {
			if (x->conf.overflow == OVERFLOW_BLOCK) {
				if (!x->blocked)
					log_warn("%s: total_limit_size reached: input "
					    "blocked until there is room", buffer_path(bf));
				x->blocked = 1;
				return INGEST_HOLD;
			}
			LOG_WARN_LIMITED("%s: total_limit_size reached: refusing a "
			    "message of %zu events", buffer_path(bf), b->count);
			return INGEST_REFUSE;
		}
	}
	for (i = 0; i < x->nspools; i++) {
		struct buffer *bf = &x->spools[i];
		if (!(to >> i & 1) || (b->taken >> i & 1) ||
		    (b->chunk && buffer_seen(bf, h)))
			continue;
		if (buffer_add(bf, b->tag, b->taglen, b->entries, b->len, b->count,
		    b->chunk ? h : NULL) == -1) {
			/* a full disk while making a chunk: wait, as block does */
			LOG_WARN_LIMITED("%s: cannot store events: %s (holding input)",
			    buffer_path(bf), strerror(errno));
			return INGEST_HOLD;
		}
		b->taken |= 1ull << i;
	}
	if (b->invalid)
		LOG_WARN_LIMITED("offset %llu: %zu invalid events dropped",
		    (unsigned long long)b->offset, b->invalid);
	if (seen == __builtin_popcountll(to) && b->chunk) {
		x->dups++;
		x->dup_events += b->count;
	}
	if (x->blocked) {
		log_warn("room again in the spools: input resumed");
		x->blocked = 0;
	}
	x->events += b->count;
	if ((a = ingest_ack_defer(&x->in, b)) == INGEST_ACK_FAIL)
		return INGEST_REFUSE;
	if (a != 0)
		x->acks[x->nacks++] = a;
	x->dirty = 1;
	x->pend_events += b->count;
	x->pend_bytes += b->len;
	return INGEST_TAKE;
}

/* A batch is counted once, by what finally became of it (a batch held
 * is offered again). */
static int
take(void *ctx, struct stream_batch *b)
{
	struct lfb *x = ctx;
	int rc = store(x, b);

	if (rc == INGEST_REFUSE)
		x->refused++;
	else if (rc == INGEST_TAKE)
		x->invalid += b->invalid;
	return rc;
}

/* The commit is durable: every ack deferred until it goes out, in the
 * order the messages came (a client gone meanwhile is skipped). */
static void
release_acks(struct lfb *x)
{
	for (size_t i = 0; i < x->nacks; i++)
		ingest_ack_release(&x->in, x->acks[i]);
	x->nacks = 0;
	ingest_flush(&x->in);
	if (x->capacks > 4096) {
		free(x->acks);
		x->acks = NULL;
		x->capacks = 0;
	}
}

/* The group commit: everything taken since the last one is made durable
 * in every spool, then acked. */
static void
commit(struct lfb *x)
{
	int sync = x->nacks > 0;
	double t0;

	if (!x->dirty)
		return;
	t0 = ev_time();
	for (int i = 0; i < x->nspools; i++) {
		if (buffer_commit(&x->spools[i], sync) == -1) {
			x->commit_seconds += ev_time() - t0;
			x->commit_fails++;
			LOG_WARN_LIMITED("%s: commit failed: %s; input held until it "
			    "succeeds", buffer_path(&x->spools[i]), strerror(errno));
			if (!x->stuck)
				ingest_pause(&x->in);
			x->stuck = 1;
			return;
		}
	}
	x->commit_seconds += ev_time() - t0;
	x->dirty = 0;
	x->commits++;
	if (x->pend_events > 0)
		x->last_event = ev_now(x->loop);
	x->in_events += x->pend_events;
	x->in_bytes += x->pend_bytes;
	x->pend_events = x->pend_bytes = 0;
	release_acks(x);
	if (x->stuck) {
		x->stuck = 0;
		log_warn("commit succeeded again: input resumed");
		ingest_resume(&x->in);
	}
}

static void
commit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	commit(w->data);
}

static void shutdown_now(struct lfb *x);

/* Before the loop sleeps: commit now, or within --commit-wait. */
static void
prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct lfb *x = w->data;
	struct ingest_stats st;

	(void)revents;
	ingest_stats(&x->in, &st);
	if (x->nlisten == 0 && st.pipes_open == 0 && !x->stopping) {
		x->stopping = 1;	/* stdin is done: commit, seal, exit */
		shutdown_now(x);
		return;
	}
	if (!x->dirty || x->stuck)
		return;
	if (x->commit_wait <= 0) {
		commit(x);
	} else if (!ev_is_active(&x->commit_timer)) {
		ev_timer_set(&x->commit_timer, x->commit_wait, 0);
		ev_timer_start(loop, &x->commit_timer);
	}
}

static void
shutdown_now(struct lfb *x)
{
	ingest_stop(&x->in);
	commit(x);
	for (int i = 0; i < x->nspools; i++) {
		struct buffer *b = &x->spools[i];
		uint64_t lost;
		if (x->conf.flush_at_shutdown && buffer_flush(b, 1) == -1) {
			log_error("%s: cannot seal at shutdown: %s (staged chunks "
			    "are sealed at the next start)", buffer_path(b), strerror(errno));
			x->exit_code = EX_IOERR;
		}
		/* what a failed commit held is in memory only, and unacked */
		if ((lost = buffer_uncommitted(b)) > 0) {
			log_error("%s: cannot commit at shutdown: %llu events read "
			    "were not stored and not acknowledged", buffer_path(b),
			    (unsigned long long)lost);
			x->exit_code = EX_TEMPFAIL;
		}
		if (buffer_sync_dirs(b) == -1) {
			log_error("%s: cannot sync new/ or tmp/ at shutdown: %s (sealed "
			    "chunks are stored, but a crash may put some back in "
			    "tmp/, to be sealed again)", buffer_path(b), strerror(errno));
			if (x->exit_code == 0)
				x->exit_code = EX_IOERR;
		}
		if (buffer_sync_window(b) == -1)
			log_warn("%s: state/window: %s (a message sent again may be "
			    "stored twice)", buffer_path(b), strerror(errno));
	}
	ev_break(x->loop, EVBREAK_ALL);
}

/* Each tick: retry what is held, seal what is due, sync the window. */
static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lfb *x = w->data;
	struct ingest_stats st;

	(void)loop;
	(void)revents;
	if (x->stuck)
		commit(x);
	ingest_stats(&x->in, &st);
	if (st.held)
		ingest_retry(&x->in);
	for (int i = 0; i < x->nspools; i++) {
		buffer_recount(&x->spools[i]);
		if (!x->stuck && buffer_flush(&x->spools[i], 0) == -1)
			LOG_WARN_LIMITED("%s: cannot seal: %s",
			    buffer_path(&x->spools[i]), strerror(errno));
		if (buffer_sync_dirs(&x->spools[i]) == -1)
			LOG_WARN_LIMITED("%s: cannot sync new/ or tmp/: %s (will "
			    "retry)", buffer_path(&x->spools[i]), strerror(errno));
		buffer_sync_window(&x->spools[i]);
	}
}

/* ---- metrics (lf(7), METRICS) ---- */

/* The input half: what was acked; the output half: the chunks sealed
 * into new/ of every spool (a copy counts in each). */
static void
put_io(struct lfb *x, struct metrics *m, const struct buffer_stats *bs,
    struct metrics_io *io)
{
	struct ingest_stats ist;

	ingest_stats(&x->in, &ist);
	memset(io, 0, sizeof *io);
	io->input = io->output = 1;
	io->type = "buffer";
	io->in_events = x->in_events;
	io->in_bytes = x->in_bytes;
	io->in_errors = ist.bad + x->refused;
	io->in_dropped = x->unmatched_events + x->invalid;
	for (int i = 0; i < x->nspools; i++) {
		io->out_chunks += bs[i].sealed_chunks;
		io->out_events += bs[i].sealed_events;
		io->out_bytes += bs[i].sealed_bytes;
	}
	io->out_errors = x->commit_fails;
	io->last_event = x->last_event;
	metrics_put_io(m, io);
}

/* The spools' queues: a readdir and an fstat a chunk, no lock (the
 * writer's is ours anyway). */
static void
put_spools(struct lfb *x, struct metrics *m, const struct metrics_io *io)
{
	struct metrics_spool ms[MATCH_MAX_RULES];
	char err[512];
	int n = 0;

	for (int i = 0; i < x->nspools; i++) {
		if (metrics_spool_read(&x->spools[i].spool, &ms[n], err,
		    sizeof err) == 0)
			n++;
		else
			LOG_WARN_LIMITED("metrics: %s", err);
	}
	metrics_put_spools(m, ms, n, io);
}

#define PER_SPOOL(fam, help, field) do {				\
	metrics_family(m, fam, "counter", help);			\
	for (int i = 0; i < x->nspools; i++)				\
		metrics_u64(m, bs[i].field, "spool",			\
		    buffer_path(&x->spools[i]), (char *)NULL);		\
} while (0)

static void
put_metrics(void *ctx, struct metrics *m)
{
	struct lfb *x = ctx;
	struct buffer_stats bs[MATCH_MAX_RULES];
	struct metrics_io io;

	for (int i = 0; i < x->nspools; i++)
		buffer_stats(&x->spools[i], &bs[i]);
	put_io(x, m, bs, &io);
	put_spools(x, m, &io);
	metrics_one_u64(m, "lf_buffer_commits_total", "counter",
	    "Group commits (events made durable, then acked).", x->commits);
	metrics_one_num(m, "lf_buffer_commit_seconds_total", "counter",
	    "Time spent in group commits (writes and fdatasyncs).",
	    x->commit_seconds);
	PER_SPOOL("lf_buffer_fsyncs_total", "fdatasyncs of staged chunks by "
	    "group commits.", syncs);
	metrics_one_u64(m, "lf_buffer_blocked", "gauge", "1 while input is "
	    "held because total_limit_size is reached (overflow_action "
	    "block), else 0.", (uint64_t)x->blocked);
	metrics_one_u64(m, "lf_buffer_duplicate_messages_total", "counter",
	    "Messages sent again that the dedup window found stored: acked, "
	    "not stored twice.", x->dups);
	metrics_one_u64(m, "lf_buffer_duplicate_events_total", "counter",
	    "Their events.", x->dup_events);
	PER_SPOOL("lf_buffer_dropped_chunks_total", "Oldest ready chunks "
	    "dropped for room (overflow_action drop_oldest_chunk).",
	    dropped_chunks);
	PER_SPOOL("lf_buffer_dropped_events_total", "Their events.",
	    dropped_events);
	PER_SPOOL("lf_buffer_oversize_events_total", "Events dropped as "
	    "larger than chunk_limit_size.", oversize_events);
}

/* The signals of lf(7): TERM and INT stop, USR1 seals now, HUP reopens
 * the log (lib/sig's default). */
static void
stop_cb(void *ctx)
{
	struct lfb *x = ctx;

	if (!x->stopping) {
		x->stopping = 1;
		shutdown_now(x);
	}
}

static void
now_cb(void *ctx)
{
	struct lfb *x = ctx;

	commit(x);
	for (int i = 0; i < x->nspools; i++)
		buffer_flush(&x->spools[i], 1);
}

static const struct sig_actions sig_acts = { stop_cb, now_cb, NULL };

static const struct conf_name flush_modes[] = {
	{ "default", FLUSH_DEFAULT }, { "interval", FLUSH_INTERVAL },
	{ "immediate", FLUSH_IMMEDIATE }, { "lazy", FLUSH_LAZY }, { NULL, 0 },
};
static const struct conf_name overflow_actions[] = {
	{ "throw_exception", OVERFLOW_THROW }, { "block", OVERFLOW_BLOCK },
	{ "drop_oldest_chunk", OVERFLOW_DROP_OLDEST }, { NULL, 0 },
};

static void usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

/* --chunk-key a,b: tag and time are implied by lf's chunks and --timekey;
 * the keys are checked by buffer_conf_check */
static void
opt_keys(struct buffer_conf *c, char *arg)
{
	char *k;

	while ((k = strsep(&arg, ",")) != NULL) {
		k += strspn(k, " ");
		if (*k == '\0' || strcmp(k, "tag") == 0 || strcmp(k, "time") == 0)
			continue;
		if (c->nkeys == BUFFER_MAXKEYS)
			log_fatal(EX_USAGE, "--chunk-key: at most %d keys", BUFFER_MAXKEYS);
		c->keys[c->nkeys++] = k;
	}
}

static void
parse_args(struct lfb *x, int argc, char **argv)
{
	enum { O_LISTEN = 256, O_STDIN, O_NOTIFY, O_CLS, O_CLR, O_TLS, O_FMODE,
		O_FINT, O_FSHUT, O_QCL, O_TK, O_TKW, O_TKU, O_CKEY, O_OVF, O_CWAIT,
		O_DEDUP, O_MAXMSG, O_MAXMEM, O_MSGTIME, O_LOG, O_METRICS,
		O_MINTERVAL, O_VERSION };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "stdin", no_argument, NULL, O_STDIN },
		{ "notify-fd", required_argument, NULL, O_NOTIFY },
		{ "chunk-limit-size", required_argument, NULL, O_CLS },
		{ "chunk-limit-records", required_argument, NULL, O_CLR },
		{ "total-limit-size", required_argument, NULL, O_TLS },
		{ "flush-mode", required_argument, NULL, O_FMODE },
		{ "flush-interval", required_argument, NULL, O_FINT },
		{ "flush-at-shutdown", required_argument, NULL, O_FSHUT },
		{ "queued-chunks-limit-size", required_argument, NULL, O_QCL },
		{ "timekey", required_argument, NULL, O_TK },
		{ "timekey-wait", required_argument, NULL, O_TKW },
		{ "timekey-use-utc", no_argument, NULL, O_TKU },
		{ "chunk-key", required_argument, NULL, O_CKEY },
		{ "overflow-action", required_argument, NULL, O_OVF },
		{ "commit-wait", required_argument, NULL, O_CWAIT },
		{ "dedup-window", required_argument, NULL, O_DEDUP },
		{ "max-message-size", required_argument, NULL, O_MAXMSG },
		{ "max-client-memory", required_argument, NULL, O_MAXMEM },
		{ "message-timeout", required_argument, NULL, O_MSGTIME },
		{ "log-file", required_argument, NULL, O_LOG },
		{ "metrics-file", required_argument, NULL, O_METRICS },
		{ "metrics-interval", required_argument, NULL, O_MINTERVAL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct buffer_conf *c = &x->conf;
	char err[256];
	int ch;

	if ((x->listen = calloc((size_t)argc, sizeof *x->listen)) == NULL)
		log_fatal(EX_OSERR, "out of memory");

	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (ch) {
		case O_LISTEN:
			/* lib/ingest takes TCP too, but a network port wants
			 * TLS, auth and source addresses: lf-recv's job */
			if (strncmp(optarg, "unix:", 5) != 0 || optarg[5] == '\0')
				log_fatal(EX_USAGE, "--listen: want unix:PATH "
				    "(network listening is lf-recv's job)");
			x->listen[x->nlisten++] = optarg;
			break;
		case O_STDIN: x->use_stdin = 1; break;
		case O_NOTIFY: x->notify_fd = (int)conf_opt_uint("notify-fd", optarg, INT_MAX); break;
		case O_CLS: c->chunk_limit_size = conf_opt_size("chunk-limit-size", optarg); break;
		case O_CLR: c->chunk_limit_records = conf_opt_uint("chunk-limit-records", optarg, UINT32_MAX); break;
		case O_TLS: c->total_limit_size = conf_opt_size("total-limit-size", optarg); break;
		case O_FMODE: c->flush_mode = conf_opt_enum("flush-mode", optarg, flush_modes); break;
		case O_FINT: c->flush_interval = conf_opt_duration("flush-interval", optarg); break;
		case O_FSHUT: c->flush_at_shutdown = conf_opt_bool("flush-at-shutdown", optarg); break;
		case O_QCL: c->queued_chunks_limit_size = conf_opt_uint("queued-chunks-limit-size", optarg, UINT32_MAX); break;
		case O_TK: c->timekey = conf_opt_duration("timekey", optarg); break;
		case O_TKW: c->timekey_wait = conf_opt_duration("timekey-wait", optarg); break;
		case O_TKU: c->timekey_use_utc = 1; break;
		case O_CKEY: opt_keys(c, optarg); break;
		case O_OVF: c->overflow = conf_opt_enum("overflow-action", optarg, overflow_actions); break;
		case O_CWAIT: x->commit_wait = conf_opt_duration("commit-wait", optarg); break;
		case O_DEDUP: c->dedup_window = conf_opt_uint("dedup-window", optarg, UINT32_MAX); break;
		case O_MAXMSG: x->lim.max_message = conf_opt_size("max-message-size", optarg); break;
		case O_MAXMEM: x->max_client_memory = conf_opt_size("max-client-memory", optarg); break;
		case O_MSGTIME: x->message_timeout = conf_opt_duration("message-timeout", optarg); break;
		case O_LOG: x->logfile = optarg; break;
		case O_METRICS: x->metrics_path = optarg; break;
		case O_MINTERVAL: x->metrics_interval = metrics_interval_opt(optarg); break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-buffer " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind == argc)
		usage(EX_USAGE);
	if (x->nlisten == 0)
		x->use_stdin = 1;
	if (buffer_conf_check(c, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	if (x->max_client_memory < (1u << 20))
		log_fatal(EX_USAGE, "--max-client-memory: at least 1m");
	if (x->message_timeout <= 0)
		log_fatal(EX_USAGE, "--message-timeout: more than 0");
}

/* PATTERN=SPOOL: the left of the first '=' is a pattern when it has no
 * '/' (so a path with an '=' is written ./a=b or with a '/' before the
 * '='); the path is cut off in place.  A spool without a pattern takes
 * every tag.  Before anything is opened, so a bad pattern is only a
 * usage error. */
static void
parse_spools(struct lfb *x, char **args, int n)
{
	char err[512];

	if (n > MATCH_MAX_RULES)
		log_fatal(EX_USAGE, "at most %d spools", MATCH_MAX_RULES);
	match_rules_init(&x->routes);
	for (int i = 0; i < n; i++) {
		char *eq = strchr(args[i], '='), *pat = NULL;
		if (eq && memchr(args[i], '/', (size_t)(eq - args[i])) == NULL) {
			pat = args[i];
			*eq = '\0';
			args[i] = eq + 1;
			if (*args[i] == '\0')
				log_fatal(EX_USAGE, "%s=: no spool after the pattern", pat);
		}
		if (match_rules_add(&x->routes, pat, err, sizeof err) == -1)
			log_fatal(EX_USAGE, "%s=%s: %s", pat, args[i], err);
		for (int j = 0; j < i; j++)
			if (strcmp(args[j], args[i]) == 0)
				log_fatal(EX_USAGE, "%s: spool given twice (one spool "
				    "takes several patterns: 'a.** b.**=%s')", args[i],
				    args[i]);
		if (pat)
			log_info("%s: tags %s", args[i], pat);
	}
}

static void
open_spools(struct lfb *x, char **paths, int n)
{
	char err[512];

	if ((x->spools = calloc((size_t)n, sizeof *x->spools)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (int i = 0; i < n; i++) {
		int rc = buffer_open(&x->spools[i], paths[i], &x->conf, err, sizeof err);
		if (rc != 0)
			log_fatal(rc == BUFFER_LOCKED ? EX_TEMPFAIL : EX_CANTCREAT,
			    "%s", err);
		x->nspools++;
	}
}

int
main(int argc, char **argv)
{
	static struct lfb x;
	struct ingest_listener *l;
	struct ingest_stats ist;
	struct buffer_stats bst;
	char err[512];
	double tick;

	log_init(argv[0]);
	buffer_conf_default(&x.conf);
	stream_limits_default(&x.lim);
	x.notify_fd = -1;
	x.max_client_memory = INGEST_MAX_MEMORY;
	x.message_timeout = INGEST_MSG_TIMEOUT;
	x.metrics_interval = METRICS_INTERVAL;
	parse_args(&x, argc, argv);
	if (x.logfile && log_open(x.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", x.logfile, strerror(errno));
	x.loop = EV_DEFAULT;
	parse_spools(&x, argv + optind, argc - optind);
	open_spools(&x, argv + optind, argc - optind);

	ingest_init(&x.in, x.loop, &x.lim, take, &x);
	ingest_set_bounds(&x.in, x.max_client_memory, x.message_timeout);
	for (int i = 0; i < x.nlisten; i++) {
		if ((l = ingest_listen_addr(&x.in, x.listen[i], err, sizeof err)) == NULL)
			log_fatal(EX_UNAVAILABLE, "%s", err);
		log_info("listening on %s", ingest_listener_name(l));
	}
	if (x.use_stdin)
		ingest_pipe(&x.in, STDIN_FILENO);

	ev_prepare_init(&x.prep, prepare_cb);
	x.prep.data = &x;
	ev_prepare_start(x.loop, &x.prep);
	ev_init(&x.commit_timer, commit_cb);
	x.commit_timer.data = &x;
	tick = x.conf.flush_interval / 4;
	tick = tick < 0.05 ? 0.05 : tick > 1 ? 1 : tick;
	ev_timer_init(&x.tick, tick_cb, tick, tick);
	x.tick.data = &x;
	ev_timer_start(x.loop, &x.tick);
	sig_start(&x.sig, x.loop, &sig_acts, &x);
	if (metrics_writer_start(&x.mw, x.loop, x.metrics_path, "lf-buffer",
	    x.metrics_interval, put_metrics, &x) == -1)
		log_fatal(EX_OSERR, "out of memory");

	if (x.notify_fd >= 0) {
		(void)!write(x.notify_fd, "\n", 1);
		close(x.notify_fd);
	}
	log_info("ready: %d spool(s), %d listener(s)", x.nspools, x.nlisten);
	ev_run(x.loop, 0);
	sig_stop(&x.sig);
	metrics_writer_finish(&x.mw);		/* after the last commit and seal */

	for (int i = 0; i < x.nspools; i++) {
		buffer_stats(&x.spools[i], &bst);
		log_info("%s: stats: events=%lu duplicates=%lu commits=%lu "
		    "fdatasyncs=%lu dropped_chunks=%lu oversize_events=%lu "
		    "unmatched_messages=%lu unmatched_events=%lu",
		    buffer_path(&x.spools[i]), x.events, x.dups, x.commits,
		    bst.syncs, bst.dropped_chunks, bst.oversize_events,
		    x.unmatched, x.unmatched_events);
	}
	log_limit_summary();
	ingest_stats(&x.in, &ist);
	ingest_free(&x.in);
	for (int i = 0; i < x.nspools; i++)
		buffer_close(&x.spools[i]);
	free(x.spools);
	match_rules_free(&x.routes);
	free(x.acks);
	free(x.listen);
	if (x.exit_code == 0 && ist.bad && x.nlisten == 0)
		x.exit_code = EX_DATAERR;
	return x.exit_code;
}
