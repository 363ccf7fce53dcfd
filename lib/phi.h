/* phi: Fluentd's phi accrual failure detector (out_forward's
 * FailureDetector), with its exact formula, for lf-send's heartbeats
 * (research/forward-protocol.md section 4).
 *
 * A window of the last PHI_WINDOW gaps between heartbeats, in whole
 * microseconds, starts as one gap of the heartbeat interval.  phi is
 *	mean_us = sum(gap_i * (i+1)) / sum(i+1)   (integer division; i = 0
 *	                                           the oldest: newest weighs most)
 *	mean    = mean_us / 1e6 - interval + 1
 *	t       = now - last - interval + 1
 *	phi     = t / (mean * ln 10)
 * the exponential-distribution form, not the normal one of the paper: with
 * regular beats of 1 s, phi is about 0.434 times the seconds since the
 * last beat, so Fluentd's threshold of 16 is crossed after ~36.8 s of
 * silence. */
#ifndef LF_PHI_H
#define LF_PHI_H

#include <stddef.h>
#include <stdint.h>

#define PHI_WINDOW 1000

struct phi {
	double interval;	/* seconds between heartbeats */
	double last;		/* time of the last heartbeat */
	uint64_t gap[PHI_WINDOW];	/* a ring, oldest at head */
	size_t head, n;
};

/* Start with one gap of interval, last = now. */
void	phi_init(struct phi *p, double interval, double now);
/* A heartbeat at now.  After phi_clear, the first one adds the initial
 * gap instead of the time since the last. */
void	phi_add(struct phi *p, double now);
double	phi_value(const struct phi *p, double now);
/* Empty the window (a server taken down). */
void	phi_clear(struct phi *p);
size_t	phi_samples(const struct phi *p);

#endif
