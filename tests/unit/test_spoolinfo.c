/* Unit tests for lib/spoolinfo, what lf-spool knows of a whole spool:
 * sealed names, the consumers' retry state, the tally of an odd spool,
 * a dead chunk's reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "retry.h"
#include "spool.h"

struct fixture {
	char dir[64];
	struct spool s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/lf-test-spoolinfo.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(spool_open(&f->s, f->dir, 1, err, sizeof err), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	spool_close(&f->s);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
put(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_seal_name(void **state)
{
	uint64_t us = 0;

	(void)state;
	assert_int_equal(spool_name_seal_us("00060e3c6b1d2a00."
	    "0123456789abcdef0123456789abcdef.chunk", &us), 0);
	assert_int_equal(us, 0x00060e3c6b1d2a00ull);
	assert_int_equal(spool_name_seal_us("ffffffffffffffff.x", &us), 0);
	assert_int_equal(us, UINT64_MAX);
	/* upper case, short, or no dot after the 16 digits: none */
	assert_int_equal(spool_name_seal_us("00060E3C6B1D2A00.x", &us), -1);
	assert_int_equal(spool_name_seal_us("00060e3c6b1d2a0.x", &us), -1);
	assert_int_equal(spool_name_seal_us("00060e3c6b1d2a000", &us), -1);
	assert_int_equal(spool_name_seal_us("", &us), -1);
}

static void
test_retry_read(void **state)
{
	struct fixture *f = *state;
	struct retry_state st = RETRY_STATE_INIT;
	char err[256];

	assert_int_equal(spool_retry_read(&f->s, &st, err, sizeof err), 0);
	put(f->s.state, "retry", "start=100.000000 steps=3 next=130.000000 "
	    "reached=0 timedout=0\n");
	assert_int_equal(spool_retry_read(&f->s, &st, err, sizeof err), 1);
	assert_true(st.active);
	assert_int_equal(st.steps, 3);
	assert_true(st.next_time == 130);
	put(f->s.state, "retry", "none\n");
	assert_int_equal(spool_retry_read(&f->s, &st, err, sizeof err), 1);
	assert_false(st.active);
	put(f->s.state, "retry", "steps=lots\n");
	assert_int_equal(spool_retry_read(&f->s, &st, err, sizeof err), -1);
	assert_string_equal(err, "state/retry: not a retry state line");
	/* a FIFO there is never waited on */
	assert_int_equal(unlinkat(f->s.state, "retry", 0), 0);
	assert_int_equal(mkfifoat(f->s.state, "retry", 0644), 0);
	assert_int_equal(spool_retry_read(&f->s, &st, err, sizeof err), -1);
	assert_string_equal(err, "state/retry: a FIFO, not a regular file");
}

/* Unreadable chunks count with their bytes; the oldest ready one is by
 * the seal time in its name, whatever the listing order. */
static void
test_stat(void **state)
{
	struct fixture *f = *state;
	struct spool_stat st;
	char err[256];

	assert_int_equal(spool_stat(&f->s, &st, err, sizeof err), 0);
	assert_int_equal(st.t[SPOOL_READY].chunks, 0);
	assert_string_equal(st.oldest, "");
	put(f->s.new, "0000000000000020.00000000000000000000000000000001.chunk",
	    "not a chunk");
	put(f->s.new, "0000000000000010.00000000000000000000000000000002.chunk",
	    "nor this");
	put(f->s.dead, "0000000000000005.00000000000000000000000000000003.chunk",
	    "bad");
	assert_int_equal(spool_stat(&f->s, &st, err, sizeof err), 0);
	assert_int_equal(st.t[SPOOL_READY].chunks, 2);
	assert_int_equal(st.t[SPOOL_READY].unreadable, 2);
	assert_int_equal(st.t[SPOOL_READY].bytes, 19);
	assert_int_equal(st.t[SPOOL_READY].events, 0);
	assert_int_equal(st.t[SPOOL_DEAD].chunks, 1);
	assert_int_equal(st.t[SPOOL_DEAD].bytes, 3);
	assert_int_equal(st.t[SPOOL_STAGED].chunks, 0);
	assert_string_equal(st.oldest,
	    "0000000000000010.00000000000000000000000000000002.chunk");
	assert_int_equal(st.oldest_us, 0x10);
	/* and none of them is sound */
	assert_int_equal(spool_chunk_sound(f->s.dead,
	    "0000000000000005.00000000000000000000000000000003.chunk", err,
	    sizeof err), -1);
	assert_int_equal(spool_chunk_sound(f->s.dead, "nosuch.chunk", err,
	    sizeof err), SPOOL_EIO);
	/* its reason: the first line, if any */
	assert_int_equal(spool_reason_read(&f->s,
	    "0000000000000005.00000000000000000000000000000003.chunk", err,
	    sizeof err), 0);
	put(f->s.dead, "0000000000000005.00000000000000000000000000000003.chunk"
	    ".reason", "corrupt chunk: bad magic\nmore\n");
	assert_int_equal(spool_reason_read(&f->s,
	    "0000000000000005.00000000000000000000000000000003.chunk", err,
	    sizeof err), 1);
	assert_string_equal(err, "corrupt chunk: bad magic");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_name),
		cmocka_unit_test_setup_teardown(test_retry_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
