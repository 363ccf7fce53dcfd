/* report: what a tool tells an operator about itself, as files replaced
 * whole (a temporary file beside the target, then rename), so a reader
 * never sees half a report.  A report is not a record: a failure to write
 * one is logged (limited) and changes nothing else.
 *
 * The JSON state file (--state-file) is built with yajl through the
 * helpers below; lib/metrics builds the Prometheus text. */
#ifndef LF_REPORT_H
#define LF_REPORT_H

#include <stddef.h>
#include <yajl/yajl_gen.h>

/* A JSON object opened with "pid" and "time" (unix seconds, ms), or NULL. */
yajl_gen report_new(void);
void report_str(yajl_gen g, const char *s);	/* a key, or a string value */
void report_int(yajl_gen g, const char *key, unsigned long long v);
void report_num(yajl_gen g, const char *key, double v);	/* "%.3f" */
void report_strn(yajl_gen g, const char *key, const char *v); /* null if "" */
/* "cpu_seconds" and "max_rss_kb" of this process. */
void report_rusage(yajl_gen g);
/* Closes the object, replaces path with it and a newline, frees g. */
void report_write(yajl_gen g, const char *path);

/* Replace path with p[0..n) through path.tmp.PID; with sync, the data is
 * fsync'd before the rename (a textfile collector may read it after a
 * crash).  0, or -1 with errno (nothing logged). */
int report_replace(const char *path, const void *p, size_t n, int sync);

/* This process: user + system CPU seconds, and its peak RSS in bytes
 * (VmHWM: ru_maxrss would keep the peak of whatever ran before exec). */
double report_cpu_seconds(void);
unsigned long long report_peak_rss(void);

#endif
