#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "consume.h"
#include "durable.h"
#include "log.h"
#include "sig.h"

/* Claims per turn of the loop, so that a tool answering at once cannot
 * keep the loop (and its signals) waiting through a long backlog. */
#define FILL_BATCH	64
/* Deletions from new/ between two fsyncs of it while busy; an unsynced
 * unlink lost in a crash only means a duplicate. */
#define SYNC_BATCH	256
#define REASON_MAX	512
#define STATE_FILE	"retry"

struct consume {
	struct ev_loop *loop;
	struct spool *s;
	const struct consume_conf *conf;
	consume_deliver_fn deliver;
	consume_cancel_fn cancel;
	void *ctx;

	struct consume_job *jobs;	/* flush_thread_count slots */
	unsigned nflight;
	struct spool_list list;		/* new/, as last listed */
	size_t pos;			/* the next name of list to try */
	int dirty;			/* new/ may have changed since */

	struct retry_state retry;
	char saved[RETRY_LINE_MAX];	/* the line in state/retry */

	unsigned unsynced;		/* unlinks in new/ not yet fsync'd */
	int stopping, finished, status;

	int ifd;			/* inotify on new/, or -1 */
	ev_io inotify_w;
	ev_timer kick_w, rescan_w, shutdown_w;
	ev_periodic retry_w;		/* wall clock, as the retry state */

	struct metrics_io io;		/* what --metrics-file says */
	struct metrics_writer mw;
	consume_metrics_fn metrics_fn;
};

/* ---- options ---- */

void
consume_conf_default(struct consume_conf *c)
{
	memset(c, 0, sizeof *c);
	retry_conf_default(&c->retry);
	c->flush_thread_count = 1;
	c->once = 0;
	c->shutdown_timeout = 30;
	c->rescan_interval = 5;
	c->metrics_interval = METRICS_INTERVAL;
}

static const struct conf_name retry_types[] = {
	{ "exponential_backoff", RETRY_EXPONENTIAL_BACKOFF },
	{ "periodic", RETRY_PERIODIC },
	{ NULL, 0 }
};

int
consume_opt(struct consume_conf *c, int opt, const char *arg)
{
	struct retry_conf *r = &c->retry;

	switch (opt) {
	case CONSUME_OPT_RETRY_TYPE:
		r->type = conf_opt_enum("retry-type", arg, retry_types);
		break;
	case CONSUME_OPT_RETRY_WAIT:
		r->wait = conf_opt_duration("retry-wait", arg);
		break;
	case CONSUME_OPT_RETRY_BASE:
		r->exponential_backoff_base = conf_opt_number(
		    "retry-exponential-backoff-base", arg);
		break;
	case CONSUME_OPT_RETRY_MAX_INTERVAL:
		r->max_interval = conf_opt_duration("retry-max-interval", arg);
		break;
	case CONSUME_OPT_RETRY_RANDOMIZE:
		r->randomize = conf_opt_bool("retry-randomize", arg);
		break;
	case CONSUME_OPT_RETRY_TIMEOUT:
		r->timeout = conf_opt_duration("retry-timeout", arg);
		break;
	case CONSUME_OPT_RETRY_MAX_TIMES:
		r->max_times = (long long)conf_opt_uint("retry-max-times", arg,
		    LLONG_MAX);
		break;
	case CONSUME_OPT_RETRY_FOREVER:
		r->forever = conf_opt_bool("retry-forever", arg);
		break;
	case CONSUME_OPT_FLUSH_THREAD_COUNT:
		c->flush_thread_count = (unsigned)conf_opt_uint(
		    "flush-thread-count", arg, 4096);
		break;
	case CONSUME_OPT_ONCE:
		c->once = 1;
		break;
	case CONSUME_OPT_METRICS_FILE:
		c->metrics_file = arg;
		break;
	case CONSUME_OPT_METRICS_INTERVAL:
		c->metrics_interval = metrics_interval_opt(arg);
		break;
	default:
		return 0;
	}
	return 1;
}

/* retry_conf_check names Fluentd's parameter ("retry_wait must ..."); say
 * it as the option the user typed ("--retry-wait must ..."). */
static void
as_option(const char *msg, char *err, size_t errlen)
{
	size_t w = strcspn(msg, " "), i, n = 0;
	int named = memchr(msg, '_', w) != NULL;

	if (named && errlen > 2)
		err[n++] = '-', err[n++] = '-';
	for (i = 0; msg[i] != '\0' && n + 1 < errlen; i++)
		err[n++] = named && i < w && msg[i] == '_' ? '-' : msg[i];
	if (errlen > 0)
		err[n] = '\0';
}

int
consume_conf_check(const struct consume_conf *c, char *err, size_t errlen)
{
	char msg[256];

	if (retry_conf_check(&c->retry, msg, sizeof msg) == -1) {
		as_option(msg, err, errlen);
		return -1;
	}
	if (c->flush_thread_count < 1) {
		snprintf(err, errlen, "--flush-thread-count must be at least 1");
		return -1;
	}
	if (!(c->shutdown_timeout >= 0) || !(c->rescan_interval > 0)) {
		snprintf(err, errlen, "bad shutdown timeout or rescan interval");
		return -1;
	}
	return 0;
}

/* ---- the retry state file ---- */

static void
state_load(struct consume *c)
{
	char err[256];
	int rc;

	if ((rc = spool_retry_read(c->s, &c->retry, err, sizeof err)) <= 0) {
		if (rc == -1)
			log_warn("%s/%s; starting without a retry pending",
			    c->s->path, err);
		retry_reset(&c->retry);
		return;
	}
	/* what state_save would write for it: no rewrite until it changes */
	if (retry_format(&c->retry, c->saved, sizeof c->saved) < 0)
		c->saved[0] = '\0';
	if (c->retry.active)
		log_info("resuming a retry: retry_times=%lld, next in %.3fs",
		    c->retry.steps, fmax(0, c->retry.next_time - ev_time()));
}

/* Written when it changes: it only saves the backoff across a restart,
 * so a failure to write it is worth a warning, not a stop. */
static void
state_save(struct consume *c)
{
	char line[RETRY_LINE_MAX];
	int n;

	if ((n = retry_format(&c->retry, line, sizeof line)) < 0 ||
	    strcmp(line, c->saved) == 0)
		return;
	if (durable_replace(c->s->state, STATE_FILE, line, (size_t)n) == -1) {
		LOG_WARN_LIMITED("%s/state/%s: %s", c->s->path, STATE_FILE,
		    strerror(errno));
		return;
	}
	memcpy(c->saved, line, (size_t)n + 1);
}

/* ---- stopping ---- */

static void
set_status(struct consume *c, int status)
{
	/* an I/O error says more than a pending retry */
	if (c->status == 0 || status == EX_IOERR)
		c->status = status;
}

static void
kick(struct consume *c)
{
	if (c->finished || ev_is_active(&c->kick_w))
		return;
	ev_timer_set(&c->kick_w, 0., 0.);	/* the next loop turn */
	ev_timer_start(c->loop, &c->kick_w);
}

static void stop(struct consume *, int);

static void
sync_new(struct consume *c)
{
	if (c->unsynced == 0)
		return;
	c->unsynced = 0;
	if (durable_fsync(c->s->new) == -1) {
		log_error("%s/new: fsync: %s", c->s->path, strerror(errno));
		stop(c, EX_IOERR);
	}
}

static void
stop_watchers(struct consume *c)
{
	ev_io_stop(c->loop, &c->inotify_w);
	ev_timer_stop(c->loop, &c->rescan_w);
	ev_periodic_stop(c->loop, &c->retry_w);
}

/* Stop claiming; what is in flight may still be answered, for a time. */
static void
stop(struct consume *c, int status)
{
	if (status)
		set_status(c, status);
	if (c->finished)
		return;
	c->stopping = 1;
	stop_watchers(c);
	if (c->nflight > 0 && !ev_is_active(&c->shutdown_w)) {
		ev_timer_set(&c->shutdown_w, c->conf->shutdown_timeout, 0.);
		ev_timer_start(c->loop, &c->shutdown_w);
	}
	kick(c);
}

static void
finish(struct consume *c)
{
	sync_new(c);
	state_save(c);
	metrics_writer_write(&c->mw);	/* the final counts */
	stop_watchers(c);
	ev_timer_stop(c->loop, &c->kick_w);
	ev_timer_stop(c->loop, &c->shutdown_w);
	c->finished = 1;
	ev_break(c->loop, EVBREAK_ALL);
}

/* --once is done when new/ as listed at the start is used up. */
static void
maybe_finish(struct consume *c)
{
	if (c->finished)
		return;
	if (c->conf->once && c->pos >= c->list.n && !c->dirty)
		c->stopping = 1;
	if (c->stopping && c->nflight == 0)
		finish(c);
}

/* ---- claiming ---- */

static const char *
chunk_tag(const struct spool_chunk *ch, int *len)
{
	*len = ch->h.taglen > 200 ? 200 : (int)ch->h.taglen;
	return ch->h.tag ? ch->h.tag : "";
}

static int
in_flight(const struct consume *c, const char *name)
{
	for (unsigned i = 0; i < c->conf->flush_thread_count; i++)
		if (c->jobs[i].busy && strcmp(c->jobs[i].chunk.name, name) == 0)
			return 1;
	return 0;
}

static int
refresh(struct consume *c)
{
	spool_list_free(&c->list);
	c->pos = 0;
	c->dirty = 0;
	if (spool_list(c->s->new, &c->list) == -1) {
		log_error("%s/new: %s", c->s->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The oldest name not tried since the last listing, nor in flight. */
static const char *
next_name(struct consume *c)
{
	const char *name;

	for (;;) {
		/* used up: list again if new/ may have changed since */
		if (c->pos >= c->list.n && (!c->dirty || c->conf->once ||
		    refresh(c) == -1 || c->list.n == 0))
			return NULL;
		name = c->list.names[c->pos++];
		if (!in_flight(c, name))
			return name;
	}
}

/* Go back to the front of the queue: a chunk put back must come first.
 * --once keeps to its one listing. */
static void
rewind_queue(struct consume *c)
{
	if (c->conf->once) {
		c->pos = 0;
		return;
	}
	c->pos = c->list.n;
	c->dirty = 1;
}

static void
arm_retry(struct consume *c)
{
	ev_periodic_stop(c->loop, &c->retry_w);
	if (!c->retry.active || c->stopping)
		return;
	ev_periodic_set(&c->retry_w, c->retry.next_time, 0., NULL);
	ev_periodic_start(c->loop, &c->retry_w);
}

/* While a retry is pending, one chunk at a time, and only when due. */
static int
may_claim(struct consume *c)
{
	unsigned limit = c->retry.active ? 1 : c->conf->flush_thread_count;

	if (c->stopping || c->nflight >= limit)
		return 0;
	if (retry_due(&c->retry, ev_time()))
		return 1;
	if (c->conf->once) {
		log_warn("a retry is pending (retry_times=%lld, next in "
		    "%.3fs): stopping", c->retry.steps,
		    c->retry.next_time - ev_time());
		stop(c, EX_TEMPFAIL);
	} else {
		arm_retry(c);
	}
	return 0;
}

static struct consume_job *
free_slot(struct consume *c)
{
	for (unsigned i = 0; i < c->conf->flush_thread_count; i++)
		if (!c->jobs[i].busy)
			return &c->jobs[i];
	return NULL;
}

/* Never deleted: dead/ keeps it with the reason, for lf-spool and lf-cat.
 * Nor is what is not a file (rc SPOOL_NOTFILE, not claimed): whatever put
 * it there may want it back.  Another consumer may have moved it first. */
static void
bury_corrupt(struct consume *c, struct spool_chunk *ch, int rc, const char *why)
{
	char reason[REASON_MAX];

	snprintf(reason, sizeof reason, "%s: %s", rc == SPOOL_NOTFILE ?
	    "not a chunk" : "corrupt chunk", why);
	if (spool_bury(c->s, c->s->new, ch->name, reason) == -1) {
		if (errno == ENOENT && rc == SPOOL_NOTFILE) {
			spool_release(ch);
			return;
		}
		log_error("%s: %s; cannot move it to dead/: %s (left in new/)",
		    ch->name, reason, strerror(errno));
		if (c->conf->once)
			set_status(c, EX_IOERR);
	} else {
		log_error("%s: %s; moved to dead/", ch->name, reason);
		c->io.dead_chunks++;	/* its count is not to be trusted */
	}
	spool_release(ch);
}

/* A read failed: the chunk is not known to be bad, so it stays in new/
 * and is tried again at the next scan. */
static void
unreadable(struct consume *c, struct spool_chunk *ch, const char *why)
{
	LOG_WARN_LIMITED("%s: %s; left in new/ for now", ch->name, why);
	if (c->conf->once)
		set_status(c, EX_TEMPFAIL);
	spool_release(ch);
}

/* Try the next ready chunk: 1 if a name was used up (claimed, found
 * corrupt, or taken by another consumer), 0 if nothing can be done now. */
static int
claim_next(struct consume *c)
{
	struct consume_job *job;
	const char *name;
	char err[256];
	int rc;

	/* --once with nothing left says 0, even with a retry pending */
	if (c->conf->once && c->pos >= c->list.n)
		return 0;
	if (!may_claim(c) || (name = next_name(c)) == NULL)
		return 0;
	job = free_slot(c);
	err[0] = '\0';
	if ((rc = spool_claim(c->s, name, &job->chunk, err, sizeof err)) == 0)
		return 1;
	if (rc == 1)
		rc = spool_chunk_verify(&job->chunk, err, sizeof err);
	if (rc < 0) {
		if (rc == SPOOL_EIO)
			unreadable(c, &job->chunk, err);
		else
			bury_corrupt(c, &job->chunk, rc, err);
		return 1;
	}
	job->busy = 1;
	job->data = NULL;
	job->owner = c;
	job->events = job->chunk.h.count;
	job->bytes = job->chunk.h.bodylen;
	c->nflight++;
	c->deliver(c->ctx, job);
	return 1;
}

static void
fill(struct consume *c)
{
	int n;

	for (n = 0; n < FILL_BATCH && claim_next(c); n++)
		;
	if (n == FILL_BATCH)
		kick(c);
	if (c->unsynced >= SYNC_BATCH || (c->unsynced && c->nflight == 0))
		sync_new(c);
	maybe_finish(c);
}

/* ---- answers ---- */

static void
done_ok(struct consume *c, struct consume_job *job)
{
	if (spool_done(c->s, &job->chunk) == -1 && errno != ENOENT) {
		/* it would be delivered again and again */
		log_error("%s: delivered, but cannot unlink it: %s",
		    job->chunk.name, strerror(errno));
		stop(c, EX_IOERR);
	} else {
		c->unsynced++;
	}
	c->io.out_chunks++;
	c->io.out_events += job->events;
	c->io.out_bytes += job->bytes;
	c->io.last_event = ev_time();
	if (c->retry.active) {
		log_info("retry succeeded (retry_times=%lld)", c->retry.steps);
		retry_reset(&c->retry);
		state_save(c);
	}
}

/* spool_bury, then release the claim.  0 or -1 (still claimed). */
static int
bury_job(struct consume *c, struct consume_job *job, const char *reason)
{
	int len;
	const char *tag = chunk_tag(&job->chunk, &len);

	if (spool_bury(c->s, c->s->new, job->chunk.name, reason) == -1) {
		log_error("%s: cannot move it to dead/: %s", job->chunk.name,
		    strerror(errno));
		return -1;
	}
	log_error("%s (tag %.*s, %llu events): %s; moved to dead/",
	    job->chunk.name, len, tag,
	    (unsigned long long)job->chunk.h.count, reason);
	c->io.dead_chunks++;
	c->io.dead_events += job->chunk.h.count;
	spool_release(&job->chunk);
	return 0;
}

static void
done_retry(struct consume *c, struct consume_job *job, const char *reason)
{
	char why[REASON_MAX];
	double now = ev_time();
	int len;
	const char *tag = chunk_tag(&job->chunk, &len);

	if (retry_failed(&c->retry, &c->conf->retry, now,
	    arc4random() / 4294967296.0) == 1) {
		snprintf(why, sizeof why, "retry limit reached after %lld "
		    "retries: %s", c->retry.steps, reason);
		/* Fluentd drops the whole queue here; we give up this chunk
		 * only, and start afresh with the next one. */
		retry_reset(&c->retry);
		if (bury_job(c, job, why) == 0) {
			job = NULL;
		} else {
			/* Still in new/: back off as after a first failure,
			 * or it would be tried again at once, forever. */
			retry_failed(&c->retry, &c->conf->retry, now, 0);
			c->io.out_retries++;
			if (c->conf->once)
				stop(c, EX_IOERR);
		}
	} else {
		c->io.out_retries++;
		log_warn("%s (tag %.*s, %llu events): %s; retry_times=%lld, "
		    "next retry in %.3fs", job->chunk.name, len, tag,
		    (unsigned long long)job->chunk.h.count, reason,
		    c->retry.steps, c->retry.next_time - now);
		if (c->conf->once)
			stop(c, EX_TEMPFAIL);
	}
	if (job != NULL) {
		/* put back in new/: it is the oldest again */
		spool_release(&job->chunk);
		rewind_queue(c);
	}
	state_save(c);
	arm_retry(c);
}

static void
done_fail(struct consume *c, struct consume_job *job, const char *reason)
{
	char why[REASON_MAX];

	if (bury_job(c, job, reason) == -1) {
		/* left in new/: back off as from a failure, not a tight loop */
		snprintf(why, sizeof why, "refused (%s), and cannot be moved "
		    "to dead/", reason);
		done_retry(c, job, why);
		return;
	}
	if (c->retry.active) {
		retry_reset(&c->retry);	/* the destination answered */
		state_save(c);
	}
}

void
consume_job_done(struct consume_job *job, enum consume_result r,
    const char *reason)
{
	struct consume *c = job->owner;

	if (job->busy != 1) {
		/* abandoned at the shutdown timeout: nothing to do */
		return;
	}
	if (reason == NULL || *reason == '\0')
		reason = "unknown";
	job->busy = 0;
	c->nflight--;
	if (r != CONSUME_OK)
		c->io.out_errors++;
	switch (r) {
	case CONSUME_OK:
		done_ok(c, job);
		break;
	case CONSUME_RETRY:
		done_retry(c, job, reason);
		break;
	case CONSUME_FAIL:
		done_fail(c, job, reason);
		break;
	}
	spool_release(&job->chunk);
	job->data = NULL;
	kick(c);
}

/* ---- watchers ---- */

#define OWNER(w, field) \
	((struct consume *)((char *)(w) - offsetof(struct consume, field)))

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)revents;
	fill(OWNER(w, kick_w));
}

static void
inotify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct consume *c = OWNER(w, inotify_w);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)loop, (void)revents;
	/* which names does not matter (an overflow neither): list again */
	while (read(c->ifd, buf, sizeof buf) > 0)
		;
	c->dirty = 1;
	kick(c);
}

static void
rescan_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct consume *c = OWNER(w, rescan_w);

	(void)loop, (void)revents;
	c->dirty = 1;
	kick(c);
}

static void
retry_cb(struct ev_loop *loop, ev_periodic *w, int revents)
{
	(void)loop, (void)revents;
	kick(OWNER(w, retry_w));
}

/* No answer in time: the chunks stay ready in new/ for the next run. */
static void
shutdown_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct consume *c = OWNER(w, shutdown_w);

	(void)loop, (void)revents;
	for (unsigned i = 0; i < c->conf->flush_thread_count; i++) {
		struct consume_job *job = &c->jobs[i];

		if (job->busy != 1)
			continue;
		log_warn("%s: no answer %.3gs after the stop; left in new/",
		    job->chunk.name, c->conf->shutdown_timeout);
		if (c->cancel)
			c->cancel(c->ctx, job);
		job->busy = 2;		/* released by consume_free */
	}
	c->nflight = 0;
	finish(c);
}

/* Without inotify the rescan timer still finds new chunks, only later. */
static void
watch_new(struct consume *c)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/new", c->s->path);
	if ((c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(c->ifd, path, IN_MOVED_TO | IN_CREATE) == -1) {
		log_warn("%s: inotify: %s; looking every %gs instead", path,
		    strerror(errno), c->conf->rescan_interval);
		if (c->ifd != -1)
			close(c->ifd);
		c->ifd = -1;
		return;
	}
	ev_io_init(&c->inotify_w, inotify_cb, c->ifd, EV_READ);
	ev_io_start(c->loop, &c->inotify_w);
}

/* ---- the whole ---- */

struct consume *
consume_new(struct ev_loop *loop, struct spool *s,
    const struct consume_conf *conf, consume_deliver_fn deliver,
    consume_cancel_fn cancel, void *ctx)
{
	struct consume *c;

	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->jobs = calloc(conf->flush_thread_count, sizeof *c->jobs)) == NULL) {
		free(c);
		log_error("out of memory");
		return NULL;
	}
	c->loop = loop;
	c->s = s;
	c->conf = conf;
	c->deliver = deliver;
	c->cancel = cancel;
	c->ctx = ctx;
	c->ifd = -1;
	c->dirty = 1;
	c->io.output = 1;
	c->io.type = "forward";
	for (unsigned i = 0; i < conf->flush_thread_count; i++) {
		c->jobs[i].chunk.fd = -1;
		c->jobs[i].owner = c;
	}
	ev_init(&c->inotify_w, inotify_cb);
	ev_init(&c->kick_w, kick_cb);
	ev_timer_init(&c->rescan_w, rescan_cb, conf->rescan_interval,
	    conf->rescan_interval);
	ev_init(&c->shutdown_w, shutdown_cb);
	ev_periodic_init(&c->retry_w, retry_cb, 0., 0., NULL);
	return c;
}

/* ---- metrics ---- */

void
consume_set_metrics(struct consume *c, const char *type,
    consume_metrics_fn fn)
{
	c->io.type = type;
	c->metrics_fn = fn;
}

static void
metrics_fill(void *ctx, struct metrics *m)
{
	struct consume *c = ctx;
	struct metrics_spool ms;
	char err[512];

	metrics_put_io(m, &c->io);
	if (metrics_spool_read(c->s, &ms, err, sizeof err) == 0)
		metrics_put_spools(m, &ms, 1, &c->io);
	else
		LOG_WARN_LIMITED("metrics: %s", err);
	if (c->metrics_fn)
		c->metrics_fn(c->ctx, m);
}

int
consume_start(struct consume *c)
{
	state_load(c);
	if (c->conf->metrics_file && metrics_writer_start(&c->mw, c->loop,
	    c->conf->metrics_file, log_prog, c->conf->metrics_interval,
	    metrics_fill, c) == -1) {
		log_error("out of memory");
		return -1;
	}
	if (!c->conf->once) {
		watch_new(c);
		ev_timer_start(c->loop, &c->rescan_w);
	}
	/* listed after inotify is on, so no chunk falls in between */
	if (refresh(c) == -1)
		return -1;
	kick(c);
	return 0;
}

/* Stopped before --once is done: not everything was delivered. */
void
consume_stop(struct consume *c)
{
	stop(c, c->conf->once ? EX_TEMPFAIL : 0);
}

void
consume_kick(struct consume *c)
{
	if (c->finished)
		return;
	if (c->retry.active) {
		log_info("retrying now");
		c->retry.next_time = ev_time();
		state_save(c);
	}
	c->dirty = 1;
	kick(c);
}

int
consume_status(const struct consume *c)
{
	return c->status;
}

void
consume_free(struct consume *c)
{
	if (c == NULL)
		return;
	if (!c->finished) {
		stop_watchers(c);
		ev_timer_stop(c->loop, &c->kick_w);
		ev_timer_stop(c->loop, &c->shutdown_w);
	}
	for (unsigned i = 0; i < c->conf->flush_thread_count; i++)
		spool_release(&c->jobs[i].chunk);
	if (c->ifd != -1)
		close(c->ifd);
	metrics_writer_stop(&c->mw);
	spool_list_free(&c->list);
	free(c->jobs);
	free(c);
}

static void
sig_stop_cb(void *c)
{
	consume_stop(c);
}

static void
sig_kick_cb(void *c)
{
	consume_kick(c);
}

const struct sig_actions consume_sig_actions = { sig_stop_cb, sig_kick_cb,
    NULL };

int
consume_run(struct ev_loop *loop, struct spool *s,
    const struct consume_conf *conf, consume_deliver_fn fn, void *ctx)
{
	struct consume *c;
	struct sig sig;
	int rc;

	if ((c = consume_new(loop, s, conf, fn, NULL, ctx)) == NULL)
		return EX_OSERR;
	if (consume_start(c) == -1) {
		consume_free(c);
		return EX_IOERR;
	}
	sig_start(&sig, loop, &consume_sig_actions, c);
	ev_run(loop, 0);
	sig_stop(&sig);
	rc = consume_status(c);
	consume_free(c);
	return rc;
}
