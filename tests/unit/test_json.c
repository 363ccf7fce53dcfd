#include <math.h>
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
#include <openssl/evp.h>

#include "buf.h"
#include "json.h"
#include "mp.h"
#include "timefmt.h"

#define T0	1714566896u	/* 2024-05-01T12:34:56Z */

/* A packer writing into a buf, reset per use. */
static struct buf pb = BUF_INIT;
static msgpack_packer pk;

static msgpack_packer *
pack(void)
{
	buf_reset(&pb);
	msgpack_packer_init(&pk, &pb, buf_msgpack_write);
	return &pk;
}

static void
pkstr(const char *s)
{
	msgpack_pack_str(&pk, strlen(s));
	msgpack_pack_str_body(&pk, s, strlen(s));
}

static void
pkbin(const void *p, size_t n)
{
	msgpack_pack_bin(&pk, n);
	msgpack_pack_bin_body(&pk, p, n);
}

/* json_value of p[0..n) must be want and use all n bytes. */
static void
want_json(const void *p, size_t n, const char *want)
{
	struct buf out = BUF_INIT;
	size_t used = 0;

	assert_int_equal(json_value(&out, p, n, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.p, want, out.len);
	buf_free(&out);
}

static void
want_packed(const char *want)
{
	want_json(pb.p, pb.len, want);
}

static void
want_bytes(const void *p, size_t n, const char *want)
{
	want_json(p, n, want);
}

#define BYTES(want, ...) do {						\
	static const unsigned char b_[] = { __VA_ARGS__ };		\
	want_bytes(b_, sizeof b_, want);				\
} while (0)

static void
want_bad(const void *p, size_t n)
{
	struct buf out = BUF_INIT;

	assert_int_equal(buf_add(&out, "keep", 4), 0);
	assert_int_equal(json_value(&out, p, n, NULL), -1);
	assert_int_equal(out.len, 4);
	buf_free(&out);
}

static void
test_scalars(void **state)
{
	(void)state;
	BYTES("null", 0xc0);
	BYTES("true", 0xc3);
	BYTES("false", 0xc2);
	BYTES("0", 0x00);
	BYTES("127", 0x7f);
	BYTES("-1", 0xff);
	BYTES("-32", 0xe0);
	BYTES("200", 0xcc, 200);
	BYTES("65535", 0xcd, 0xff, 0xff);
	BYTES("4294967295", 0xce, 0xff, 0xff, 0xff, 0xff);
	BYTES("18446744073709551615", 0xcf,
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	BYTES("-128", 0xd0, 0x80);
	BYTES("5", 0xd0, 0x05);		/* signed encoding, positive value */
	BYTES("-32768", 0xd1, 0x80, 0x00);
	BYTES("-2147483648", 0xd2, 0x80, 0x00, 0x00, 0x00);
	BYTES("-9223372036854775808", 0xd3,
	    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
	BYTES("9223372036854775807", 0xd3,
	    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
}

static void
want_double(double d, const char *want)
{
	msgpack_pack_double(pack(), d);
	want_packed(want);
}

static void
test_floats(void **state)
{
	(void)state;
	want_double(1.0, "1.0");
	want_double(0.0, "0.0");
	want_double(-0.0, "-0.0");
	want_double(-2.0, "-2.0");
	want_double(0.1, "0.1");
	want_double(1.5, "1.5");
	want_double(0.1 + 0.2, "0.30000000000000004");
	want_double(1234567890.123456, "1234567890.123456");	/* %.16g */
	want_double(123456789012345678.0, "1.2345678901234568e+17");
	want_double(1e20, "1e+20");
	want_double(1e300, "1e+300");
	want_double(5e-324, "4.94065645841247e-324");
	want_double(1441588984.5, "1441588984.5");
	want_double(NAN, "null");
	want_double(INFINITY, "null");
	want_double(-INFINITY, "null");
	/* float32 is written as the double it widens to */
	msgpack_pack_float(pack(), 0.1f);
	want_packed("0.10000000149011612");
	msgpack_pack_float(pack(), 2.0f);
	want_packed("2.0");
	BYTES("null", 0xca, 0x7f, 0xc0, 0x00, 0x00);	/* float32 NaN */
}

static void
want_str(const char *s, size_t n, const char *want)
{
	msgpack_pack_str(pack(), n);
	msgpack_pack_str_body(&pk, s, n);
	want_packed(want);
}

#define STR(s, want)	want_str((s), sizeof(s) - 1, (want))

static void
test_strings(void **state)
{
	char big[70000];

	(void)state;
	STR("", "\"\"");
	STR("plain text", "\"plain text\"");
	STR("q\"b\\s/", "\"q\\\"b\\\\s/\"");
	STR("\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\"");
	STR("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
	STR("a\0b", "\"a\\u0000b\"");
	/* valid UTF-8 is copied */
	STR("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");
	/* invalid bytes are Latin-1, one by one */
	STR("\xff", "\"\\u00ff\"");
	STR("a\xc3", "\"a\\u00c3\"");
	STR("\xc0\x80", "\"\\u00c0\\u0080\"");		/* overlong NUL */
	STR("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"");	/* overlong / */
	STR("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");	/* surrogate */
	STR("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"");
	STR("\xe2\x82x\xc3\xa9", "\"\\u00e2\\u0082x\xc3\xa9\"");
	STR("\x80\"", "\"\\u0080\\\"\"");
	/* str8, str16, str32 headers */
	BYTES("\"ab\"", 0xd9, 2, 'a', 'b');
	BYTES("\"ab\"", 0xda, 0, 2, 'a', 'b');
	BYTES("\"ab\"", 0xdb, 0, 0, 0, 2, 'a', 'b');
	memset(big, 'x', sizeof big);
	{
		struct buf out = BUF_INIT;

		msgpack_pack_str(pack(), sizeof big);
		msgpack_pack_str_body(&pk, big, sizeof big);
		assert_int_equal(json_value(&out, pb.p, pb.len, NULL), 0);
		assert_int_equal(out.len, sizeof big + 2);
		assert_memory_equal(out.p + 1, big, sizeof big);
		buf_free(&out);
	}
}

static void
want_bin(const char *s, const char *want)
{
	pack();
	pkbin(s, strlen(s));
	want_packed(want);
}

static void
test_bin(void **state)
{
	static unsigned char big[200003], enc[4 * (sizeof big / 3 + 1) + 1];
	struct buf out = BUF_INIT;
	size_t i;
	int n;

	(void)state;
	want_bin("", "\"\"");
	want_bin("f", "\"Zg==\"");
	want_bin("fo", "\"Zm8=\"");
	want_bin("foo", "\"Zm9v\"");
	want_bin("foobar", "\"Zm9vYmFy\"");
	BYTES("\"AP8Q\"", 0xc4, 3, 0x00, 0xff, 0x10);
	BYTES("\"AP8Q\"", 0xc5, 0, 3, 0x00, 0xff, 0x10);
	BYTES("\"AP8Q\"", 0xc6, 0, 0, 0, 3, 0x00, 0xff, 0x10);
	/* past one encoding chunk: the same as one call over everything */
	for (i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	n = EVP_EncodeBlock(enc, big, (int)sizeof big);
	pack();
	pkbin(big, sizeof big);
	assert_int_equal(json_value(&out, pb.p, pb.len, NULL), 0);
	assert_int_equal(out.len, (size_t)n + 2);
	assert_memory_equal(out.p + 1, enc, (size_t)n);
	buf_free(&out);
}

static void
test_ext(void **state)
{
	(void)state;
	/* EventTime: fixext 8, type 0 */
	BYTES("1441588984.123456789", 0xd7, 0x00,
	    0x55, 0xec, 0xe6, 0xf8, 0x07, 0x5b, 0xcd, 0x15);
	BYTES("0.000000000", 0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0, 0);
	BYTES("4294967295.999999999", 0xd7, 0x00,
	    0xff, 0xff, 0xff, 0xff, 0x3b, 0x9a, 0xc9, 0xff);
	/* ext 8 spelling of the same */
	BYTES("1.000000001", 0xc7, 8, 0x00, 0, 0, 0, 1, 0, 0, 0, 1);
	/* nsec out of range: not a time */
	BYTES("\"AAAAATuaygA=\"", 0xd7, 0x00, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0x00);
	/* other types and sizes: base64 of the payload */
	BYTES("\"AAAAAQAAAAE=\"", 0xd7, 0x01, 0, 0, 0, 1, 0, 0, 0, 1);
	BYTES("\"qg==\"", 0xd4, 0x05, 0xaa);
	BYTES("\"AAEC\"", 0xc7, 3, 0x00, 0, 1, 2);
	BYTES("\"\"", 0xc7, 0, 0x7f);
	BYTES("\"AAECAwQFBgcICQoLDA0ODw==\"", 0xd8, 0xff,
	    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

static void
test_containers(void **state)
{
	(void)state;
	BYTES("[]", 0x90);
	BYTES("{}", 0x80);
	BYTES("[1,[2,[]],{\"a\":{}}]", 0x93, 0x01, 0x92, 0x02, 0x90,
	    0x81, 0xa1, 'a', 0x80);
	BYTES("[1,2]", 0xdc, 0, 2, 1, 2);
	BYTES("[1,2]", 0xdd, 0, 0, 0, 2, 1, 2);
	BYTES("{\"a\":1}", 0xde, 0, 1, 0xa1, 'a', 1);
	BYTES("{\"a\":1}", 0xdf, 0, 0, 0, 1, 0xa1, 'a', 1);
	/* duplicates are kept */
	BYTES("{\"a\":1,\"a\":2}", 0x82, 0xa1, 'a', 1, 0xa1, 'a', 2);

	msgpack_pack_map(pack(), 3);
	pkstr("msg");
	pkstr("hi");
	pkstr("n");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, -5);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	pkstr("m");
	msgpack_pack_map(&pk, 1);
	pkstr("x");
	msgpack_pack_double(&pk, 2.5);
	want_packed("{\"msg\":\"hi\",\"n\":[-5,null,true],\"m\":{\"x\":2.5}}");
}

static void
test_keys(void **state)
{
	(void)state;
	BYTES("{\"1\":2}", 0x81, 0x01, 0x02);
	BYTES("{\"-1\":2}", 0x81, 0xff, 0x02);
	BYTES("{\"null\":1}", 0x81, 0xc0, 0x01);
	BYTES("{\"true\":1}", 0x81, 0xc3, 0x01);
	BYTES("{\"1.5\":1}", 0x81, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x01);
	/* bin keys are strings of their bytes */
	BYTES("{\"ab\":1}", 0x81, 0xc4, 2, 'a', 'b', 0x01);
	BYTES("{\"\\u00ff\":1}", 0x81, 0xc4, 1, 0xff, 0x01);
	/* containers: their JSON text, escaped */
	BYTES("{\"[1,\\\"a\\\"]\":1}", 0x81, 0x92, 0x01, 0xa1, 'a', 0x01);
	BYTES("{\"{\\\"k\\\":\\\"v\\\"}\":1}", 0x81,
	    0x81, 0xa1, 'k', 0xa1, 'v', 0x01);
	/* a quote and a backslash inside a key's string, twice escaped */
	BYTES("{\"[\\\"q\\\\\\\"\\\\\\\\\\\"]\":0}", 0x81,
	    0x91, 0xa3, 'q', '"', '\\', 0x00);
	BYTES("{\"[\\\"\\\\n\\\"]\":0}", 0x81, 0x91, 0xa1, '\n', 0x00);
	/* a map key that is a map with a non-string key */
	BYTES("{\"{\\\"1\\\":2}\":3}", 0x81, 0x81, 0x01, 0x02, 0x03);
	/* EventTime and bin as keys */
	BYTES("{\"1.000000002\":0}", 0x81,
	    0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2, 0x00);
	BYTES("{\"[\\\"Zm9v\\\"]\":0}", 0x81, 0x91, 0xc4, 3, 'f', 'o', 'o', 0x00);
}

/* depth nested arrays around one value; empty: the innermost is [] */
static void
nest(struct buf *b, int depth, int empty)
{
	int i;

	buf_reset(b);
	for (i = 0; i < depth - 1; i++)
		buf_addc(b, 0x91);
	buf_addc(b, empty ? 0x90 : 0x91);
	if (!empty)
		buf_addc(b, 0x01);
}

static void
test_depth(void **state)
{
	struct buf in = BUF_INIT, out = BUF_INIT;
	size_t len;

	(void)state;
	nest(&in, MP_MAXDEPTH, 0);
	assert_int_equal(json_value(&out, in.p, in.len, NULL), 0);
	assert_int_equal(out.len, 2 * MP_MAXDEPTH + 1);
	assert_int_equal(mp_skip(in.p, in.len, MP_MAXDEPTH, &len), MP_OK);
	nest(&in, MP_MAXDEPTH + 1, 0);
	want_bad(in.p, in.len);
	assert_int_equal(mp_skip(in.p, in.len, MP_MAXDEPTH, &len), MP_EDEPTH);
	/* an empty container does not count, as in mp_scan */
	nest(&in, MP_MAXDEPTH + 1, 1);
	assert_int_equal(mp_skip(in.p, in.len, MP_MAXDEPTH, &len), MP_OK);
	buf_reset(&out);
	assert_int_equal(json_value(&out, in.p, in.len, NULL), 0);
	/* map values count too */
	buf_reset(&in);
	for (len = 0; len < MP_MAXDEPTH + 1; len++) {
		buf_addc(&in, 0x81);
		buf_addc(&in, 0x00);
	}
	buf_addc(&in, 0x00);
	want_bad(in.p, in.len);
	buf_free(&in);
	buf_free(&out);
}

static void
test_truncated(void **state)
{
	struct buf out = BUF_INIT;
	size_t i, used;
	static const unsigned char extra[] = { 0x92, 0x01, 0x02, 0xc0 };

	(void)state;
	msgpack_pack_map(pack(), 4);
	pkstr("a");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_double(&pk, 1.5);
	pkstr("bin");
	pkbin("xyz", 3);
	pkstr("t");
	msgpack_pack_ext(&pk, 8, 0);
	msgpack_pack_ext_body(&pk, "\0\0\0\1\0\0\0\2", 8);
	msgpack_pack_int64(&pk, -70000);
	pkstr("long string, in str8 form for sure, more than 31 bytes");
	for (i = 0; i < pb.len; i++)
		want_bad(pb.p, i);
	want_packed("{\"a\":[18446744073709551615,1.5],\"bin\":\"eHl6\","
	    "\"t\":1.000000002,\"-70000\":"
	    "\"long string, in str8 form for sure, more than 31 bytes\"}");
	/* 0xc1 never occurs */
	want_bad("\xc1", 1);
	want_bad("\x91\xc1", 2);
	/* a value followed by more: *used stops at its end */
	assert_int_equal(json_value(&out, extra, sizeof extra, &used), 0);
	assert_int_equal(used, 3);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.p, "[1,2]", 5);
	buf_free(&out);
}

/* A record used by the formatter tests. */
static void
sample(void)
{
	msgpack_pack_map(pack(), 8);
	pkstr("a");
	pkstr("x\ty\nz\r");
	pkstr("b");
	msgpack_pack_int(&pk, 1);
	pkstr("c");
	msgpack_pack_map(&pk, 1);
	pkstr("d");
	msgpack_pack_array(&pk, 2);
	pkstr("e\tf");
	msgpack_pack_int(&pk, 2);
	pkstr("n");
	msgpack_pack_nil(&pk);
	pkstr("bin");
	pkbin("foo", 3);
	msgpack_pack_int(&pk, 7);
	msgpack_pack_true(&pk);
	pkstr("f");
	msgpack_pack_double(&pk, 1.0);
	pkstr("la\tbel");
	pkstr("\xc3\xa9\xff");
}

static void
want_buf(struct buf *b, const char *want)
{
	assert_int_equal(b->len, strlen(want));
	assert_memory_equal(b->p, want, b->len);
}

static void
test_event(void **state)
{
	struct buf out = BUF_INIT;

	(void)state;
	sample();
	assert_int_equal(json_event(&out, "app.log", 7, T0, 5, pb.p, pb.len), 0);
	want_buf(&out, "{\"tag\":\"app.log\",\"time\":1714566896.000000005,"
	    "\"record\":{\"a\":\"x\\ty\\nz\\r\",\"b\":1,\"c\":{\"d\":[\"e\\tf\",2]},"
	    "\"n\":null,\"bin\":\"Zm9v\",\"7\":true,\"f\":1.0,"
	    "\"la\\tbel\":\"\xc3\xa9\\u00ff\"}}\n");
	buf_reset(&out);
	assert_int_equal(json_event(&out, "t\"\n", 3, 0, 999999999,
	    (const unsigned char *)"\x80", 1), 0);
	want_buf(&out, "{\"tag\":\"t\\\"\\n\",\"time\":0.999999999,\"record\":{}}\n");
	/* bad: nsec, not a map, bytes after the map, truncated */
	buf_reset(&out);
	buf_addc(&out, 'x');
	assert_int_equal(json_event(&out, "t", 1, 0, 1000000000,
	    (const unsigned char *)"\x80", 1), -1);
	assert_int_equal(json_event(&out, "t", 1, 0, 0,
	    (const unsigned char *)"\x90", 1), -1);
	assert_int_equal(json_event(&out, "t", 1, 0, 0,
	    (const unsigned char *)"\x80\x80", 2), -1);
	assert_int_equal(json_event(&out, "t", 1, 0, 0,
	    (const unsigned char *)"\x81\xa1", 2), -1);
	assert_int_equal(json_event(&out, "t", 1, 0, 0, NULL, 0), -1);
	want_buf(&out, "x");
	buf_free(&out);
}

static void
test_ltsv(void **state)
{
	struct buf out = BUF_INIT;

	(void)state;
	sample();
	assert_int_equal(json_ltsv(&out, pb.p, pb.len), 0);
	want_buf(&out, "a:x y z\r\tb:1\tc:{\"d\":[\"e\\tf\",2]}\tn:null\t"
	    "bin:Zm9v\t7:true\tf:1.0\tla bel:\xc3\xa9\xff\n");
	buf_reset(&out);
	assert_int_equal(json_ltsv(&out, (const unsigned char *)"\x80", 1), 0);
	want_buf(&out, "\n");
	buf_reset(&out);
	BYTES("{\"k\":1.000000002}", 0x81, 0xa1, 'k',
	    0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2);
	assert_int_equal(json_ltsv(&out, (const unsigned char *)
	    "\x82\xc4\x01k\xc4\x01\x01\x01\x00", 9), 0);
	want_buf(&out, "k:AQ==\t1:0\n");
	buf_reset(&out);
	assert_int_equal(json_ltsv(&out, (const unsigned char *)"\x92\x01\x02",
	    3), -1);
	assert_int_equal(json_ltsv(&out, (const unsigned char *)"\x81\xa1k",
	    3), -1);
	assert_int_equal(json_ltsv(&out, (const unsigned char *)"\x80\x01",
	    2), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void
test_outfile(void **state)
{
	struct buf out = BUF_INIT;
	const unsigned char rec[] = { 0x81, 0xa1, 'a', 0x01 };

	(void)state;
	assert_int_equal(json_outfile(&out, "app.log", 7, T0, 123, rec,
	    sizeof rec, 1), 0);
	want_buf(&out, "2024-05-01T12:34:56Z\tapp.log\t{\"a\":1}\n");
	buf_reset(&out);
	assert_int_equal(json_outfile(&out, "t", 1, 0, 0, rec, sizeof rec, 1), 0);
	want_buf(&out, "1970-01-01T00:00:00Z\tt\t{\"a\":1}\n");
	/* local time, with POSIX TZ strings so no zoneinfo is needed */
	setenv("TZ", "JST-9", 1);
	tzset();
	buf_reset(&out);
	assert_int_equal(json_outfile(&out, "t", 1, T0, 0, rec, sizeof rec, 0), 0);
	want_buf(&out, "2024-05-01T21:34:56+09:00\tt\t{\"a\":1}\n");
	setenv("TZ", "NST+3:30", 1);
	tzset();
	buf_reset(&out);
	assert_int_equal(json_outfile(&out, "t", 1, T0, 0, rec, sizeof rec, 0), 0);
	want_buf(&out, "2024-05-01T09:04:56-03:30\tt\t{\"a\":1}\n");
	setenv("TZ", "UTC0", 1);
	tzset();
	buf_reset(&out);
	assert_int_equal(json_outfile(&out, "t", 1, T0, 0, rec, sizeof rec, 0), 0);
	want_buf(&out, "2024-05-01T12:34:56+00:00\tt\t{\"a\":1}\n");
	buf_reset(&out);
	assert_int_equal(json_outfile(&out, "t", 1, T0, 0, rec, 3, 1), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

/* Parse line as a record; its JSON must be want. */
static void
want_record(const char *line, const struct json_in *opt, const char *want)
{
	struct buf rec = BUF_INIT, out = BUF_INIT;
	uint32_t sec, nsec;
	int has;
	char err[128] = "";

	if (json_parse_record(line, strlen(line), opt, &rec, &sec, &nsec, &has,
	    err, sizeof err) == -1)
		fail_msg("%s: %s", line, err);
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	want_buf(&out, want);
	buf_free(&rec);
	buf_free(&out);
}

/* Parse line; the msgpack must be the packer's bytes. */
static void
want_record_bytes(const char *line)
{
	struct buf rec = BUF_INIT;
	uint32_t sec, nsec;
	int has;
	char err[128] = "";

	if (json_parse_record(line, strlen(line), NULL, &rec, &sec, &nsec, &has,
	    err, sizeof err) == -1)
		fail_msg("%s: %s", line, err);
	assert_int_equal(has, 0);
	assert_int_equal(rec.len, pb.len);
	assert_memory_equal(rec.p, pb.p, pb.len);
	buf_free(&rec);
}

static void
want_record_err(const char *line, size_t len, const struct json_in *opt,
    const char *msg)
{
	struct buf rec = BUF_INIT;
	uint32_t sec, nsec;
	int has;
	char err[128] = "";

	buf_add(&rec, "prefix", 6);
	assert_int_equal(json_parse_record(line, len, opt, &rec, &sec, &nsec,
	    &has, err, sizeof err), -1);
	assert_int_equal(rec.len, 6);
	if (strstr(err, msg) == NULL)
		fail_msg("%s: error \"%s\", wanted \"%s\"", line, err, msg);
	buf_free(&rec);
}

#define REC_ERR(line, opt, msg) want_record_err((line), sizeof(line) - 1, \
	(opt), (msg))

static void
test_parse_record(void **state)
{
	(void)state;
	/* order, types */
	want_record("{\"z\":1,\"a\":\"x\",\"m\":[true,false,null],\"b\":{}}",
	    NULL, "{\"z\":1,\"a\":\"x\",\"m\":[true,false,null],\"b\":{}}");
	want_record(" \t{ \"a\" : [ 1 , { \"b\" : [ ] } ] }\r\n", NULL,
	    "{\"a\":[1,{\"b\":[]}]}");
	want_record("{\"a\":1,\"a\":2}", NULL, "{\"a\":1,\"a\":2}");
	/* escapes decode; \u0000 stays */
	want_record("{\"s\":\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u00e9"
	    "\\ud83d\\ude00\",\"n\\u0000ul\":\"a\\u0000b\"}", NULL,
	    "{\"s\":\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\xc3\xa9\xf0\x9f\x98\x80\","
	    "\"n\\u0000ul\":\"a\\u0000b\"}");

	/* exact bytes: smallest encodings, as msgpack-c packs */
	msgpack_pack_map(pack(), 11);
	pkstr("i");
	msgpack_pack_int(&pk, 0);
	pkstr("n");
	msgpack_pack_int(&pk, -1);
	pkstr("u8");
	msgpack_pack_int(&pk, 200);
	pkstr("max");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	pkstr("min");
	msgpack_pack_int64(&pk, INT64_MIN);
	pkstr("big");
	msgpack_pack_double(&pk, 18446744073709551616.0);
	pkstr("small");
	msgpack_pack_double(&pk, -9223372036854775809.0);
	pkstr("f");
	msgpack_pack_double(&pk, 1.5);
	pkstr("e");
	msgpack_pack_double(&pk, 1000.0);
	pkstr("E");
	msgpack_pack_double(&pk, -0.025);
	pkstr("z");
	msgpack_pack_double(&pk, 0.0);
	want_record_bytes("{\"i\":0,\"n\":-1,\"u8\":200,"
	    "\"max\":18446744073709551615,\"min\":-9223372036854775808,"
	    "\"big\":18446744073709551616,\"small\":-9223372036854775809,"
	    "\"f\":1.5,\"e\":1e3,\"E\":-2.5E-2,\"z\":0.0}");
	want_record("{\"neg0\":-0,\"f\":1.0,\"huge\":1e400,\"long\":"
	    "1234567890123456789012345678901234567890123456789012345678901234567890"
	    "}", NULL, "{\"neg0\":0,\"f\":1.0,\"huge\":null,"
	    "\"long\":1.2345678901234567e+69}");
}

static void
test_parse_sizes(void **state)
{
	struct buf line = BUF_INIT;
	int i;

	(void)state;
	/* headers of every size: fix, 16 and 32 bit */
	msgpack_pack_map(pack(), 3);
	pkstr("a15");
	msgpack_pack_array(&pk, 15);
	for (i = 0; i < 15; i++)
		msgpack_pack_int(&pk, i);
	pkstr("a16");
	msgpack_pack_array(&pk, 16);
	for (i = 0; i < 16; i++)
		msgpack_pack_array(&pk, 0);
	pkstr("a70000");
	msgpack_pack_array(&pk, 70000);
	for (i = 0; i < 70000; i++)
		msgpack_pack_map(&pk, 0);
	buf_adds(&line, "{\"a15\":[");
	for (i = 0; i < 15; i++)
		buf_printf(&line, "%s%d", i ? "," : "", i);
	buf_adds(&line, "],\"a16\":[");
	for (i = 0; i < 16; i++)
		buf_adds(&line, i ? ",[]" : "[]");
	buf_adds(&line, "],\"a70000\":[");
	for (i = 0; i < 70000; i++)
		buf_adds(&line, i ? ",{}" : "{}");
	buf_adds(&line, "]}");
	buf_addc(&line, 0);
	want_record_bytes((char *)line.p);

	/* a map of 16 and one of 65536 pairs */
	msgpack_pack_map(pack(), 2);
	pkstr("m16");
	msgpack_pack_map(&pk, 16);
	buf_reset(&line);
	buf_adds(&line, "{\"m16\":{");
	for (i = 0; i < 16; i++) {
		char k[16];

		snprintf(k, sizeof k, "k%d", i);
		pkstr(k);
		msgpack_pack_nil(&pk);
		buf_printf(&line, "%s\"%s\":null", i ? "," : "", k);
	}
	pkstr("m65536");
	msgpack_pack_map(&pk, 65536);
	buf_adds(&line, "},\"m65536\":{");
	for (i = 0; i < 65536; i++) {
		pkstr("");
		msgpack_pack_int(&pk, i & 0x7f);
		buf_printf(&line, "%s\"\":%d", i ? "," : "", i & 0x7f);
	}
	buf_adds(&line, "}}");
	buf_addc(&line, 0);
	want_record_bytes((char *)line.p);

	/* integers at every width's edges, as msgpack-c packs them (the
	 * short ones are packed in place, the long ones by msgpack-c) */
	{
		static const long long sv[] = { 0, 1, 31, 32, 127, 128, 255,
		    256, 65535, 65536, 4294967295LL, 4294967296LL,
		    999999999999999999LL, 1000000000000000000LL,
		    INT64_MAX, -1, -31, -32, -33, -127, -128, -129, -32767,
		    -32768, -32769, -2147483647LL, -2147483648LL,
		    -2147483649LL, -999999999999999999LL,
		    -1000000000000000000LL, INT64_MIN };
		size_t k;

		for (k = 0; k < sizeof sv / sizeof sv[0]; k++) {
			msgpack_pack_map(pack(), 1);
			pkstr("n");
			if (sv[k] < 0)
				msgpack_pack_int64(&pk, sv[k]);
			else
				msgpack_pack_uint64(&pk, (uint64_t)sv[k]);
			buf_reset(&line);
			buf_printf(&line, "{\"n\":%lld}", sv[k]);
			buf_addc(&line, 0);
			want_record_bytes((char *)line.p);
		}
		msgpack_pack_map(pack(), 1);
		pkstr("n");
		msgpack_pack_uint64(&pk, UINT64_MAX);
		want_record_bytes("{\"n\":18446744073709551615}");
		msgpack_pack_map(pack(), 1);
		pkstr("n");
		msgpack_pack_uint64(&pk, 0);
		want_record_bytes("{\"n\":-0}");
	}
	buf_free(&line);
}

static void
want_time(const char *line, const struct json_in *opt, const char *want,
    uint32_t wsec, uint32_t wnsec, int whas)
{
	struct buf rec = BUF_INIT, out = BUF_INIT;
	uint32_t sec = 7, nsec = 7;
	int has = 7;
	char err[128] = "";

	if (json_parse_record(line, strlen(line), opt, &rec, &sec, &nsec, &has,
	    err, sizeof err) == -1)
		fail_msg("%s: %s", line, err);
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	want_buf(&out, want);
	assert_int_equal(has, whas);
	assert_int_equal(sec, wsec);
	assert_int_equal(nsec, wnsec);
	buf_free(&rec);
	buf_free(&out);
}

static void
test_parse_time(void **state)
{
	struct json_in in = { "time", NULL, 0, 0 };
	struct json_in keep = { "time", NULL, 1, 0 };
	struct json_in fmt = { "ts", "%Y-%m-%dT%H:%M:%S.%N%z", 0, 0 };
	struct json_in fmtutc = { "ts", "%d/%b/%Y:%H:%M:%S", 0, 1 };
	struct json_in none = { NULL, NULL, 0, 0 };

	(void)state;
	want_time("{\"a\":1,\"time\":1441588984.123456789,\"b\":2}", &in,
	    "{\"a\":1,\"b\":2}", 1441588984, 123456789, 1);
	/* exact, where a double would have rounded up a second */
	want_time("{\"time\":1441588984.999999999}", &in, "{}",
	    1441588984, 999999999, 1);
	want_time("{\"time\":1441588984}", &keep, "{\"time\":1441588984}",
	    1441588984, 0, 1);
	want_time("{\"a\":1,\"time\":1.5,\"b\":2}", &keep,
	    "{\"a\":1,\"time\":1.5,\"b\":2}", 1, 500000000, 1);
	want_time("{\"time\":\"1441588984.5\"}", &in, "{}",
	    1441588984, 500000000, 1);
	want_time("{\"time\":1.441588984e9}", &in, "{}", 1441588984, 0, 1);
	/* absent, nested, no key configured */
	want_time("{\"a\":{\"time\":5}}", &in, "{\"a\":{\"time\":5}}", 0, 0, 0);
	want_time("{\"time\":5}", &none, "{\"time\":5}", 0, 0, 0);
	want_time("{\"time\":5}", NULL, "{\"time\":5}", 0, 0, 0);
	/* twice: the last one counts, both go */
	want_time("{\"time\":5,\"x\":0,\"time\":6}", &in, "{\"x\":0}", 6, 0, 1);
	/* with a format */
	want_time("{\"ts\":\"2024-05-01T21:34:56.25+09:00\",\"m\":\"x\"}", &fmt,
	    "{\"m\":\"x\"}", T0, 250000000, 1);
	want_time("{\"ts\":\"01/May/2024:12:34:56\"}", &fmtutc, "{}", T0, 0, 1);
	/* a number with a format is still epoch seconds */
	want_time("{\"ts\":1714566896}", &fmtutc, "{}", T0, 0, 1);

	REC_ERR("{\"time\":\"yesterday\"}", &in, "cannot parse time \"yesterday\"");
	REC_ERR("{\"time\":-1}", &in, "cannot parse time");
	REC_ERR("{\"time\":4294967296}", &in, "cannot parse time");
	REC_ERR("{\"time\":null}", &in, "time key \"time\" is not a number");
	REC_ERR("{\"time\":{\"a\":1}}", &keep, "is not a number");
	REC_ERR("{\"ts\":\"2024-05-01\"}", &fmt,
	    "cannot parse time \"2024-05-01\" with format %Y-%m-%dT");
}

static void
test_parse_errors(void **state)
{
	struct buf rec = BUF_INIT, deep = BUF_INIT;
	uint32_t sec, nsec;
	int has, i;

	(void)state;
	REC_ERR("", NULL, "empty line");
	REC_ERR(" \n", NULL, "empty line");
	REC_ERR("[1,2]", NULL, "not a JSON object");
	REC_ERR("1", NULL, "not a JSON object");
	REC_ERR("\"s\"", NULL, "not a JSON object");
	REC_ERR("null", NULL, "not a JSON object");
	REC_ERR("{", NULL, "premature EOF");
	REC_ERR("{\"a\":1", NULL, "premature EOF");
	REC_ERR("{\"a\":1}x", NULL, "trailing garbage");
	REC_ERR("{}{}", NULL, "trailing garbage");
	REC_ERR("{a:1}", NULL, "invalid char");
	REC_ERR("{\"a\":01}", NULL, "error");
	REC_ERR("{\"a\":\"\xff\"}", NULL, "invalid bytes in UTF8");
	REC_ERR("{\"a\":\"x\ny\"}", NULL, "error");
	REC_ERR("{\"a\":1,/*c*/\"b\":2}", NULL, "error");
	REC_ERR("{\"a\":1}\0", NULL, "error");
	/* the record nests to JSON_MAXDEPTH */
	for (i = 0; i < JSON_MAXDEPTH; i++)
		buf_adds(&deep, i ? "[" : "{\"a\":");
	for (i = 0; i < JSON_MAXDEPTH; i++)
		buf_adds(&deep, i < JSON_MAXDEPTH - 1 ? "]" : "}");
	assert_int_equal(json_parse_record((char *)deep.p, deep.len, NULL, &rec,
	    &sec, &nsec, &has, NULL, 0), 0);
	assert_int_equal(mp_skip(rec.p, rec.len, MP_MAXDEPTH, &(size_t){0}),
	    MP_OK);
	buf_reset(&deep);
	for (i = 0; i < JSON_MAXDEPTH + 1; i++)
		buf_adds(&deep, i ? "[" : "{\"a\":");
	buf_addc(&deep, 0);
	want_record_err((char *)deep.p, deep.len - 1, NULL,
	    "nested deeper than 31 levels");
	/* err may be small or absent */
	{
		char small[8];

		assert_int_equal(json_parse_record("[", 1, NULL, &rec, &sec,
		    &nsec, &has, small, sizeof small), -1);
		assert_string_equal(small, "not a J");
		assert_int_equal(json_parse_record("[", 1, NULL, &rec, &sec,
		    &nsec, &has, NULL, 0), -1);
	}
	buf_free(&rec);
	buf_free(&deep);
}

/* json_event -> json_parse_event -> json_event: the same line, and the
 * same record bytes. */
static void
roundtrip(const char *tag, uint32_t sec, uint32_t nsec, int same_bytes)
{
	struct buf line = BUF_INIT, line2 = BUF_INIT, t = BUF_INIT, rec = BUF_INIT;
	uint32_t s2 = 0, n2 = 0;
	char err[128] = "";

	assert_int_equal(json_event(&line, tag, strlen(tag), sec, nsec,
	    pb.p, pb.len), 0);
	if (json_parse_event((char *)line.p, line.len, &t, &rec, &s2, &n2,
	    err, sizeof err) == -1)
		fail_msg("%.*s: %s", (int)line.len, line.p, err);
	assert_int_equal(t.len, strlen(tag));
	assert_string_equal((char *)t.p, tag);
	assert_int_equal(s2, sec);
	assert_int_equal(n2, nsec);
	if (same_bytes) {
		assert_int_equal(rec.len, pb.len);
		assert_memory_equal(rec.p, pb.p, pb.len);
	}
	assert_int_equal(json_event(&line2, (char *)t.p, t.len, s2, n2,
	    rec.p, rec.len), 0);
	assert_int_equal(line2.len, line.len);
	assert_memory_equal(line2.p, line.p, line.len);
	buf_free(&line);
	buf_free(&line2);
	buf_free(&t);
	buf_free(&rec);
}

static void
test_roundtrip(void **state)
{
	int i;

	(void)state;
	msgpack_pack_map(pack(), 0);
	roundtrip("t", 0, 0, 1);
	roundtrip("app.access", 4294967295u, 999999999, 1);

	msgpack_pack_map(pack(), 9);
	pkstr("message");
	pkstr("GET /index.html HTTP/1.1\" 200 \t\xc3\xa9\xe2\x82\xac");
	pkstr("ctl");
	msgpack_pack_str(&pk, 5);
	msgpack_pack_str_body(&pk, "\0\x01\x1f\x7f\n", 5);
	pkstr("ints");
	msgpack_pack_array(&pk, 6);
	msgpack_pack_int64(&pk, 0);
	msgpack_pack_int64(&pk, -1);
	msgpack_pack_int64(&pk, 300);
	msgpack_pack_int64(&pk, -40000);
	msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	pkstr("floats");
	msgpack_pack_array(&pk, 6);
	msgpack_pack_double(&pk, 1.0);
	msgpack_pack_double(&pk, -0.0);
	msgpack_pack_double(&pk, 0.1 + 0.2);
	msgpack_pack_double(&pk, 1e300);
	msgpack_pack_double(&pk, 5e-324);
	msgpack_pack_double(&pk, 1234567890.123456);
	pkstr("nested");
	msgpack_pack_map(&pk, 2);
	pkstr("a");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_false(&pk);
	pkstr("b");
	msgpack_pack_map(&pk, 0);
	pkstr("");
	pkstr("");
	pkstr("many");
	msgpack_pack_array(&pk, 20);
	for (i = 0; i < 20; i++)
		pkstr("x");
	pkstr("\xf0\x9f\x98\x80 key \"quoted\"");
	msgpack_pack_int(&pk, 1);
	pkstr("last");
	pkstr("\\");
	roundtrip("a.b\"c\\d\xc3\xa9", 1714566896, 123456789, 1);

	/* non-string keys become strings: the text stays */
	BYTES("{\"1\":{\"[1]\":null}}", 0x81, 0x01, 0x81, 0x91, 0x01, 0xc0);
	pack();
	buf_add(&pb, "\x81\x01\x81\x91\x01\xc0", 6);
	roundtrip("k", 1, 2, 0);
	/* bin and ext become str of base64: the text stays */
	msgpack_pack_map(pack(), 2);
	pkstr("bin");
	pkbin("\x00\xff", 2);
	pkstr("ext");
	msgpack_pack_ext(&pk, 2, 9);
	msgpack_pack_ext_body(&pk, "ab", 2);
	roundtrip("b", 1, 2, 0);
	/* float32 becomes float64: the text stays */
	msgpack_pack_map(pack(), 1);
	pkstr("f");
	msgpack_pack_float(&pk, 0.1f);
	roundtrip("f", 1, 2, 0);
}

static void
test_roundtrip_lossy(void **state)
{
	struct buf line = BUF_INIT, t = BUF_INIT, rec = BUF_INIT;
	uint32_t sec, nsec;

	(void)state;
	/* invalid UTF-8 comes back as U+00XX */
	msgpack_pack_map(pack(), 1);
	pkstr("s");
	pkstr("a\xff");
	assert_int_equal(json_event(&line, "t", 1, 1, 0, pb.p, pb.len), 0);
	want_buf(&line, "{\"tag\":\"t\",\"time\":1.000000000,"
	    "\"record\":{\"s\":\"a\\u00ff\"}}\n");
	assert_int_equal(json_parse_event((char *)line.p, line.len, &t, &rec,
	    &sec, &nsec, NULL, 0), 0);
	assert_int_equal(rec.len, 7);
	assert_memory_equal(rec.p, "\x81\xa1s\xa3\x61\xc3\xbf", 7);
	buf_free(&line);
	buf_free(&t);
	buf_free(&rec);
}

static void
want_event_err(const char *line, const char *msg)
{
	struct buf t = BUF_INIT, rec = BUF_INIT;
	uint32_t sec, nsec;
	char err[128] = "";

	buf_add(&t, "T", 1);
	buf_add(&rec, "RR", 2);
	assert_int_equal(json_parse_event(line, strlen(line), &t, &rec, &sec,
	    &nsec, err, sizeof err), -1);
	assert_int_equal(t.len, 1);
	assert_int_equal(rec.len, 2);
	if (strstr(err, msg) == NULL)
		fail_msg("%s: error \"%s\", wanted \"%s\"", line, err, msg);
	buf_free(&t);
	buf_free(&rec);
}

static void
test_parse_event(void **state)
{
	struct buf t = BUF_INIT, rec = BUF_INIT, out = BUF_INIT;
	uint32_t sec, nsec;
	char err[128] = "";
	const char *l;

	(void)state;
	/* any key order; time as a string; appends */
	buf_add(&t, "x", 1);
	l = "{\"record\":{\"a\":[1]},\"time\":\"12.5\",\"tag\":\"my.tag\"}";
	assert_int_equal(json_parse_event(l, strlen(l), &t, &rec, &sec, &nsec,
	    err, sizeof err), 0);
	assert_int_equal(t.len, 7);
	assert_string_equal((char *)t.p, "xmy.tag");
	assert_int_equal(sec, 12);
	assert_int_equal(nsec, 500000000);
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	want_buf(&out, "{\"a\":[1]}");
	/* a time key in the record is just a key here */
	buf_reset(&t);
	buf_reset(&rec);
	l = "{\"tag\":\"\",\"time\":0,\"record\":{\"time\":1,\"tag\":2}}\n";
	assert_int_equal(json_parse_event(l, strlen(l), &t, &rec, &sec, &nsec,
	    err, sizeof err), 0);
	assert_int_equal(t.len, 0);
	assert_string_equal((char *)t.p, "");
	assert_int_equal(rec.len, 12);
	assert_int_equal(sec, 0);

	want_event_err("{\"tag\":\"t\",\"time\":1,\"record\":{},\"x\":1}",
	    "unexpected key \"x\"");
	want_event_err("{\"tag\":\"t\",\"time\":1}", "missing \"record\"");
	want_event_err("{\"tag\":\"t\",\"record\":{}}", "missing \"time\"");
	want_event_err("{\"time\":1,\"record\":{}}", "missing \"tag\"");
	want_event_err("{\"tag\":\"t\",\"tag\":\"u\",\"time\":1,\"record\":{}}",
	    "duplicate key \"tag\"");
	want_event_err("{\"tag\":1,\"time\":1,\"record\":{}}",
	    "\"tag\" is not a string");
	want_event_err("{\"tag\":\"t\",\"time\":true,\"record\":{}}",
	    "\"time\" is not a number");
	want_event_err("{\"tag\":\"t\",\"time\":-1,\"record\":{}}",
	    "cannot parse time \"-1\"");
	want_event_err("{\"tag\":\"t\",\"time\":\"now\",\"record\":{}}",
	    "cannot parse time");
	want_event_err("{\"tag\":\"t\",\"time\":1,\"record\":[]}",
	    "\"record\" is not an object");
	want_event_err("{\"tag\":\"t\",\"time\":1,\"record\":{\"a\":}}",
	    "error");
	want_event_err("{\"tag\":\"t\",\"time\":1,\"record\":{}", "premature EOF");
	want_event_err("[]", "not a JSON object");
	want_event_err("", "empty line");
	buf_free(&t);
	buf_free(&rec);
	buf_free(&out);
}

/* timefmt_parse must give want, or fail if want is 0. */
static void
want_tf(const char *s, const char *fmt, int utc, uint32_t wsec, uint32_t wnsec)
{
	uint32_t sec = 0, nsec = 0;
	int rc;

	rc = timefmt_parse(s, strlen(s), fmt, utc, &sec, &nsec);
	if (wsec == 0) {
		if (rc != -1)
			fail_msg("\"%s\" \"%s\": wanted an error, got %u.%09u",
			    s, fmt, sec, nsec);
		return;
	}
	if (rc == -1)
		fail_msg("\"%s\" \"%s\": failed", s, fmt);
	if (sec != wsec || nsec != wnsec)
		fail_msg("\"%s\" \"%s\": %u.%09u, wanted %u.%09u", s, fmt,
		    sec, nsec, wsec, wnsec);
}

static void
test_timefmt(void **state)
{
	const char *f = "%Y-%m-%dT%H:%M:%S";

	(void)state;
	setenv("TZ", "JST-9", 1);	/* local time must not leak into utc */
	tzset();
	want_tf("2024-05-01 12:34:56", "%Y-%m-%d %H:%M:%S", 1, T0, 0);
	want_tf("2024-05-01T12:34:56", f, 1, T0, 0);
	want_tf("2024-05-01T12:34:56  ", f, 1, T0, 0);	/* trailing space */
	want_tf("2024-05-01T12:34:56x", f, 1, 0, 0);
	want_tf("2024-05-01T12:34", f, 1, 0, 0);
	want_tf("", f, 1, 0, 0);
	want_tf("1969-12-31T23:59:59", f, 1, 0, 0);
	want_tf("2106-02-07T06:28:15", f, 1, 4294967295u, 0);
	want_tf("2106-02-07T06:28:16", f, 1, 0, 0);
	/* local time: JST is UTC+9 */
	want_tf("2024-05-01T21:34:56", f, 0, T0, 0);
	/* fractions */
	want_tf("2024-05-01T12:34:56.123456789", "%Y-%m-%dT%H:%M:%S.%N", 1,
	    T0, 123456789);
	want_tf("2024-05-01T12:34:56.5", "%Y-%m-%dT%H:%M:%S.%N", 1,
	    T0, 500000000);
	want_tf("2024-05-01T12:34:56.1234567891234", "%Y-%m-%dT%H:%M:%S.%N", 1,
	    T0, 123456789);
	want_tf("2024-05-01T12:34:56.", "%Y-%m-%dT%H:%M:%S.%N", 1, 0, 0);
	want_tf("2024-05-01T12:34:56.123", "%Y-%m-%dT%H:%M:%S.%L", 1,
	    T0, 123000000);
	want_tf("2024-05-01T12:34:56.1234", "%Y-%m-%dT%H:%M:%S.%L", 1, 0, 0);
	want_tf("2024-05-01T12:34:56.123", "%Y-%m-%dT%H:%M:%S.%3N", 1,
	    T0, 123000000);
	want_tf("2024-05-01T12:34:56.123456", "%Y-%m-%dT%H:%M:%S.%6N", 1,
	    T0, 123456000);
	want_tf("2024-05-01T12:34:56.123456789", "%Y-%m-%dT%H:%M:%S.%9N", 1,
	    T0, 123456789);
	want_tf("12:34:56.123456 2024-05-01", "%H:%M:%S.%6N %Y-%m-%d", 1,
	    T0, 123456000);
	want_tf("2024-05-01T12:34:56.1", "%Y-%m-%dT%H:%M:%S.%10N", 1, 0, 0);
	/* zones: they win over utc and local */
	want_tf("2024-05-01T21:34:56+0900", "%Y-%m-%dT%H:%M:%S%z", 1, T0, 0);
	want_tf("2024-05-01T21:34:56+09:00", "%Y-%m-%dT%H:%M:%S%z", 1, T0, 0);
	want_tf("2024-05-01T21:34:56+09", "%Y-%m-%dT%H:%M:%S%z", 1, T0, 0);
	want_tf("2024-05-01T09:04:56-03:30", "%Y-%m-%dT%H:%M:%S%z", 0, T0, 0);
	want_tf("2024-05-01T12:34:56Z", "%Y-%m-%dT%H:%M:%S%z", 0, T0, 0);
	want_tf("2024-05-01T12:34:56 UTC", "%Y-%m-%dT%H:%M:%S %Z", 0, T0, 0);
	want_tf("2024-05-01T12:34:56 GMT", "%Y-%m-%dT%H:%M:%S %Z", 0, T0, 0);
	want_tf("2024-05-01T21:34:56+09:00", "%Y-%m-%dT%H:%M:%S%:z", 1, T0, 0);
	want_tf("2024-05-01T21:34:56.75+09:00", "%Y-%m-%dT%H:%M:%S.%L%z", 1,
	    T0, 750000000);
	want_tf("2024-05-01T21:34:56+24:00", "%Y-%m-%dT%H:%M:%S%z", 1, 0, 0);
	want_tf("2024-05-01T21:34:56 JST", "%Y-%m-%dT%H:%M:%S %Z", 1, 0, 0);
	/* apache and nginx */
	want_tf("01/May/2024:21:34:56 +0900", "%d/%b/%Y:%H:%M:%S %z", 1, T0, 0);
	/* %s */
	want_tf("1714566896", "%s", 0, T0, 0);
	want_tf("1714566896.25", "%s.%N", 0, T0, 250000000);
	want_tf("4294967296", "%s", 0, 0, 0);
	want_tf("-1", "%s", 0, 0, 0);
	/* strptime's own: 12-hour clock, day of year, %T, %F, %e, %y */
	want_tf("2024-05-01 12:34:56 PM", "%Y-%m-%d %I:%M:%S %p", 1, T0, 0);
	want_tf("2024-05-01 01:34:56 PM", "%Y-%m-%d %I:%M:%S %p", 1,
	    T0 + 3600, 0);
	want_tf("2024 122 12:34:56", "%Y %j %T", 1, T0, 0);
	want_tf("2024-05-01 12:34:56", "%F %T", 1, T0, 0);
	want_tf("May  1 24 12:34:56", "%b %e %y %T", 1, T0, 0);
	want_tf("2024-05-01 12:34:56%", "%F %T%%", 1, T0, 0);
	/* a format with no time in it */
	want_tf("abc", "abc", 1, 0, 0);
	want_tf("x", NULL, 1, 0, 0);
	/* %iso8601 */
	want_tf("2024-05-01T12:34:56Z", "%iso8601", 0, T0, 0);
	want_tf("2024-05-01T21:34:56.123+09:00", "%iso8601", 0, T0, 123000000);
	want_tf("2024-05-01t21:34:56,5+0900", "%iso8601", 0, T0, 500000000);
	want_tf("2024-05-01T12:34:56.123456789012z", "%iso8601", 0,
	    T0, 123456789);
	want_tf("2024-05-01T12:34:56", "%iso8601", 1, T0, 0);
	want_tf("2024-05-01T21:34:56", "%iso8601", 0, T0, 0);
	want_tf(" 2024-05-01 ", "%iso8601", 1, 1714521600, 0);
	want_tf("2024-05-01T12:34", "%iso8601", 1, 0, 0);
	want_tf("2024-13-01T12:34:56Z", "%iso8601", 1, 0, 0);
	want_tf("2024-05-01T12:34:56X", "%iso8601", 1, 0, 0);
	want_tf("2024-05-01T12:34:56.Z", "%iso8601", 1, 0, 0);
	setenv("TZ", "UTC0", 1);
	tzset();
}

/* Fields before the first one given come from now, as in Ruby. */
static void
test_timefmt_now(void **state)
{
	struct tm now, tm;
	time_t t = time(NULL), want;
	uint32_t sec, nsec;

	(void)state;
	gmtime_r(&t, &now);
	/* syslog: no year */
	assert_int_equal(timefmt_parse("Feb  3 04:05:06", 15, "%b %d %H:%M:%S",
	    1, &sec, &nsec), 0);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = now.tm_year;
	tm.tm_mon = 1;
	tm.tm_mday = 3;
	tm.tm_hour = 4;
	tm.tm_min = 5;
	tm.tm_sec = 6;
	want = timegm(&tm);
	assert_int_equal(sec, (uint32_t)want);
	/* time of day only: today */
	assert_int_equal(timefmt_parse("04:05", 5, "%H:%M", 1, &sec, &nsec), 0);
	gmtime_r(&t, &now);
	tm = now;
	tm.tm_hour = 4;
	tm.tm_min = 5;
	tm.tm_sec = 0;
	want = timegm(&tm);
	assert_int_equal(sec, (uint32_t)want);
	/* a year alone: its first second */
	assert_int_equal(timefmt_parse("2024", 4, "%Y", 1, &sec, &nsec), 0);
	assert_int_equal(sec, 1704067200);
}

/* json_reader keeps one yajl handle for every line: each line, good or
 * bad, in any order after any other, must come out exactly as from a
 * fresh handle (json_parse_record): the same return, record bytes, time
 * and message. */
static const char *const reader_lines[] = {
	"{\"a\":1,\"time\":\"2024-05-01T12:34:56Z\",\"b\":[1,2.5,-3]}",
	"{\"a\":1} {\"b\":2}",		/* two values */
	"{\"s\":\"caf\\u00e9 \\\"q\\\" \\n\"}",
	"{\"a\":",			/* cut short */
	"{\"n\":12345678901234567890123}",
	"5",				/* a scalar */
	"{\"x\":\"unterminated",
	"[1,2]",
	"{} 7",
	"{\"time\":1714566896.5,\"k\":null}",
	"{\"a\":tru}",			/* a bad literal */
	"",
	"   ",
	"{\"big\":\"0123456789012345678901234567890123456789\"}",
	"{\"time\":\"not a time\"}",
	"{\"d\":{\"e\":{\"f\":[[[]]]}}}",
	"{\"a\":1}}",
	"{\"time\":[1]}",
	"{\"num\":-0,\"e\":1e3,\"f\":-1.5E-2}",
};

static int
reader_once(struct json_reader *r, const char *line, const struct json_in *o,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, int *has, char *err)
{
	buf_reset(rec);
	buf_add(rec, "pre", 3);
	if (r != NULL)
		return json_reader_record(r, line, strlen(line), o, rec, sec,
		    nsec, has, err, 128);
	return json_parse_record(line, strlen(line), o, rec, sec, nsec, has,
	    err, 128);
}

static void
test_reader_reuse(void **state)
{
	const size_t nl = sizeof reader_lines / sizeof reader_lines[0];
	struct json_in opt = { "time", "%Y-%m-%dT%H:%M:%SZ", 0, 1, NULL, NULL };
	struct json_reader *r = json_reader_new();
	struct buf a = BUF_INIT, b = BUF_INIT;
	uint32_t s1, n1, s2, n2;
	int h1, h2, r1, r2;
	char e1[128], e2[128];
	size_t i, k;

	(void)state;
	assert_non_null(r);
	/* every line after every line, with and without a time key */
	for (k = 0; k < nl * nl * 2; k++) {
		const char *line = reader_lines[k % nl];
		const struct json_in *o = (k / nl) % 2 ? &opt : NULL;

		/* the line before, through the reader only */
		(void)reader_once(r, reader_lines[(k / nl) % nl], o, &b, &s2,
		    &n2, &h2, e2);
		s1 = n1 = s2 = n2 = 7;
		h1 = h2 = 7;
		e1[0] = e2[0] = '\0';
		r1 = reader_once(NULL, line, o, &a, &s1, &n1, &h1, e1);
		r2 = reader_once(r, line, o, &b, &s2, &n2, &h2, e2);
		if (r1 != r2 || a.len != b.len || memcmp(a.p, b.p, a.len) != 0 ||
		    (r1 == 0 && (s1 != s2 || n1 != n2 || h1 != h2)) ||
		    strcmp(e1, e2) != 0)
			fail_msg("\"%s\" after \"%s\": fresh %d \"%s\", reader %d "
			    "\"%s\"", line, reader_lines[(k / nl) % nl], r1, e1,
			    r2, e2);
	}
	/* and a time read by the caller */
	for (i = 0; i < 3; i++) {
		r2 = reader_once(r, reader_lines[0], &opt, &b, &s2, &n2, &h2, e2);
		assert_int_equal(r2, 0);
		assert_int_equal(h2, 1);
		assert_int_equal(s2, T0);
	}
	json_reader_free(r);
	buf_free(&a);
	buf_free(&b);
}

static int
caller_time(void *arg, const char *s, size_t n, int isstr, uint32_t *sec,
    uint32_t *nsec)
{
	(*(int *)arg)++;
	if (n == 3 && memcmp(s, "bad", 3) == 0)
		return -1;
	*sec = isstr ? 100 : 200;
	*nsec = (uint32_t)n;
	return 0;
}

/* time_fn reads the time key's value: a string's bytes (unescaped) or a
 * number's text; the key is taken out unless kept; -1 fails the line. */
static void
test_reader_time_fn(void **state)
{
	int calls = 0;
	struct json_in opt = { "t", NULL, 0, 0, caller_time, &calls };
	struct json_reader *r = json_reader_new();
	struct buf rec = BUF_INIT, out = BUF_INIT;
	uint32_t sec, nsec;
	int has;
	char err[128];

	(void)state;
	assert_int_equal(json_reader_record(r, "{\"a\":1,\"t\":\"x\\ty\"}", 18,
	    &opt, &rec, &sec, &nsec, &has, err, sizeof err), 0);
	assert_int_equal(has, 1);
	assert_int_equal(sec, 100);
	assert_int_equal(nsec, 3);		/* "x\ty": unescaped */
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	want_buf(&out, "{\"a\":1}");
	buf_reset(&rec);
	opt.keep_time_key = 1;
	assert_int_equal(json_reader_record(r, "{\"t\":1.25}", 10, &opt, &rec,
	    &sec, &nsec, &has, err, sizeof err), 0);
	assert_int_equal(sec, 200);
	assert_int_equal(nsec, 4);
	buf_reset(&out);
	assert_int_equal(json_value(&out, rec.p, rec.len, NULL), 0);
	want_buf(&out, "{\"t\":1.25}");
	buf_reset(&rec);
	assert_int_equal(json_reader_record(r, "{\"t\":\"bad\"}", 11, &opt, &rec,
	    &sec, &nsec, &has, err, sizeof err), -1);
	assert_int_equal(rec.len, 0);
	assert_non_null(strstr(err, "cannot parse time"));
	assert_int_equal(calls, 3);
	json_reader_free(r);
	buf_free(&rec);
	buf_free(&out);
}

static void
want_num(const char *s, int rc, uint32_t wsec, uint32_t wnsec)
{
	uint32_t sec = 0, nsec = 0;

	if (timefmt_number(s, strlen(s), &sec, &nsec) != rc)
		fail_msg("\"%s\": wanted %d", s, rc);
	if (rc == 0 && (sec != wsec || nsec != wnsec))
		fail_msg("\"%s\": %u.%09u, wanted %u.%09u", s, sec, nsec,
		    wsec, wnsec);
}

static void
test_timefmt_number(void **state)
{
	(void)state;
	want_num("0", 0, 0, 0);
	want_num("1441588984", 0, 1441588984, 0);
	want_num("1441588984.123456789", 0, 1441588984, 123456789);
	want_num("1441588984.999999999", 0, 1441588984, 999999999);
	want_num("1441588984.9999999999", 0, 1441588984, 999999999);
	want_num("1.5", 0, 1, 500000000);
	want_num("0001.000000001", 0, 1, 1);
	want_num("4294967295.5", 0, 4294967295u, 500000000);
	want_num("4294967296", -1, 0, 0);
	want_num("99999999999999999999999", -1, 0, 0);
	want_num("1.5e9", 0, 1500000000, 0);
	want_num("1.441588984123456789E+9", 0, 1441588984, 123456789);
	want_num("1441588984123e-3", 0, 1441588984, 123000000);
	want_num("1e-9", 0, 0, 1);
	want_num("1e-10", 0, 0, 0);
	want_num("12e0", 0, 12, 0);
	want_num("0e999999999999", 0, 0, 0);
	want_num("1e999999999999", -1, 0, 0);
	want_num("5e-999999999999", 0, 0, 0);
	want_num("", -1, 0, 0);
	want_num("-1", -1, 0, 0);
	want_num("+1", -1, 0, 0);
	want_num(".5", -1, 0, 0);
	want_num("1.", -1, 0, 0);
	want_num("1e", -1, 0, 0);
	want_num("1e+", -1, 0, 0);
	want_num(" 1", -1, 0, 0);
	want_num("1 ", -1, 0, 0);
	want_num("0x10", -1, 0, 0);
	/* the length bounds the text, not a NUL */
	{
		uint32_t sec, nsec;

		assert_int_equal(timefmt_number("12345", 2, &sec, &nsec), 0);
		assert_int_equal(sec, 12);
	}
}

static int
teardown(void **state)
{
	(void)state;
	buf_free(&pb);
	return 0;
}

/* JSON mode: values one after another, in any split. */
static void
stream_all(const char *text, size_t split, struct buf *got, unsigned long *skipped)
{
	struct json_stream js;
	size_t n = strlen(text), off, k;

	assert_int_equal(json_stream_init(&js, 1 << 20), 0);
	for (off = 0; off < n; off += k) {
		k = n - off < split ? n - off : split;
		assert_int_equal(json_stream_feed(&js, text + off, k), 0);
		assert_int_equal(buf_add(got, js.out.p, js.whole), 0);
		json_stream_taken(&js);
	}
	assert_int_equal(json_stream_end(&js), 0);
	*skipped = js.skipped;
	json_stream_free(&js);
}

static void
test_stream_values(void **state)
{
	/* ["a",1,{"k":[1,2]}] then ["b",{"x":null}] then {"m":true}, and
	 * 3 and "s" let go */
	static const unsigned char want[] = {
		0x93, 0xa1, 'a', 0x01, 0x81, 0xa1, 'k', 0x92, 0x01, 0x02,
		0x92, 0xa1, 'b', 0x81, 0xa1, 'x', 0xc0,
		0x81, 0xa1, 'm', 0xc3,
	};
	const char *text = "[\"a\",1,{\"k\":[1,2]}] 3 [\"b\",{\"x\":null}]\n"
	    "\"s\"{\"m\":true}";
	unsigned long skipped;

	(void)state;
	for (size_t split = 1; split <= strlen(text); split++) {
		struct buf got = BUF_INIT;

		stream_all(text, split, &got, &skipped);
		assert_int_equal(got.len, sizeof want);
		assert_memory_equal(got.p, want, sizeof want);
		assert_int_equal(skipped, 2);
		buf_free(&got);
	}
}

static void
test_stream_errors(void **state)
{
	struct json_stream js;
	char big[300];

	(void)state;
	assert_int_equal(json_stream_init(&js, 1 << 20), 0);
	assert_int_equal(json_stream_feed(&js, "[1,2] [3,", 9), 0);
	assert_int_equal(js.whole, 3);
	json_stream_taken(&js);
	assert_int_equal(json_stream_end(&js), -1);	/* cut short */
	json_stream_free(&js);

	assert_int_equal(json_stream_init(&js, 1 << 20), 0);
	assert_int_equal(json_stream_feed(&js, "[1,}", 4), -1);
	assert_non_null(strstr(js.err, "parse error"));
	assert_int_equal(json_stream_feed(&js, "[1]", 3), -1);	/* stays lost */
	json_stream_free(&js);

	/* a value over max, as msgpack or as a string token still open */
	memset(big, 'x', sizeof big);
	big[0] = '[';
	big[1] = '"';
	assert_int_equal(json_stream_init(&js, 200), 0);
	assert_int_equal(json_stream_feed(&js, big, 150), 0);
	assert_int_equal(json_stream_feed(&js, big + 150, 150), -1);
	assert_non_null(strstr(js.err, "more than 200 bytes"));
	json_stream_free(&js);

	/* nesting is bounded as in records */
	assert_int_equal(json_stream_init(&js, 1 << 20), 0);
	for (int i = 0; i < JSON_MAXDEPTH; i++)
		assert_int_equal(json_stream_feed(&js, "[", 1), 0);
	assert_int_equal(json_stream_feed(&js, "[", 1), -1);
	json_stream_free(&js);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_bin),
		cmocka_unit_test(test_ext),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_ltsv),
		cmocka_unit_test(test_outfile),
		cmocka_unit_test(test_parse_record),
		cmocka_unit_test(test_parse_sizes),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_reader_reuse),
		cmocka_unit_test(test_reader_time_fn),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_roundtrip_lossy),
		cmocka_unit_test(test_parse_event),
		cmocka_unit_test(test_timefmt),
		cmocka_unit_test(test_timefmt_now),
		cmocka_unit_test(test_timefmt_number),
		cmocka_unit_test(test_stream_values),
		cmocka_unit_test(test_stream_errors),
	};

	setenv("TZ", "UTC0", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, teardown);
}
