#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

#define FEED_LOW	(64u << 10)	/* ask fill for more below this */
#define PIPE_SIZE	(1u << 20)	/* fewer wakeups for a big input */
#define LINE_MAX_LOG	512
#define ERR_STEP	(256u << 10)	/* stderr read per wakeup */
#define ERR_DRAIN	(4u << 20)	/* and once the command has exited */

struct child {
	struct ev_loop *loop;
	struct child_conf conf;
	child_fill_fn fill;
	child_line_fn line;
	child_done_fn done;
	void *arg;
	pid_t pid;
	int in, err;			/* our ends, or -1 */
	int fill_end, exited, status;
	struct buf out;			/* input not yet written */
	size_t outpos;
	struct child_result r;
	/* stderr: the tail is a ring of tail_max bytes */
	unsigned char *ring;
	size_t ringpos, ringlen;
	char lbuf[LINE_MAX_LOG];
	size_t llen;
	int lcut;			/* the current line was cut */
	ev_io in_w, err_w;
	ev_child child_w;
	ev_timer time_w;
	ev_tstamp start;
};

static unsigned running;

unsigned
child_running(void)
{
	return running;
}

/* ---- in the child, between fork and exec ---- */

static void
child_fatal(const char *what, const char *arg)
{
	char msg[512];
	int e = errno, n;

	/* strerrordesc_np: no locale, no allocation (we share the tool's
	 * memory until the exec) */
	n = snprintf(msg, sizeof msg, "cannot %s %s: %s\n", what, arg,
	    strerrordesc_np(e) ? strerrordesc_np(e) : "unknown error");
	if (n > 0)
		(void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n :
		    sizeof msg - 1);
	/* the shell's codes: 127 not found, 126 not runnable */
	_exit(e == ENOENT ? 127 : 126);
}

/* fd as descriptor to, open across the exec (dup2 of a descriptor onto
 * itself would leave its close-on-exec flag). */
static int
fd_to(int fd, int to)
{
	if (fd == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(fd, to);
}

static void
child_exec(pid_t parent, int in, int out, int err, char *const argv[],
    char *const envp[])
{
	sigset_t none;
	int sig;

	setpgid(0, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(111);	/* the tool is gone already */
	if (fd_to(in, 0) == -1 || fd_to(out, 1) == -1 || fd_to(err, 2) == -1)
		_exit(111);
	if (close_range(3, ~0u, 0) == -1)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);	/* fails harmlessly for KILL, STOP */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvpe(argv[0], argv, envp);
	child_fatal("run", argv[0]);
}

/* vfork, as posix_spawn does: a fork copies the page tables of the
 * tool (0.6 ms of a 2 ms run of true(1)), vfork shares them until the
 * exec.  Every signal is blocked around it, so that no handler of ours
 * runs in the child before child_exec has put them back to default. */
static pid_t
spawn(pid_t parent, int in, int out, int err, char *const argv[],
    char *const envp[])
{
	sigset_t all, old;
	pid_t pid;
	int e;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = vfork();
	if (pid == 0)
		child_exec(parent, in, out, err, argv, envp);
	e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

/* ---- the end ---- */

static void
tail_add(struct child *ch, const unsigned char *p, size_t n)
{
	size_t m = ch->conf.tail_max, k;

	if (m == 0)
		return;
	if (n > m) {
		p += n - m;
		n = m;
	}
	while (n > 0) {
		k = m - ch->ringpos < n ? m - ch->ringpos : n;
		memcpy(ch->ring + ch->ringpos, p, k);
		ch->ringpos = (ch->ringpos + k) % m;
		ch->ringlen = ch->ringlen + k > m ? m : ch->ringlen + k;
		p += k;
		n -= k;
	}
}

static void
line_add(struct child *ch, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			if (ch->line && (ch->llen > 0 || !ch->lcut))
				ch->line(ch->arg, ch->lbuf, ch->llen);
			ch->llen = 0;
			ch->lcut = 0;
		} else if (ch->llen < sizeof ch->lbuf) {
			ch->lbuf[ch->llen++] = (char)p[i];
		} else if (!ch->lcut) {
			if (ch->line)	/* a long line: its head, once */
				ch->line(ch->arg, ch->lbuf, ch->llen);
			ch->lcut = 1;
			ch->llen = 0;
		}
	}
}

/* Read what stderr holds now, up to max bytes (a grandchild that keeps
 * writing must not hold the loop); 0 at EOF or error (closed), 1 if
 * open. */
static int
err_read(struct child *ch, size_t max)
{
	unsigned char b[16384];
	size_t got = 0;
	ssize_t n;

	while (got < max) {
		n = read(ch->err, b, sizeof b);
		if (n > 0) {
			tail_add(ch, b, (size_t)n);
			line_add(ch, b, (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 1;
		ev_io_stop(ch->loop, &ch->err_w);
		close(ch->err);
		ch->err = -1;
		return 0;
	}
	return 1;
}

static void
in_close(struct child *ch)
{
	if (ch->in == -1)
		return;
	ev_io_stop(ch->loop, &ch->in_w);
	close(ch->in);
	ch->in = -1;
	buf_free(&ch->out);
	ch->outpos = 0;
}

static void
child_free(struct child *ch)
{
	in_close(ch);
	if (ch->err != -1) {
		ev_io_stop(ch->loop, &ch->err_w);
		close(ch->err);
	}
	ev_child_stop(ch->loop, &ch->child_w);
	ev_timer_stop(ch->loop, &ch->time_w);
	free(ch->ring);
	free(ch);
	running--;
}

static void
finish(struct child *ch)
{
	struct child_result *r = &ch->r;
	unsigned char *tail = NULL;
	size_t m = ch->conf.tail_max;

	if (ch->err != -1)	/* all it wrote before it exited is there */
		err_read(ch, ERR_DRAIN);
	if (ch->llen > 0 && ch->line)
		ch->line(ch->arg, ch->lbuf, ch->llen);
	if (ch->r.timed_out)	/* what is left of its group */
		kill(-ch->pid, SIGKILL);
	if (ch->ringlen > 0 && (tail = malloc(ch->ringlen)) != NULL) {
		/* unroll the ring: oldest byte first */
		size_t start = ch->ringlen < m ? 0 : ch->ringpos;
		size_t k = ch->ringlen - start;
		memcpy(tail, ch->ring + start, k);
		memcpy(tail + k, ch->ring, ch->ringlen - k);
	}
	r->tail = (const char *)tail;
	r->taillen = tail ? ch->ringlen : 0;
	r->exited = WIFEXITED(ch->status);
	r->code = r->exited ? WEXITSTATUS(ch->status) : -1;
	r->signo = WIFSIGNALED(ch->status) ? WTERMSIG(ch->status) : 0;
	r->elapsed = ev_now(ch->loop) - ch->start;
	ch->done(ch->arg, r);
	free(tail);
	child_free(ch);
}

/* ---- watchers ---- */

#define OWNER(w, field) \
	((struct child *)((char *)(w) - offsetof(struct child, field)))

static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *ch = OWNER(w, child_w);

	(void)loop, (void)revents;
	if (!WIFEXITED(w->rstatus) && !WIFSIGNALED(w->rstatus))
		return;		/* stopped or continued */
	ch->status = w->rstatus;
	finish(ch);
}

static void
err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	err_read(OWNER(w, err_w), ERR_STEP);
}

/* Fill the buffer if it ran low; 0 if there is something to write, 1
 * at the end of the input, -1 on error. */
static int
in_more(struct child *ch)
{
	int rc;

	if (ch->outpos > 0) {
		buf_consume(&ch->out, ch->outpos);
		ch->outpos = 0;
	}
	while (!ch->fill_end && ch->out.len < FEED_LOW) {
		if ((rc = ch->fill(ch->arg, &ch->out)) == -1) {
			ch->r.input_errno = errno ? errno : EIO;
			return -1;
		}
		if (rc == 0)
			ch->fill_end = 1;
	}
	return ch->out.len == 0 ? 1 : 0;
}

static void
in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *ch = OWNER(w, in_w);
	ssize_t n;
	int rc;

	(void)loop, (void)revents;
	for (;;) {
		if (ch->outpos == ch->out.len) {
			if ((rc = in_more(ch)) != 0) {
				ch->r.input_done = rc == 1;
				in_close(ch);	/* EOF for the command */
				return;
			}
		}
		n = write(ch->in, ch->out.p + ch->outpos,
		    ch->out.len - ch->outpos);
		if (n > 0) {
			ch->outpos += (size_t)n;
			ch->r.written += (uint64_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		/* EPIPE: it closed its input; its exit status will say */
		in_close(ch);
		return;
	}
}

static void
time_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *ch = OWNER(w, time_w);

	(void)revents;
	if (!ch->r.timed_out) {
		ch->r.timed_out = 1;
		kill(-ch->pid, SIGTERM);
		ev_timer_set(w, ch->conf.kill_grace > 0 ? ch->conf.kill_grace :
		    0.001, 0.);
		ev_timer_start(loop, w);
		return;
	}
	kill(-ch->pid, SIGKILL);
}

/* ---- starting ---- */

static int
pipes(int in[2], int err[2], int want_in)
{
	in[0] = in[1] = err[0] = err[1] = -1;
	if (pipe2(err, O_CLOEXEC) == -1)
		return -1;
	if (want_in && pipe2(in, O_CLOEXEC) == -1)
		return -1;
	if (fcntl(err[0], F_SETFL, O_NONBLOCK) == -1 ||
	    (want_in && fcntl(in[1], F_SETFL, O_NONBLOCK) == -1))
		return -1;
	if (want_in)	/* a hint: the default 64 KiB is fine too */
		(void)fcntl(in[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

static void
close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] != -1)
			close(p[i]);
}

struct child *
child_spawn(struct ev_loop *loop, const struct child_conf *c,
    char *const argv[], char *const envp[], child_fill_fn fill,
    child_line_fn line, child_done_fn done, void *arg)
{
	struct child *ch;
	int in[2], err[2], e;
	pid_t parent = getpid();

	if ((ch = calloc(1, sizeof *ch)) == NULL)
		return NULL;
	if (c->tail_max > 0 && (ch->ring = malloc(c->tail_max)) == NULL) {
		free(ch);
		return NULL;
	}
	if (pipes(in, err, fill != NULL) == -1)
		goto fail;
	if ((ch->pid = spawn(parent, fill ? in[0] : c->in_fd, c->out_fd,
	    err[1], argv, envp)) == -1)
		goto fail;
	setpgid(ch->pid, ch->pid);	/* as the child does: no race */
	running++;
	ch->loop = loop;
	ch->conf = *c;
	ch->fill = fill;
	ch->line = line;
	ch->done = done;
	ch->arg = arg;
	ch->r.pid = ch->pid;
	ch->start = ev_now(loop);
	ch->in = -1;
	ch->err = err[0];
	close(err[1]);
	ev_io_init(&ch->err_w, err_cb, ch->err, EV_READ);
	ev_io_start(loop, &ch->err_w);
	if (fill) {
		close(in[0]);
		ch->in = in[1];
		ev_io_init(&ch->in_w, in_cb, ch->in, EV_WRITE);
		ev_io_start(loop, &ch->in_w);
	}
	ev_child_init(&ch->child_w, child_cb, ch->pid, 0);
	ev_child_start(loop, &ch->child_w);
	ev_init(&ch->time_w, time_cb);
	if (c->timeout > 0) {
		ev_timer_set(&ch->time_w, c->timeout, 0.);
		ev_timer_start(loop, &ch->time_w);
	}
	return ch;
fail:
	e = errno;
	close_pair(in);
	close_pair(err);
	free(ch->ring);
	free(ch);
	errno = e;
	return NULL;
}

void
child_cancel(struct child *ch)
{
	if (ch == NULL)
		return;
	kill(-ch->pid, SIGKILL);
	child_free(ch);
}
