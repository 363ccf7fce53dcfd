/* Unit tests for lib/phi: Fluentd's phi accrual failure detector, its
 * formula checked against values worked by hand from out_forward's Ruby. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "phi.h"

static struct phi p;

/* Regular 1 s beats: mean 1, so phi = (seconds since the last) / ln 10;
 * Fluentd's threshold 16 is crossed after 16 ln 10 = 36.84 s. */
static void
test_regular_beats(void **state)
{
	double now = 1000;
	int i;

	(void)state;
	phi_init(&p, 1, now);
	for (i = 0; i < 20; i++)
		phi_add(&p, now += 1);
	assert_true(fabs(phi_value(&p, now + 1) - 1 / log(10)) < 1e-9);
	assert_true(phi_value(&p, now + 36.8) < 16);
	assert_true(phi_value(&p, now + 36.9) > 16);
}

/* The mean is weighted, newest most, with integer microseconds:
 * gaps 1 s, 3 s (interval 1): (1e6*1 + 3e6*2) / 3 = 2333333 us, so mean
 * = 2.333333 - 1 + 1 and phi(t = 2 s after) = 2 / (2.333333 ln 10). */
static void
test_weighted_mean(void **state)
{
	(void)state;
	phi_init(&p, 1, 0);
	phi_add(&p, 3);
	assert_int_equal(phi_samples(&p), 2);
	assert_true(fabs(phi_value(&p, 5) - 2 / (2.333333 * log(10))) < 1e-9);
}

/* After a clear the window is empty; the next beat adds the initial gap,
 * not the time since the last beat. */
static void
test_clear(void **state)
{
	(void)state;
	phi_init(&p, 0.5, 0);
	phi_add(&p, 0.5);
	phi_clear(&p);
	assert_int_equal(phi_samples(&p), 0);
	phi_add(&p, 100);
	assert_int_equal(phi_samples(&p), 1);
	/* mean = 0.5 - 0.5 + 1 = 1; t = 1 - 0.5 + 1 */
	assert_true(fabs(phi_value(&p, 101) - 1.5 / log(10)) < 1e-9);
}

/* The window keeps the last PHI_WINDOW gaps. */
static void
test_window_bound(void **state)
{
	double now = 0;
	int i;

	(void)state;
	phi_init(&p, 1, now);
	for (i = 0; i < PHI_WINDOW + 50; i++)
		phi_add(&p, now += 2);
	assert_int_equal(phi_samples(&p), PHI_WINDOW);
	/* every gap is 2 s now: mean = 2 - 1 + 1 */
	assert_true(fabs(phi_value(&p, now + 1) - 1 / (2 * log(10))) < 1e-9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regular_beats),
		cmocka_unit_test(test_weighted_mean),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_window_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
