/* Unit tests for lib/posfile: Fluentd's position file read by Fluentd's
 * rules (position_file.rb) and written in its format, and the start
 * position of a file (in_tail's rules). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "posfile.h"
#include "tail.h"

static void
parse(struct posfile *pf, const char *s)
{
	assert_int_equal(posfile_parse(pf, s, strlen(s)), 0);
}

/* The example line of the research notes, as td-agent writes it. */
static void
test_fluentd_line(void **state)
{
	struct posfile pf = { 0 };

	(void)state;
	parse(&pf, "/var/log/a.log\t00000000000876fa\t0000000000001eec\n");
	assert_int_equal(pf.n, 1);
	assert_string_equal(pf.e[0].path, "/var/log/a.log");
	assert_true(pf.e[0].pos == 0x876fa);
	assert_true(pf.e[0].ino == 0x1eec);
	assert_int_equal(pf.unparsable, 0);
	posfile_free(&pf);
}

/* The regexp ^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+): any number of
 * hex digits, either case, anything after the third field; a path with
 * spaces.  Other lines are unparsable. */
static void
test_regexp_rules(void **state)
{
	struct posfile pf = { 0 };

	(void)state;
	parse(&pf, "/a b\tFF\t1 trailing\n"
	    "\t0\t0\n"			/* empty path */
	    "/x\t0\n"			/* two fields */
	    "/y\tzz\t1\n"		/* not hex */
	    "/z\t1\t\n"			/* empty inode */
	    "no tabs at all\n"
	    "\n"			/* blank: not counted */
	    "/last\t10\t20");		/* no newline at the end */
	assert_int_equal(pf.n, 2);
	assert_string_equal(pf.e[0].path, "/a b");
	assert_true(pf.e[0].pos == 0xff && pf.e[0].ino == 1);
	assert_string_equal(pf.e[1].path, "/last");
	assert_true(pf.e[1].pos == 0x10 && pf.e[1].ino == 0x20);
	assert_int_equal(pf.unparsable, 5);
	posfile_free(&pf);
}

/* Compaction at start: the last line of a key wins, unwatched entries
 * (ffff...) are dropped; by inode, the key is the inode. */
static void
test_compaction(void **state)
{
	struct posfile pf = { 0 }, pi = { .by_inode = 1 };
	const char *s = "/a\t0000000000000001\t0000000000000007\n"
	    "/b\tffffffffffffffff\t0000000000000008\n"
	    "/a\t0000000000000002\t0000000000000007\n"
	    "/c\t0000000000000003\t0000000000000009\n"
	    "/c.1\t0000000000000004\t0000000000000009\n"
	    "/d\t0000000000000005\t000000000000000a\n"
	    "/d\tffffffffffffffff\t000000000000000a\n";

	(void)state;
	parse(&pf, s);
	assert_int_equal(pf.n, 3);
	assert_true(posfile_find(&pf, "/a", 0)->pos == 2);
	assert_null(posfile_find(&pf, "/b", 8));
	assert_true(posfile_find(&pf, "/c", 0)->pos == 3);
	assert_true(posfile_find(&pf, "/c.1", 0)->pos == 4);
	assert_null(posfile_find(&pf, "/d", 0));	/* the last was unwatched */
	parse(&pi, s);
	assert_int_equal(pi.n, 2);
	assert_true(posfile_find(&pi, "anything", 9)->pos == 4);
	assert_string_equal(posfile_find(&pi, "", 9)->path, "/c.1");
	assert_true(posfile_find(&pi, "", 7)->pos == 2);
	posfile_free(&pf);
	posfile_free(&pi);
}

/* More than 16 significant hex digits do not fit: dropped.  Leading
 * zeros do not count. */
static void
test_overflow(void **state)
{
	struct posfile pf = { 0 };

	(void)state;
	parse(&pf, "/a\t10000000000000000\t1\n"
	    "/b\t0000000000000000000000ff\t1\n"
	    "/c\tfffffffffffffffe\tffffffffffffffff\n");
	assert_int_equal(pf.n, 2);
	assert_true(posfile_find(&pf, "/b", 0)->pos == 0xff);
	assert_true(posfile_find(&pf, "/c", 0)->pos == UINT64_MAX - 1);
	assert_int_equal(pf.unparsable, 1);
	posfile_free(&pf);
}

/* Written as "%s\t%016x\t%016x\n", read back the same; a path that
 * cannot be a line in this format is refused. */
static void
test_format_round_trip(void **state)
{
	struct posfile pf = { 0 }, back = { 0 };
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(posfile_set(&pf, "/var/log/a.log", 0x1eec, 0x876fa), 0);
	assert_int_equal(posfile_set(&pf, "/b", 2, 0), 0);
	assert_int_equal(posfile_set(&pf, "/var/log/a.log", 0x1eec, 0x876fb), 0);
	assert_int_equal(posfile_format(&pf, &b), 0);
	assert_int_equal(b.len, strlen("/var/log/a.log\t00000000000876fb\t"
	    "0000000000001eec\n/b\t0000000000000000\t0000000000000002\n"));
	assert_memory_equal(b.p, "/var/log/a.log\t00000000000876fb\t"
	    "0000000000001eec\n/b\t0000000000000000\t0000000000000002\n", b.len);
	assert_int_equal(posfile_parse(&back, (const char *)b.p, b.len), 0);
	assert_int_equal(back.n, 2);
	assert_true(posfile_find(&back, "/var/log/a.log", 0)->pos == 0x876fb);
	buf_reset(&b);
	errno = 0;
	assert_int_equal(posfile_line(&b, "/a\tb", 1, 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(posfile_line(&b, "/a\nb", 1, 1), -1);
	assert_int_equal(posfile_line(&b, "", 1, 1), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	posfile_free(&pf);
	posfile_free(&back);
}

/* in_tail's start rules (D.3). */
static void
test_start(void **state)
{
	struct posfile_ent e = { "/a", 100, 7 }, none = { "/a", 0, 0 };

	(void)state;
	assert_true(posfile_start(&e, 7, 200, 0) == 100);	/* resumed */
	assert_true(posfile_start(&e, 7, 100, 0) == 100);
	assert_true(posfile_start(&e, 7, 50, 0) == 0);	/* truncated */
	assert_true(posfile_start(&e, 8, 500, 0) == 0);	/* rotated */
	assert_true(posfile_start(NULL, 8, 500, 0) == 500);	/* new: end */
	assert_true(posfile_start(NULL, 8, 500, 1) == 0);	/* head */
	assert_true(posfile_start(&none, 8, 500, 0) == 500);	/* inode 0 */
}

/* Written whole: the file holds the old or the new entries, and no
 * temporary file is left. */
static void
test_write_load(void **state)
{
	char dir[] = "/tmp/posfileXXXXXX", path[64], tmp[80];
	struct posfile pf = { 0 };
	const char *a = "/a\t0000000000000001\t0000000000000002\n";

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/pos", dir);
	assert_int_equal(posfile_load(&pf, path), 0);	/* missing: empty */
	assert_int_equal(pf.n, 0);
	assert_int_equal(posfile_write(path, a, strlen(a)), 0);
	assert_int_equal(posfile_load(&pf, path), 0);
	assert_int_equal(pf.n, 1);
	assert_true(pf.e[0].pos == 1 && pf.e[0].ino == 2);
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	assert_int_equal(access(tmp, F_OK), -1);
	unlink(path);
	rmdir(dir);
	posfile_free(&pf);
}

/* logrotate's compress: a gzip (or bzip2, xz, zstd, lz4) file is not a
 * log to follow. */
static void
test_compressed_magic(void **state)
{
	(void)state;
	assert_true(tail_compressed((const unsigned char *)"\x1f\x8b\x08", 3));
	assert_true(tail_compressed((const unsigned char *)"BZh9", 4));
	assert_true(tail_compressed((const unsigned char *)"\xfd" "7zXZ\0", 6));
	assert_true(tail_compressed((const unsigned char *)"\x28\xb5\x2f\xfd", 4));
	assert_false(tail_compressed((const unsigned char *)"2024-01-01", 10));
	assert_false(tail_compressed((const unsigned char *)"\x1f", 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fluentd_line),
		cmocka_unit_test(test_regexp_rules),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_start),
		cmocka_unit_test(test_write_load),
		cmocka_unit_test(test_compressed_magic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
