/* Unit tests for lib/match: every rule and example of Fluentd's "How do
 * the match patterns work?" (docs, configuration/config-file.md) and every
 * case of its test/test_match.rb, plus lf's own refusals and bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "match.h"

struct tcase {
	const char *pat, *tag;
	int want;
};

static void
check(const struct tcase *t, size_t n)
{
	char err[256];

	for (size_t i = 0; i < n; i++) {
		struct match *m = match_compile(t[i].pat, err, sizeof err);
		if (m == NULL)
			fail_msg("'%s': %s", t[i].pat, err);
		if (match_tag(m, t[i].tag, strlen(t[i].tag)) != t[i].want)
			fail_msg("'%s' on tag '%s': want %d", t[i].pat, t[i].tag,
			    t[i].want);
		match_free(m);
	}
}

#define CHECK(t) check(t, sizeof t / sizeof t[0])

/* test_simple */
static void
test_literal(void **state)
{
	static const struct tcase t[] = {
		{ "a", "a", 1 }, { "a.b", "a.b", 1 }, { "a", "b", 0 },
		{ "a.b", "aab", 0 }, { "a.b", "a.b.c", 0 }, { "a.b", "a", 0 },
		{ "data.production", "data.production", 1 },
		{ "data.production", "data.staging", 0 },
		{ "a-b_c:d", "a-b_c:d", 1 },
	};
	(void)state;
	CHECK(t);
}

/* docs: "* matches a single tag part": a.* matches a.b, not a, not a.b.c;
 * test_wildcard: * is [^.]*, within a part too. */
static void
test_star(void **state)
{
	static const struct tcase t[] = {
		{ "a.*", "a.b", 1 }, { "a.*", "a", 0 }, { "a.*", "a.b.c", 0 },
		{ "a*", "a", 1 }, { "a*", "ab", 1 }, { "a*", "abc", 1 },
		{ "*a", "a", 1 }, { "*a", "ba", 1 }, { "*a", "cba", 1 },
		{ "*a*", "a", 1 }, { "*a*", "ba", 1 }, { "*a*", "ac", 1 },
		{ "*a*", "bac", 1 },
		{ "a*", "a.b", 0 }, { "a*", "ab.c", 0 }, { "a*", "ba", 0 },
		{ "*a", "ab", 0 },
		{ "a.*", "a.c", 1 }, { "a.*", "ab", 0 },
		{ "a.*.c", "a.b.c", 1 }, { "a.*.c", "a.c.c", 1 }, { "a.*.c", "a.c", 0 },
		{ "*", "a", 1 }, { "*", "a.b", 0 },
		/* Fluentd's * is [^.]*: it matches an empty part too */
		{ "a.*", "a.", 1 }, { "*", "", 1 },
	};
	(void)state;
	CHECK(t);
}

/* docs: "** matches zero or more tag parts": a.** matches a, a.b, a.b.c;
 * test_recursive_wildcard. */
static void
test_star_star(void **state)
{
	static const struct tcase t[] = {
		{ "a.**", "a", 1 }, { "a.**", "a.b", 1 }, { "a.**", "a.b.c", 1 },
		{ "a.**", "ab", 0 }, { "a.**", "abc", 0 }, { "a.**", "ab.c", 0 },
		{ "a.**", "ab.d.e", 0 },
		{ "a**", "a", 1 }, { "a**", "ab", 1 }, { "a**", "abc", 1 },
		{ "a**", "a.b", 1 }, { "a**", "ab.c", 1 }, { "a**", "ab.d.e", 1 },
		{ "**.a", "a", 1 }, { "**.a", "ba", 0 }, { "**.a", "c.ba", 0 },
		{ "**.a", "b.a", 1 }, { "**.a", "cb.a", 1 }, { "**.a", "d.e.a", 1 },
		{ "**a", "a", 1 }, { "**a", "ba", 1 }, { "**a", "c.ba", 1 },
		{ "**a", "b.a", 1 }, { "**a", "cb.a", 1 }, { "**a", "d.e.a", 1 },
		{ "**", "", 1 }, { "**", "a", 1 }, { "**", "a.b.c", 1 },
		{ "a.**.b", "a.b", 1 }, { "a.**.b", "a.x.b", 1 },
		{ "a.**.b", "a.x.y.b", 1 }, { "a.**.b", "ab", 0 },
		{ "a.**.b", "a.xb", 0 }, { "a.**.b", "x.a.b", 0 },
	};
	(void)state;
	CHECK(t);
}

/* docs: {X,Y,Z} matches X, Y or Z, patterns themselves: {a,b} matches a
 * and b, not c; a.{b,c}.* and a.{b,c.**}; test_or. */
static void
test_braces(void **state)
{
	static const struct tcase t[] = {
		{ "{a,b}", "a", 1 }, { "{a,b}", "b", 1 }, { "{a,b}", "c", 0 },
		{ "a.{b,c}", "a.b", 1 }, { "a.{b,c}", "a.c", 1 },
		{ "a.{b,c}", "a.d", 0 },
		{ "a.{b,c}.**", "a.b", 1 }, { "a.{b,c}.**", "a.c", 1 },
		{ "a.{b,c}.**", "a.d", 0 }, { "a.{b,c}.**", "a.cd", 0 },
		{ "a.{b,c}.**", "a.b.x.y", 1 },
		{ "a.{b.**,c}", "a.b", 1 }, { "a.{b.**,c}", "a.b.c", 1 },
		{ "a.{b.**,c}", "a.c", 1 }, { "a.{b.**,c}", "a.c.d", 0 },
		{ "a.{b,c}.*", "a.b.x", 1 }, { "a.{b,c}.*", "a.c.x", 1 },
		{ "a.{b,c}.*", "a.b", 0 }, { "a.{b,c}.*", "a.d.x", 0 },
		{ "a.{b,c.**}", "a.c", 1 }, { "a.{b,c.**}", "a.c.d.e", 1 },
		{ "a.{b,c.**}", "a.b.d", 0 },
		{ "{a,b}.**", "a", 1 }, { "{a,b}.**", "b.x.y", 1 },
		{ "{a,b}.**", "c.x", 0 }, { "{a,b}.**", "ab", 0 },
		/* nested, with * and an empty alternative */
		{ "{a.{b,c},d.*}", "a.c", 1 }, { "{a.{b,c},d.*}", "d.zz", 1 },
		{ "{a.{b,c},d.*}", "a.d", 0 }, { "{a.{b,c},d.*}", "d", 0 },
		{ "a{.b,}", "a", 1 }, { "a{.b,}", "a.b", 1 }, { "a{.b,}", "a.c", 0 },
		{ "x{a,b}y", "xay", 1 }, { "x{a,b}y", "xy", 0 },
		{ "{}", "", 1 }, { "{a,b}{c,d}", "bc", 1 }, { "{a,b}{c,d}", "cb", 0 },
		/* a ',' outside braces is a literal, as in Fluentd */
		{ "a,b", "a,b", 1 }, { "a,b", "a", 0 },
	};
	(void)state;
	CHECK(t);
}

/* docs: several patterns separated by white space, any one matching:
 * <match a b> matches a and b; <match a.** b.*> matches a, a.b, a.b.c
 * and b.d; test_multi_pattern_or. */
static void
test_several(void **state)
{
	static const struct tcase t[] = {
		{ "a b", "a", 1 }, { "a b", "b", 1 }, { "a b", "c", 0 },
		{ "a.** b.*", "a", 1 }, { "a.** b.*", "a.b", 1 },
		{ "a.** b.*", "a.b.c", 1 }, { "a.** b.*", "b.d", 1 },
		{ "a.** b.*", "b", 0 }, { "a.** b.*", "b.d.e", 0 },
		{ "a.b a.c", "a.b", 1 }, { "a.b a.c", "a.c", 1 },
		{ "a.b a.c", "a.d", 0 },
		{ "a.b.** a.c.**", "a.b", 1 }, { "a.b.** a.c.**", "a.c", 1 },
		{ "a.b.** a.c.**", "a.d", 0 }, { "a.b.** a.c.**", "a.cd", 0 },
		{ "a.b.** a.c", "a.b", 1 }, { "a.b.** a.c", "a.b.c", 1 },
		{ "a.b.** a.c", "a.c", 1 }, { "a.b.** a.c", "a.c.d", 0 },
		/* Ruby's \s+: tabs, newlines, runs, and at either end */
		{ "  a\t\tb\n c \r", "c", 1 }, { "  a\t\tb\n c \r", "b", 1 },
		{ "x /y/ z", "y", 1 }, { "x /y/ z", "z", 1 },
	};
	(void)state;
	CHECK(t);
}

/* test_regex_pattern (Fluentd >= 1.11.2): the whole tag must match.  The
 * look-ahead cases of Fluentd's test are refused, see test_bad. */
static void
test_regex(void **state)
{
	static const struct tcase t[] = {
		{ "/a/", "a", 1 }, { "/a/", "abc", 0 }, { "/a.*/", "abc", 1 },
		{ "/b.*/", "abc", 0 }, { "/a\\..*/", "a.b.c", 1 },
		{ "/a\\..*/", "b.b.c", 0 }, { "/a\\..*/", "ab", 0 },
		{ "/(app|web)\\.[a-z]+/", "web.access", 1 },
		{ "/(app|web)\\.[a-z]+/", "web.acc3ss", 0 },
		{ "/[[:digit:]]+/", "2026", 1 }, { "/[]a]+/", "]a]", 1 },
		{ "/\\w+\\.\\w+/", "a_1.b", 1 }, { "/x{2,3}/", "xxx", 1 },
		{ "/x{2,3}/", "xxxx", 0 },
	};
	(void)state;
	CHECK(t);
}

/* \c is the byte c (Fluentd's escape). */
static void
test_escape(void **state)
{
	static const struct tcase t[] = {
		{ "a\\*", "a*", 1 }, { "a\\*", "ab", 0 }, { "\\{a\\}", "{a}", 1 },
		{ "a\\.b", "a.b", 1 }, { "a\\,b", "a,b", 1 },
		{ "{a\\,b,c}", "a,b", 1 }, { "{a\\,b,c}", "a", 0 },
		{ "a\\\\b", "a\\b", 1 },
	};
	(void)state;
	CHECK(t);
}

/* Tags are bytes: UTF-8, control bytes and NUL (length, not NUL-ended). */
static void
test_bytes(void **state)
{
	static const struct tcase t[] = {
		{ "caf\xc3\xa9.*", "caf\xc3\xa9.x", 1 },
		{ "*.\xe6\x97\xa5", "a.\xe6\x97\xa5", 1 },
		{ "*", "\xff\xfe", 1 }, { "a.**", "a.\x01\x7f", 1 },
		{ "\xc3\xa9", "\xc3\xa8", 0 },
	};
	char err[128];
	struct match *m;

	(void)state;
	CHECK(t);
	assert_non_null(m = match_compile("a.*", err, sizeof err));
	assert_int_equal(match_tag(m, "a.b\0c", 5), 1);	/* NUL is not '.' */
	assert_int_equal(match_tag(m, "a.b.c", 3), 1);	/* length counts */
	assert_int_equal(match_tag(m, "a.b.c", 2), 1);	/* "a." */
	assert_int_equal(match_tag(m, "a.b.c", 1), 0);
	assert_int_equal(match_tag(m, NULL, 0), 0);
	match_free(m);
	assert_non_null(m = match_compile("/a.c/", err, sizeof err));
	assert_int_equal(match_tag(m, "abcd", 3), 1);	/* REG_STARTEND */
	assert_int_equal(match_tag(m, "abcd", 4), 0);
	match_free(m);
}

/* Edge tags: empty, dots at the ends, empty parts. */
static void
test_edge_tags(void **state)
{
	static const struct tcase t[] = {
		{ "a", "", 0 }, { "a.**", "", 0 }, { "**.a", "", 0 },
		{ "a.**", "a.", 1 }, { "a.b", "a.b.", 0 }, { "a.b", ".a.b", 0 },
		{ "**.b", ".b", 1 }, { "*.*", ".", 1 }, { "a.*.b", "a..b", 1 },
		{ "a.**", "a..", 1 },
	};
	(void)state;
	CHECK(t);
}

/* Bad patterns: a clear message naming the pattern, errno EINVAL. */
static void
test_bad(void **state)
{
	static const struct { const char *pat, *msg; } t[] = {
		{ "", "empty pattern" }, { " \t ", "empty pattern" },
		{ "a.{b,c", "unbalanced '{'" }, { "{a", "unbalanced '{'" },
		{ "a}", "unbalanced '}'" }, { "{a}}", "unbalanced '}'" },
		{ ".a", "leading '.'" }, { "a.", "trailing '.'" },
		{ "a..b", "\"..\"" }, { "a.**.", "trailing '.'" },
		{ "**.", "trailing '.'" }, { "{a.,b}", "\".,\"" },
		{ "{a,b.}", "\".}\"" }, { "a\\", "trailing '\\'" },
		{ "ok x..y", "'x..y'" },
		{ "/a", "closing '/'" }, { "/", "closing '/'" },
		{ "/(?!a\\.).*/", "\"(?\"" }, { "/a\\d/", "\\d" },
		{ "/(a)\\1/", "\\1" }, { "/\\<a/", "\\<" }, { "/[\\.]/", "bracket" },
		{ "/[a/", "unbalanced '['" }, { "/a(/", "pattern '/a(/'" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		errno = 0;
		if (match_compile(t[i].pat, err, sizeof err) != NULL)
			fail_msg("'%s' compiled", t[i].pat);
		assert_int_equal(errno, EINVAL);
		if (strstr(err, t[i].msg) == NULL)
			fail_msg("'%s': \"%s\" lacks \"%s\"", t[i].pat, err, t[i].msg);
	}
}

/* Nesting and length are bounded at compile time. */
static void
test_limits(void **state)
{
	char pat[MATCH_MAX_PATTERN + 2], err[256];
	struct match *m;
	int i;

	(void)state;
	for (i = 0; i < 32; i++)
		pat[i] = '{', pat[64 - 1 - i] = '}';
	pat[64] = '\0';
	assert_non_null(m = match_compile(pat, err, sizeof err));
	assert_int_equal(match_tag(m, "", 0), 1);
	match_free(m);
	for (i = 0; i < 33; i++)
		pat[i] = '{', pat[66 - 1 - i] = '}';
	pat[66] = '\0';
	assert_null(match_compile(pat, err, sizeof err));
	assert_non_null(strstr(err, "nested deeper than 32"));
	memset(pat, 'a', MATCH_MAX_PATTERN + 1);
	pat[MATCH_MAX_PATTERN + 1] = '\0';
	assert_null(match_compile(pat, err, sizeof err));
	assert_non_null(strstr(err, "longer than"));
	pat[MATCH_MAX_PATTERN] = '\0';
	assert_non_null(m = match_compile(pat, err, sizeof err));
	assert_int_equal(match_tag(m, pat, MATCH_MAX_PATTERN), 1);
	match_free(m);
}

/* A very long tag against the common patterns. */
static void
test_long_tag(void **state)
{
	size_t n = 1 << 20;
	char *tag = malloc(n), err[128];
	struct match *m;

	(void)state;
	assert_non_null(tag);
	for (size_t i = 0; i < n; i++)
		tag[i] = i % 4 == 1 ? '.' : 'x';
	tag[0] = 'a';
	assert_non_null(m = match_compile("a.**", err, sizeof err));
	assert_int_equal(match_tag(m, tag, n), 1);
	match_free(m);
	assert_non_null(m = match_compile("a.*", err, sizeof err));
	assert_int_equal(match_tag(m, tag, n), 0);
	match_free(m);
	free(tag);
}

/* The work bound of match.h: at most 2 * (n + 1) * states steps (each
 * state entered once per position and stepped once), on patterns where
 * a backtracking matcher (Ruby's regex of the same glob) takes
 * exponential or high-polynomial time: *a*a*a...b on a run of a's,
 * **.**.**... on a run of dots, nested braces of the same alternatives. */
static void
test_bound(void **state)
{
	static const char *pats[] = {
		"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
		"a**a**a**a**a**a**a**a**a**a**a**a**a**a**a**a**b",
		"**.**.**.**.**.**.**.**.**.**.**.**.**.**.**.**.b",
		"{a,a,a,{a,a,{a,a,{a,a}}}}**{a,a,{a,a,{a,a}}}**{a,a}**b",
		"{a*,*a,{a*,*a}}.{a*,*a,{a*,*a}}.{a*,*a,{a*,*a}}.**.b",
	};
	static const char fill[] = { 'a', '.', 'a' };
	size_t n = 20000;
	char *tag = malloc(n), err[256];

	(void)state;
	assert_non_null(tag);
	for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
		struct match *m = match_compile(pats[p], err, sizeof err);
		if (m == NULL)
			fail_msg("%s: %s", pats[p], err);
		for (size_t f = 0; f < sizeof fill; f++) {
			for (size_t i = 0; i < n; i++)
				tag[i] = f == 2 ? (i % 2 ? '.' : 'a') : fill[f];
			unsigned long bound = 2 * (n + 1) * match_states(m);
			assert_int_equal(match_tag(m, tag, n), 0);
			if (match_ops(m) > bound)
				fail_msg("'%s': %lu steps > %lu", pats[p],
				    match_ops(m), bound);
		}
		match_free(m);
	}
	free(tag);
}

/* The last tag is remembered: the same tag again takes no NFA step and
 * gets the same answer; another tag of the same length is matched. */
static void
test_cache(void **state)
{
	char err[128], tag[200];
	struct match *m;

	(void)state;
	assert_non_null(m = match_compile("a.*", err, sizeof err));
	assert_int_equal(match_tag(m, "a.bc", 4), 1);
	assert_true(match_ops(m) > 0);
	assert_int_equal(match_tag(m, "a.bc", 4), 1);
	assert_int_equal(match_ops(m), 0);
	assert_int_equal(match_tag(m, "a.b.", 4), 0);
	assert_true(match_ops(m) > 0);
	assert_int_equal(match_tag(m, "a.b.", 4), 0);
	assert_int_equal(match_ops(m), 0);
	assert_int_equal(match_tag(m, "", 0), 0);
	assert_int_equal(match_tag(m, "", 0), 0);
	assert_int_equal(match_ops(m), 0);
	/* a tag longer than the cache is matched every time */
	memset(tag, 'x', sizeof tag);
	tag[0] = 'a', tag[1] = '.';
	assert_int_equal(match_tag(m, tag, sizeof tag), 1);
	assert_int_equal(match_tag(m, tag, sizeof tag), 1);
	assert_true(match_ops(m) > 0);
	tag[100] = '.';
	assert_int_equal(match_tag(m, tag, sizeof tag), 0);
	match_free(m);
}

/* Fluentd's order: the first <match> matching takes the event ("**"
 * first hides what follows); copies take every rule matching. */
static void
test_rules(void **state)
{
	struct match_rules r;
	char err[256];

	(void)state;
	match_rules_init(&r);
	assert_int_equal(match_rules_add(&r, "myapp.access", err, sizeof err), 0);
	assert_int_equal(match_rules_add(&r, "**", err, sizeof err), 1);
	assert_int_equal(match_rules_first(&r, "myapp.access", 12), 0);
	assert_int_equal(match_rules_first(&r, "other", 5), 1);
	assert_int_equal(match_rules_all(&r, "myapp.access", 12), 3);
	assert_int_equal(match_rules_all(&r, "other", 5), 2);
	match_rules_free(&r);

	match_rules_init(&r);
	assert_int_equal(match_rules_add(&r, "**", err, sizeof err), 0);
	assert_int_equal(match_rules_add(&r, "myapp.access", err, sizeof err), 1);
	assert_int_equal(match_rules_first(&r, "myapp.access", 12), 0);
	match_rules_free(&r);

	match_rules_init(&r);
	assert_int_equal(match_rules_add(&r, "data.production", err, sizeof err), 0);
	assert_int_equal(match_rules_add(&r, "data.staging data.dev", err, sizeof err), 1);
	assert_int_equal(match_rules_add(&r, NULL, err, sizeof err), 2);
	assert_int_equal(match_rules_add(&r, "a.{b", err, sizeof err), -1);
	assert_non_null(strstr(err, "unbalanced"));
	assert_int_equal(match_rules_all(&r, "data.production", 15), 5);
	assert_int_equal(match_rules_all(&r, "data.dev", 8), 6);
	assert_int_equal(match_rules_all(&r, "x", 1), 4);
	match_rules_free(&r);

	match_rules_init(&r);
	assert_int_equal(match_rules_add(&r, "x", err, sizeof err), 0);
	assert_int_equal(match_rules_first(&r, "y", 1), -1);
	assert_int_equal(match_rules_all(&r, "y", 1), 0);
	for (int i = 1; i < MATCH_MAX_RULES; i++)
		assert_int_equal(match_rules_add(&r, "y", err, sizeof err), i);
	assert_int_equal(match_rules_add(&r, "y", err, sizeof err), -1);
	assert_non_null(strstr(err, "more than 64 rules"));
	assert_true(match_rules_all(&r, "y", 1) == ~1ull);
	match_rules_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_star_star),
		cmocka_unit_test(test_braces),
		cmocka_unit_test(test_several),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_edge_tags),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_long_tag),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
