/* Unit tests for lib/metrics, the Prometheus text of --metrics-file:
 * escaping, the order of families, NaN and infinities, the name label,
 * the replace by rename, the spool gauges of a real spool, and the
 * periodic writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "metrics.h"
#include "spool.h"

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/lf-test-metrics.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The text so far, NUL-terminated (a copy the caller frees). */
static char *
text(struct metrics *m)
{
	size_t len;
	const char *t = metrics_text(m, &len);

	assert_non_null(t);
	return strndup(t, len);
}

static char *
slurp(const char *path)
{
	char *p = NULL;
	size_t n = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_true(getdelim(&p, &n, '\0', f) > 0);
	fclose(f);
	return p;
}

static void
test_escaping(void **state)
{
	struct metrics *m = metrics_new("/x/esc.prom", "lf-\"t\\");
	char *t;

	(void)state;
	assert_non_null(m);
	metrics_reset(m);
	metrics_family(m, "lf_x_total", "counter",
	    "back\\slash, new\nline and \"quotes\"");
	metrics_u64(m, 7, "path", "/a \"b\"\\c\nd", (char *)NULL);
	metrics_u64(m, 18446744073709551615ull, "path", "", (char *)NULL);
	t = text(m);
	/* HELP: \ and newline escaped, a quote not (exposition 0.0.4) */
	assert_string_equal(t,
	    "# HELP lf_x_total back\\\\slash, new\\nline and \"quotes\"\n"
	    "# TYPE lf_x_total counter\n"
	    "lf_x_total{name=\"esc\",tool=\"lf-\\\"t\\\\\","
	    "path=\"/a \\\"b\\\"\\\\c\\nd\"} 7\n"
	    "lf_x_total{name=\"esc\",tool=\"lf-\\\"t\\\\\",path=\"\"} "
	    "18446744073709551615\n");
	free(t);
	metrics_free(m);
}

static void
test_numbers(void **state)
{
	struct metrics *m = metrics_new("n.prom", "lf-test");
	char *t;

	(void)state;
	assert_non_null(m);
	metrics_reset(m);
	metrics_family(m, "lf_g", "gauge", "g");
	metrics_num(m, NAN, (char *)NULL);
	metrics_num(m, INFINITY, "k", "p", (char *)NULL);
	metrics_num(m, -INFINITY, "k", "n", (char *)NULL);
	metrics_num(m, 0.1, "k", "f", (char *)NULL);
	metrics_num(m, 1796120086, "k", "i", (char *)NULL);
	t = text(m);
	assert_string_equal(t, "# HELP lf_g g\n# TYPE lf_g gauge\n"
	    "lf_g{name=\"n\",tool=\"lf-test\"} NaN\n"
	    "lf_g{name=\"n\",tool=\"lf-test\",k=\"p\"} +Inf\n"
	    "lf_g{name=\"n\",tool=\"lf-test\",k=\"n\"} -Inf\n"
	    "lf_g{name=\"n\",tool=\"lf-test\",k=\"f\"} 0.10000000000000001\n"
	    "lf_g{name=\"n\",tool=\"lf-test\",k=\"i\"} 1796120086\n");
	/* the value read back is the one given */
	assert_true(strtod(strstr(t, "k=\"f\"} ") + 7, NULL) == 0.1);
	free(t);
	metrics_free(m);
}

/* The families in the order written, each HELP then TYPE then samples. */
static void
test_order(void **state)
{
	static const char *const fams[] = { "lf_build_info",
	    "lf_start_time_seconds", "lf_cpu_seconds_total",
	    "lf_max_rss_bytes", "lf_output_events_total",
	    "lf_output_dead_events_total", "fluentbit_output_proc_records_total",
	    "lf_last_event_time_seconds", "lf_mine_total" };
	struct metrics_io io = { .output = 1, .type = "file",
	    .out_events = 5, .dead_events = 2 };
	struct metrics *m = metrics_new("o.prom", "lf-test");
	char *t, *p, help[128];

	(void)state;
	assert_non_null(m);
	metrics_begin(m);
	metrics_put_io(m, &io);
	metrics_one_u64(m, "lf_mine_total", "counter", "mine", 3);
	t = text(m);
	p = t;
	for (size_t i = 0; i < sizeof fams / sizeof *fams; i++) {
		snprintf(help, sizeof help, "# HELP %s ", fams[i]);
		assert_non_null(p = strstr(p, help));
		assert_null(strstr(p + 1, help));	/* once */
	}
	assert_non_null(strstr(t, "lf_output_events_total{name=\"o\","
	    "tool=\"lf-test\"} 5\n"));
	assert_non_null(strstr(t, "fluentbit_output_dropped_records_total{"
	    "name=\"o\",tool=\"lf-test\"} 2\n"));
	assert_non_null(strstr(t, "lf_build_info{name=\"o\",tool=\"lf-test\","
	    "version=\"" LF_VERSION "\"} 1\n"));
	/* an output only: no input family */
	assert_null(strstr(t, "lf_input_"));
	assert_null(strstr(t, "fluentbit_input_"));
	free(t);
	metrics_free(m);
}

static void
name_is(const char *path, const char *want)
{
	struct metrics *m = metrics_new(path, "t");
	char *t, expect[128];

	assert_non_null(m);
	metrics_reset(m);
	metrics_one_u64(m, "a", "gauge", "h", 1);
	t = text(m);
	snprintf(expect, sizeof expect, "a{name=\"%s\",tool=\"t\"} 1\n", want);
	if (strstr(t, expect) == NULL)
		fail_msg("%s: got %s", path, t);
	free(t);
	metrics_free(m);
}

static void
test_name(void **state)
{
	(void)state;
	name_is("/var/lib/node_exporter/agg-td.prom", "agg-td");
	name_is("agg.prom", "agg");
	name_is("/a/b/plain", "plain");
	name_is("/a/b.prom.txt", "b.prom.txt");
	name_is("/a/.prom", ".prom");		/* not an empty name */
	name_is("/var/spool/lf/td/", "td");	/* a folder (lf-spool) */
	name_is("/var/spool/lf/td//", "td");
	name_is("/", "/");
}

static void
test_commit(void **state)
{
	struct fixture *f = *state;
	char path[128], *got, *want;
	struct metrics *m;
	struct dirent *e;
	struct stat st;
	mode_t old;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "%s/c.prom", f->dir);
	assert_non_null(m = metrics_new(path, "lf-test"));
	old = umask(077);	/* a collector of another user reads it */
	metrics_begin(m);
	metrics_one_u64(m, "lf_one", "gauge", "one", 1);
	assert_int_equal(metrics_commit(m), 0);
	metrics_one_u64(m, "lf_two", "gauge", "two", 2);
	assert_int_equal(metrics_commit(m), 0);		/* replaced */
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	got = slurp(path);
	want = text(m);
	assert_string_equal(got, want);
	assert_non_null(strstr(got, "lf_two{"));
	free(got);
	free(want);
	/* nothing beside it: the temporary file was renamed */
	assert_non_null(d = opendir(f->dir));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			assert_string_equal(e->d_name, "c.prom");
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
	metrics_free(m);
	/* a folder that is not there: -1, and nothing written */
	snprintf(path, sizeof path, "%s/no/c.prom", f->dir);
	assert_non_null(m = metrics_new(path, "lf-test"));
	metrics_begin(m);
	assert_int_equal(metrics_commit(m), -1);
	assert_int_equal(access(path, F_OK), -1);
	metrics_free(m);
}

static void
put(int dirfd, const char *name, size_t size)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);

	assert_true(fd != -1);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void
ready(const struct spool *s, int dirfd, uint64_t seal_us, unsigned char b,
    size_t size)
{
	unsigned char id[16];
	char name[SPOOL_NAMELEN];

	memset(id, b, sizeof id);
	spool_ready_name(name, seal_us, id);
	(void)s;
	put(dirfd, name, size);
}

static void
test_spool(void **state)
{
	struct fixture *f = *state;
	struct metrics_io io = { .output = 1, .type = "mysql_bulk",
	    .out_errors = 4, .out_events = 9 };
	struct metrics_spool ms;
	struct metrics *m;
	struct spool s;
	char path[128], err[256], *t, line[256];
	uint64_t now = spool_now_us();

	snprintf(path, sizeof path, "%s/sp", f->dir);
	assert_int_equal(spool_open(&s, path, 1, err, sizeof err), 0);
	assert_int_equal(metrics_spool_read(&s, &ms, err, sizeof err), 0);
	assert_true(ms.ready_chunks == 0 && ms.oldest_age == 0);
	ready(&s, s.new, now - 100000000, 1, 1000);	/* 100 s old */
	ready(&s, s.new, now - 10000000, 2, 24);
	put(s.new, "not-a-chunk", 5000);		/* not counted */
	put(s.tmp, "0123456789abcdef0123456789abcdef.chunk", 300);
	ready(&s, s.dead, now - 900000000, 3, 77);	/* not the oldest */
	assert_int_equal(metrics_spool_read(&s, &ms, err, sizeof err), 0);
	assert_int_equal(ms.ready_chunks, 2);
	assert_int_equal(ms.ready_bytes, 1024);
	assert_int_equal(ms.staged_chunks, 1);
	assert_int_equal(ms.staged_bytes, 300);
	assert_int_equal(ms.dead_chunks, 1);
	assert_true(ms.oldest_age >= 99.5 && ms.oldest_age < 130);
	assert_string_equal(ms.path, path);

	assert_non_null(m = metrics_new("/x/sp-m.prom", "lf-test"));
	metrics_reset(m);
	metrics_put_spools(m, &ms, 1, &io);
	t = text(m);
	snprintf(line, sizeof line, "lf_spool_queue_bytes{name=\"sp-m\","
	    "tool=\"lf-test\",spool=\"%s\"} 1024\n", path);
	assert_non_null(strstr(t, line));
	assert_non_null(strstr(t, "fluentd_output_status_buffer_total_bytes{"
	    "name=\"sp-m\",tool=\"lf-test\",plugin_id=\"sp-m\","
	    "type=\"mysql_bulk\"} 1324\n"));
	assert_non_null(strstr(t, "fluentd_output_status_retry_count{"
	    "name=\"sp-m\",tool=\"lf-test\",plugin_id=\"sp-m\","
	    "type=\"mysql_bulk\"} 4\n"));
	free(t);
	/* lf-spool's: each spool under its own name, no Fluentd family */
	ms.name = path;
	metrics_reset(m);
	metrics_put_spools(m, &ms, 1, NULL);
	t = text(m);
	snprintf(line, sizeof line, "lf_spool_dead_chunks{name=\"sp\","
	    "tool=\"lf-test\",spool=\"%s\"} 1\n", path);
	if (strstr(t, line) == NULL)
		fail_msg("%s", t);
	assert_null(strstr(t, "fluentd_"));
	free(t);
	metrics_free(m);

	/* a folder that cannot be listed: -1 with the reason */
	close(s.tmp);
	s.tmp = open("/dev/null", O_RDONLY);
	assert_int_equal(metrics_spool_read(&s, &ms, err, sizeof err), -1);
	assert_non_null(strstr(err, "/tmp: "));
	spool_close(&s);
}

static int fills;

static void
fill(void *ctx, struct metrics *m)
{
	fills++;
	metrics_one_u64(m, "lf_fills", "counter", ctx, (uint64_t)fills);
}

static void
test_writer(void **state)
{
	struct fixture *f = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct metrics_writer mw;
	char path[128], *got;

	snprintf(path, sizeof path, "%s/w.prom", f->dir);
	/* none without a file */
	memset(&mw, 0, sizeof mw);
	metrics_writer_write(&mw);
	metrics_writer_stop(&mw);
	assert_int_equal(metrics_writer_start(&mw, loop, path, "lf-test",
	    3600, fill, "the help"), 0);
	/* it does not keep the loop: ev_run returns at once, written */
	ev_run(loop, 0);
	assert_int_equal(fills, 1);
	got = slurp(path);
	assert_non_null(strstr(got, "lf_fills{name=\"w\",tool=\"lf-test\"} 1\n"));
	free(got);
	metrics_writer_write(&mw);
	got = slurp(path);
	assert_non_null(strstr(got, "# HELP lf_fills the help\n"));
	assert_non_null(strstr(got, "lf_fills{name=\"w\",tool=\"lf-test\"} 2\n"));
	free(got);
	metrics_writer_stop(&mw);
	metrics_writer_write(&mw);	/* stopped: nothing */
	assert_int_equal(fills, 2);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_name),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
