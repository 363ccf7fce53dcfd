/* Unit tests for the small lib/ modules: conf (Fluentd notation), chunk
 * (header bytes), window (dedup ids across a reload), durable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk.h"
#include "conf.h"
#include "durable.h"
#include "io.h"
#include "window.h"

static void
test_conf_size(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(conf_size("8m", &v), 0);
	assert_int_equal(v, 8u << 20);
	assert_int_equal(conf_size("256k", &v), 0);
	assert_int_equal(v, 256u << 10);
	assert_int_equal(conf_size("64G", &v), 0);
	assert_int_equal(v, 64ull << 30);
	assert_int_equal(conf_size("1t", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(conf_size("1048576", &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(conf_size("8mb", &v), -1);
	assert_int_equal(conf_size("", &v), -1);
	assert_int_equal(conf_size("-1", &v), -1);
	assert_int_equal(conf_size("1.5m", &v), -1);
	assert_int_equal(conf_size("99999999999999999999", &v), -1);
	assert_int_equal(conf_size("16777216t", &v), -1);	/* 2^64 */
}

static void
test_conf_duration(void **state)
{
	double d;
	(void)state;
	assert_int_equal(conf_duration("10s", &d), 0);
	assert_true(d == 10);
	assert_int_equal(conf_duration("1h", &d), 0);
	assert_true(d == 3600);
	assert_int_equal(conf_duration("0.5", &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(conf_duration("1.5m", &d), 0);
	assert_true(d == 90);
	assert_int_equal(conf_duration("2d", &d), 0);
	assert_true(d == 172800);
	assert_int_equal(conf_duration("10ms", &d), -1);
	assert_int_equal(conf_duration("s", &d), -1);
	assert_int_equal(conf_duration("-1", &d), -1);
	assert_int_equal(conf_duration("1e999", &d), -1);
}

static void
test_conf_bool_uint(void **state)
{
	int b;
	uint64_t v;
	(void)state;
	assert_int_equal(conf_bool("true", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(conf_bool("OFF", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(conf_bool("maybe", &b), -1);
	assert_int_equal(conf_uint("42", 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(conf_uint("101", 100, &v), -1);
	assert_int_equal(conf_uint("4x", 100, &v), -1);
}

static void
make_head(struct buf *out, struct chunk_head *h)
{
	struct buf keys = BUF_INIT;

	memset(h, 0, sizeof *h);
	assert_int_equal(chunk_keys_encode(&keys, "app.access", 10, 1, 1441584000,
	    (const unsigned char *)"\x81\xa3" "cat\xa1x", 7), 0);
	h->state = CHUNK_STAGED;
	for (int i = 0; i < 16; i++)
		h->id[i] = (unsigned char)i;
	h->created_us = 1441588984000000ull;
	assert_int_equal(chunk_head_encode(out, h, keys.p, keys.len), 0);
	buf_free(&keys);
}

static void
test_chunk_head_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct chunk_head h, d;
	char err[128];
	(void)state;
	make_head(&b, &h);
	assert_int_equal(b.len, h.hlen);
	assert_memory_equal(b.p, CHUNK_MAGIC, 8);
	assert_int_equal(b.p[8], CHUNK_VERSION);
	chunk_head_update(b.p, b.len, CHUNK_SEALED, 300, 2, 0xdeadbeef);
	assert_int_equal(chunk_head_decode(b.p, b.len, &d, err, sizeof err), 0);
	assert_int_equal(d.state, CHUNK_SEALED);
	assert_int_equal(d.bodylen, 300);
	assert_int_equal(d.count, 2);
	assert_int_equal(d.bodycrc, 0xdeadbeef);
	assert_int_equal(d.created_us, 1441588984000000ull);
	assert_memory_equal(d.id, h.id, 16);
	assert_int_equal(d.taglen, 10);
	assert_memory_equal(d.tag, "app.access", 10);
	assert_int_equal(d.has_timekey, 1);
	assert_int_equal(d.timekey, 1441584000);
	assert_int_equal(d.varslen, 7);
	/* cut anywhere: "need more"; any flipped byte: a clear error */
	for (size_t n = 0; n < b.len; n++)
		assert_true(chunk_head_decode(b.p, n, &d, err, sizeof err) != 0);
	for (size_t i = 0; i < b.len; i++) {
		int rc;
		b.p[i] ^= 0x40;
		rc = chunk_head_decode(b.p, b.len, &d, err, sizeof err);
		/* a longer header length asks for more bytes; the rest fail */
		assert_int_equal(rc, i >= 12 && i < 16 && rc == 1 ? 1 : -1);
		b.p[i] ^= 0x40;
	}
	buf_free(&b);
}

static void
test_chunk_id_hex(void **state)
{
	unsigned char id[16], back[16];
	char hex[33];
	(void)state;
	for (int i = 0; i < 16; i++)
		id[i] = (unsigned char)(i * 17);
	chunk_id_hex(id, hex);
	assert_string_equal(hex, "00112233445566778899aabbccddeeff");
	assert_int_equal(chunk_id_parse(hex, back), 0);
	assert_memory_equal(id, back, 16);
	assert_int_equal(chunk_id_parse("0011223344556677889900aabbccddeX", back), -1);
}

struct valid {
	unsigned char id[16];
	uint64_t kept;
};

static int
valid_fn(void *ctx, const unsigned char id[16], uint64_t len)
{
	struct valid *v = ctx;

	return memcmp(id, v->id, 16) != 0 || len <= v->kept;
}

static char tmpdir[64];

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lf-unit.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_window_reload(void **state)
{
	struct window w;
	struct valid v = { { 0 }, 100 };
	unsigned char h1[16], h2[16], h3[16], other[16] = { 9 };
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	(void)state;
	assert_true(dfd >= 0);
	memset(v.id, 7, 16);
	window_hash((const unsigned char *)"tok1", 4, h1);
	window_hash((const unsigned char *)"tok2", 4, h2);
	window_hash((const unsigned char *)"tok3", 4, h3);
	assert_int_equal(window_open(&w, dfd, 16, valid_fn, &v), 0);
	assert_int_equal(window_add(&w, h1, v.id, 50), 0);	/* within kept */
	assert_int_equal(window_add(&w, h2, v.id, 150), 0);	/* past kept */
	assert_int_equal(window_add(&w, h3, other, 10), 0);
	assert_false(window_has(&w, h1));	/* not before the commit */
	assert_true(window_pending(&w, h1));
	assert_int_equal(window_write(&w), 0);
	window_commit(&w);
	assert_true(window_has(&w, h1) && window_has(&w, h2) && window_has(&w, h3));
	window_close(&w);
	/* after a crash the chunk kept 100 bytes: the record for 150 goes */
	assert_int_equal(window_open(&w, dfd, 16, valid_fn, &v), 0);
	assert_true(window_has(&w, h1));
	assert_false(window_has(&w, h2));
	assert_true(window_has(&w, h3));
	window_close(&w);
	close(dfd);
}

static void
test_window_generations(void **state)
{
	struct window w;
	struct valid v = { { 0 }, 0 };
	unsigned char h[16], first[16];
	char tok[16];
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	(void)state;
	unlinkat(dfd, "window", 0);
	assert_int_equal(window_open(&w, dfd, 4, valid_fn, &v), 0);
	window_hash((const unsigned char *)"t0", 2, first);
	for (int i = 0; i < 12; i++) {
		snprintf(tok, sizeof tok, "t%d", i);
		window_hash((const unsigned char *)tok, strlen(tok), h);
		window_add(&w, h, (const unsigned char *)"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 0);
		window_commit(&w);
		assert_int_equal(window_sync(&w), 0);
	}
	/* between cap and 2 cap ids are kept: the oldest are forgotten */
	assert_false(window_has(&w, first));
	assert_true(window_has(&w, h));
	window_close(&w);
	close(dfd);
}

static void
test_durable_replace(void **state)
{
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY), fd;
	char got[32] = { 0 };
	(void)state;
	assert_int_equal(durable_replace(dfd, "state", "one\n", 4), 0);
	assert_int_equal(durable_replace(dfd, "state", "two!\n", 5), 0);
	fd = openat(dfd, "state", O_RDONLY);
	assert_int_equal(io_read_all(fd, got, sizeof got), 5);
	assert_string_equal(got, "two!\n");
	close(fd);
	/* no temporary file is left behind */
	assert_int_equal(faccessat(dfd, "state.tmp", F_OK, 0), -1);
	close(dfd);
}

static void
test_durable_replace_long_name(void **state)
{
	char name[4100];
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	(void)state;
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	errno = 0;
	assert_int_equal(durable_replace(dfd, name, "x", 1), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	close(dfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_size),
		cmocka_unit_test(test_conf_duration),
		cmocka_unit_test(test_conf_bool_uint),
		cmocka_unit_test(test_chunk_head_roundtrip),
		cmocka_unit_test(test_chunk_id_hex),
		cmocka_unit_test(test_window_reload),
		cmocka_unit_test(test_window_generations),
		cmocka_unit_test(test_durable_replace),
		cmocka_unit_test(test_durable_replace_long_name),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
