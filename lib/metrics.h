/* metrics: a tool's counters as Prometheus text (exposition format
 * 0.0.4, no timestamps), replaced whole in one file (--metrics-file) so
 * node_exporter's textfile collector serves it.  The names are in
 * lf(7), METRICS.
 *
 * Every sample carries the labels name and tool, first: name is the
 * file's base name without ".prom", which is unique in a collector's
 * folder, so the series of two tools never collide.
 *
 * A text is built in one go, family by family: metrics_begin, then for
 * each family metrics_family and its samples, then metrics_commit. */
#ifndef LF_METRICS_H
#define LF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct metrics;
struct spool;

/* For the file path, written by tool; NULL without memory. */
struct metrics *metrics_new(const char *path, const char *tool);
void metrics_free(struct metrics *m);

/* A new text with the families of every tool: lf_build_info,
 * lf_start_time_seconds, lf_cpu_seconds_total, lf_max_rss_bytes. */
void metrics_begin(struct metrics *m);
/* An empty text, for families of one's own only (lf-spool stat). */
void metrics_reset(struct metrics *m);
/* The text so far, or NULL if it ran out of memory. */
const char *metrics_text(const struct metrics *m, size_t *len);
/* type: "counter" or "gauge".  help is plain text (escaped here). */
void metrics_family(struct metrics *m, const char *fam, const char *type,
    const char *help);
/* A sample of the last family: extra label pairs (name, value, ...),
 * then NULL.  Values are escaped here. */
void metrics_u64(struct metrics *m, uint64_t v, ...);
void metrics_num(struct metrics *m, double v, ...);
/* A sample of the last family for each v[i] not 0, i from from to n-1,
 * labelled label=i (an exit code, a status). */
void metrics_by_index(struct metrics *m, const char *label,
    const unsigned long long *v, int n, int from);
/* A family with one sample and no extra labels. */
void metrics_one_u64(struct metrics *m, const char *fam, const char *type,
    const char *help, uint64_t v);
void metrics_one_num(struct metrics *m, const char *fam, const char *type,
    const char *help, double v);
/* Replace the file (synced, renamed); 0, or -1 after a limited warning.
 * A text that ran out of memory is not written. */
int metrics_commit(struct metrics *m);

/* What every input and every output counts the same way; the families
 * lf_input_*, lf_output_*, lf_last_event_time_seconds and the Fluent Bit
 * and Fluentd names dashboards know (research: outputs.md 3.5). */
struct metrics_io {
	int input, output;		/* which half applies */
	const char *type;		/* Fluentd's plugin type: "forward" */
	uint64_t in_events, in_bytes, in_errors, in_dropped;
	uint64_t out_events, out_bytes, out_chunks, out_errors, out_retries;
	uint64_t dead_chunks, dead_events;
	double last_event;		/* unix seconds, 0 if none yet */
};
void metrics_put_io(struct metrics *m, const struct metrics_io *io);

/* A spool's queue as gauges (lf_spool_*{spool=PATH}), read without a
 * lock; for a consumer, also Fluentd's buffer gauges. */
struct metrics_spool {
	const char *path;
	const char *name;		/* a path whose base name is its name
					 * label; NULL: the file's */
	uint64_t ready_chunks, ready_bytes, staged_chunks, staged_bytes;
	uint64_t dead_chunks;
	double oldest_age;		/* seconds, 0 if nothing is ready */
};
/* 0, or -1 with a reason (a folder cannot be listed). */
int metrics_spool_read(const struct spool *s, struct metrics_spool *ms,
    char *err, size_t errlen);
void metrics_put_spools(struct metrics *m, const struct metrics_spool *ms,
    int n, const struct metrics_io *io);

/* The file rewritten every interval seconds in a loop: fill adds the
 * tool's families between metrics_begin and metrics_commit.  The timer
 * does not keep the loop running. */
#define METRICS_INTERVAL 5.0	/* seconds, --metrics-interval's default */
typedef void (*metrics_fill_fn)(void *ctx, struct metrics *m);
struct metrics_writer {
	struct metrics *m;		/* NULL: none (no --metrics-file) */
	struct ev_loop *loop;
	ev_timer w;
	metrics_fill_fn fill;
	void *ctx;
};
/* The first write is at the next turn of the loop; with path NULL (no
 * --metrics-file) nothing is ever written.  0, or -1 if out of memory. */
int metrics_writer_start(struct metrics_writer *mw, struct ev_loop *loop,
    const char *path, const char *tool, double interval,
    metrics_fill_fn fill, void *ctx);
/* Now (at exit: the final counts); nothing without a file. */
void metrics_writer_write(struct metrics_writer *mw);
void metrics_writer_stop(struct metrics_writer *mw);
/* Both, at exit: the final counts, then the timer stopped. */
void metrics_writer_finish(struct metrics_writer *mw);
/* --metrics-interval DUR: more than 0, or a usage error (exit 64). */
double metrics_interval_opt(const char *arg);

#endif
