/* consume: the consumer side of a spool, shared by lf-send, lf-tdlog,
 * lf-file, lf-mysql and lf-exec.
 *
 * A delivery tool plugs in one asynchronous "deliver this chunk" function;
 * consume claims the oldest ready chunk (flock on the file, lf-spool(5)),
 * verifies it, hands it over, and acts on the answer the tool gives later
 * with consume_job_done():
 *
 *   CONSUME_OK     delivered: unlink the chunk (new/ is fsync'd once per
 *                  batch of deletions and before consume stops); the
 *                  retry state is cleared.
 *   CONSUME_RETRY  temporary failure: release the claim (the chunk stays
 *                  in new/ and, being the oldest, is the next one tried)
 *                  and step the retry state, Fluentd's, one per spool.
 *   CONSUME_FAIL   refused for good: move the chunk to dead/ with the
 *                  reason beside it.  The destination answered, so, as
 *                  Fluentd's commit after an unrecoverable error does,
 *                  this clears the retry state.
 *
 * Retries follow Fluentd v1 (lib/retry.h), with three deliberate changes:
 *  - When the limit is reached (retry_timeout, retry_max_times) only the
 *    chunk that failed goes to dead/, with the reason "retry limit reached
 *    after N retries: <last reason>", and the retry state starts again for
 *    the next chunk.  Fluentd drops every queued chunk at that point, a
 *    known pain point; here nothing leaves the queue but the chunk that
 *    used up the retries, and lf-spool requeue can put it back.
 *  - While a retry is pending nothing is claimed until its time comes;
 *    then one chunk (the oldest) is tried alone, and only its success
 *    opens all flush threads again.  So an outage costs one attempt per
 *    retry, not flush_thread_count.
 *  - consume_kick (the tool's SIGUSR1) makes a pending retry due now
 *    (Fluentd's force flush waits for the backoff).
 * The retry state is kept in SPOOL/state/retry (retry_format's line) and
 * read back at start, so a restart does not reset the backoff; its clock
 * is the wall clock.  Several consumers of one spool each keep their own
 * state and the file holds the last one written.
 *
 * Before it is handed over, a chunk's body is read through once in
 * SPOOL_BLOCK pieces to check it, so memory does not grow with the chunk.
 * A chunk that is corrupt (bad header, short, CRC or entry count wrong)
 * is moved to dead/ with the reason ("corrupt chunk: ...") and the others
 * go on; it is never deleted.  So is anything in new/ that is not a
 * regular file (a FIFO, directory, socket, device or symbolic link with a
 * chunk's name), with "not a chunk: ..."; it is never opened (lf-spool(5)).
 * A chunk that cannot be opened or read (EACCES, EIO) is not known bad:
 * it is left in new/ with a warning and tried again at the next scan.  Up to flush_thread_count chunks are in flight at once, each a
 * different chunk, claimed oldest first.  New chunks are noticed through
 * inotify on new/ without delay, with a rescan every few seconds in case
 * inotify is missing or overflows.
 *
 * consume watches no signals: the tool's main does (lib/sig.h, lf(7))
 * and calls consume_kick on SIGUSR1, which retries now and rescans new/,
 * and consume_stop on SIGTERM and SIGINT, which stops claiming, gives
 * the chunks in flight shutdown_timeout to be answered, then cancels the
 * rest (their claims are released: they stay in new/, ready) and stops.
 *
 * When consume has stopped it calls ev_break(loop, EVBREAK_ALL).  The
 * status (consume_status, or what consume_run returns) is an exit code of
 * sysexits.h: 0; EX_TEMPFAIL (75) when --once leaves a retry pending (not
 * yet due, or a delivery failed for now) or is stopped by a signal; or
 * EX_IOERR (74) when the spool cannot be written: a delivered chunk
 * cannot be unlinked or new/ fsync'd (consume stops), or, with --once, a
 * chunk cannot be moved to dead/.  Without --once a chunk that cannot be
 * moved to dead/ stays in new/ and is tried again after the retry wait
 * (a corrupt one at the next scan), so a full disk does not stop it. */
#ifndef LF_CONSUME_H
#define LF_CONSUME_H

#include <getopt.h>
#include <stddef.h>

#include <ev.h>

#include "buf.h"
#include "metrics.h"
#include "retry.h"
#include "sig.h"
#include "spool.h"

struct consume_conf {
	struct retry_conf retry;	/* Fluentd's retry_* */
	unsigned flush_thread_count;	/* chunks in flight at once: 1 */
	int once;			/* drain what is ready, then stop */
	double shutdown_timeout;	/* seconds: 30; the tool may change it */
	double rescan_interval;		/* seconds between scans of new/: 5 */
	const char *metrics_file;	/* --metrics-file, or NULL */
	double metrics_interval;	/* seconds: 5 */
};

/* The long options every consumer tool takes, with Fluentd's names.  Put
 * CONSUME_LONG_OPTIONS in the tool's struct option table and give every
 * option getopt_long returns to consume_opt() first. */
enum {
	CONSUME_OPT_RETRY_TYPE = 0x1c00,
	CONSUME_OPT_RETRY_WAIT,
	CONSUME_OPT_RETRY_BASE,
	CONSUME_OPT_RETRY_MAX_INTERVAL,
	CONSUME_OPT_RETRY_RANDOMIZE,
	CONSUME_OPT_RETRY_TIMEOUT,
	CONSUME_OPT_RETRY_MAX_TIMES,
	CONSUME_OPT_RETRY_FOREVER,
	CONSUME_OPT_FLUSH_THREAD_COUNT,
	CONSUME_OPT_ONCE,
	CONSUME_OPT_METRICS_FILE,
	CONSUME_OPT_METRICS_INTERVAL
};

#define CONSUME_LONG_OPTIONS						\
	{ "retry-type", required_argument, NULL, CONSUME_OPT_RETRY_TYPE }, \
	{ "retry-wait", required_argument, NULL, CONSUME_OPT_RETRY_WAIT }, \
	{ "retry-exponential-backoff-base", required_argument, NULL,	\
	    CONSUME_OPT_RETRY_BASE },					\
	{ "retry-max-interval", required_argument, NULL,		\
	    CONSUME_OPT_RETRY_MAX_INTERVAL },				\
	{ "retry-randomize", optional_argument, NULL,			\
	    CONSUME_OPT_RETRY_RANDOMIZE },				\
	{ "retry-timeout", required_argument, NULL, CONSUME_OPT_RETRY_TIMEOUT }, \
	{ "retry-max-times", required_argument, NULL,			\
	    CONSUME_OPT_RETRY_MAX_TIMES },				\
	{ "retry-forever", optional_argument, NULL, CONSUME_OPT_RETRY_FOREVER }, \
	{ "flush-thread-count", required_argument, NULL,		\
	    CONSUME_OPT_FLUSH_THREAD_COUNT },				\
	{ "once", no_argument, NULL, CONSUME_OPT_ONCE },		\
	{ "metrics-file", required_argument, NULL,			\
	    CONSUME_OPT_METRICS_FILE },					\
	{ "metrics-interval", required_argument, NULL,			\
	    CONSUME_OPT_METRICS_INTERVAL }

/* For the tool's --help. */
#define CONSUME_USAGE							\
"  --retry-type TYPE          exponential_backoff (default) or periodic\n" \
"  --retry-wait DUR           first wait, or the fixed one (1s)\n"	\
"  --retry-exponential-backoff-base N  growth of the wait (2)\n"	\
"  --retry-max-interval DUR   cap on the wait (none)\n"		\
"  --retry-randomize[=BOOL]   jitter of +-12.5% on the wait (true)\n"	\
"  --retry-timeout DUR        give a chunk up after this long (72h)\n"	\
"  --retry-max-times N        or after N retries (no limit)\n"		\
"  --retry-forever[=BOOL]     never give up (false)\n"			\
"  --flush-thread-count N     chunks in flight at once (1)\n"		\
"  --once                     deliver what is ready, then exit\n"	\
"                             (exit 75 if a retry is pending)\n"	\
"  --metrics-file PATH        write Prometheus metrics there (none)\n"	\
"  --metrics-interval DUR     and rewrite it this often (5s)\n"

void consume_conf_default(struct consume_conf *c);

/* 1 if opt is one of the options above, 0 if not.  A bad value is a
 * usage error, worded and exited on (64) as conf_opt_* do. */
int consume_opt(struct consume_conf *c, int opt, const char *arg);

/* After the options: 0, or -1 with a message naming the option. */
int consume_conf_check(const struct consume_conf *c, char *err, size_t errlen);

enum consume_result {
	CONSUME_OK,		/* delivered: delete */
	CONSUME_RETRY,		/* temporary failure: back off, try again */
	CONSUME_FAIL		/* refused for good: dead/ */
};

/* A claimed chunk being delivered.  chunk.h is its header (tag, id,
 * count, hlen, bodylen) and chunk.fd the open file, verified: its body,
 * chunk.h.bodylen bytes from offset chunk.h.hlen, has the right length,
 * CRC, entries and count.  The body is not in memory (a chunk may be
 * 256 MiB, times flush_thread_count): send it with sendfile(2) or
 * pread(2) from chunk.fd (never read(2): the offset is not the body's),
 * or walk its entries in bounded pieces with spool_body_init(&b,
 * &job->chunk) and spool_body_next(), which checks them again as it
 * reads.  data is the tool's.  The job is valid until
 * consume_job_done(). */
struct consume_job {
	struct spool_chunk chunk;
	void *data;
	/* What CONSUME_OK counts as delivered (lf_output_events_total,
	 * lf_output_bytes_total): the chunk's count and body length, unless
	 * the tool lowers them before answering (records set aside). */
	uint64_t events, bytes;
	/* consume's own */
	struct consume *owner;
	int busy;
};

/* deliver starts delivering job and returns; the tool answers with
 * consume_job_done(), now or later from the same loop.  cancel (may be
 * NULL) is called at the shutdown timeout for a job still unanswered:
 * the tool must forget it and never answer it. */
typedef void (*consume_deliver_fn)(void *ctx, struct consume_job *job);
typedef void (*consume_cancel_fn)(void *ctx, struct consume_job *job);

/* reason says why, for CONSUME_RETRY and CONSUME_FAIL (NULL: "unknown");
 * it is copied. */
void consume_job_done(struct consume_job *job, enum consume_result r,
    const char *reason);

/* The pieces, for a tool that runs its own watchers in the loop:
 *	c = consume_new(loop, spool, &conf, deliver, cancel, ctx);
 *	consume_start(c); ... ev_run(loop, 0);  (returns when consume stops)
 *	rc = consume_status(c); consume_free(c);
 * conf and spool must outlive c.  consume_new returns NULL (with a log
 * line) if out of memory; consume_start -1 if new/ cannot be listed
 * (or, with --metrics-file, out of memory, logged). */
struct consume *consume_new(struct ev_loop *loop, struct spool *s,
    const struct consume_conf *conf, consume_deliver_fn deliver,
    consume_cancel_fn cancel, void *ctx);
int consume_start(struct consume *c);
/* With --metrics-file, what consume counts for every consumer (lib/metrics:
 * lf_output_*, the spool's lf_spool_*, Fluentd's buffer gauges with its
 * plugin type, e.g. "forward"), then the tool's own families from fn
 * (may be NULL), called with consume_new's ctx.  The file is written at
 * consume_start, every --metrics-interval, and when consume stops (after
 * the last answer, so with the final counts).  Call before
 * consume_start; type must outlive c. */
typedef void (*consume_metrics_fn)(void *ctx, struct metrics *m);
void consume_set_metrics(struct consume *c, const char *type,
    consume_metrics_fn fn);
/* SIGTERM, SIGINT: stop claiming, wait for the jobs in flight (up to
 * shutdown_timeout), then stop; with --once the status is then 75. */
void consume_stop(struct consume *c);
/* SIGUSR1: a pending retry is due now, and new/ is listed again. */
void consume_kick(struct consume *c);
int consume_status(const struct consume *c);
void consume_free(struct consume *c);

/* The signals of lf(7) for a tool whose loop runs consume only: give
 * them to sig_start (lib/sig.h) with the struct consume as ctx. */
extern const struct sig_actions consume_sig_actions;

/* All of it, with no cancel function, and the signals of lf(7) watched
 * (lib/sig.h) while it runs: returns the status, or EX_OSERR (71) if out
 * of memory, EX_IOERR (74) if new/ cannot be listed. */
int consume_run(struct ev_loop *loop, struct spool *s,
    const struct consume_conf *conf, consume_deliver_fn fn, void *ctx);

#endif
