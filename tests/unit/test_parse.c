/* lib/parse: every format, every common option, the time formats, the
 * types and the bad-line paths.  Records are compared as the JSON text
 * json_value makes of their msgpack (exact: ints, floats, nil, strings
 * and EventTime each print differently), and as raw bytes where the
 * encoding itself is the point.  Local time is Asia/Tokyo (set in main)
 * so that the zone rules are exercised deterministically. */
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
#include "json.h"
#include "parse.h"
#include "timefmt.h"

#define T0	1714566896u	/* 2024-05-01T12:34:56Z */
#define T0JST	(T0 - 9 * 3600)	/* 2024-05-01T12:34:56+09:00 */
#define APACHE_T 971211336u	/* 10/Oct/2000:13:55:36 -0700 */

static int
opt_code(const char *name)
{
	const struct option *o;

	for (o = parse_options; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o->val;
	fail_msg("no option --%s", name);
	return -1;
}

/* A parser from "name", "value" pairs, NULL-ended; value NULL for a bare
 * flag. */
static struct parser *
vmk(const char *first, va_list ap)
{
	struct parse_conf c;
	struct parser *p;
	const char *name, *val;
	char err[256];

	parse_conf_default(&c);
	for (name = first; name != NULL; name = va_arg(ap, const char *)) {
		val = va_arg(ap, const char *);
		if (parse_option(&c, opt_code(name), val, err, sizeof err) != 0)
			fail_msg("--%s %s: %s", name, val ? val : "", err);
	}
	p = parse_new(&c, err, sizeof err);
	if (p == NULL)
		fail_msg("parse_new: %s", err);
	return p;
}

static struct parser *
mk(const char *first, ...)
{
	struct parser *p;
	va_list ap;

	va_start(ap, first);
	p = vmk(first, ap);
	va_end(ap);
	return p;
}

/* parse_new must refuse, with want in its message. */
static void
mk_bad(const char *want, const char *first, ...)
{
	struct parse_conf c;
	const char *name, *val;
	char err[256] = "";
	va_list ap;
	struct parser *p;

	parse_conf_default(&c);
	va_start(ap, first);
	for (name = first; name != NULL; name = va_arg(ap, const char *)) {
		val = va_arg(ap, const char *);
		assert_int_equal(parse_option(&c, opt_code(name), val, err,
		    sizeof err), 0);
	}
	va_end(ap);
	p = parse_new(&c, err, sizeof err);
	assert_null(p);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* One line: rc, and the record as JSON, and the time when rc is OK. */
static void
want(struct parser *p, const char *line, int rc, const char *json,
    uint32_t sec, uint32_t nsec)
{
	struct buf rec = BUF_INIT, out = BUF_INIT;
	uint32_t s = 7, ns = 7;
	char err[256] = "";
	int got;

	if (buf_add(&rec, "X", 1) == -1)	/* records are appended */
		fail();
	got = parse_line(p, line, strlen(line), &rec, &s, &ns, err,
	    sizeof err);
	if (got != rc)
		fail_msg("%s: rc %d, want %d (%s)", line, got, rc, err);
	if (rc == PARSE_ERR || rc == PARSE_MORE) {
		assert_int_equal(rec.len, 1);
		if (rc == PARSE_ERR)
			assert_true(err[0] != '\0');
		buf_free(&rec);
		return;
	}
	assert_int_equal(json_value(&out, rec.p + 1, rec.len - 1, NULL), 0);
	if (out.len != strlen(json) || memcmp(out.p, json, out.len) != 0)
		fail_msg("%s:\n got %.*s\nwant %s", line, (int)out.len,
		    (char *)out.p, json);
	if (rc == PARSE_OK) {
		assert_int_equal(s, sec);
		assert_int_equal(ns, nsec);
	}
	buf_free(&rec);
	buf_free(&out);
}

static void
test_none(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "none", NULL);
	want(p, "hello world", PARSE_NOTIME, "{\"message\":\"hello world\"}",
	    0, 0);
	want(p, "", PARSE_NOTIME, "{\"message\":\"\"}", 0, 0);
	parse_free(p);
	p = mk("format", "none", "message-key", "log", NULL);
	want(p, "time:1", PARSE_NOTIME, "{\"log\":\"time:1\"}", 0, 0);
	parse_free(p);
	/* no time and no estimate: Fluentd yields no event */
	p = mk("format", "none", "estimate-current-event", "false", NULL);
	want(p, "x", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
}

static void
test_ltsv(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "ltsv", NULL);
	want(p, "a:1\tb:x:y\tnolabel\tc:", PARSE_NOTIME,
	    "{\"a\":\"1\",\"b\":\"x:y\",\"c\":\"\"}", 0, 0);
	/* no time_format: Time.parse's lenient reading, local time */
	want(p, "time:2024-05-01 12:34:56\tk:v", PARSE_OK, "{\"k\":\"v\"}",
	    T0JST, 0);
	want(p, "time:2024-05-01T12:34:56.5Z\tk:v", PARSE_OK, "{\"k\":\"v\"}",
	    T0, 500000000);
	want(p, "time:10/Oct/2000:13:55:36 -0700", PARSE_OK, "{}",
	    APACHE_T, 0);
	want(p, "time:yesterday\tk:v", PARSE_ERR, NULL, 0, 0);
	want(p, "", PARSE_NOTIME, "{}", 0, 0);
	parse_free(p);

	p = mk("format", "ltsv", "time-format", "%Y-%m-%dT%H:%M:%S%z",
	    "keep-time-key", NULL, NULL);
	want(p, "host:h\ttime:2024-05-01T12:34:56+00:00", PARSE_OK,
	    "{\"host\":\"h\",\"time\":\"2024-05-01T12:34:56+00:00\"}", T0, 0);
	parse_free(p);

	p = mk("format", "ltsv", "delimiter", "|", "label-delimiter", "=",
	    "time-key", "ts", "time-format", "%s", NULL);
	want(p, "a=b|ts=1714566896|c=d=e", PARSE_OK,
	    "{\"a\":\"b\",\"c\":\"d=e\"}", T0, 0);
	parse_free(p);

	/* the escapes a shell user types */
	p = mk("format", "ltsv", "delimiter", "\\t", NULL);
	want(p, "a:1\tb:2", PARSE_NOTIME, "{\"a\":\"1\",\"b\":\"2\"}", 0, 0);
	parse_free(p);
}

static void
test_json(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "json", NULL);
	want(p, "{\"time\":1714566896.25,\"a\":[1,{\"b\":null}]}", PARSE_OK,
	    "{\"a\":[1,{\"b\":null}]}", T0, 250000000);
	want(p, "{\"time\":\"1714566896\",\"a\":1}", PARSE_OK, "{\"a\":1}",
	    T0, 0);
	want(p, "{\"a\":true}", PARSE_NOTIME, "{\"a\":true}", 0, 0);
	want(p, "{\"a\":", PARSE_ERR, NULL, 0, 0);
	want(p, "[1,2]", PARSE_ERR, NULL, 0, 0);
	want(p, "not json", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	p = mk("format", "json", "time-format", "%d/%b/%Y:%H:%M:%S %z",
	    "keep-time-key", "true", NULL);
	want(p, "{\"time\":\"10/Oct/2000:13:55:36 -0700\"}", PARSE_OK,
	    "{\"time\":\"10/Oct/2000:13:55:36 -0700\"}", APACHE_T, 0);
	parse_free(p);

	/* convert_values on json's string values; others untouched */
	p = mk("format", "json", "types", "n:integer,f:float,b:bool",
	    "null-empty-string", NULL, NULL);
	want(p, "{\"n\":\"42\",\"f\":\"1.5\",\"b\":\"yes\",\"e\":\"\","
	    "\"x\":7,\"time\":3}", PARSE_OK,
	    "{\"n\":42,\"f\":1.5,\"b\":true,\"e\":null,\"x\":7}", 3, 0);
	parse_free(p);

	/* a time read here, not by json_parse_record: unixtime, a zone */
	p = mk("format", "json", "time-type", "unixtime", NULL);
	want(p, "{\"time\":\"1714566896.9\"}", PARSE_OK, "{}", T0, 0);
	want(p, "{\"time\":1714566896}", PARSE_OK, "{}", T0, 0);
	want(p, "{\"time\":[1]}", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "json", "time-format", "%Y-%m-%d %H:%M:%S",
	    "timezone", "+00:00", NULL);
	want(p, "{\"time\":\"2024-05-01 12:34:56\",\"k\":\"v\"}", PARSE_OK,
	    "{\"k\":\"v\"}", T0, 0);
	parse_free(p);
	/* one yajl handle for every line: errors between records leave
	 * nothing behind; the time key read as the record is made (a
	 * number is seconds; twice, the last is the time and both go, as
	 * Fluentd's hash keeps one) */
	p = mk("format", "json", "time-format", "%iso8601", NULL);
	want(p, "{\"time\":\"2024-05-01T12:34:56Z\",\"a\":1}", PARSE_OK,
	    "{\"a\":1}", T0, 0);
	want(p, "{\"a\":\"cut", PARSE_ERR, NULL, 0, 0);
	want(p, "{\"a\":1} {\"b\":2}", PARSE_ERR, NULL, 0, 0);
	want(p, "{\"time\":\"2024-05-01T12:34:5\\u0036Z\"}", PARSE_OK, "{}",
	    T0, 0);
	want(p, "{\"time\":\"nope\",\"a\":1}", PARSE_ERR, NULL, 0, 0);
	want(p, "{\"time\":1714566896.25}", PARSE_OK, "{}", T0, 250000000);
	want(p, "{\"time\":1714566896,\"b\":[]}", PARSE_OK, "{\"b\":[]}",
	    T0, 0);
	want(p, "{\"time\":1,\"a\":1,\"time\":\"2024-05-01T12:34:56Z\"}",
	    PARSE_OK, "{\"a\":1}", T0, 0);
	want(p, "{\"b\":2}", PARSE_NOTIME, "{\"b\":2}", 0, 0);
	parse_free(p);
	/* the time cut out of 16 keys: the map16 header becomes a fixmap */
	p = mk("format", "json", "time-format", "%iso8601", NULL);
	want(p, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,"
	    "\"time\":\"2024-05-01T12:34:56Z\",\"g\":7,\"h\":8,\"i\":9,"
	    "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":{\"o\":[14]},"
	    "\"p\":15}", PARSE_OK, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,"
	    "\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,"
	    "\"l\":12,\"m\":13,\"n\":{\"o\":[14]},\"p\":15}", T0, 0);
	want(p, "{\"time\":1714566896,\"a\":1}", PARSE_OK, "{\"a\":1}",
	    T0, 0);
	want(p, "{\"time\":\"May 1\",\"a\":1}", PARSE_ERR, NULL, 0, 0);
	want(p, "{\"time\":null}", PARSE_ERR, NULL, 0, 0);
	want(p, "{\"a\":1}", PARSE_NOTIME, "{\"a\":1}", 0, 0);
	parse_free(p);
	p = mk("format", "json", "time-format", "%iso8601",
	    "estimate-current-event", "false", NULL);
	want(p, "{\"a\":1}", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "json", "time-key", "", "estimate-current-event",
	    "false", NULL);
	want(p, "{\"time\":1}", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "json", "estimate-current-event", "false", NULL);
	want(p, "{\"a\":1}", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
}

static void
test_regexp(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "regexp", "expression",
	    "/^(?<host>\\S+) (?<time>\\S+)(?: (?<opt>x))? (?<msg>.*)$/",
	    "time-format", "%Y-%m-%dT%H:%M:%S%z", NULL);
	/* names in their order in the expression; a group that did not
	 * take part is no field; an empty one is "" */
	want(p, "h1 2024-05-01T12:34:56Z hi there", PARSE_OK,
	    "{\"host\":\"h1\",\"msg\":\"hi there\"}", T0, 0);
	want(p, "h1 2024-05-01T12:34:56Z x ", PARSE_OK,
	    "{\"host\":\"h1\",\"opt\":\"x\",\"msg\":\"\"}", T0, 0);
	want(p, "nospace", PARSE_ERR, NULL, 0, 0);
	want(p, "h1 garbage msg", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	p = mk("format", "regexp", "expression", "/^(?<w>HELLO)/i", NULL);
	want(p, "hello", PARSE_NOTIME, "{\"w\":\"hello\"}", 0, 0);
	parse_free(p);
	/* Ruby's /m: '.' takes newlines */
	p = mk("format", "regexp", "expression", "/^(?<all>a.b)$/m", NULL);
	want(p, "a\nb", PARSE_NOTIME, "{\"all\":\"a\\nb\"}", 0, 0);
	parse_free(p);

	mk_bad("no named captures", "format", "regexp", "expression", "^a$",
	    NULL);
	mk_bad("regexp", "format", "regexp", "expression", "(?<a>", NULL);
	mk_bad("expression", "format", "regexp", NULL);
}

static void
test_apache2(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "apache2", NULL);
	want(p, "192.168.0.1 - - [10/Oct/2000:13:55:36 -0700] "
	    "\"GET /apache_pb.gif HTTP/1.0\" 200 777 \"-\" "
	    "\"Opera/12.0\"", PARSE_OK,
	    "{\"host\":\"192.168.0.1\",\"user\":null,\"method\":\"GET\","
	    "\"path\":\"/apache_pb.gif\",\"code\":200,\"size\":777,"
	    "\"referer\":null,\"agent\":\"Opera/12.0\"}", APACHE_T, 0);
	/* no referer/agent; size "-"; code 0 is nil */
	want(p, "::1 - frank [10/Oct/2000:13:55:36 -0700] \"POST /x\" 0 -",
	    PARSE_OK,
	    "{\"host\":\"::1\",\"user\":\"frank\",\"method\":\"POST\","
	    "\"path\":\"/x\",\"code\":null,\"size\":null,\"referer\":null,"
	    "\"agent\":null}", APACHE_T, 0);
	want(p, "not an access log line", PARSE_ERR, NULL, 0, 0);
	want(p, "h - - [32/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1",
	    PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "apache2", "keep-time-key", NULL, NULL);
	want(p, "h - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 304 0",
	    PARSE_OK,
	    "{\"host\":\"h\",\"user\":null,\"method\":\"GET\",\"path\":\"/\","
	    "\"code\":304,\"size\":0,\"referer\":null,\"agent\":null,"
	    "\"time\":\"10/Oct/2000:13:55:36 -0700\"}", APACHE_T, 0);
	parse_free(p);
}

static void
test_apache_error_nginx(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "apache_error", NULL);
	want(p, "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] "
	    "client denied by server configuration", PARSE_OK,
	    "{\"level\":\"error\",\"client\":\"127.0.0.1\",\"message\":"
	    "\"client denied by server configuration\"}", 971242372, 0);
	want(p, "[Wed Oct 11 14:32:52.123456 2000] [core:info] [pid 42] hi",
	    PARSE_OK, "{\"level\":\"core:info\",\"pid\":\"42\","
	    "\"message\":\"hi\"}", 971242372, 123456000);
	want(p, "no brackets", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	p = mk("format", "nginx", NULL);
	want(p, "127.0.0.1 192.168.0.1 - [10/Oct/2000:13:55:36 -0700] "
	    "\"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\" \"10.0.0.1\"",
	    PARSE_OK,
	    "{\"remote\":\"127.0.0.1\",\"host\":\"192.168.0.1\","
	    "\"user\":\"-\",\"method\":\"GET\",\"path\":\"/\",\"code\":\"200\","
	    "\"size\":\"612\",\"referer\":\"-\",\"agent\":\"curl/8.0\","
	    "\"http_x_forwarded_for\":\"10.0.0.1\"}", APACHE_T, 0);
	want(p, "a b c [10/Oct/2000:13:55:36 -0700] \"GET /\" 404 0",
	    PARSE_OK, "{\"remote\":\"a\",\"host\":\"b\",\"user\":\"c\","
	    "\"method\":\"GET\",\"path\":\"/\",\"code\":\"404\","
	    "\"size\":\"0\"}", APACHE_T, 0);
	parse_free(p);
	p = mk("format", "nginx", "types", "code:integer,size:integer", NULL);
	want(p, "a b c [10/Oct/2000:13:55:36 -0700] \"GET /\" 404 0",
	    PARSE_OK, "{\"remote\":\"a\",\"host\":\"b\",\"user\":\"c\","
	    "\"method\":\"GET\",\"path\":\"/\",\"code\":404,\"size\":0}",
	    APACHE_T, 0);
	parse_free(p);
}

/* "Mon dd hh:mm:ss" in the current year, UTC. */
static uint32_t
this_year(int mon, int mday, int h, int mi, int s)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (uint32_t)timegm(&tm);
}

static void
test_syslog(void **state)
{
	struct parser *p;
	uint32_t t = this_year(1, 3, 4, 5, 6);

	(void)state;
	p = mk("format", "syslog", "utc", NULL, NULL);
	want(p, "Feb  3 04:05:06 myhost sshd[123]: Accepted key", PARSE_OK,
	    "{\"host\":\"myhost\",\"ident\":\"sshd\",\"pid\":\"123\","
	    "\"message\":\"Accepted key\"}", t, 0);
	want(p, "Feb 03 04:05:06 myhost kernel: oops", PARSE_OK,
	    "{\"host\":\"myhost\",\"ident\":\"kernel\",\"message\":\"oops\"}",
	    t, 0);
	want(p, "Feb 03 04:05:06 myhost colonless words", PARSE_OK,
	    "{\"host\":\"myhost\",\"ident\":\"colonless\",\"message\":"
	    "\"words\"}", t, 0);
	want(p, "<13>Feb 03 04:05:06 h x: y", PARSE_ERR, NULL, 0, 0);
	want(p, "Feb", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	p = mk("format", "syslog", "utc", NULL, "with-priority", NULL,
	    "keep-time-key", NULL, NULL);
	want(p, "<13>Feb  3 04:05:06 h x: y\r", PARSE_OK,
	    "{\"pri\":13,\"time\":\"Feb 3 04:05:06\",\"host\":\"h\","
	    "\"ident\":\"x\",\"message\":\"y\"}", t, 0);
	want(p, "Feb 03 04:05:06 h x: y", PARSE_ERR, NULL, 0, 0);
	want(p, "<>Feb 03 04:05:06 h x: y", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	p = mk("format", "syslog", "message-format", "rfc5424",
	    "with-priority", NULL, NULL);
	want(p, "<16>1 2003-10-11T22:14:15.003Z host app 1234 ID47 "
	    "[exampleSDID@32473 iut=\"3\"] An application event", PARSE_OK,
	    "{\"pri\":16,\"host\":\"host\",\"ident\":\"app\",\"pid\":\"1234\","
	    "\"msgid\":\"ID47\",\"extradata\":\"[exampleSDID@32473 "
	    "iut=\\\"3\\\"]\",\"message\":\"An application event\"}",
	    1065910455, 3000000);
	/* without subseconds: Fluentd's fallback format; no message */
	want(p, "<16>1 2003-10-11T22:14:15Z host app - - -", PARSE_OK,
	    "{\"pri\":16,\"host\":\"host\",\"ident\":\"app\",\"pid\":\"-\","
	    "\"msgid\":\"-\",\"extradata\":\"-\"}", 1065910455, 0);
	want(p, "<16>1 2003-10-11T22:14:15Z host app - -", PARSE_ERR, NULL,
	    0, 0);
	parse_free(p);

	p = mk("format", "syslog", "message-format", "auto",
	    "with-priority", NULL, "utc", NULL, NULL);
	want(p, "<16>1 2003-10-11T22:14:15Z h a - - - m", PARSE_OK,
	    "{\"pri\":16,\"host\":\"h\",\"ident\":\"a\",\"pid\":\"-\","
	    "\"msgid\":\"-\",\"extradata\":\"-\",\"message\":\"m\"}",
	    1065910455, 0);
	want(p, "<16>Feb 03 04:05:06 h x: y", PARSE_OK,
	    "{\"pri\":16,\"host\":\"h\",\"ident\":\"x\",\"message\":\"y\"}",
	    t, 0);
	parse_free(p);
}

static void
test_tsv_csv(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "tsv", "keys", "a,b,c", NULL);
	want(p, "1\t2\t3\t4", PARSE_NOTIME,
	    "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\\t4\"}", 0, 0);
	want(p, "1", PARSE_NOTIME, "{\"a\":\"1\",\"b\":null,\"c\":null}",
	    0, 0);
	want(p, "1\t\t", PARSE_NOTIME, "{\"a\":\"1\",\"b\":\"\",\"c\":\"\"}",
	    0, 0);
	parse_free(p);
	p = mk("format", "tsv", "keys", "[\"time\",\"m\"]", "time-format",
	    "%Y-%m-%d %H:%M:%S", "utc", NULL, NULL);
	want(p, "2024-05-01 12:34:56\thi", PARSE_OK, "{\"m\":\"hi\"}", T0, 0);
	parse_free(p);
	mk_bad("keys", "format", "tsv", NULL);

	p = mk("format", "csv", "keys", "a,b,c", NULL);
	want(p, "1,\"x,\"\"y\"\"\",", PARSE_NOTIME,
	    "{\"a\":\"1\",\"b\":\"x,\\\"y\\\"\",\"c\":null}", 0, 0);
	want(p, "\"\",,z,extra", PARSE_NOTIME,
	    "{\"a\":\"\",\"b\":null,\"c\":\"z\"}", 0, 0);
	want(p, "only", PARSE_NOTIME,
	    "{\"a\":\"only\",\"b\":null,\"c\":null}", 0, 0);
	want(p, "\"unclosed,1", PARSE_ERR, NULL, 0, 0);
	want(p, "\"a\"b,1", PARSE_ERR, NULL, 0, 0);
	want(p, "a\"b,1", PARSE_ERR, NULL, 0, 0);
	want(p, "", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	/* more keys than any fixed table would hold */
	{
		struct buf keys = BUF_INIT, line = BUF_INIT, rec = BUF_INIT;
		struct buf out = BUF_INIT;
		uint32_t s, ns;
		char err[128];
		int i;

		for (i = 0; i < 100; i++) {
			buf_printf(&keys, "%sk%d", i ? "," : "", i);
			buf_printf(&line, "%s%d", i ? "," : "", i);
		}
		buf_addc(&keys, '\0');
		p = mk("format", "csv", "keys", (char *)keys.p, NULL);
		assert_int_equal(parse_line(p, (char *)line.p, line.len, &rec,
		    &s, &ns, err, sizeof err), PARSE_NOTIME);
		assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
		buf_addc(&out, '\0');
		assert_non_null(strstr((char *)out.p, "\"k99\":\"99\"}"));
		assert_int_equal(rec.p[0], 0xde);	/* map16: 100 keys */
		parse_free(p);
		buf_free(&keys);
		buf_free(&line);
		buf_free(&rec);
		buf_free(&out);
	}
	p = mk("format", "csv", "keys", "a,b", "delimiter", ";", NULL);
	want(p, "1;\"2;3\"", PARSE_NOTIME, "{\"a\":\"1\",\"b\":\"2;3\"}", 0, 0);
	parse_free(p);
}

static void
test_msgpack(void **state)
{
	struct parser *p;
	struct buf rec = BUF_INIT;
	uint32_t s, ns;
	char err[128];
	/* {"time":1714566896,"a":"b"} */
	static const char m[] = "\x82\xa4time\xce\x66\x32\x36\xf0\xa1\x61\xa1\x62";

	(void)state;
	p = mk("format", "msgpack", NULL);
	assert_int_equal(parse_line(p, m, sizeof m - 1, &rec, &s, &ns, err,
	    sizeof err), PARSE_OK);
	assert_int_equal(s, T0);
	assert_int_equal(rec.len, 5);
	assert_memory_equal(rec.p, "\x81\xa1\x61\xa1\x62", 5);
	assert_int_equal(parse_line(p, "\x91\x01", 2, &rec, &s, &ns, err,
	    sizeof err), PARSE_ERR);
	assert_int_equal(parse_line(p, m, sizeof m - 2, &rec, &s, &ns, err,
	    sizeof err), PARSE_ERR);
	assert_int_equal(rec.len, 5);
	parse_free(p);
	buf_free(&rec);
}

static void
test_multiline(void **state)
{
	struct parser *p;
	struct buf rec = BUF_INIT, out = BUF_INIT;
	uint32_t s, ns;
	char err[128];
	const char *f;
	size_t fl;

	(void)state;
	p = mk("format", "multiline", "format-firstline", "/^\\d{4}-/",
	    "format1", "/^(?<time>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d) /",
	    "format2", "/(?<level>\\w+) (?<msg>.*)/",
	    "time-format", "%Y-%m-%d %H:%M:%S", "utc", NULL, NULL);
	want(p, "  at before the first line", PARSE_ERR, NULL, 0, 0);
	f = parse_failed(p, &fl);
	assert_int_equal(fl, strlen("  at before the first line"));
	assert_memory_equal(f, "  at before the first line", fl);
	want(p, "2024-05-01 12:34:56 ERROR boom", PARSE_MORE, NULL, 0, 0);
	want(p, "  at a()", PARSE_MORE, NULL, 0, 0);
	assert_true(parse_pending(p));
	want(p, "2024-05-01 12:34:57 INFO next", PARSE_OK,
	    "{\"level\":\"ERROR\",\"msg\":\"boom\\n  at a()\"}", T0, 0);
	assert_int_equal(parse_flush(p, &rec, &s, &ns, err, sizeof err),
	    PARSE_OK);
	assert_int_equal(s, T0 + 1);
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	assert_int_equal(out.len, strlen("{\"level\":\"INFO\",\"msg\":\"next\"}"));
	assert_false(parse_pending(p));
	assert_int_equal(parse_flush(p, &rec, &s, &ns, err, sizeof err),
	    PARSE_MORE);
	/* a first line whose record will not match: unmatched, whole */
	want(p, "2024-05-01 12:34:56", PARSE_MORE, NULL, 0, 0);
	want(p, "more", PARSE_MORE, NULL, 0, 0);
	want(p, "2024-05-01 12:34:56 A b", PARSE_ERR, NULL, 0, 0);
	f = parse_failed(p, &fl);
	assert_int_equal(fl, 24);
	assert_memory_equal(f, "2024-05-01 12:34:56\nmore", fl);
	parse_free(p);

	/* no first line: lines join until the whole matches */
	p = mk("format", "multiline", "format1", "/^begin (?<body>.*) end$/",
	    NULL);
	want(p, "begin a", PARSE_MORE, NULL, 0, 0);
	want(p, "b end", PARSE_NOTIME, "{\"body\":\"a\\nb\"}", 0, 0);
	want(p, "begin x", PARSE_MORE, NULL, 0, 0);
	buf_reset(&rec);
	assert_int_equal(parse_flush(p, &rec, &s, &ns, err, sizeof err),
	    PARSE_ERR);
	assert_int_equal(rec.len, 0);
	f = parse_failed(p, &fl);
	assert_int_equal(fl, 7);
	parse_free(p);
	mk_bad("format1", "format", "multiline", NULL);
	mk_bad("format2 is missing", "format", "multiline", "format1",
	    "/(?<a>.)/", "format3", "/x/", NULL);
	buf_free(&rec);
	buf_free(&out);
}

static void
test_types(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "ltsv", "types", "i:integer,j:integer,f:float,"
	    "g:float,b:bool,c:bool,s:string,a:array,d:array:|,"
	    "t:time:%Y-%m-%d %H:%M:%S%z,u:time:unixtime,v:time", NULL);
	want(p, "i:12abc\tj:x\tf:1.5e3xyz\tg:.5\tb:YES\tc:no\ts:7\ta:x,y,,\t"
	    "d:1|2\tt:2024-05-01 12:34:56+0000\tu:1714566896\tv:bad",
	    PARSE_NOTIME,
	    "{\"i\":12,\"j\":0,\"f\":1500.0,\"g\":0.5,\"b\":true,\"c\":false,"
	    "\"s\":\"7\",\"a\":[\"x\",\"y\"],\"d\":[\"1\",\"2\"],"
	    "\"t\":1714566896.000000000,\"u\":1714566896.000000000,"
	    "\"v\":null}", 0, 0);
	want(p, "i:-3\tf:-2\ta:", PARSE_NOTIME,
	    "{\"i\":-3,\"f\":-2.0,\"a\":[]}", 0, 0);
	want(p, "i:1_000\tj:99999999999", PARSE_NOTIME,
	    "{\"i\":1000,\"j\":99999999999}", 0, 0);
	parse_free(p);
	/* time with a zone then a format; Fluentd splits at the first
	 * colon, so "+09:00:fmt" is zone "+09" and format "00:fmt" */
	p = mk("format", "ltsv", "types", "t:time:+0900:%Y-%m-%d %H:%M:%S,"
	    "u:time:Asia/Tokyo:%Y-%m-%d,v:time:+09:00:%Y", NULL);
	want(p, "t:2024-05-01 12:34:56\tu:2024-05-01\tv:2024",
	    PARSE_NOTIME, "{\"t\":1714534496.000000000,"
	    "\"u\":1714489200.000000000,\"v\":null}", 0, 0);
	parse_free(p);
	mk_bad("unknown value conversion", "format", "ltsv", "types",
	    "a:bogus", NULL);
	mk_bad("has no type", "format", "ltsv", "types", "a", NULL);
}

static void
test_nulls(void **state)
{
	struct parser *p;

	(void)state;
	p = mk("format", "ltsv", "null-value-pattern", "^(-|null)$",
	    "types", "n:integer", NULL);
	want(p, "a:-\tb:null\tc:x-y\tn:-\td:", PARSE_NOTIME,
	    "{\"a\":null,\"b\":null,\"c\":\"x-y\",\"n\":null,\"d\":\"\"}",
	    0, 0);
	parse_free(p);
	/* unanchored, as Ruby's match? */
	p = mk("format", "ltsv", "null-value-pattern", "-", NULL);
	want(p, "a:x-y\tb:xy", PARSE_NOTIME, "{\"a\":null,\"b\":\"xy\"}",
	    0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "null-empty-string", NULL, NULL);
	want(p, "a:\tb:x", PARSE_NOTIME, "{\"a\":null,\"b\":\"x\"}", 0, 0);
	parse_free(p);
	mk_bad("regexp", "format", "ltsv", "null-value-pattern", "(", NULL);
}

static void
test_time_options(void **state)
{
	struct parser *p;

	(void)state;
	/* local time is Asia/Tokyo here */
	p = mk("format", "ltsv", "time-format", "%Y-%m-%d %H:%M:%S", NULL);
	want(p, "time:2024-05-01 12:34:56", PARSE_OK, "{}", T0JST, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%Y-%m-%d %H:%M:%S",
	    "localtime", "false", NULL);
	want(p, "time:2024-05-01 12:34:56", PARSE_OK, "{}", T0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%Y-%m-%d %H:%M:%S",
	    "timezone", "-05:30", NULL);
	want(p, "time:2024-05-01 12:34:56", PARSE_OK, "{}",
	    T0 + 5 * 3600 + 1800, 0);
	parse_free(p);
	/* a named zone, both sides of daylight saving */
	p = mk("format", "ltsv", "time-format", "%Y-%m-%d %H:%M:%S",
	    "timezone", "America/New_York", NULL);
	want(p, "time:2024-07-01 12:00:00", PARSE_OK, "{}", 1719849600, 0);
	want(p, "time:2024-01-01 12:00:00", PARSE_OK, "{}", 1704128400, 0);
	parse_free(p);
	/* a zone in the text wins */
	p = mk("format", "ltsv", "time-format", "%Y-%m-%d %H:%M:%S %z",
	    "timezone", "Asia/Tokyo", NULL);
	want(p, "time:2024-05-01 12:34:56 +0000", PARSE_OK, "{}", T0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%iso8601", NULL);
	want(p, "time:2024-05-01T12:34:56.123456789+00:00", PARSE_OK, "{}",
	    T0, 123456789);
	want(p, "time:2024-05-01T12:34:56", PARSE_OK, "{}", T0JST, 0);
	parse_free(p);
	/* fractions */
	p = mk("format", "ltsv", "time-format", "%Y-%m-%dT%H:%M:%S.%L%z",
	    NULL);
	want(p, "time:2024-05-01T12:34:56.12Z", PARSE_OK, "{}", T0,
	    120000000);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%Y-%m-%dT%H:%M:%S.%3N%:z",
	    NULL);
	want(p, "time:2024-05-01T12:34:56.987+00:00", PARSE_OK, "{}", T0,
	    987000000);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%Y-%m-%e %k:%M:%S %%", "utc",
	    NULL, NULL);
	want(p, "time:2024-05- 1 12:34:56 %", PARSE_OK, "{}", T0, 0);
	want(p, "time:2024-05-01 12:34:56", PARSE_ERR, NULL, 0, 0);
	want(p, "time:2024-05-01 12:34:56 % x", PARSE_ERR, NULL, 0, 0);
	want(p, "time:2024-13-01 12:34:56 %", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%a %B %d %H:%M:%S %Y",
	    "utc", NULL, NULL);
	want(p, "time:Wednesday May 01 12:34:56 2024", PARSE_OK, "{}", T0, 0);
	want(p, "time:wed may 01 12:34:56 2024", PARSE_OK, "{}", T0, 0);
	want(p, "time:Wed Mai 01 12:34:56 2024", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-format", "%Y%m%d-%H%M%S.%N", "utc",
	    NULL, NULL);
	want(p, "time:20240501-123456.000000001", PARSE_OK, "{}", T0, 1);
	parse_free(p);
	/* a conversion the native walker leaves to strptime(3) */
	p = mk("format", "ltsv", "time-format", "%Y-%j %H:%M:%S", "utc",
	    NULL, NULL);
	want(p, "time:2024-122 12:34:56", PARSE_OK, "{}", T0, 0);
	parse_free(p);

	p = mk("format", "ltsv", "time-type", "float", NULL);
	want(p, "time:1714566896.5", PARSE_OK, "{}", T0, 500000000);
	want(p, "time:1714566896", PARSE_OK, "{}", T0, 0);
	want(p, "time:x", PARSE_ERR, NULL, 0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-type", "unixtime", NULL);
	want(p, "time:1714566896.5", PARSE_OK, "{}", T0, 0);
	parse_free(p);
	p = mk("format", "ltsv", "time-type", "mixed", "time-format",
	    "%Y-%m-%d %H:%M:%S%z", "time-format-fallbacks",
	    "%d/%b/%Y:%H:%M:%S %z,unixtime", NULL);
	want(p, "time:2024-05-01 12:34:56Z", PARSE_OK, "{}", T0, 0);
	want(p, "time:10/Oct/2000:13:55:36 -0700", PARSE_OK, "{}",
	    APACHE_T, 0);
	want(p, "time:1714566896", PARSE_OK, "{}", T0, 0);
	want(p, "time:never", PARSE_ERR, NULL, 0, 0);
	parse_free(p);

	mk_bad("timezone", "format", "ltsv", "timezone", "Mars/Base", NULL);
	mk_bad("requires time format", "format", "ltsv", "timezone",
	    "+09:00", NULL);
	mk_bad("mixed", "format", "ltsv", "time-type", "mixed", NULL);
}

static void
test_options(void **state)
{
	struct parse_conf c;
	char err[128];

	(void)state;
	parse_conf_default(&c);
	assert_int_equal(c.estimate_current_event, 1);
	assert_int_equal(parse_option(&c, opt_code("format"), "bogus", err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "unknown format"));
	assert_int_equal(parse_option(&c, opt_code("keep-time-key"), "maybe",
	    err, sizeof err), -1);
	assert_int_equal(parse_option(&c, opt_code("time-type"), "epoch",
	    err, sizeof err), -1);
	assert_int_equal(parse_option(&c, opt_code("message-format"), "x",
	    err, sizeof err), -1);
	assert_int_equal(parse_option(&c, opt_code("emit-unmatched-lines"),
	    NULL, err, sizeof err), 0);
	assert_int_equal(c.emit_unmatched_lines, 1);
	assert_int_equal(parse_option(&c, opt_code("format20"), "/x/", err,
	    sizeof err), 0);
	assert_string_equal(c.formats[19], "/x/");
	assert_int_equal(parse_option(&c, 1, "x", err, sizeof err), -1);
	assert_non_null(strstr(parse_usage, "--format"));
}

/* The exact msgpack: smallest headers, as msgpack-c packs them. */
static void
test_bytes(void **state)
{
	struct buf rec = BUF_INIT, pb = BUF_INIT, line = BUF_INIT;
	msgpack_packer pk;
	struct parser *p;
	uint32_t s, ns;
	char err[128], k[16];
	int i;

	(void)state;
	assert_int_equal(parse_unmatched(&rec, "a\tb", 3), 0);
	assert_int_equal(rec.len, 1 + 15 + 4);
	assert_memory_equal(rec.p, "\x81\xaeunmatched_line\xa3" "a\tb", 20);

	/* 20 fields (map16) with a 40-byte value (str8) and a 300-byte
	 * one (str16) */
	p = mk("format", "ltsv", NULL);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	msgpack_pack_map(&pk, 20);
	for (i = 0; i < 20; i++) {
		int vl = i == 0 ? 40 : i == 1 ? 300 : 1;
		char v[300];

		snprintf(k, sizeof k, "k%d", i);
		memset(v, 'v', sizeof v);
		buf_printf(&line, "%s%s:%.*s", i ? "\t" : "", k, vl, v);
		msgpack_pack_str(&pk, strlen(k));
		msgpack_pack_str_body(&pk, k, strlen(k));
		msgpack_pack_str(&pk, (size_t)vl);
		msgpack_pack_str_body(&pk, v, (size_t)vl);
	}
	buf_reset(&rec);
	assert_int_equal(parse_line(p, (char *)line.p, line.len, &rec, &s, &ns,
	    err, sizeof err), PARSE_NOTIME);
	assert_int_equal(rec.len, pb.len);
	assert_memory_equal(rec.p, pb.p, pb.len);

	/* ints of every width, as msgpack-c */
	parse_free(p);
	p = mk("format", "tsv", "keys", "a,b,c,d,e,f", "types",
	    "a:integer,b:integer,c:integer,d:integer,e:integer,f:integer",
	    NULL);
	buf_reset(&pb);
	msgpack_pack_map(&pk, 6);
	{
		static const int64_t v[] = { 127, -33, 65535, -40000,
		    4294967296LL, -5000000000LL };
		for (i = 0; i < 6; i++) {
			k[0] = (char)('a' + i);
			msgpack_pack_str(&pk, 1);
			msgpack_pack_str_body(&pk, k, 1);
			msgpack_pack_int64(&pk, v[i]);
		}
	}
	buf_reset(&rec);
	assert_int_equal(parse_line(p, "127\t-33\t65535\t-40000\t4294967296\t"
	    "-5000000000", 46, &rec, &s, &ns, err, sizeof err), PARSE_NOTIME);
	assert_int_equal(rec.len, pb.len);
	assert_memory_equal(rec.p, pb.p, pb.len);
	parse_free(p);
	buf_free(&rec);
	buf_free(&pb);
	buf_free(&line);
}

/* A bad line leaves rec as it was, even half-way through a record. */
static void
test_rollback(void **state)
{
	struct parser *p;
	struct buf rec = BUF_INIT;
	uint32_t s, ns;
	char err[128];
	const char *f;
	size_t fl;

	(void)state;
	p = mk("format", "ltsv", "time-format", "%s", NULL);
	assert_int_equal(buf_add(&rec, "abc", 3), 0);
	assert_int_equal(parse_line(p, "a:1\tb:2\ttime:x", 14, &rec, &s, &ns,
	    err, sizeof err), PARSE_ERR);
	assert_int_equal(rec.len, 3);
	assert_non_null(strstr(err, "invalid time"));
	f = parse_failed(p, &fl);
	assert_int_equal(fl, 14);
	assert_memory_equal(f, "a:1\tb:2\ttime:x", 14);
	parse_free(p);
	buf_free(&rec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_ltsv),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_regexp),
		cmocka_unit_test(test_apache2),
		cmocka_unit_test(test_apache_error_nginx),
		cmocka_unit_test(test_syslog),
		cmocka_unit_test(test_tsv_csv),
		cmocka_unit_test(test_msgpack),
		cmocka_unit_test(test_multiline),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_time_options),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_rollback),
	};

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
