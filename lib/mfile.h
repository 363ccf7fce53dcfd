/* mfile: a tool's --metrics-file, written every --metrics-interval and
 * once more at exit with the final counts.  The tool gives a function
 * that puts its families (lib/metrics) after metrics_begin; this module
 * keeps the timer, begins, calls it and commits. */
#ifndef LF_MFILE_H
#define LF_MFILE_H

#include <ev.h>

#include "metrics.h"

#define MFILE_INTERVAL 5.0	/* seconds, --metrics-interval's default */

typedef void (*mfile_fn)(void *ctx, struct metrics *m);

struct mfile {
	struct metrics *m;	/* NULL: no --metrics-file */
	struct ev_loop *loop;
	ev_timer t;
	mfile_fn fn;
	void *ctx;
};

/* --metrics-interval DUR: more than 0, or a usage error. */
double mfile_interval(const char *arg);

/* Write path (NULL: nothing) for tool every interval, from the loop's
 * next turn on; fails only without memory (fatal). */
void mfile_start(struct mfile *mf, struct ev_loop *loop, const char *path,
    const char *tool, double interval, mfile_fn fn, void *ctx);
/* Write it now (a failure is a limited warning, and nothing else). */
void mfile_write(struct mfile *mf);
/* The last write, with the final counts; the timer stopped, all freed. */
void mfile_finish(struct mfile *mf);

#endif
