/* Unit tests for lib/retry: Fluentd v1's retry schedule
 * (research/fluentd-semantics.md section B), its limits, the guard
 * against steps from several flush threads, and the saved line. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "retry.h"

#define TIMEOUT_72H	259200.0

static struct retry_conf
conf_nojitter(void)
{
	struct retry_conf c;

	retry_conf_default(&c);
	c.randomize = 0;
	return c;
}

/* Fails at next_time until the limit; returns the number of failures. */
static int
fail_until_limit(struct retry_state *st, const struct retry_conf *c,
    double now, double rnd, int max)
{
	int i;

	for (i = 1; i <= max; i++) {
		if (retry_failed(st, c, now, rnd) == 1)
			return i;
		now = retry_next(st);
	}
	return -1;
}

static void
test_conf_default(void **unused)
{
	struct retry_conf c;
	char err[128];

	(void)unused;
	memset(&c, 0xa5, sizeof(c));
	retry_conf_default(&c);
	assert_int_equal(c.type, RETRY_EXPONENTIAL_BACKOFF);
	assert_true(c.wait == 1.0);
	assert_true(c.exponential_backoff_base == 2.0);
	assert_true(c.max_interval == 0.0);
	assert_int_equal(c.randomize, 1);
	assert_true(c.randomize_width == 0.125);
	assert_true(c.timeout == TIMEOUT_72H);
	assert_true(c.max_times == -1);
	assert_int_equal(c.forever, 0);
	assert_int_equal(retry_conf_check(&c, err, sizeof(err)), 0);
}

/* B.3: T_k = 2^k - 1, clamp at 72 h, the 18th retry at 259200 s and
 * the limit on its failure. */
static void
test_default_schedule(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;
	double now;
	int k;

	(void)unused;
	assert_int_equal(retry_failed(&st, &c, 0, 0.5), 0);
	assert_true(st.active);
	assert_true(st.start == 0);
	assert_true(st.steps == 0);
	assert_true(retry_next(&st) == 1);
	assert_true(st.timeout_at == TIMEOUT_72H);
	for (k = 1; k <= 17; k++) {
		now = retry_next(&st);
		assert_true(now == ldexp(1, k) - 1);
		assert_false(retry_due(&st, now - 0.001));
		assert_true(retry_due(&st, now));
		assert_int_equal(retry_failed(&st, &c, now, 0.5), 0);
		assert_true(st.steps == k);
		if (k < 17) {
			assert_true(retry_next(&st) == ldexp(1, k + 1) - 1);
			assert_false(st.has_reached_timeout);
		}
	}
	/* 131071 + 131072 = 262143 would pass the timeout. */
	assert_true(retry_next(&st) == TIMEOUT_72H);
	assert_true(st.has_reached_timeout);
	assert_false(st.has_timed_out);
	assert_int_equal(retry_failed(&st, &c, TIMEOUT_72H, 0.5), 1);
	assert_true(st.steps == 18);
	assert_true(st.has_timed_out);
	assert_true(retry_next(&st) == TIMEOUT_72H);
}

/* Jitter changes how many retries fit in 72 h, not the last try, which
 * is at the timeout.  All short (0.875): T_17 = 114687 and T_18 =
 * 229375 fit, so 19 steps; all long (1.125): 18, as without jitter. */
static void
test_default_schedule_jitter(void **unused)
{
	struct retry_conf c;
	struct retry_state st = RETRY_STATE_INIT;

	(void)unused;
	retry_conf_default(&c);
	assert_int_equal(fail_until_limit(&st, &c, 1000, 0.5, 100), 19);
	assert_true(st.steps == 18);
	assert_true(st.next_time == 1000 + TIMEOUT_72H);
	retry_reset(&st);
	assert_int_equal(fail_until_limit(&st, &c, 1000, 0, 100), 20);
	assert_true(st.steps == 19);
	assert_true(st.next_time == 1000 + TIMEOUT_72H);
	retry_reset(&st);
	assert_int_equal(fail_until_limit(&st, &c, 1000, 0.999999, 100), 19);
	assert_true(st.steps == 18);
	assert_true(st.next_time == 1000 + TIMEOUT_72H);
}

static void
test_periodic(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;
	double t;

	(void)unused;
	c.type = RETRY_PERIODIC;
	c.wait = 5;
	c.exponential_backoff_base = 0;	/* unused by periodic */
	c.timeout = 30;
	assert_int_equal(retry_conf_check(&c, NULL, 0), 0);
	assert_int_equal(retry_failed(&st, &c, 0, 0.5), 0);
	for (t = 5; t < 25; t += 5) {
		assert_true(retry_next(&st) == t);
		assert_int_equal(retry_failed(&st, &c, t, 0.5), 0);
		assert_true(retry_next(&st) == t + 5);
		assert_false(st.has_reached_timeout);
	}
	/* 25 + 5 lands on the timeout itself, which counts as reaching it. */
	assert_int_equal(retry_failed(&st, &c, 25, 0.5), 0);
	assert_true(retry_next(&st) == 30);
	assert_true(st.has_reached_timeout);
	assert_int_equal(retry_failed(&st, &c, 30, 0.5), 1);
	assert_true(st.steps == 6);

	/* Periodic jitter is around wait. */
	c.randomize = 1;
	c.timeout = 1000;
	retry_reset(&st);
	retry_failed(&st, &c, 0, 0);
	retry_failed(&st, &c, 5, 0);
	assert_true(retry_next(&st) == 5 + 4.375);
}

static void
test_max_interval(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;
	const double want[] = { 2, 4, 8, 10, 10, 10 };
	double now = 0;
	size_t i;

	(void)unused;
	c.max_interval = 10;
	assert_int_equal(retry_failed(&st, &c, now, 0.5), 0);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		now = retry_next(&st);
		assert_int_equal(retry_failed(&st, &c, now, 0.5), 0);
		assert_true(retry_next(&st) - now == want[i]);
	}
}

/* B.3: uniform in [0.875, 1.125] x interval, after the cap. */
static void
test_randomize_bounds(void **unused)
{
	struct retry_conf c;
	struct retry_state st;
	const double rnd[] = { 0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999 };
	double d;
	size_t i;

	(void)unused;
	retry_conf_default(&c);
	c.max_interval = 10;

	/* The first wait is never randomised. */
	retry_reset(&st);
	retry_failed(&st, &c, 100, 0);
	assert_true(retry_next(&st) == 101);
	retry_reset(&st);
	retry_failed(&st, &c, 100, 0.999999);
	assert_true(retry_next(&st) == 101);

	for (i = 0; i < sizeof(rnd) / sizeof(rnd[0]); i++) {
		/* steps 3 -> 4: 1 * 2^4 = 16, capped to 10, then jitter. */
		retry_reset(&st);
		retry_failed(&st, &c, 0, 0.5);
		st.steps = 3;
		st.next_time = 100;
		assert_int_equal(retry_failed(&st, &c, 100, rnd[i]), 0);
		assert_true(st.steps == 4);
		d = retry_next(&st) - 100;
		assert_true(d >= 0.875 * 10 && d <= 1.125 * 10);
		assert_true(fabs(d - 10 * (1 + 0.125 * (2 * rnd[i] - 1))) <
		    1e-9);
	}
	assert_true(d > 10);	/* jitter may exceed max_interval */

	/* The ends, and out-of-range input clamped to them. */
	retry_reset(&st);
	retry_failed(&st, &c, 0, 0.5);
	retry_failed(&st, &c, 1, 0);
	assert_true(retry_next(&st) == 1 + 2 * 0.875);
	retry_failed(&st, &c, retry_next(&st), -3);
	assert_true(st.steps == 2);
	d = retry_next(&st);
	retry_failed(&st, &c, d, 7);
	assert_true(retry_next(&st) - d == 8 * 1.125);
	d = retry_next(&st);
	retry_failed(&st, &c, d, NAN);
	assert_true(retry_next(&st) - d == 10 * 0.875);
}

/* fluentd#3608: retry_max_times 0 means no retry at all. */
static void
test_max_times_zero(void **unused)
{
	struct retry_conf c;
	struct retry_state st = RETRY_STATE_INIT;

	(void)unused;
	retry_conf_default(&c);
	c.max_times = 0;
	assert_int_equal(retry_failed(&st, &c, 50, 0.5), 1);
	assert_true(st.steps == 0);
}

/* N retries after the first failure. */
static void
test_max_times_n(void **unused)
{
	struct retry_conf c;
	struct retry_state st = RETRY_STATE_INIT;
	long long n;

	(void)unused;
	retry_conf_default(&c);
	for (n = 1; n <= 17; n++) {
		c.max_times = n;
		retry_reset(&st);
		assert_int_equal(fail_until_limit(&st, &c, 0, 0.5, 100), n + 1);
		assert_true(st.steps == n);
		assert_false(st.has_timed_out);
	}
	/* Beyond 18 the 72 h timeout comes first. */
	c.max_times = 30;
	retry_reset(&st);
	assert_int_equal(fail_until_limit(&st, &c, 0, 0.5, 100), 19);
	assert_true(st.has_timed_out);
}

static void
test_forever(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;
	double now = 0;
	int i;

	(void)unused;
	c.forever = 1;
	c.timeout = 10;
	c.max_times = 0;
	assert_int_equal(retry_failed(&st, &c, now, 0.5), 0);
	for (i = 1; i <= 40; i++) {
		now = retry_next(&st);
		assert_int_equal(retry_failed(&st, &c, now, 0.5), 0);
		assert_true(retry_next(&st) - now == ldexp(1, i));
	}
	assert_true(retry_next(&st) > st.timeout_at);

	/* Without a cap the wait keeps doubling; past the largest finite
	 * power it stays there (Fluentd's isfinite walk-back), even for an
	 * absurd saved steps. */
	st.steps = 5000;
	assert_int_equal(retry_failed(&st, &c, retry_next(&st), 0.5), 0);
	assert_true(retry_next(&st) == ldexp(1, 1023));	/* + now, lost */
	st.steps = LLONG_MAX;
	st.next_time = 0;
	assert_int_equal(retry_failed(&st, &c, 0, 0.5), 0);
	assert_true(st.steps == LLONG_MAX);
	assert_true(isfinite(retry_next(&st)));

	/* With jitter at the top the wait would overflow; it saturates. */
	c.randomize = 1;
	c.wait = 1.9;
	st.next_time = 0;
	retry_failed(&st, &c, 0, 0.999999);
	assert_true(retry_next(&st) == DBL_MAX);
}

/* fluentd#2123, #3203: failures before next_time move it but do not
 * step, so N flush threads failing together count one retry. */
static void
test_guard(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;
	int i;

	(void)unused;
	c.max_times = 1;
	assert_int_equal(retry_failed(&st, &c, 0, 0.5), 0);
	assert_int_equal(retry_failed(&st, &c, 0.25, 0.5), 0);
	assert_true(st.steps == 0);
	assert_true(retry_next(&st) == 1.25);
	assert_int_equal(retry_failed(&st, &c, 0.5, 0.5), 0);
	assert_true(st.steps == 0);
	assert_true(retry_next(&st) == 1.5);

	/* The early failures spent nothing: this first real retry is the
	 * one retry_max_times 1 allows. */
	assert_int_equal(retry_failed(&st, &c, 1.5, 0.5), 1);
	assert_true(st.steps == 1);
	assert_true(retry_next(&st) == 3.5);
	c.max_times = 3;
	for (i = 0; i < 8; i++) {
		/* Eight flush threads fail at the same moment. */
		assert_int_equal(retry_failed(&st, &c, 3.5, 0.5), 0);
		assert_true(st.steps == 2);
		assert_true(retry_next(&st) == 7.5);
	}
}

/* The guard's recalculation is clamped but does not set the flags. */
static void
test_guard_near_timeout(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;

	(void)unused;
	c.timeout = 10;
	retry_failed(&st, &c, 0, 0.5);		/* next 1 */
	retry_failed(&st, &c, 1, 0.5);		/* next 3 */
	retry_failed(&st, &c, 3, 0.5);		/* next 7 */
	assert_true(retry_next(&st) == 7);
	assert_int_equal(retry_failed(&st, &c, 6, 0.5), 0);
	assert_true(st.steps == 2);
	assert_true(retry_next(&st) == 10);	/* 6 + 4 */
	assert_false(st.has_reached_timeout);
	assert_int_equal(retry_failed(&st, &c, 10, 0.5), 0);
	assert_true(st.steps == 3);
	assert_true(st.has_reached_timeout);
	assert_int_equal(retry_failed(&st, &c, 10, 0.5), 1);
	assert_true(st.has_timed_out);
}

static void
test_reset(void **unused)
{
	struct retry_conf c = conf_nojitter();
	struct retry_state st = RETRY_STATE_INIT;

	(void)unused;
	assert_true(retry_due(&st, 0));
	assert_true(retry_next(&st) == 0);
	retry_failed(&st, &c, 0, 0.5);
	retry_failed(&st, &c, 1, 0.5);
	retry_failed(&st, &c, 3, 0.5);
	assert_true(st.steps == 2);
	assert_false(retry_due(&st, 5));

	retry_reset(&st);			/* a flush succeeded */
	assert_false(st.active);
	assert_true(retry_due(&st, 5));
	assert_true(retry_next(&st) == 0);

	assert_int_equal(retry_failed(&st, &c, 500, 0.5), 0);
	assert_true(st.start == 500);
	assert_true(st.steps == 0);
	assert_true(retry_next(&st) == 501);
	assert_true(st.timeout_at == 500 + TIMEOUT_72H);

	/* After a limit the caller resets, and the next outage starts over. */
	c.max_times = 1;
	retry_failed(&st, &c, 501, 0.5);
	assert_int_equal(st.steps, 1);
	retry_reset(&st);
	assert_int_equal(retry_failed(&st, &c, 600, 0.5), 0);
	assert_true(st.steps == 0);
}

static void
assert_same_state(const struct retry_state *a, const struct retry_state *b)
{
	assert_int_equal(a->active, b->active);
	assert_true(a->start == b->start);
	assert_true(a->steps == b->steps);
	assert_true(a->next_time == b->next_time);
	assert_int_equal(a->has_reached_timeout, b->has_reached_timeout);
	assert_int_equal(a->has_timed_out, b->has_timed_out);
}

static void
test_format_parse(void **unused)
{
	struct retry_conf c;
	struct retry_state st = RETRY_STATE_INIT, got;
	char line[RETRY_LINE_MAX];
	int n;

	(void)unused;
	retry_conf_default(&c);

	n = retry_format(&st, line, sizeof(line));
	assert_int_equal(n, 5);
	assert_string_equal(line, "none\n");
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(retry_parse(&got, line), 0);
	assert_false(got.active);
	assert_int_equal(retry_parse(&got, "none"), 0);

	retry_failed(&st, &c, 1700000000.25, 0.5);
	retry_failed(&st, &c, 1700000001.25, 0.5);
	retry_failed(&st, &c, 1700000003.25, 0.5);
	n = retry_format(&st, line, sizeof(line));
	assert_string_equal(line, "start=1700000000.250000 steps=2 "
	    "next=1700000007.250000 reached=0 timedout=0\n");
	assert_int_equal(n, (int)strlen(line));
	assert_int_equal(retry_parse(&got, line), 0);
	assert_same_state(&got, &st);

	/* A restored state carries on where it left off, and picks up the
	 * configured timeout. */
	assert_int_equal(retry_failed(&got, &c, 1700000007.25, 0.5), 0);
	assert_true(got.steps == 3);
	assert_true(got.timeout_at == 1700000000.25 + TIMEOUT_72H);

	st.start = -12.5;
	st.next_time = 0.000001;
	st.steps = 18;
	st.has_reached_timeout = st.has_timed_out = 1;
	retry_format(&st, line, sizeof(line));
	assert_string_equal(line,
	    "start=-12.500000 steps=18 next=0.000001 reached=1 timedout=1\n");
	assert_int_equal(retry_parse(&got, line), 0);
	assert_true(got.start == -12.5);
	assert_true(fabs(got.next_time - 0.000001) < 1e-12);
	assert_true(got.has_timed_out);
	/* No newline is fine too. */
	line[strlen(line) - 1] = '\0';
	assert_int_equal(retry_parse(&got, line), 0);

	/* Times are kept to the microsecond. */
	st.start = 3.0000004;
	retry_format(&st, line, sizeof(line));
	retry_parse(&got, line);
	assert_true(got.start == 3.0);

	/* The widest state fits RETRY_LINE_MAX and reads back. */
	st.start = -DBL_MAX;
	st.next_time = DBL_MAX;
	st.steps = LLONG_MAX;
	n = retry_format(&st, line, sizeof(line));
	assert_true(n > 0 && n < RETRY_LINE_MAX);
	assert_int_equal(retry_parse(&got, line), 0);
	assert_same_state(&got, &st);

	/* Too small a buffer is an error, never a torn line. */
	assert_int_equal(retry_format(&st, line, 10), -1);
	assert_int_equal(retry_format(&st, line, (size_t)n), -1);
	assert_int_equal(retry_format(&st, line, (size_t)n + 1), n);
	retry_reset(&st);
	assert_int_equal(retry_format(&st, line, 5), -1);
	assert_int_equal(retry_format(&st, NULL, 0), -1);
}

static void
test_parse_garbage(void **unused)
{
	static const char *bad[] = {
		"",
		"\n",
		"none\n\n",
		"none ",
		"nonesuch",
		" start=1.000000 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000 steps=0 next=2.000000 reached=0 timedout=0\n\n",
		"start=1.000000 steps=0 next=2.000000 reached=0 timedout=0 \n",
		"start=1.000000 steps=0 next=2.000000 reached=0 timedout=0x",
		"start=1.000000 steps=0 next=2.000000 reached=0\n",
		"start=1.000000 steps=0 next=2.000000 reached=0 timedout=\n",
		"start=1.000000 steps=0 next=2.000000 reached=2 timedout=0\n",
		"start=1.000000 steps=0 next=2.000000 reached=0 timedout=1\n",
		"start=1.000000 steps=0 next=2.000000 reached=00 timedout=0\n",
		"start=1.000000  steps=0 next=2.000000 reached=0 timedout=0\n",
		"steps=0 start=1.000000 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000 steps=-1 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000 steps=+1 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000 steps=1.5 next=2.000000 reached=0 timedout=0\n",
		("start=1.000000 steps=9223372036854775808 next=2.000000 "
		    "reached=0 timedout=0\n"),
		"start=1.000000 steps= next=2.000000 reached=0 timedout=0\n",
		"start= steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=x steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=1. steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=.5 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=-.5 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=1e3 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=0x10 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=inf steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=nan steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000 steps=0 next=-inf reached=0 timedout=0\n",
		"start=1.0.0 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=--1 steps=0 next=2.000000 reached=0 timedout=0\n",
		"START=1.000000 steps=0 next=2.000000 reached=0 timedout=0\n",
		"start=1.000000\tsteps=0 next=2.000000 reached=0 timedout=0\n",
		"\xff\xfe",
	};
	struct retry_conf c;
	struct retry_state st = RETRY_STATE_INIT, keep;
	char big[1200];
	size_t i;

	(void)unused;
	retry_conf_default(&c);
	retry_failed(&st, &c, 7, 0.5);
	keep = st;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (retry_parse(&st, bad[i]) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
		assert_same_state(&st, &keep);
	}

	/* A number longer than any that DBL_MAX prints as. */
	memcpy(big, "start=", 6);
	memset(big + 6, '9', 400);
	snprintf(big + 406, sizeof(big) - 406,
	    " steps=0 next=2.000000 reached=0 timedout=0\n");
	assert_int_equal(retry_parse(&st, big), -1);
	/* 309 nines with a fraction: the right length, but not finite. */
	memset(big + 6, '9', 309);
	snprintf(big + 315, sizeof(big) - 315,
	    ".000000 steps=0 next=2.000000 reached=0 timedout=0\n");
	assert_int_equal(retry_parse(&st, big), -1);
	assert_same_state(&st, &keep);

	/* Every truncation of a good line but the newline is rejected. */
	snprintf(big, sizeof(big),
	    "start=1.000000 steps=12 next=2.000000 reached=1 timedout=0\n");
	for (i = strlen(big) - 1; i > 0; i--) {
		big[i] = '\0';
		if (i == strlen("start=1.000000 steps=12 next=2.000000 "
		    "reached=1 timedout=0"))
			assert_int_equal(retry_parse(&st, big), 0);
		else
			assert_int_equal(retry_parse(&st, big), -1);
	}
}

static void
assert_conf_bad(const struct retry_conf *c, const char *word)
{
	char err[256];

	err[0] = '\0';
	assert_int_equal(retry_conf_check(c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, word));
	/* Short or absent buffers are safe. */
	assert_int_equal(retry_conf_check(c, err, 1), -1);
	assert_string_equal(err, "");
	assert_int_equal(retry_conf_check(c, NULL, 0), -1);
}

static void
test_conf_check(void **unused)
{
	struct retry_conf c;

	(void)unused;
#define BAD(field, value, word) do {		\
	retry_conf_default(&c);			\
	c.field = (value);			\
	assert_conf_bad(&c, (word));		\
} while (0)
#define GOOD(field, value) do {			\
	retry_conf_default(&c);			\
	c.field = (value);			\
	assert_int_equal(retry_conf_check(&c, NULL, 0), 0); \
} while (0)
	BAD(type, (enum retry_type)7, "retry_type");
	BAD(wait, 0, "retry_wait");
	BAD(wait, -1, "retry_wait");
	BAD(wait, NAN, "retry_wait");
	BAD(wait, INFINITY, "retry_wait");
	BAD(exponential_backoff_base, 1, "retry_exponential_backoff_base");
	BAD(exponential_backoff_base, 0.5, "retry_exponential_backoff_base");
	BAD(exponential_backoff_base, NAN, "retry_exponential_backoff_base");
	BAD(exponential_backoff_base, INFINITY,
	    "retry_exponential_backoff_base");
	BAD(max_interval, -1, "retry_max_interval");
	BAD(max_interval, NAN, "retry_max_interval");
	BAD(randomize_width, 0.6, "width");
	BAD(randomize_width, -0.1, "width");
	BAD(randomize_width, NAN, "width");
	BAD(timeout, 0, "retry_timeout");
	BAD(timeout, -5, "retry_timeout");
	BAD(timeout, INFINITY, "retry_timeout");
	BAD(max_times, -2, "retry_max_times");

	GOOD(wait, 0.001);
	GOOD(exponential_backoff_base, 1.5);
	GOOD(max_interval, 0.5);	/* below wait: Fluentd allows it */
	GOOD(randomize_width, 0);
	GOOD(randomize_width, 0.5);
	GOOD(randomize, 0);
	GOOD(max_times, 0);
	GOOD(max_times, 17);
	GOOD(forever, 1);
	GOOD(timeout, 1);

	/* The base only matters for exponential backoff. */
	retry_conf_default(&c);
	c.type = RETRY_PERIODIC;
	c.exponential_backoff_base = 1;
	assert_int_equal(retry_conf_check(&c, NULL, 0), 0);
#undef BAD
#undef GOOD
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_default),
		cmocka_unit_test(test_default_schedule),
		cmocka_unit_test(test_default_schedule_jitter),
		cmocka_unit_test(test_periodic),
		cmocka_unit_test(test_max_interval),
		cmocka_unit_test(test_randomize_bounds),
		cmocka_unit_test(test_max_times_zero),
		cmocka_unit_test(test_max_times_n),
		cmocka_unit_test(test_forever),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_guard_near_timeout),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_conf_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
