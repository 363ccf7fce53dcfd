/* retry: Fluentd v1's retry state for one output (plugin_helper/
 * retry_state.rb driven by Output#update_retry_state), without the
 * <secondary> switch.  Pure: no I/O, no clock, no randomness of its own.
 * The caller passes the time (seconds as a double, from one clock; use
 * the wall clock if the state is saved across restarts, since a
 * monotonic clock starts again at boot) and a uniform random number in
 * [0, 1) for the jitter, e.g. arc4random() / 4294967296.0.
 *
 * One state per output, shared by every chunk:
 *	flush failed:	if (retry_failed(&st, &conf, now, rnd) == 1) {
 *				log st.steps as retry_times, drop every
 *				queued chunk, then retry_reset(&st);
 *			}
 *	flush ok:	retry_reset(&st);
 *	before a flush:	if (!retry_due(&st, now)) sleep until retry_next(&st)
 *
 * Schedule (Fluentd's numbers): the first failure creates the state with
 * next = now + wait, neither randomised nor clamped.  A later failure at
 * or after next counts a step k and waits interval(k) = min(wait *
 * base^k, max_interval) (periodic: wait), then times a factor uniform
 * in [1 - w, 1 + w] (w = randomize_width), so jitter may exceed the cap.
 * Unless forever, next never passes start + timeout: the failure that
 * first gets clamped there sets has_reached_timeout, the one after sets
 * has_timed_out, so one last try happens exactly at the timeout.  A
 * failure before next (another flush thread, another chunk) does not
 * step; it only moves next.  The limit is has_timed_out or steps >=
 * max_times, never with forever.  With the defaults and no jitter,
 * failures come at t = 0, 1, 3, 7, ..., 2^17 - 1 = 131071, then at
 * 259200 (steps 18), which is the limit.
 *
 * Saved form (retry_format, retry_parse), one line:
 *	start=<%.6f> steps=<%lld> next=<%.6f> reached=<0|1> timedout=<0|1>\n
 * without the angle brackets, fields in this order, one space apart,
 * e.g. "start=1700000000.250000 steps=3 next=1700000015.250000
 * reached=0 timedout=0\n".  Times are plain decimals (no exponent, inf
 * or nan), rounded to the microsecond.  A state with no retry active is
 * the line "none\n".  timeout_at is not saved: it is start + the
 * configured timeout, recomputed on every failure, so a changed
 * retry_timeout applies to a saved state. */
#ifndef LF_RETRY_H
#define LF_RETRY_H

#include <stddef.h>

enum retry_type {
	RETRY_EXPONENTIAL_BACKOFF,
	RETRY_PERIODIC
};

/* Fluentd's <buffer> retry_* parameters; retry_conf_default() sets
 * Fluentd's defaults, noted here. */
struct retry_conf {
	enum retry_type	type;			/* exponential_backoff */
	double		wait;			/* 1 s */
	double		exponential_backoff_base; /* 2 */
	double		max_interval;		/* 0: no cap */
	int		randomize;		/* 1 */
	double		randomize_width;	/* 0.125, at most 0.5 */
	double		timeout;		/* 72 h = 259200 s */
	long long	max_times;		/* -1: no limit */
	int		forever;		/* 0 */
};

struct retry_state {
	int		active;		/* 0: no retry; the rest is unused */
	double		start;		/* time of the first failure */
	long long	steps;		/* retries counted so far */
	double		next_time;	/* no flush before this */
	double		timeout_at;	/* start + timeout, by retry_failed */
	int		has_reached_timeout;
	int		has_timed_out;
};

#define RETRY_STATE_INIT	{ 0 }

/* Room retry_format needs for any state, with its NUL. */
#define RETRY_LINE_MAX		768

void	retry_conf_default(struct retry_conf *c);

/* 0, or -1 with a message naming the Fluentd parameter in err. */
int	retry_conf_check(const struct retry_conf *c, char *err, size_t n);

void	retry_reset(struct retry_state *st);

/* A flush failed at now: 1 if that hit the limit, else 0.  The state is
 * left as it is when the limit is hit, for the log line; the caller
 * resets it.  c must have passed retry_conf_check(). */
int	retry_failed(struct retry_state *st, const struct retry_conf *c,
	    double now, double rnd);

int	retry_due(const struct retry_state *st, double now); /* 1 if no retry */
double	retry_next(const struct retry_state *st);	/* 0 if no retry */

/* Length written (without the NUL), or -1 if n is too small. */
int	retry_format(const struct retry_state *st, char *out, size_t n);

/* 0, or -1 with st untouched if s is not one well-formed line. */
int	retry_parse(struct retry_state *st, const char *s);

#endif
