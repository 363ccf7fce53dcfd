/* sig: the one signal convention of every long-running lf tool (lf(7)).
 *
 *   SIGTERM, SIGINT   stop gracefully: finish or hand back the work in
 *                     flight, make what was acknowledged durable, exit
 *   SIGHUP            reopen the log file (--log), for logrotate
 *   SIGUSR1           do the waiting work now: seal and flush, retry a
 *                     pending delivery without waiting for the backoff
 *   SIGPIPE           ignored: a write to a closed peer fails with EPIPE
 *
 * The libraries install no signal watchers of their own; they offer the
 * calls (consume_stop, consume_kick, ...) and the tool's main ties them
 * to the signals here, in its one loop:
 *
 *	static const struct sig_actions acts = { stop_cb, now_cb, NULL };
 *	struct sig sig;
 *	sig_start(&sig, loop, &acts, ctx);
 *	ev_run(loop, 0);
 *	sig_stop(&sig);
 *
 * A callback may run more than once (a second SIGTERM during the
 * shutdown): stop must be idempotent. */
#ifndef LF_SIG_H
#define LF_SIG_H

#include <ev.h>

struct sig_actions {
	void (*stop)(void *ctx);	/* SIGTERM, SIGINT */
	void (*now)(void *ctx);		/* SIGUSR1; NULL: nothing to hurry */
	void (*reopen)(void *ctx);	/* SIGHUP; NULL: log_reopen() */
};

struct sig {
	struct ev_loop *loop;
	const struct sig_actions *act;
	void *ctx;
	ev_signal w[4];
};

/* Ignore SIGPIPE and watch the four signals in loop.  act and ctx must
 * outlive s.  The watchers keep ev_run going, as a daemon waits for its
 * signal: the tool ends its loop with ev_break (consume does), or
 * sig_stop first. */
void sig_start(struct sig *s, struct ev_loop *loop,
    const struct sig_actions *act, void *ctx);
void sig_stop(struct sig *s);

#endif
