/* Unit tests for lib/prom: the Prometheus text format 0.0.4 as lf's
 * tools write it (/work/notes/metrics.md), its escapes and corners, and
 * what must be refused with the line that is wrong. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

static void
parse(struct prom_doc *d, const char *s)
{
	char err[256] = "";

	if (prom_parse(d, s, strlen(s), err, sizeof err) != 0)
		fail_msg("prom_parse: %s", err);
}

/* prom_parse must refuse s with an error that starts with want. */
static void
refuse(const char *s, size_t len, const char *want)
{
	struct prom_doc d;
	char err[256] = "";

	assert_int_equal(prom_parse(&d, s, len, err, sizeof err), -1);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("for %s: got \"%s\", want \"%s...\"", s, err, want);
	assert_null(d.samples);
	assert_int_equal(d.nfams, 0);
}

static void
refuse_s(const char *s, const char *want)
{
	refuse(s, strlen(s), want);
}

/* A file as lf-send writes one. */
static void
test_lf_file(void **state)
{
	struct prom_doc d;
	const struct prom_sample *s;
	const struct prom_family *f;

	(void)state;
	parse(&d,
	    "# HELP lf_output_events_total Events delivered.\n"
	    "# TYPE lf_output_events_total counter\n"
	    "lf_output_events_total{name=\"fwd\",tool=\"lf-send\"} 1234\n"
	    "# HELP lf_server_up 1 up, 0 down.\n"
	    "# TYPE lf_server_up gauge\n"
	    "lf_server_up{name=\"fwd\",tool=\"lf-send\",server=\"10.0.0.1:24224\","
	    "standby=\"false\"} 1\n"
	    "lf_server_up{name=\"fwd\",tool=\"lf-send\",server=\"10.0.0.2:24224\","
	    "standby=\"true\"} 0\n");
	assert_int_equal(d.nfams, 2);
	assert_int_equal(d.nsamples, 3);
	s = &d.samples[0];
	assert_string_equal(s->name, "lf_output_events_total");
	assert_true(s->value == 1234);
	assert_false(s->has_time);
	assert_string_equal(prom_label(&d, s, "name"), "fwd");
	assert_string_equal(prom_label(&d, s, "tool"), "lf-send");
	assert_null(prom_label(&d, s, "server"));
	f = &d.fams[s->family];
	assert_string_equal(f->name, "lf_output_events_total");
	assert_int_equal(f->type, PROM_COUNTER);
	assert_string_equal(f->help, "Events delivered.");
	s = &d.samples[2];
	assert_int_equal(s->nlabels, 4);
	assert_string_equal(prom_label(&d, s, "server"), "10.0.0.2:24224");
	assert_string_equal(prom_label(&d, s, "standby"), "true");
	assert_true(s->value == 0);
	assert_ptr_equal(prom_family(&d, "lf_server_up"), &d.fams[1]);
	assert_int_equal(d.fams[1].nsamples, 2);
	assert_null(prom_family(&d, "lf_server"));
	prom_free(&d);
}

/* \\, \" and \n in label values; \\ and \n in HELP; the rest of the
 * bytes as they are (UTF-8). */
static void
test_escapes(void **state)
{
	struct prom_doc d;

	(void)state;
	parse(&d,
	    "# HELP m a \\\\ back\\nslash \"quoted\" \xc3\xa9t\xc3\xa9 \n"
	    "m{path=\"C:\\\\x\\\"y\\\"\\nz\",e=\"\",u=\"\xe2\x82\xac}{,\"} 1\n");
	assert_string_equal(d.fams[0].help,
	    "a \\ back\nslash \"quoted\" \xc3\xa9t\xc3\xa9 ");
	assert_string_equal(prom_label(&d, &d.samples[0], "path"),
	    "C:\\x\"y\"\nz");
	assert_string_equal(prom_label(&d, &d.samples[0], "e"), "");
	assert_string_equal(prom_label(&d, &d.samples[0], "u"), "\xe2\x82\xac}{,");
	prom_free(&d);
}

/* Blanks and tabs between tokens, a trailing comma, comments, blank
 * lines, no LF at the end, timestamps, every spelling of a float. */
static void
test_lexical_corners(void **state)
{
	struct prom_doc d;
	static const double want[] = {
		1.5, -2, 1e3, 0.25, 5, -0.0, INFINITY, -INFINITY, INFINITY, 1e308
	};

	(void)state;
	parse(&d,
	    "\n   \n# a comment\n#TYPE a gauge\n# HELPER is a comment too\n"
	    "#\n# HELP\n"
	    "  a { x = \"1\" , y=\"2\", }  1.5\t 1700000000000\n"
	    "a{} -2\n"
	    "a 1e3 -5\n"
	    "a .25\n"
	    "a 5.\n"
	    "a -0\n"
	    "a +Inf\n"
	    "a -Inf\n"
	    "a Infinity\n"
	    "a 1e308\n"
	    "a NaN");
	assert_int_equal(d.nsamples, 11);
	assert_int_equal(d.nfams, 1);
	assert_int_equal(d.fams[0].type, PROM_GAUGE);
	assert_null(d.fams[0].help);
	for (size_t i = 0; i < 10; i++) {
		assert_true(d.samples[i].value == want[i]);
		assert_int_equal(signbit(d.samples[i].value), signbit(want[i]));
	}
	assert_true(isnan(d.samples[10].value));
	assert_int_equal(d.samples[0].nlabels, 2);
	assert_string_equal(prom_label(&d, &d.samples[0], "y"), "2");
	assert_true(d.samples[0].has_time);
	assert_true(d.samples[0].time_ms == 1700000000000LL);
	assert_true(d.samples[2].has_time && d.samples[2].time_ms == -5);
	assert_int_equal(d.samples[1].nlabels, 0);
	prom_free(&d);
}

/* NAME_bucket, _sum and _count belong to a histogram NAME; a summary
 * takes _sum and _count; other families keep their own names. */
static void
test_families(void **state)
{
	struct prom_doc d;
	const struct prom_family *h, *s;

	(void)state;
	parse(&d,
	    "# TYPE h histogram\n"
	    "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n"
	    "# TYPE s summary\n"
	    "s{quantile=\"0.5\"} 1\ns_sum 2\ns_count 1\ns_bucket 9\n"
	    "# TYPE g_sum gauge\ng_sum 1\n"
	    "loose_total 7\n");
	h = prom_family(&d, "h");
	s = prom_family(&d, "s");
	assert_non_null(h);
	assert_non_null(s);
	assert_int_equal(h->type, PROM_HISTOGRAM);
	assert_int_equal(h->nsamples, 4);
	assert_int_equal(s->type, PROM_SUMMARY);
	assert_int_equal(s->nsamples, 3);
	assert_int_equal(prom_family(&d, "s_bucket")->nsamples, 1);
	assert_int_equal(prom_family(&d, "s_bucket")->type, PROM_UNTYPED);
	assert_int_equal(prom_family(&d, "g_sum")->type, PROM_GAUGE);
	assert_null(prom_family(&d, "g"));
	assert_int_equal(prom_family(&d, "loose_total")->type, PROM_UNTYPED);
	assert_false(prom_family(&d, "loose_total")->typed);
	assert_string_equal(prom_type_name(PROM_SUMMARY), "summary");
	assert_int_equal(d.nfams, 5);
	prom_free(&d);
}

static void
test_refused(void **state)
{
	(void)state;
	refuse_s("a 1\n1a 2\n", "line 2: not a metric name");
	refuse_s("a-b 1\n", "line 1: not a metric name");
	refuse_s("a\n", "line 1: not a sample value");
	refuse_s("a one\n", "line 1: not a sample value");
	refuse_s("a 0x10\n", "line 1: not a sample value");
	refuse_s("a 1e\n", "line 1: not a sample value");
	refuse_s("a nan(1)\n", "line 1: not a sample value");
	refuse_s("a 1 1.5\n", "line 1: not a timestamp");
	refuse_s("a 1 99999999999999999999\n", "line 1: not a timestamp");
	refuse_s("a 1 2 3\n", "line 1: more after");
	refuse_s("a{b=\"1\" 1\n", "line 1: no , or }");
	refuse_s("a{b=\"1\"}1\n", "line 1: no blank after the labels");
	refuse_s("a{b=\"1} 1\n", "line 1: a label value is not closed");
	refuse_s("a{b=1} 1\n", "line 1: no \" to start");
	refuse_s("a{b} 1\n", "line 1: no = after the label name b");
	refuse_s("a{,} 1\n", "line 1: not a label name");
	refuse_s("a{b:c=\"1\"} 1\n", "line 1: no = after");
	refuse_s("a{b=\"\\t\"} 1\n", "line 1: an unknown escape \\t");
	refuse_s("a{b=\"1\",b=\"2\"} 1\n", "line 1: the label b twice");
	refuse_s("a{b=\"\xff\"} 1\n", "line 1: a label value is not UTF-8");
	refuse_s("a{b=\"\xed\xa0\x80\"} 1\n", "line 1: a label value is not");
	refuse_s("a{b=\"\xc0\xaf\"} 1\n", "line 1: a label value is not");
	refuse_s("# HELP a x\\\n", "line 1: a backslash at the end");
	refuse_s("# HELP a \xe2\x82\n", "line 1: a HELP text is not UTF-8");
	refuse_s("# HELP a x\n# HELP a y\n", "line 2: a second HELP line for a");
	refuse_s("# TYPE a gauge\n# TYPE a gauge\n", "line 2: a second TYPE");
	refuse_s("# TYPE a Gauge\n", "line 1: an unknown metric type");
	refuse_s("# TYPE 9a gauge\n", "line 1: not a metric name after # TYPE");
	refuse_s("# TYPE a{ gauge\n", "line 1: not a metric name after # TYPE");
	refuse_s("a 1\n# TYPE a gauge\n", "line 2: a TYPE line for a after");
	refuse_s("x_count 1\n# TYPE x summary\n", "line 2: a TYPE line for x after");
	refuse_s("a 1\r\n", "line 1: not a sample value");
	refuse("a 1\nb 2\x00\n", 9, "line 2: a NUL byte");
}

/* Bounds: a long line, many labels, a big text. */
static void
test_bounds(void **state)
{
	struct prom_doc d;
	char err[128];
	size_t n = PROM_LINE_MAX + 10, i;
	char *big = malloc(PROM_TEXT_MAX + 2);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', n);
	memcpy(big + n, " 1\n", 4);
	refuse(big, n + 3, "line 1: longer than 65536 bytes");

	/* a line of exactly the limit is fine */
	memset(big, 'a', PROM_LINE_MAX - 2);
	memcpy(big + PROM_LINE_MAX - 2, " 1\n", 4);
	parse(&d, big);
	assert_int_equal(d.nsamples, 1);
	prom_free(&d);

	strcpy(big, "a{");
	for (i = 0; i < PROM_LABELS_MAX + 1; i++)
		sprintf(big + strlen(big), "l%zu=\"v\",", i);
	strcat(big, "} 1\n");
	refuse_s(big, "line 1: more than 32 labels");

	memset(big, '\n', PROM_TEXT_MAX + 1);
	assert_int_equal(prom_parse(&d, big, PROM_TEXT_MAX + 1, err, sizeof err),
	    -1);
	assert_string_equal(err, "more than 4194304 bytes");
	/* many samples: all read, in order */
	for (i = 0, big[0] = '\0'; i < 1000; i++)
		sprintf(big + strlen(big), "m%zu{i=\"%zu\"} %zu\n", i % 7, i, i);
	parse(&d, big);
	assert_int_equal(d.nsamples, 1000);
	assert_int_equal(d.nfams, 7);
	for (i = 0; i < 1000; i++)
		assert_true(d.samples[i].value == (double)i);
	assert_int_equal(prom_family(&d, "m3")->nsamples, 143);
	prom_free(&d);

	/* many families: each found again by name (the hash grows) */
	for (i = 0, big[0] = '\0'; i < 5000; i++)
		sprintf(big + strlen(big), "# TYPE f%zu gauge  \nf%zu %zu\n", i,
		    i, i);
	parse(&d, big);
	assert_int_equal(d.nfams, 5000);
	for (i = 0; i < 5000; i++) {
		char name[16];

		snprintf(name, sizeof name, "f%zu", i);
		assert_ptr_equal(prom_family(&d, name), &d.fams[i]);
		assert_int_equal(d.fams[i].type, PROM_GAUGE);
		assert_int_equal(d.samples[i].family, i);
	}
	prom_free(&d);

	/* the counts are bounded too */
	for (i = 0, n = 0; i <= PROM_FAMILIES_MAX; i++)
		n += (size_t)sprintf(big + n, "g%zu 1\n", i);
	refuse(big, n, "line 20001: more than 20000 metric families");
	for (i = 0, n = 0; i <= PROM_SAMPLES_MAX; i++)
		n += (size_t)sprintf(big + n, "a 1\n");
	refuse(big, n, "line 100001: more than 100000 samples");
	free(big);
}

/* UTF-8 of every length is taken; overlong forms, surrogates, code
 * points past U+10FFFF and cut sequences are not. */
static void
test_utf8(void **state)
{
	struct prom_doc d;

	(void)state;
	parse(&d, "a{v=\"\x24 \xc2\xa2 \xe2\x82\xac \xf0\x90\x8d\x88 "
	    "\xf4\x8f\xbf\xbf\"} 1\n");
	assert_string_equal(prom_label(&d, &d.samples[0], "v"),
	    "\x24 \xc2\xa2 \xe2\x82\xac \xf0\x90\x8d\x88 \xf4\x8f\xbf\xbf");
	prom_free(&d);
	refuse_s("a{v=\"\xf4\x90\x80\x80\"} 1\n", "line 1: a label value is not");
	refuse_s("a{v=\"\xf0\x80\x80\xaf\"} 1\n", "line 1: a label value is not");
	refuse_s("a{v=\"\xe0\x80\xaf\"} 1\n", "line 1: a label value is not");
	refuse_s("a{v=\"\xf0\x90\x8d\"} 1\n", "line 1: a label value is not");
	refuse_s("a{v=\"\x80\"} 1\n", "line 1: a label value is not");
}

/* The error message never overflows the buffer given. */
static void
test_short_err(void **state)
{
	struct prom_doc d;
	char err[8];

	(void)state;
	assert_int_equal(prom_parse(&d, "1 1", 3, err, sizeof err), -1);
	assert_string_equal(err, "line 1:");
	assert_int_equal(prom_parse(&d, "", 0, err, sizeof err), 0);
	assert_int_equal(d.nsamples, 0);
	prom_free(&d);
	/* an empty file read into no buffer at all (fuzz_prom found it) */
	assert_int_equal(prom_parse(&d, NULL, 0, err, sizeof err), 0);
	assert_int_equal(d.nsamples, 0);
	prom_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lf_file),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_lexical_corners),
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_short_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
