#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

/* Longest number retry_parse accepts: DBL_MAX printed with "%.6f" is 316
 * characters, and a sign. */
#define NUM_MAX	320

void
retry_conf_default(struct retry_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->type = RETRY_EXPONENTIAL_BACKOFF;
	c->wait = 1;
	c->exponential_backoff_base = 2;
	c->max_interval = 0;
	c->randomize = 1;
	c->randomize_width = 0.125;
	c->timeout = 72 * 60 * 60;
	c->max_times = -1;
	c->forever = 0;
}

static int
conf_err(char *err, size_t n, const char *msg)
{
	if (n > 0)
		snprintf(err, n, "%s", msg);
	return -1;
}

/* Fluentd accepts most of these and then misbehaves (a zero wait or a
 * base of 1 or less retries in a tight loop), so refuse them up front.
 * The randomize_width bound is Fluentd's own: RetryStateMachine raises. */
int
retry_conf_check(const struct retry_conf *c, char *err, size_t n)
{
	if (c->type != RETRY_EXPONENTIAL_BACKOFF && c->type != RETRY_PERIODIC)
		return conf_err(err, n,
		    "retry_type must be exponential_backoff or periodic");
	if (!isfinite(c->wait) || c->wait <= 0)
		return conf_err(err, n, "retry_wait must be greater than 0");
	if (c->type == RETRY_EXPONENTIAL_BACKOFF &&
	    (!isfinite(c->exponential_backoff_base) ||
	    c->exponential_backoff_base <= 1))
		return conf_err(err, n, "retry_exponential_backoff_base must "
		    "be greater than 1 (use retry_type periodic for a fixed "
		    "wait)");
	if (!isfinite(c->max_interval) || c->max_interval < 0)
		return conf_err(err, n,
		    "retry_max_interval must be 0 (no cap) or positive");
	if (!(c->randomize_width >= 0 && c->randomize_width <= 0.5))
		return conf_err(err, n,
		    "retry randomize width must be between 0 and 0.5");
	if (!isfinite(c->timeout) || c->timeout <= 0)
		return conf_err(err, n, "retry_timeout must be greater than 0");
	if (c->max_times < -1)
		return conf_err(err, n,
		    "retry_max_times must be 0 or more (or unset)");
	return 0;
}

void
retry_reset(struct retry_state *st)
{
	memset(st, 0, sizeof(*st));
}

/* wait * base^steps, capped.  Past the largest finite power Fluentd falls
 * back to that power, so retry_forever without a cap keeps a finite if
 * absurd wait; the bound on k keeps a huge saved steps from looping. */
static double
interval(const struct retry_conf *c, long long steps)
{
	double b = c->exponential_backoff_base, iv, kmax;
	int i;

	if (c->type == RETRY_PERIODIC)
		return c->wait;
	if (b > 1) {
		kmax = floor((log(DBL_MAX) - log(c->wait)) / log(b));
		if (!(kmax >= 0))
			kmax = 0;
		if ((double)steps > kmax)
			steps = (long long)kmax;
	}
	iv = c->wait * pow(b, (double)steps);
	if (c->max_interval > 0 && iv > c->max_interval)
		return c->max_interval;
	/* log2(DBL_MAX) rounds up to 1024, so kmax can be one too high. */
	for (i = 0; i < 8 && !isfinite(iv) && steps > 0; i++)
		iv = c->wait * pow(b, (double)--steps);
	return iv;
}

/* Same arithmetic as Fluentd's randomize(), so the numbers match. */
static double
randomize(const struct retry_conf *c, double iv, double rnd)
{
	if (!c->randomize)
		return iv;
	/* Whatever the caller passes, stay within [1 - w, 1 + w]. */
	if (!(rnd >= 0))
		rnd = 0;
	else if (rnd > 1)
		rnd = 1;
	return iv + (iv * c->randomize_width * (2 * rnd - 1.0));
}

static double
calc_next_time(const struct retry_state *st, const struct retry_conf *c,
    double now, double rnd)
{
	double naive;

	naive = now + randomize(c, interval(c, st->steps), rnd);
	if (!isfinite(naive))
		naive = DBL_MAX;	/* "never", and still printable */
	if (!c->forever && naive >= st->timeout_at)
		return st->timeout_at;
	return naive;
}

static void
step(struct retry_state *st, const struct retry_conf *c, double now,
    double rnd)
{
	if (st->steps < LLONG_MAX)
		st->steps++;
	st->next_time = calc_next_time(st, c, now, rnd);
	if (st->has_reached_timeout)
		st->has_timed_out = st->next_time >= st->timeout_at;
	else
		st->has_reached_timeout = st->next_time >= st->timeout_at;
}

static int
limit(const struct retry_state *st, const struct retry_conf *c)
{
	if (c->forever)
		return 0;
	return st->has_timed_out ||
	    (c->max_times >= 0 && st->steps >= c->max_times);
}

int
retry_failed(struct retry_state *st, const struct retry_conf *c, double now,
    double rnd)
{
	if (!st->active) {
		retry_reset(st);
		st->active = 1;
		st->start = now;
		st->next_time = now + c->wait;
		st->timeout_at = now + c->timeout;
		/* Checked at once so that retry_max_times 0 means no retry
		 * (fluentd#3608). */
		return limit(st, c);
	}
	st->timeout_at = st->start + c->timeout;
	/* Failures before next_time come from other flush threads or
	 * chunks of the same outage; stepping on each would burn through
	 * max_times in one go (fluentd#2123, #3203).  Fluentd still moves
	 * next_time, and so do we. */
	if (now >= st->next_time)
		step(st, c, now, rnd);
	else
		st->next_time = calc_next_time(st, c, now, rnd);
	return limit(st, c);
}

int
retry_due(const struct retry_state *st, double now)
{
	return !st->active || now >= st->next_time;
}

double
retry_next(const struct retry_state *st)
{
	return st->active ? st->next_time : 0;
}

int
retry_format(const struct retry_state *st, char *out, size_t n)
{
	int r;

	if (!st->active)
		r = snprintf(out, n, "none\n");
	else
		r = snprintf(out, n,
		    "start=%.6f steps=%lld next=%.6f reached=%d timedout=%d\n",
		    st->start, st->steps, st->next_time,
		    st->has_reached_timeout ? 1 : 0,
		    st->has_timed_out ? 1 : 0);
	if (r < 0 || (size_t)r >= n)
		return -1;
	return r;
}

/* Matches key at *sp and moves past it. */
static int
expect(const char **sp, const char *key)
{
	size_t len = strlen(key);

	if (strncmp(*sp, key, len) != 0)
		return -1;
	*sp += len;
	return 0;
}

/* A plain decimal: -?[0-9]+(\.[0-9]+)?.  strtod alone would take
 * leading blanks, hex, exponents, inf and nan, none of which
 * retry_format writes, so they mean the line is not ours. */
static int
number(const char **sp, double *out)
{
	const char *s = *sp, *p = s;
	char buf[NUM_MAX + 1], *end;
	size_t len;
	double d;

	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((len = (size_t)(p - s)) > NUM_MAX)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d))
		return -1;
	*out = d;
	*sp = p;
	return 0;
}

static int
count(const char **sp, long long *out)
{
	const char *p = *sp;
	long long v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (LLONG_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	*sp = p;
	return 0;
}

static int
flag(const char **sp, int *out)
{
	if (**sp != '0' && **sp != '1')
		return -1;
	*out = **sp - '0';
	(*sp)++;
	return 0;
}

/* The line ends here: an optional newline, then nothing. */
static int
eol(const char *s)
{
	if (*s == '\n')
		s++;
	return *s == '\0' ? 0 : -1;
}

int
retry_parse(struct retry_state *st, const char *s)
{
	struct retry_state t = RETRY_STATE_INIT;

	if (expect(&s, "none") == 0) {
		if (eol(s) == -1)
			return -1;
		retry_reset(st);
		return 0;
	}
	if (expect(&s, "start=") == -1 || number(&s, &t.start) == -1 ||
	    expect(&s, " steps=") == -1 || count(&s, &t.steps) == -1 ||
	    expect(&s, " next=") == -1 || number(&s, &t.next_time) == -1 ||
	    expect(&s, " reached=") == -1 ||
	    flag(&s, &t.has_reached_timeout) == -1 ||
	    expect(&s, " timedout=") == -1 ||
	    flag(&s, &t.has_timed_out) == -1 || eol(s) == -1)
		return -1;
	/* Fluentd only times out after having reached the timeout. */
	if (t.has_timed_out && !t.has_reached_timeout)
		return -1;
	t.active = 1;
	t.timeout_at = 0;	/* unknown until retry_failed sees the conf */
	*st = t;
	return 0;
}
