/* Unit tests for lib/sig, the signal convention of lf(7): each signal
 * reaches its callback in the loop, a missing one is harmless, and
 * sig_stop leaves the loop with nothing to wait for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>

#include <cmocka.h>

#include "sig.h"

struct seen {
	int stop, now, reopen;
};

static void on_stop(void *ctx) { ((struct seen *)ctx)->stop++; }
static void on_now(void *ctx) { ((struct seen *)ctx)->now++; }
static void on_reopen(void *ctx) { ((struct seen *)ctx)->reopen++; }

/* Deliver signum and give the loop the turns its watcher needs. */
static void
deliver(struct ev_loop *loop, int signum)
{
	raise(signum);
	ev_run(loop, EVRUN_NOWAIT);
	ev_run(loop, EVRUN_NOWAIT);
}

static void
test_each_signal(void **state)
{
	static const struct sig_actions act = { on_stop, on_now, on_reopen };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct seen seen = { 0, 0, 0 };
	struct sig s;

	(void)state;
	sig_start(&s, loop, &act, &seen);
	deliver(loop, SIGUSR1);
	assert_int_equal(seen.now, 1);
	deliver(loop, SIGHUP);
	assert_int_equal(seen.reopen, 1);
	deliver(loop, SIGTERM);
	deliver(loop, SIGINT);
	assert_int_equal(seen.stop, 2);
	assert_int_equal(seen.now, 1);
	/* SIGPIPE is ignored: raising it does not end the test */
	raise(SIGPIPE);
	sig_stop(&s);
	/* nothing left to watch: ev_run returns at once */
	ev_run(loop, 0);
	ev_loop_destroy(loop);
}

static void
test_defaults(void **state)
{
	static const struct sig_actions act = { on_stop, NULL, NULL };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct seen seen = { 0, 0, 0 };
	struct sig s;

	(void)state;
	sig_start(&s, loop, &act, &seen);
	deliver(loop, SIGUSR1);		/* nothing to hurry */
	deliver(loop, SIGHUP);		/* log_reopen() with no log: fine */
	assert_int_equal(seen.stop + seen.now + seen.reopen, 0);
	sig_stop(&s);
	sig_stop(&s);			/* twice is harmless */
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_signal),
		cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
