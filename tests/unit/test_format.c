/* lib/format: each formatter's bytes for one record, against Fluentd's
 * documented lines; inject; options; errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include "buf.h"
#include "format.h"
#include "stream.h"

#define T0	1714566896u	/* 2024-05-01T12:34:56Z */
#define NS	123456789u

static struct buf pb = BUF_INIT;
static msgpack_packer pk;

static void
pkstr(const char *s)
{
	msgpack_pack_str(&pk, strlen(s));
	msgpack_pack_str_body(&pk, s, strlen(s));
}

/* {"k1":"v1","k2":"v2"}, Fluentd's example record */
static void
record(void)
{
	buf_reset(&pb);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	msgpack_pack_map(&pk, 2);
	pkstr("k1");
	pkstr("v1");
	pkstr("k2");
	pkstr("v2");
}

/* The formatter for argv-like options, NULL-terminated; fails the test
 * on a bad one. */
static struct formatter *
fmt(const char *opt, ...)
{
	struct format_conf c;
	struct formatter *f;
	const struct option *o;
	const char *arg, *eq;
	char err[256];
	size_t n;
	va_list ap;

	format_conf_default(&c);
	va_start(ap, opt);
	for (; opt != NULL; opt = va_arg(ap, const char *)) {
		/* "name=value" for an optional argument */
		eq = strchr(opt, '=');
		n = eq ? (size_t)(eq - opt) : strlen(opt);
		for (o = format_options; o->name != NULL; o++)
			if (strlen(o->name) == n && memcmp(o->name, opt, n) == 0)
				break;
		assert_non_null(o->name);
		arg = o->has_arg == required_argument ?
		    va_arg(ap, const char *) : eq ? eq + 1 : NULL;
		assert_int_equal(format_option(&c, o->val, arg, err,
		    sizeof err), 0);
	}
	va_end(ap);
	f = format_new(&c, err, sizeof err);
	if (f == NULL)
		fail_msg("%s", err);
	return f;
}

static void
want(struct formatter *f, const char *line)
{
	struct buf out = BUF_INIT;

	assert_int_equal(format_event(f, &out, "foo.bar", 7, T0, NS, pb.p,
	    pb.len), 0);
	assert_int_equal(out.len, strlen(line));
	assert_memory_equal(out.p, line, out.len);
	buf_free(&out);
	format_free(f);
}

static void
test_out_file(void **state)
{
	(void)state;
	record();
	want(fmt(NULL),
	    "2024-05-01T12:34:56+00:00\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("utc", NULL),
	    "2024-05-01T12:34:56Z\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("timezone", "Asia/Tokyo", NULL),
	    "2024-05-01T21:34:56+09:00\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("timezone", "-03:30", NULL),
	    "2024-05-01T09:04:56-03:30\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("delimiter", "SPACE", "output-time=false", NULL),
	    "foo.bar {\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("delimiter", "whatever", "output-tag=no", NULL),
	    "2024-05-01T12:34:56+00:00\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("time-format", "%d/%b/%Y:%H:%M:%S.%N %:z", "timezone",
	    "+09:00", "output-tag=false", "newline", "crlf", NULL),
	    "01/May/2024:21:34:56.123456789 +09:00\t"
	    "{\"k1\":\"v1\",\"k2\":\"v2\"}\r\n");
	want(fmt("time-format", "%s.%3N%%", NULL),
	    "1714566896.123%\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
}

static void
test_json_ltsv(void **state)
{
	(void)state;
	record();
	want(fmt("format", "json", NULL), "{\"k1\":\"v1\",\"k2\":\"v2\"}\n");
	want(fmt("format", "json", "add-newline=false", NULL),
	    "{\"k1\":\"v1\",\"k2\":\"v2\"}");
	want(fmt("format", "ltsv", NULL), "k1:v1\tk2:v2\n");
	want(fmt("format", "ltsv", "delimiter", "||", "label-delimiter", "=",
	    NULL), "k1=v1||k2=v2\n");
	want(fmt("format", "event", NULL), "{\"tag\":\"foo.bar\","
	    "\"time\":1714566896.123456789,\"record\":{\"k1\":\"v1\","
	    "\"k2\":\"v2\"}}\n");
	/* the delimiter inside a value becomes the replacement */
	buf_reset(&pb);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	msgpack_pack_map(&pk, 1);
	pkstr("a");
	pkstr("x||y\nz");
	want(fmt("format", "ltsv", "delimiter", "||", "replacement", "_",
	    NULL), "a:x_y_z\n");
}

static void
test_inject(void **state)
{
	(void)state;
	record();
	want(fmt("format", "json", "include-tag-key", "include-time-key",
	    "utc", NULL), "{\"k1\":\"v1\",\"k2\":\"v2\",\"tag\":\"foo.bar\","
	    "\"time\":\"2024-05-01T12:34:56Z\"}\n");
	/* a key already there keeps its place */
	want(fmt("format", "json", "include-tag-key", "tag-key", "k1", NULL),
	    "{\"k1\":\"foo.bar\",\"k2\":\"v2\"}\n");
	want(fmt("format", "ltsv", "include-time-key", "time-type", "float",
	    "time-key", "t", NULL), "k1:v1\tk2:v2\tt:1714566896.123456\n");
	want(fmt("format", "ltsv", "include-time-key", "time-type",
	    "unixtime", NULL), "k1:v1\tk2:v2\ttime:1714566896\n");
	want(fmt("format", "ltsv", "include-time-key", "time-format",
	    "%Y%m%d", NULL), "k1:v1\tk2:v2\ttime:20240501\n");
	want(fmt("format", "out_file", "include-tag-key", "utc", NULL),
	    "2024-05-01T12:34:56Z\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\","
	    "\"tag\":\"foo.bar\"}\n");
}

static void
test_csv_tsv_single(void **state)
{
	(void)state;
	buf_reset(&pb);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	msgpack_pack_map(&pk, 6);
	pkstr("s");
	pkstr("a,\"b\"");
	pkstr("i");
	msgpack_pack_int(&pk, -7);
	pkstr("n");
	msgpack_pack_nil(&pk);
	pkstr("e");
	pkstr("");
	pkstr("m");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_true(&pk);
	pkstr("s");
	pkstr("last");
	want(fmt("format", "csv", "fields", "s,i,n,e,m,x", NULL),
	    "\"last\",\"-7\",\"\",\"\",\"[true]\",\"\"\n");
	want(fmt("format", "csv", "fields", " i , n,,e ",
	    "force-quotes=false", NULL), "-7,,\"\"\n");
	want(fmt("format", "csv", "fields", "i,m", "delimiter", "TAB",
	    "force-quotes=false", NULL), "-7\t[true]\n");
	want(fmt("format", "tsv", "fields", "i,n,e,m", NULL), "-7\t\t\t[true]\n");
	want(fmt("format", "single_value", "message-key", "i", NULL), "-7\n");
	want(fmt("format", "single_value", NULL), "\n");
	buf_reset(&pb);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	msgpack_pack_map(&pk, 1);
	pkstr("message");
	pkstr("q\"uo,te");
	want(fmt("format", "csv", "fields", "message", "force-quotes=false",
	    NULL), "\"q\"\"uo,te\"\n");
	want(fmt("format", "single_value", "add-newline=false", NULL),
	    "q\"uo,te");
}

static void
test_msgpack(void **state)
{
	struct formatter *f;
	struct buf out = BUF_INIT, ents = BUF_INIT;
	unsigned char h[STREAM_ENTRY_HEAD];
	const unsigned char *p;

	(void)state;
	record();
	stream_entry_head(h, T0, NS);
	buf_add(&ents, h, sizeof h);
	buf_add(&ents, pb.p, pb.len);
	buf_add(&ents, h, sizeof h);
	buf_add(&ents, pb.p, pb.len);
	f = fmt("format", "msgpack", NULL);
	assert_int_equal(format_binary(f), 1);
	assert_int_equal(format_entries(f, &out, "t", 1, ents.p, ents.len, 2),
	    0);
	/* [ "t", bin(entries), {"size": 2} ] */
	p = out.p;
	assert_int_equal(p[0], 0x93);
	assert_memory_equal(p + 1, "\xa1t\xc4", 3);
	assert_int_equal(p[4], ents.len);
	assert_memory_equal(p + 5, ents.p, ents.len);
	assert_int_equal(out.len, 5 + ents.len + 7);
	assert_memory_equal(p + 5 + ents.len, "\x81\xa4size\x02", 7);
	buf_reset(&out);
	/* one event: a message of one entry */
	assert_int_equal(format_event(f, &out, "t", 1, T0, NS, pb.p, pb.len),
	    0);
	assert_int_equal(out.p[4], STREAM_ENTRY_HEAD + pb.len);
	format_free(f);
	/* with a key injected, the entries are rebuilt */
	f = fmt("format", "msgpack", "include-tag-key", NULL);
	buf_reset(&out);
	assert_int_equal(format_entries(f, &out, "t", 1, ents.p, ents.len, 2),
	    0);
	assert_int_equal(out.p[4], ents.len + 2 * 6);
	format_free(f);
	buf_free(&out);
	buf_free(&ents);
}

static void
test_errors(void **state)
{
	struct format_conf c;
	struct formatter *f;
	struct buf out = BUF_INIT;
	char err[256];

	(void)state;
	format_conf_default(&c);
	c.type = FORMAT_CSV;
	assert_null(format_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "needs --fields"));
	c.fields = ",";
	assert_null(format_new(&c, err, sizeof err));
	c.fields = "$.a.b";
	assert_null(format_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "nested"));
	c.fields = "a";
	c.delimiter = "::";
	assert_null(format_new(&c, err, sizeof err));
	format_conf_default(&c);
	c.timezone = "Nowhere/Else";
	assert_null(format_new(&c, err, sizeof err));
	assert_int_equal(format_option(&c, FORMAT_OPT_FORMAT, "hash", err,
	    sizeof err), -1);
	assert_int_equal(format_option(&c, FORMAT_OPT_FORMAT + 1, "maybe", err,
	    sizeof err), -1);
	/* not a map, or bytes after it: -1, out as it was */
	buf_add(&out, "x", 1);
	for (c.type = FORMAT_OUT_FILE; c.type <= FORMAT_EVENT; c.type++) {
		c.fields = "a";
		c.timezone = NULL;
		c.include_tag_key = 1;
		f = format_new(&c, err, sizeof err);
		assert_non_null(f);
		assert_int_equal(format_event(f, &out, "t", 1, 0, 0,
		    (const unsigned char *)"\x92\x01\x02", 3), -1);
		assert_int_equal(format_event(f, &out, "t", 1, 0, 0,
		    (const unsigned char *)"\x80\x01", 2), -1);
		assert_int_equal(format_event(f, &out, "t", 1, 0, 0,
		    (const unsigned char *)"\x81\xa1k", 3), -1);
		assert_int_equal(out.len, 1);
		format_free(f);
	}
	buf_free(&out);
}

static int
teardown(void **state)
{
	(void)state;
	buf_free(&pb);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_file),
		cmocka_unit_test(test_json_ltsv),
		cmocka_unit_test(test_inject),
		cmocka_unit_test(test_csv_tsv_single),
		cmocka_unit_test(test_msgpack),
		cmocka_unit_test(test_errors),
	};

	setenv("TZ", "UTC0", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, teardown);
}
