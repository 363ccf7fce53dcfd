#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIBBSD_NETBSD_VIS	/* quiets <bsd/vis.h>; strnvisx is the same in both */
#include <bsd/string.h>
#include <bsd/vis.h>

#include "log.h"

const char *log_prog = "lf";
int log_verbose;
static char *log_path;

void
log_init(const char *prog)
{
	const char *s = strrchr(prog, '/');

	log_prog = s ? s + 1 : prog;
}

int
log_open(const char *path)
{
	free(log_path);
	if ((log_path = strdup(path)) == NULL)
		return -1;
	return log_reopen();
}

int
log_reopen(void)
{
	int fd;

	if (log_path == NULL)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (fd != STDERR_FILENO) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	return 0;
}

/* One write(2) per line, so lines of concurrent processes do not interleave. */
static void
log_emit(const char *level, const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;
	int saved = errno;

	n = snprintf(line, sizeof line, "%s: %s: ", log_prog, level);
	m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
	errno = saved;
}

void
log_fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal", fmt, ap);
	va_end(ap);
	exit(code);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("error", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("warn", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	log_emit("info", fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_verbose < 2)
		return;
	va_start(ap, fmt);
	log_emit("debug", fmt, ap);
	va_end(ap);
}

static struct log_limit *log_limits;

void
log_limit_summary(void)
{
	for (struct log_limit *l = log_limits; l; l = l->next) {
		if (l->held)
			log_warn("%lu similar warnings suppressed (\"%s\")",
			    l->held, l->fmt);
		l->held = 0;
	}
}

void
log_warn_limited(struct log_limit *l, const char *fmt, ...)
{
	va_list ap;
	time_t now = time(NULL);

	if (now != l->window) {
		if (l->held)
			log_warn("%lu similar warnings suppressed", l->held);
		l->window = now;
		l->n = 0;
		l->held = 0;
	}
	if (l->n >= LOG_BURST) {
		if (!l->listed) {
			l->listed = 1;
			l->next = log_limits;
			log_limits = l;
		}
		l->fmt = fmt;
		l->held++;
		return;
	}
	l->n++;
	va_start(ap, fmt);
	log_emit("warn", fmt, ap);
	va_end(ap);
}

int
log_nth(unsigned long c)
{
	return c < 512 ? c != 0 && (c & (c - 1)) == 0 : c % 512 == 0;
}

void
log_tag(char *out, const char *tag, size_t len)
{
	size_t n = len < 64 ? len : 64;

	if (strnvisx(out, LOG_TAG_MAX - 3, tag, n,
	    VIS_CSTYLE | VIS_OCTAL | VIS_WHITE | VIS_DQ) == -1)
		snprintf(out, LOG_TAG_MAX, "?");
	else if (len > 64)
		strlcat(out, "...", LOG_TAG_MAX);
}
