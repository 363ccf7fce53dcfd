/* Parser throughput (lib/parse): N ~150-byte lines per format, written
 * into memory first, then parsed one by one into a record buffer that
 * is reset per line, as lf-tail does.  One line per format: lines/s and
 * MB/s of one core's CPU time.  Times advance one second per 1000 lines, so the time
 * parsers see a realistic mix of repeated and new values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parse.h"

/* CPU time, not wall time: the figure is one core's, and a shared
 * machine's other load would otherwise be counted in it. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
	"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static void
line(struct buf *b, const char *fmt, unsigned i)
{
	time_t t = 1764000000 + i / 1000;
	struct tm tm;
	char ts[64];
	unsigned a = i % 250, c = i % 200, sz = 1000 + i % 9000;

	gmtime_r(&t, &tm);
	if (strcmp(fmt, "json") == 0) {
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
		buf_printf(b, "{\"host\":\"192.168.%u.%u\",\"user\":\"-\","
		    "\"method\":\"GET\",\"path\":\"/item/%08u\",\"code\":200,"
		    "\"size\":%u,\"agent\":\"Mozilla/5.0\",\"time\":\"%s\"}\n",
		    a, c, i, sz, ts);
	} else if (strcmp(fmt, "apache2") == 0) {
		snprintf(ts, sizeof ts, "%02d/%s/%04d:%02d:%02d:%02d +0000",
		    tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		buf_printf(b, "192.168.%u.%u - - [%s] \"GET /item/%08u "
		    "HTTP/1.1\" 200 %u \"https://example.com/\" "
		    "\"Mozilla/5.0 (X11; Linux)\"\n", a, c, ts, i, sz);
	} else {
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
		buf_printf(b, "time:%s\thost:192.168.%u.%u\tuser:-\t"
		    "method:GET\tpath:/item/%08u\tcode:200\tsize:%u\t"
		    "referer:-\tagent:Mozilla/5.0\n", ts, a, c, i, sz);
	}
}

static void
run(const char *name, const char *fmt, const char *const *opts, unsigned n)
{
	struct buf text = BUF_INIT, rec = BUF_INIT;
	struct parse_conf c;
	struct parser *p;
	const struct option *o;
	const char *s, *e, *end;
	char err[256];
	uint32_t sec, nsec;
	unsigned i, bad = 0;
	double t0, dt;
	int rc;

	for (i = 0; i < n; i++)
		line(&text, fmt, i);
	parse_conf_default(&c);
	for (; opts[0] != NULL; opts += 2) {
		for (o = parse_options; o->name != NULL; o++)
			if (strcmp(o->name, opts[0]) == 0)
				break;
		if (o->name == NULL || parse_option(&c, o->val, opts[1], err,
		    sizeof err) != 0) {
			fprintf(stderr, "bench_parse: --%s: %s\n", opts[0], err);
			exit(1);
		}
	}
	if ((p = parse_new(&c, err, sizeof err)) == NULL) {
		fprintf(stderr, "bench_parse: %s\n", err);
		exit(1);
	}
	s = (const char *)text.p;
	end = s + text.len;
	t0 = now();
	for (; s < end; s = e + 1) {
		e = memchr(s, '\n', (size_t)(end - s));
		rec.len = 0;
		rc = parse_line(p, s, (size_t)(e - s), &rec, &sec, &nsec, err,
		    sizeof err);
		bad += rc == PARSE_ERR;
	}
	dt = now() - t0;
	printf("parse %-8s %9.0f lines/s %7.1f MB/s  (%u lines, %zu bytes "
	    "each, %u errors)\n", name, n / dt, text.len / dt / 1e6, n,
	    text.len / n, bad);
	parse_free(p);
	buf_free(&text);
	buf_free(&rec);
}

int
main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
	static const char *const none[] = { "format", "none", NULL };
	static const char *const ltsv[] = { "format", "ltsv", "time-format",
	    "%Y-%m-%dT%H:%M:%S%z", NULL };
	static const char *const json[] = { "format", "json", "time-format",
	    "%Y-%m-%dT%H:%M:%S%z", NULL };
	static const char *const apache[] = { "format", "apache2", NULL };

	const char *only = argc > 2 ? argv[2] : NULL;	/* one format */

#define RUN(nm, f, o) if (only == NULL || strcmp(only, nm) == 0) run(nm, f, o, n)
	RUN("none", "ltsv", none);
	RUN("ltsv", "ltsv", ltsv);
	RUN("json", "json", json);
	RUN("apache2", "apache2", apache);
	return 0;
}
