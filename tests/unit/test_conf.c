/* Unit tests for conf's option helpers: enum and bool values, and the one
 * wording and exit code (64) of a bad option value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "log.h"

enum { RED = 1, GREEN, BLUE };

static const struct conf_name colours[] = {
	{ "red", RED }, { "green", GREEN }, { "verde", GREEN }, { "blue", BLUE },
	{ NULL, 0 }
};

static void
test_enum(void **state)
{
	int v = 0;

	(void)state;
	assert_int_equal(conf_enum(colours, "red", &v), 0);
	assert_int_equal(v, RED);
	assert_int_equal(conf_enum(colours, "verde", &v), 0);
	assert_int_equal(v, GREEN);
	v = 42;
	assert_int_equal(conf_enum(colours, "Red", &v), -1);	/* exact */
	assert_int_equal(conf_enum(colours, "", &v), -1);
	assert_int_equal(conf_enum(colours, "redx", &v), -1);
	assert_int_equal(v, 42);
}

static void
test_enum_list(void **state)
{
	static const struct conf_name one[] = { { "only", 1 }, { NULL, 0 } };
	static const struct conf_name two[] = { { "a", 1 }, { "b", 2 },
	    { NULL, 0 } };
	char out[64];

	(void)state;
	conf_enum_list(colours, out, sizeof out);
	assert_string_equal(out, "red, green, verde or blue");
	conf_enum_list(one, out, sizeof out);
	assert_string_equal(out, "only");
	conf_enum_list(two, out, sizeof out);
	assert_string_equal(out, "a or b");
	conf_enum_list(colours, out, 8);	/* cut short, still a string */
	assert_string_equal(out, "red, gr");
}

static void
test_number(void **state)
{
	double d;

	(void)state;
	assert_int_equal(conf_number("1.5", &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(conf_number(".5", &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(conf_number("2", &d), 0);
	assert_int_equal(conf_number("-2", &d), -1);
	assert_int_equal(conf_number("2s", &d), -1);
	assert_int_equal(conf_number("", &d), -1);
	assert_int_equal(conf_number("1e999", &d), -1);
	assert_int_equal(conf_number("nan", &d), -1);
}

/* The good values come back; a bare boolean option is true. */
static void
test_opt_values(void **state)
{
	(void)state;
	assert_int_equal(conf_opt_bool("x", NULL), 1);
	assert_int_equal(conf_opt_bool("x", "false"), 0);
	assert_int_equal(conf_opt_bool("x", "yes"), 1);
	assert_int_equal(conf_opt_bool("x", "0"), 0);
	assert_int_equal(conf_opt_enum("x", "blue", colours), BLUE);
	assert_int_equal(conf_opt_uint("x", "7", 10), 7);
	assert_true(conf_opt_number("x", "2.5") == 2.5);
	assert_true(conf_opt_duration("x", "1m") == 60);
	assert_int_equal(conf_opt_size("x", "2k"), 2048);
}

/* Run f(arg) in a child: its exit status and what it wrote on stderr. */
static int
fatal_run(void (*f)(const char *), const char *arg, char *err, size_t errlen)
{
	int fd[2], status;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		dup2(fd[1], 2);
		close(fd[0]);
		log_init("test_conf");
		f(arg);
		_exit(0);
	}
	close(fd[1]);
	while (got + 1 < errlen &&
	    (n = read(fd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void call_enum(const char *a) { conf_opt_enum("colour", a, colours); }
static void call_bool(const char *a) { conf_opt_bool("flag", a); }
static void call_uint(const char *a) { conf_opt_uint("count", a, 4096); }
static void call_size(const char *a) { conf_opt_size("limit", a); }
static void call_duration(const char *a) { conf_opt_duration("wait", a); }
static void call_number(const char *a) { conf_opt_number("base", a); }

static void
test_opt_errors(void **state)
{
	static const struct {
		void (*f)(const char *);
		const char *arg, *msg;
	} cases[] = {
		{ call_enum, "pink", "--colour: must be red, green, verde or "
		    "blue: 'pink'" },
		{ call_bool, "maybe", "--flag: not a boolean (true or false): "
		    "'maybe'" },
		{ call_uint, "4097", "--count: not a whole number from 0 to "
		    "4096: '4097'" },
		{ call_uint, "-1", "--count: not a whole number from 0 to "
		    "4096: '-1'" },
		{ call_size, "8mb", "--limit: not a size (e.g. 256k, 8m, 1g): "
		    "'8mb'" },
		{ call_duration, "1x", "--wait: not a duration (e.g. 10s, "
		    "1.5m, 1h, 3d): '1x'" },
		{ call_number, "two", "--base: not a number: 'two'" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		assert_int_equal(fatal_run(cases[i].f, cases[i].arg, err,
		    sizeof err), 64);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("want \"%s\" in \"%s\"", cases[i].msg, err);
		/* one line, nothing else */
		assert_non_null(strchr(err, '\n'));
		assert_string_equal(strchr(err, '\n'), "\n");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enum),
		cmocka_unit_test(test_enum_list),
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_opt_values),
		cmocka_unit_test(test_opt_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
