/* Unit tests for lib/mysql_sql and lib/mysql_err: lf-mysql's statements,
 * values, the cap on a statement, names from templates and the classes
 * of the server's errors, all without a server.  The escaper here is a
 * stand-in with mysql_real_escape_string's mapping (measured,
 * research/outputs.md 1.11), so the SQL is what lf-mysql sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mysql_err.h"
#include "mysql_sql.h"

static unsigned long
esc(void *ctx, char *to, const char *from, unsigned long len)
{
	unsigned long i, o = 0;

	(void)ctx;
	for (i = 0; i < len; i++) {
		char e = 0;

		switch (from[i]) {
		case '\0': e = '0'; break;
		case '\n': e = 'n'; break;
		case '\r': e = 'r'; break;
		case '\\': e = '\\'; break;
		case '\'': e = '\''; break;
		case '"': e = '"'; break;
		case 0x1a: e = 'Z'; break;
		}
		if (e) {
			to[o++] = '\\';
			to[o++] = e;
		} else {
			to[o++] = from[i];
		}
	}
	to[o] = '\0';
	return o;
}

static void
conf(struct mysql_sql_conf *c, const char *cols, const char *keys,
    const char *json, const char *unixts, int odku, const char *upd)
{
	char err[256];

	assert_int_equal(mysql_sql_conf_init(c, cols, keys, json, unixts, odku,
	    upd, err, sizeof err), 0);
	c->utc = 1;
}

static char *
row(const struct mysql_sql_conf *c, uint32_t sec, const void *rec, size_t n)
{
	static struct buf out, scratch;

	buf_reset(&out);
	assert_int_equal(mysql_sql_row(&out, c, sec, rec, n, esc, NULL,
	    &scratch), 0);
	buf_addc(&out, 0);
	return (char *)out.p;
}

static void
test_head_tail(void **state)
{
	struct mysql_sql_conf c;
	struct buf b = BUF_INIT;

	(void)state;
	conf(&c, " id , user_name,we`ird ", NULL, NULL, NULL, 1,
	    "user_name, we`ird");
	assert_int_equal(mysql_sql_head(&b, &c, "db", "users"), 0);
	buf_addc(&b, 0);
	assert_string_equal((char *)b.p, "INSERT INTO `db`.`users` (`id`,"
	    "`user_name`,`we``ird`) VALUES ");
	buf_reset(&b);
	assert_int_equal(mysql_sql_head(&b, &c, NULL, "t"), 0);
	buf_addc(&b, 0);
	assert_string_equal((char *)b.p, "INSERT INTO `t` (`id`,`user_name`,"
	    "`we``ird`) VALUES ");
	buf_addc(&c.tail, 0);
	assert_string_equal((char *)c.tail.p, " ON DUPLICATE KEY UPDATE "
	    "`user_name` = VALUES(`user_name`),`we``ird` = VALUES(`we``ird`)");
	buf_free(&b);
	mysql_sql_conf_free(&c);
}

/* The research's record, 1.6: {"id"=>1,"user"=>"o'neil-long",
 * "payload"=>{"a"=>[1,"x"]}} at 1474880533 (no VARCHAR cut here). */
static void
test_row_values(void **state)
{
	struct mysql_sql_conf c;
	/* {"id":1,"user":"o'neil","payload":{"a":[1,"x"]}} */
	static const unsigned char r1[] = "\x83\xa2id\x01\xa4user\xa6o'neil"
	    "\xa7payload\x81\xa1" "a\x92\x01\xa1x";
	/* {"id":2,"user":nil,"payload":"str"} */
	static const unsigned char r2[] = "\x83\xa2id\x02\xa4user\xc0"
	    "\xa7payload\xa3str";

	(void)state;
	conf(&c, "id,user_name,payload,created_at", "id,user,payload,${time}",
	    "payload", NULL, 0, NULL);
	assert_string_equal(row(&c, 1474880533, r1, sizeof r1 - 1),
	    "('1','o\\'neil','{\\\"a\\\":[1,\\\"x\\\"]}',"
	    "'2016-09-26 09:02:13')");
	assert_string_equal(row(&c, 1474880536, r2, sizeof r2 - 1),
	    "('2',NULL,'\\\"str\\\"','2016-09-26 09:02:16')");
	mysql_sql_conf_free(&c);
}

static void
test_row_types(void **state)
{
	struct mysql_sql_conf c;
	/* {"b":true,"f":3.5,"n":-7,"x":nil,"s":"a\0b\n","m":[1,{}],
	 *  "t":1700000000,"j":nil}; "missing", a json "nope" absent */
	static const unsigned char r[] = "\x88\xa1" "b\xc3\xa1" "f\xcb\x40\x0c"
	    "\x00\x00\x00\x00\x00\x00\xa1n\xf9\xa1x\xc0\xa1s\xa4" "a\x00" "b\n"
	    "\xa1m\x92\x01\x80\xa1t\xce\x65\x53\xf1\x00\xa1j\xc0";

	(void)state;
	conf(&c, "b,f,n,x,s,m,t,j,missing,nope", NULL, "j,nope", "t", 0, NULL);
	assert_string_equal(row(&c, 0, r, sizeof r - 1),
	    "(TRUE,'3.5','-7',NULL,'a\\0b\\n','[1,{}]',"
	    "'2023-11-14 22:13:20','null',NULL,'null')");
	mysql_sql_conf_free(&c);
}

static void
test_row_not_map(void **state)
{
	struct mysql_sql_conf c;
	struct buf out = BUF_INIT, scratch = BUF_INIT;

	(void)state;
	conf(&c, "a", NULL, NULL, NULL, 0, NULL);
	assert_int_equal(mysql_sql_row(&out, &c, 0, (const unsigned char *)
	    "\x91\x01", 2, esc, NULL, &scratch), -1);
	assert_int_equal(out.len, 0);
	mysql_sql_conf_free(&c);
}

static void
test_conf_errors(void **state)
{
	struct mysql_sql_conf c;
	char err[256];
	static const struct {
		const char *cols, *keys, *json, *ts, *upd, *msg;
		int odku;
	} t[] = {
		{ NULL, NULL, NULL, NULL, NULL, "--column-names: required", 0 },
		{ "a,,b", NULL, NULL, NULL, NULL, "an empty name", 0 },
		{ "a,b", "a", NULL, NULL, NULL, "1 names for 2", 0 },
		{ "a", NULL, "b", NULL, NULL, "'b' is not one of", 0 },
		{ "a", NULL, NULL, "c", NULL, "'c' is not one of", 0 },
		{ "a", NULL, NULL, NULL, NULL, "needs --on-duplicate-update", 1 },
		{ "a", NULL, NULL, NULL, "a", "needs --on-duplicate-key", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		assert_int_equal(mysql_sql_conf_init(&c, t[i].cols, t[i].keys,
		    t[i].json, t[i].ts, t[i].odku, t[i].upd, err, sizeof err),
		    -1);
		assert_non_null(strstr(err, t[i].msg));
		mysql_sql_conf_free(&c);
	}
}

/* Statements stay within the cap, with the tail counted; a row too big
 * alone is told apart. */
static void
test_add_row_cap(void **state)
{
	struct buf s = BUF_INIT;
	size_t head = 10, tail = 5, cap = 40;

	(void)state;
	buf_add(&s, "0123456789", head);
	assert_int_equal(mysql_sql_add_row(&s, head, "(aaaaaaaa)", 10, tail,
	    cap), 0);
	assert_int_equal(s.len, 20);
	/* 20 + ',' + 10 + 5 = 36 */
	assert_int_equal(mysql_sql_add_row(&s, head, "(bbbbbbbb)", 10, tail,
	    cap), 0);
	assert_int_equal(s.len, 31);
	assert_memory_equal(s.p + 20, ",(bbbbbbbb)", 11);
	/* 31 + 1 + 4 + 5 = 41 > 40 */
	assert_int_equal(mysql_sql_add_row(&s, head, "(cc)", 4, tail, cap), 1);
	assert_int_equal(s.len, 31);
	s.len = head;
	assert_int_equal(mysql_sql_add_row(&s, head, "(cc)", 4, tail, cap), 0);
	/* exactly at the cap alone: fits; one more byte: never */
	s.len = head;
	assert_int_equal(mysql_sql_add_row(&s, head, "(dddddddddddddddddddddd)",
	    25, tail, cap), 0);
	s.len = head;
	assert_int_equal(mysql_sql_add_row(&s, head,
	    "(ddddddddddddddddddddddd)", 26, tail, cap), 2);
	buf_free(&s);
}

static void
head_of(struct chunk_head *h, const char *tag, const void *vars, size_t n)
{
	memset(h, 0, sizeof *h);
	h->tag = tag;
	h->taglen = strlen(tag);
	h->vars = vars;
	h->varslen = n;
}

static void
test_templates(void **state)
{
	struct mysql_tmpl t;
	struct chunk_head h;
	char out[80], err[256], what[80];
	/* {"category":"web.a","n":12,"bad":"a b","arr":[]} */
	static const unsigned char v[] = "\x84\xa8" "category\xa5web.a\xa1n\x0c"
	    "\xa3" "bad\xa3" "a b\xa3" "arr\x90";

	(void)state;
	head_of(&h, "app.events.x", v, sizeof v - 1);
	assert_int_equal(mysql_tmpl_parse(&t, "data_${category}", err,
	    sizeof err), 0);
	assert_false(mysql_tmpl_fixed(&t));
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), 0);
	assert_string_equal(out, "data_web_a");
	assert_int_equal(mysql_tmpl_parse(&t, "${tag}_${tag[1]}_${tag[-1]}_"
	    "${n}", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), 0);
	assert_string_equal(out, "app_events_x_events_x_12");
	/* a value that is not a name: refused, never pasted */
	assert_int_equal(mysql_tmpl_parse(&t, "d_${bad}", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "'d_a b'"));
	assert_int_equal(mysql_tmpl_parse(&t, "d_${arr}", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), -1);
	assert_int_equal(mysql_tmpl_parse(&t, "${tag[5]}", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), -1);
	/* keyed: a key the chunk lacks, a time slice it lacks */
	assert_int_equal(mysql_tmpl_parse(&t, "x_${nosuch}", err, sizeof err),
	    0);
	assert_int_equal(mysql_tmpl_keyed(&t, &h, what, sizeof what), 0);
	assert_string_equal(what, "nosuch");
	assert_int_equal(mysql_tmpl_parse(&t, "x_%Y%m%d", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_keyed(&t, &h, what, sizeof what), 0);
	h.has_timekey = 1;
	h.timekey = 1474880533;
	assert_int_equal(mysql_tmpl_keyed(&t, &h, what, sizeof what), 1);
	assert_int_equal(mysql_tmpl_expand(&t, &h, 1, out, sizeof out, err,
	    sizeof err), 0);
	assert_string_equal(out, "x_20160926");
	/* malformed */
	assert_int_equal(mysql_tmpl_parse(&t, "x_${a", err, sizeof err), -1);
	assert_int_equal(mysql_tmpl_parse(&t, "x_${}", err, sizeof err), -1);
	assert_int_equal(mysql_tmpl_parse(&t, "x_${a b}", err, sizeof err), -1);
	assert_int_equal(mysql_tmpl_parse(&t, "${tag[x]}", err, sizeof err),
	    -1);
	assert_int_equal(mysql_tmpl_parse(&t, "plain", err, sizeof err), 0);
	assert_true(mysql_tmpl_fixed(&t));
}

static void
test_tmpl_sql(void **state)
{
	struct mysql_tmpl t;
	struct chunk_head h;
	struct buf b = BUF_INIT;
	char err[256];
	static const unsigned char v[] = "\x81\xa1" "c\xa3x.y";
	static const unsigned char bad[] = "\x81\xa1" "c\xa4x;--";

	(void)state;
	head_of(&h, "t", v, sizeof v - 1);
	assert_int_equal(mysql_tmpl_parse(&t, "CREATE TABLE d_${c} (s TEXT "
	    "DEFAULT '%')", err, sizeof err), 0);
	assert_int_equal(mysql_tmpl_sql(&t, &h, &b, err, sizeof err), 0);
	buf_addc(&b, 0);
	assert_string_equal((char *)b.p, "CREATE TABLE d_x_y (s TEXT DEFAULT "
	    "'%')");
	head_of(&h, "t", bad, sizeof bad - 1);
	buf_reset(&b);
	assert_int_equal(mysql_tmpl_sql(&t, &h, &b, err, sizeof err), -1);
	buf_free(&b);
}

static void
test_names(void **state)
{
	char s[70];

	(void)state;
	assert_true(mysql_name_valid("data_web$1"));
	assert_false(mysql_name_valid(""));
	assert_false(mysql_name_valid("a.b"));
	assert_false(mysql_name_valid("a`b"));
	memset(s, 'a', 64);
	s[64] = '\0';
	assert_true(mysql_name_valid(s));
	s[64] = 'a';
	s[65] = '\0';
	assert_false(mysql_name_valid(s));
}

static void
test_err_classes(void **state)
{
	static const unsigned conn[] = { 2002, 2003, 2006, 2013, 2055, 2026 };
	static const unsigned temp[] = { 1205, 1213, 1040, 1053, 1927, 1969,
		1021, 1836, 1290, 1045, 1049 };
	static const unsigned perm[] = { 1054, 1048, 1136, 1406, 1366, 1292,
		1264, 4025, 1062, 1064, 1153, 3140 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof conn / sizeof conn[0]; i++)
		assert_int_equal(mysql_err_class(conn[i]), MYSQL_ERR_CONN);
	for (i = 0; i < sizeof temp / sizeof temp[0]; i++)
		assert_int_equal(mysql_err_class(temp[i]), MYSQL_ERR_TEMP);
	for (i = 0; i < sizeof perm / sizeof perm[0]; i++)
		assert_int_equal(mysql_err_class(perm[i]), MYSQL_ERR_PERM);
	assert_int_equal(mysql_err_class(1146), MYSQL_ERR_NOTABLE);
	assert_string_equal(mysql_err_class_name(MYSQL_ERR_PERM), "permanent");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_tail),
		cmocka_unit_test(test_row_values),
		cmocka_unit_test(test_row_types),
		cmocka_unit_test(test_row_not_map),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_add_row_cap),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_tmpl_sql),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_err_classes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
