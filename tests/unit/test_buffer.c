/* Unit tests for lib/buffer: the write buffer of a sealed chunk kept for
 * the next chunk (a message that fills a chunk by itself, as lf-send's
 * chunks passed on by lf-recv do, would otherwise be copied into fresh
 * pages each time), the next chunk written whole through it, and the
 * buffer given back by a tick that finds it unused. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buffer.h"
#include "log.h"
#include "stream.h"

#include "entries.h"

/* The chunk files in dir, at most 4 of them, by name. */
static int
chunks(const char *dir, char names[][300])
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			assert_true(n < 4);
			snprintf(names[n++], 300, "%s/%s", dir, de->d_name);
		}
	closedir(d);
	if (n == 2 && strcmp(names[0], names[1]) > 0) {
		char t[300];
		memcpy(t, names[0], 300);
		memcpy(names[0], names[1], 300);
		memcpy(names[1], t, 300);
	}
	return n;
}

/* The file ends with the len bytes at e. */
static void
ends_with(const char *path, const unsigned char *e, size_t len)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((size_t)st.st_size > len);
	p = malloc(len);
	assert_non_null(p);
	assert_int_equal(pread(fd, p, len, st.st_size - (off_t)len), (ssize_t)len);
	assert_memory_equal(p, e, len);
	free(p);
	close(fd);
}

static void
test_write_buffer_kept_for_the_next_chunk(void **state)
{
	struct buffer_conf c;
	struct buffer b;
	char dir[] = "/tmp/test_buffer.XXXXXX", path[64], newdir[80], err[256];
	char names[4][300];
	/* 0.97 of a 4 MiB chunk: full (0.95), so sealed by its commit */
	size_t count = (size_t)(0.97 * (4u << 20)) / (STREAM_ENTRY_HEAD + 4);
	size_t len, len2;
	unsigned char *e = entries(count, &len), *e2, *kept;

	(void)state;
	buffer_conf_default(&c);
	c.chunk_limit_size = 4u << 20;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/spool", dir);
	snprintf(newdir, sizeof newdir, "%s/new", path);
	assert_int_equal(buffer_open(&b, path, &c, err, sizeof err), 0);

	assert_int_equal(buffer_add(&b, "t", 1, e, len, count, NULL), 0);
	assert_int_equal(buffer_commit(&b, 0), 0);
	assert_int_equal(chunks(newdir, names), 1);
	/* sealed: its write buffer is kept */
	assert_true(b.spare.cap >= len && b.spare.cap <= BUFFER_SPARE);
	assert_int_equal(b.spare.len, 0);
	kept = b.spare.p;

	/* the next chunk takes it, and goes out whole: other bytes, a bit
	 * fewer events, so nothing of the first may show through */
	e2 = entries(count - 1000, &len2);
	for (size_t i = 0; i < len2; i += STREAM_ENTRY_HEAD + 4)
		e2[i + STREAM_ENTRY_HEAD + 3] ^= 0x40;
	assert_int_equal(buffer_add(&b, "t", 1, e2, len2, count - 1000, NULL), 0);
	assert_int_equal(b.spare.cap, 0);
	assert_int_equal(buffer_commit(&b, 0), 0);
	assert_int_equal(chunks(newdir, names), 2);
	ends_with(names[0], e, len);
	ends_with(names[1], e2, len2);
	assert_ptr_equal(b.spare.p, kept);

	/* a tick after it was used keeps it; the next, finding it unused,
	 * gives it back */
	buffer_recount(&b);
	assert_ptr_equal(b.spare.p, kept);
	buffer_recount(&b);
	assert_null(b.spare.p);
	assert_int_equal(b.spare.cap, 0);

	buffer_close(&b);
	free(e);
	free(e2);
	for (int i = 0; i < 2; i++)
		unlink(names[i]);
	snprintf(err, sizeof err, "rm -rf '%s'", dir);
	assert_int_equal(system(err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_buffer_kept_for_the_next_chunk),
	};

	log_init("test_buffer");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
