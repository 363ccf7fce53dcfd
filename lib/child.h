/* child: a command run from the one libev loop, never blocking it.
 *
 * child_spawn starts argv with vfork and execvpe (a PATH search, no
 * shell) in a process group of its own, with
 *   stdin   a pipe that the loop feeds, non-blocking on our side, from
 *           the fill callback, a piece at a time (memory stays bounded
 *           by what one fill adds; a command that never reads its input
 *           stalls only itself, until its timeout); or a given fd;
 *   stdout  a given fd (our stderr, /dev/null ...);
 *   stderr  a pipe: the last tail_max bytes are kept for the result,
 *           and each line is handed to the line callback (for a log);
 *   no other descriptor of ours, every signal at its default and none
 *   blocked (the loop blocks some, and SIGPIPE is ignored: an exec
 *   would keep both), and PR_SET_PDEATHSIG SIGKILL, so that a command
 *   does not outlive a tool killed with -9 (its chunk is run again).
 *
 * At timeout the whole group gets SIGTERM, and SIGKILL kill_grace later
 * if the command has not exited; once the command has exited after a
 * timeout, whatever is left of its group gets SIGKILL at once.
 *
 * done is called once, from the loop, when the command has exited (its
 * stderr read up to that point: what a grandchild that keeps the pipe
 * open writes later is not waited for).  A command that exits without
 * reading all of its input is not an error here: its exit status is the
 * answer (qmail's rule); the result says how much it took. */
#ifndef LF_CHILD_H
#define LF_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "buf.h"

struct child_conf {
	double timeout;		/* seconds until SIGTERM; 0: none */
	double kill_grace;	/* seconds from SIGTERM to SIGKILL */
	size_t tail_max;	/* bytes of stderr kept */
	int out_fd;		/* the command's stdout */
	int in_fd;		/* its stdin if there is no fill callback */
};

struct child_result {
	pid_t pid;
	int exited, code;	/* exited with code */
	int signo;		/* or killed by signo */
	int timed_out;		/* it ran into the timeout */
	int input_errno;	/* fill failed (errno), input cut short */
	int input_done;		/* all input written and the pipe closed */
	uint64_t written;	/* bytes of input the command took */
	const char *tail;	/* the last bytes of its stderr */
	size_t taillen;
	double elapsed;		/* seconds */
};

/* Append the next input to out: 1 if more may follow, 0 at the end (out
 * may hold a last piece), -1 with errno on failure (the input is cut
 * short: the pipe is closed, and the command's exit decides). */
typedef int (*child_fill_fn)(void *arg, struct buf *out);
/* A line of the command's stderr, without its newline, cut at 512. */
typedef void (*child_line_fn)(void *arg, const char *line, size_t n);
typedef void (*child_done_fn)(void *arg, const struct child_result *r);

struct child;

/* Start argv with the environment envp (both copied by the fork, free
 * them on return); fill and line may be NULL.  The child, or NULL with
 * errno if pipes or fork failed (nothing was started). */
struct child *child_spawn(struct ev_loop *loop, const struct child_conf *c,
    char *const argv[], char *const envp[], child_fill_fn fill,
    child_line_fn line, child_done_fn done, void *arg);

/* Forget a child whose done has not been called: its group gets SIGKILL,
 * and done never comes.  (Its zombie is left for init, at our exit.) */
void child_cancel(struct child *ch);

/* Children spawned and not yet done. */
unsigned child_running(void);

#endif
