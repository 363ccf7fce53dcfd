/* report: operator-facing files replaced whole.  See report.h. */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "io.h"
#include "log.h"
#include "report.h"

void
report_str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void
report_int(yajl_gen g, const char *key, unsigned long long v)
{
	report_str(g, key);
	yajl_gen_integer(g, (long long)v);
}

void
report_num(yajl_gen g, const char *key, double v)
{
	char b[64];
	int n = snprintf(b, sizeof b, "%.3f", v);

	report_str(g, key);
	yajl_gen_number(g, b, (size_t)n);
}

void
report_strn(yajl_gen g, const char *key, const char *v)
{
	report_str(g, key);
	if (v != NULL && v[0])
		report_str(g, v);
	else
		yajl_gen_null(g);
}

yajl_gen
report_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g == NULL)
		return NULL;
	yajl_gen_map_open(g);
	report_int(g, "pid", (unsigned long long)getpid());
	report_num(g, "time", ev_time());
	return g;
}

double
report_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

unsigned long long
report_peak_rss(void)
{
	char line[128];
	unsigned long long kb = 0;
	struct rusage ru;
	FILE *f;

	if ((f = fopen("/proc/self/status", "re")) != NULL) {
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
				break;
		fclose(f);
	}
	if (kb == 0 && getrusage(RUSAGE_SELF, &ru) == 0)
		kb = (unsigned long long)ru.ru_maxrss;
	return kb * 1024;
}

void
report_rusage(yajl_gen g)
{
	report_num(g, "cpu_seconds", report_cpu_seconds());
	report_int(g, "max_rss_kb", report_peak_rss() / 1024);
}

/* Write iov to path.tmp.PID, sync it if asked, rename it onto path. */
static int
replace_iov(const char *path, struct iovec *iov, int iovcnt, int sync)
{
	char tmp[PATH_MAX];
	int fd, e;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path,
	    (long)getpid()) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd == -1)
		return -1;
	/* readable by a collector running as another user, whatever the
	 * umask (a report holds no secret) */
	if (fchmod(fd, 0644) == -1 || io_writev_all(fd, iov, iovcnt) == -1 ||
	    (sync && fsync(fd) == -1)) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

int
report_replace(const char *path, const void *p, size_t n, int sync)
{
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return replace_iov(path, &iov, 1, sync);
}

void
report_write(yajl_gen g, const char *path)
{
	const unsigned char *out;
	struct iovec iov[2];
	size_t len;

	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &out, &len);
	iov[0] = (struct iovec){ (void *)(uintptr_t)out, len };
	iov[1] = (struct iovec){ "\n", 1 };
	if (replace_iov(path, iov, 2, 0) == -1)
		LOG_WARN_LIMITED("%s: cannot write the state: %s", path,
		    strerror(errno));
	yajl_gen_free(g);
}
