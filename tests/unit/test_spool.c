/* Unit tests for lib/spool's bounded reading of a chunk body
 * (spool_body_next): entries cut by a block boundary at every offset of
 * their header and record, and bad ones there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "chunk.h"
#include "spool.h"
#include "stream.h"

/* One entry: [EventTime, {"p": "xxx..."}] with a string of n bytes. */
static void
add_entry(struct buf *b, size_t n)
{
	unsigned char h[STREAM_ENTRY_HEAD];

	stream_entry_head(h, 1700000000, 0);
	assert_int_equal(buf_add(b, h, sizeof h), 0);
	assert_int_equal(buf_add(b, "\x81\xa1p", 3), 0);
	if (n < 32) {
		assert_int_equal(buf_addc(b, 0xa0 | (int)n), 0);
	} else {
		unsigned char s[5] = { 0xdb, (unsigned char)(n >> 24),
		    (unsigned char)(n >> 16), (unsigned char)(n >> 8),
		    (unsigned char)n };
		assert_int_equal(buf_add(b, s, 5), 0);
	}
	assert_int_equal(buf_reserve(b, n), 0);
	memset(b->p + b->len, 'x', n);
	b->len += n;
}

/* A chunk file of body; its header counts count entries.  An open fd. */
static int
chunk_file(const struct buf *body, uint64_t count)
{
	struct buf file = BUF_INIT, keys = BUF_INIT;
	struct chunk_head h;
	char path[] = "/tmp/lf-test-spool.XXXXXX";
	int fd;

	memset(&h, 0, sizeof h);
	h.state = CHUNK_SEALED;
	h.bodylen = body->len;
	h.count = count;
	h.bodycrc = chunk_crc(0, body->p, body->len);
	assert_int_equal(chunk_keys_encode(&keys, "t", 1, 0, 0, NULL, 0), 0);
	assert_int_equal(chunk_head_encode(&file, &h, keys.p, keys.len), 0);
	assert_int_equal(buf_add(&file, body->p, body->len), 0);
	assert_true((fd = mkstemp(path)) != -1);
	unlink(path);
	assert_int_equal(write(fd, file.p, file.len), (ssize_t)file.len);
	buf_free(&file);
	buf_free(&keys);
	return fd;
}

/* Read the body as a consumer would: the pieces, joined, must be the
 * body, and the answer at the end rc. */
static int
read_back(int fd, const struct buf *body, uint64_t *count, char *err,
    size_t errlen)
{
	struct spool_chunk c;
	struct spool_body b;
	struct buf got = BUF_INIT;
	const unsigned char *p;
	size_t n;
	uint64_t k;
	int rc;

	assert_int_equal(spool_chunk_fdopen(fd, "x.chunk", &c, err, errlen), 0);
	spool_body_init(&b, &c);
	*count = 0;
	while ((rc = spool_body_next(&b, &p, &n, &k, err, errlen)) == 1) {
		assert_true(k > 0 && n > 0);
		assert_int_equal(buf_add(&got, p, n), 0);
		*count += k;
		/* bounded: a block and the largest entry (here < a block) */
		assert_true(b.win.cap <= 4 * SPOOL_BLOCK);
	}
	if (rc == 0) {
		assert_int_equal(got.len, body->len);
		assert_memory_equal(got.p, body->p, body->len);
	}
	spool_body_free(&b);
	spool_release(&c);
	buf_free(&got);
	return rc;
}

/* An entry whose record claims a 1 GiB string in a body of 8 blocks is
 * bad at once: the reader never holds the rest of the body waiting for
 * a record that cannot fit in it. */
static void
test_record_longer_than_body_is_bad_at_once(void **state)
{
	struct buf body = BUF_INIT;
	struct spool_chunk c;
	struct spool_body b;
	const unsigned char *p;
	unsigned char h[STREAM_ENTRY_HEAD];
	char err[256];
	uint64_t k;
	size_t n;
	int fd, rc;

	(void)state;
	stream_entry_head(h, 1700000000, 0);
	assert_int_equal(buf_add(&body, h, sizeof h), 0);
	assert_int_equal(buf_add(&body, "\x81\xa1p\xdb\x40\0\0\0", 8), 0);
	assert_int_equal(buf_reserve(&body, 8 * SPOOL_BLOCK), 0);
	memset(body.p + body.len, 'x', 8 * SPOOL_BLOCK);
	body.len += 8 * SPOOL_BLOCK;
	fd = chunk_file(&body, 1);
	assert_int_equal(spool_chunk_fdopen(fd, "x.chunk", &c, err, sizeof err), 0);
	spool_body_init(&b, &c);
	while ((rc = spool_body_next(&b, &p, &n, &k, err, sizeof err)) == 1)
		;
	assert_int_equal(rc, -1);
	assert_true(b.win.cap <= 2 * SPOOL_BLOCK);
	spool_body_free(&b);
	spool_release(&c);
	buf_free(&body);
}

/* Entries so that the one after a filler starts `shift` bytes before a
 * block boundary, for every shift over its header and record start. */
static void
test_body_split_everywhere(void **state)
{
	char err[256];
	uint64_t count;

	(void)state;
	for (size_t shift = 1; shift <= 24; shift++) {
		struct buf body = BUF_INIT;
		size_t room, n;

		add_entry(&body, 1000);
		/* filler: a 5-byte str header, 11 + 3 + 5 bytes around it */
		room = SPOOL_BLOCK - shift - body.len;
		n = room - (STREAM_ENTRY_HEAD + 3 + 5);
		add_entry(&body, n);
		assert_int_equal(body.len, SPOOL_BLOCK - shift);
		add_entry(&body, 40);
		add_entry(&body, 3 * SPOOL_BLOCK / 2);	/* over a block */
		add_entry(&body, 3);
		assert_int_equal(read_back(chunk_file(&body, 5), &body, &count,
		    err, sizeof err), 0);
		assert_int_equal(count, 5);
		buf_free(&body);
	}
}

/* A record that is not a map, cut by the boundary at every offset: the
 * body is bad after the good entries, whatever the split. */
static void
test_body_bad_entry_everywhere(void **state)
{
	static const unsigned char bad[] = {
		0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x93, 1, 2, 3
	};
	char err[256];
	uint64_t count;

	(void)state;
	for (size_t shift = 1; shift <= sizeof bad; shift++) {
		struct buf body = BUF_INIT;
		size_t n = SPOOL_BLOCK - shift - (STREAM_ENTRY_HEAD + 3 + 5);

		add_entry(&body, n);
		assert_int_equal(buf_add(&body, bad, sizeof bad), 0);
		for (int i = 0; i < 8; i++)
			add_entry(&body, 100000);
		assert_int_equal(read_back(chunk_file(&body, 10), &body, &count,
		    err, sizeof err), -1);
		assert_string_equal(err, "chunk body has a bad entry after 1 events");
		buf_free(&body);
	}
}

/* Count and CRC, and a body that ends inside an entry. */
static void
test_body_count_crc_cut(void **state)
{
	struct buf body = BUF_INIT;
	char err[256];
	uint64_t count;
	int fd;

	(void)state;
	for (int i = 0; i < 5; i++)
		add_entry(&body, 200000);
	assert_int_equal(read_back(chunk_file(&body, 6), &body, &count, err,
	    sizeof err), -1);
	assert_string_equal(err, "chunk body holds 5 events, header says 6");
	/* a byte changed after the header's CRC was taken */
	fd = chunk_file(&body, 5);
	assert_int_equal(pwrite(fd, "y", 1, 400000), 1);
	assert_int_equal(read_back(fd, &body, &count, err, sizeof err), -1);
	assert_string_equal(err, "chunk body checksum mismatch");
	body.len -= 7;
	assert_int_equal(read_back(chunk_file(&body, 5), &body, &count, err,
	    sizeof err), -1);
	assert_string_equal(err, "chunk body has a bad entry after 4 events");
	body.len = 0;
	assert_int_equal(read_back(chunk_file(&body, 0), &body, &count, err,
	    sizeof err), 0);
	assert_int_equal(count, 0);
	buf_free(&body);
}

/* A record nested as deep as stream_iter_next allows (32 levels), cut
 * by the boundary: as good as whole; one level more is bad either way. */
static void
test_body_deep_record_cut(void **state)
{
	char err[256];
	uint64_t count;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		for (size_t shift = 1; shift <= 60; shift += 7) {
			struct buf body = BUF_INIT;
			unsigned char h[STREAM_ENTRY_HEAD];
			size_t n = SPOOL_BLOCK - shift - (STREAM_ENTRY_HEAD + 3 + 5);

			add_entry(&body, n);
			stream_entry_head(h, 1700000000, 0);
			assert_int_equal(buf_add(&body, h, sizeof h), 0);
			assert_int_equal(buf_add(&body, "\x81\xa1p", 3), 0);
			for (int i = 0; i < 31 + extra; i++)
				assert_int_equal(buf_addc(&body, 0x91), 0);
			assert_int_equal(buf_addc(&body, 1), 0);
			add_entry(&body, 10);
			assert_int_equal(read_back(chunk_file(&body, 3), &body,
			    &count, err, sizeof err), extra ? -1 : 0);
			if (extra)
				assert_string_equal(err,
				    "chunk body has a bad entry after 1 events");
			buf_free(&body);
		}
	}
}

/* Only regular files are chunks, however they come. */
static void
test_fdopen_not_a_file(void **state)
{
	struct spool_chunk c;
	char err[256];
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(spool_chunk_fdopen(p[0], "p.chunk", &c, err, sizeof err),
	    SPOOL_NOTFILE);
	assert_string_equal(err, "a FIFO, not a regular file");
	assert_int_equal(c.fd, -1);	/* closed */
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_longer_than_body_is_bad_at_once),
		cmocka_unit_test(test_body_split_everywhere),
		cmocka_unit_test(test_body_bad_entry_everywhere),
		cmocka_unit_test(test_body_count_crc_cut),
		cmocka_unit_test(test_body_deep_record_cut),
		cmocka_unit_test(test_fdopen_not_a_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
