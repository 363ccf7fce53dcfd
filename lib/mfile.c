/* mfile: the metrics file's timer.  See mfile.h. */
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "mfile.h"

double
mfile_interval(const char *arg)
{
	double v = conf_opt_duration("metrics-interval", arg);

	if (v <= 0)
		log_fatal(EX_USAGE, "--metrics-interval: more than 0");
	return v;
}

void
mfile_write(struct mfile *mf)
{
	if (mf->m == NULL)
		return;
	metrics_begin(mf->m);
	mf->fn(mf->ctx, mf->m);
	(void)metrics_commit(mf->m);	/* a report: warned, limited */
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	mfile_write(w->data);
}

void
mfile_start(struct mfile *mf, struct ev_loop *loop, const char *path,
    const char *tool, double interval, mfile_fn fn, void *ctx)
{
	mf->m = NULL;
	mf->loop = loop;
	mf->fn = fn;
	mf->ctx = ctx;
	if (path == NULL)
		return;
	if ((mf->m = metrics_new(path, tool)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	/* the first file at the loop's first turn, then every interval */
	ev_timer_init(&mf->t, tick, 0, interval);
	mf->t.data = mf;
	ev_timer_start(loop, &mf->t);
}

void
mfile_finish(struct mfile *mf)
{
	if (mf->m == NULL)
		return;
	ev_timer_stop(mf->loop, &mf->t);
	mfile_write(mf);
	metrics_free(mf->m);
	mf->m = NULL;
}
