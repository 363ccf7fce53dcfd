#include <errno.h>
#include <signal.h>
#include <string.h>

#include "log.h"
#include "sig.h"

static const int signums[4] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };

static void
sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct sig *s = w->data;

	(void)loop, (void)revents;
	switch (w->signum) {
	case SIGHUP:
		if (s->act->reopen != NULL)
			s->act->reopen(s->ctx);
		else if (log_reopen() == -1)
			log_warn("SIGHUP: cannot reopen the log: %s",
			    strerror(errno));
		break;
	case SIGUSR1:
		log_info("SIGUSR1: now");
		if (s->act->now != NULL)
			s->act->now(s->ctx);
		break;
	default:
		log_info("%s: stopping", w->signum == SIGINT ? "SIGINT" :
		    "SIGTERM");
		s->act->stop(s->ctx);
		break;
	}
}

void
sig_start(struct sig *s, struct ev_loop *loop, const struct sig_actions *act,
    void *ctx)
{
	signal(SIGPIPE, SIG_IGN);
	s->loop = loop;
	s->act = act;
	s->ctx = ctx;
	for (int i = 0; i < 4; i++) {
		ev_signal_init(&s->w[i], sig_cb, signums[i]);
		s->w[i].data = s;
		ev_signal_start(loop, &s->w[i]);
	}
}

void
sig_stop(struct sig *s)
{
	for (int i = 0; i < 4; i++)
		ev_signal_stop(s->loop, &s->w[i]);
}
