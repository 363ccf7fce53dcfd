/* log: one line per message on stderr, "lf-cat: warn: ...".
 * stdout carries data only, so nothing here ever writes to it. */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <time.h>

extern const char *log_prog;
extern int log_verbose;		/* -v count */

void log_init(const char *prog);
int log_open(const char *path);	/* send stderr to path (append) */
int log_reopen(void);		/* SIGHUP: reopen the path given to log_open */

void log_fatal(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A warning that bad input can repeat millions of times is rate-limited per
 * call site: LOG_BURST lines per second, then a count of what was held back. */
#define LOG_BURST 10
struct log_limit {
	time_t window;
	unsigned n;
	unsigned long held;
	const char *fmt;		/* the first one held back, for the summary */
	struct log_limit *next;		/* every limit that ever held one back */
	int listed;
};
void log_warn_limited(struct log_limit *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* At exit: one line per call site that still holds warnings back, so no
 * count is lost. */
void log_limit_summary(void);
/* Fluentd's schedule for a line that repeats for ever ("no patterns
 * matched"): the 1st, 2nd, 4th ... 256th time, then every 512th. */
int log_nth(unsigned long count);
/* A peer's bytes (a tag) fit for a log line: vis(3) C-style, at most 64
 * of them, "..." after a longer one.  out: LOG_TAG_MAX bytes. */
#define LOG_TAG_MAX (4 * 64 + 4)
void log_tag(char *out, const char *tag, size_t len);

#define LOG_WARN_LIMITED(...) do {			\
	static struct log_limit log_limit_;		\
	log_warn_limited(&log_limit_, __VA_ARGS__);	\
} while (0)

#endif
