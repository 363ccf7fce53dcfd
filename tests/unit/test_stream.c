/* Unit tests for lib/stream and lib/mp: byte-exact forward-protocol vectors
 * (research/forward-protocol.md section 9), every mode, limits, and
 * malformed input at every byte offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gz.h"
#include "stream.h"

#define T 1441588984u	/* 0x55ECE6F8 */

struct got {
	int nev, nbatch, nemsg, nframe, end, nagain;
	char tag[64];
	uint32_t sec[16], nsec[16];
	unsigned char rec[16][64];
	size_t reclen[16];
	size_t invalid;
	unsigned char chunk[64];
	size_t chunklen;
	int64_t size;
	enum stream_mode mode;
	char err[300];
};

static void
take(struct got *g, struct stream_batch *b)
{
	struct stream_iter it;
	struct stream_event ev;
	int rc;

	g->nbatch++;
	g->invalid += b->invalid;
	g->mode = b->mode;
	g->size = b->size;
	snprintf(g->tag, sizeof g->tag, "%.*s", (int)b->taglen, b->tag);
	if (b->chunk) {
		memcpy(g->chunk, b->chunk, b->chunklen);
		g->chunklen = b->chunklen;
	}
	stream_iter_init(&it, b->entries, b->len);
	while ((rc = stream_iter_next(&it, &ev)) == 1) {
		assert_true(g->nev < 16);
		g->sec[g->nev] = ev.sec;
		g->nsec[g->nev] = ev.nsec;
		assert_true(ev.reclen <= 64);
		memcpy(g->rec[g->nev], ev.rec, ev.reclen);
		g->reclen[g->nev] = ev.reclen;
		g->nev++;
	}
	assert_int_equal(rc, 0);	/* canonical entries always iterate */
}

/* When set, run() decodes every message in steps of this many bytes
 * (stream_limits.step): every test gives the same results either way. */
static size_t run_step;

/* Feed p[0..n) split into pieces of split bytes; collect everything. */
static void
run(struct got *g, const void *p, size_t n, size_t split, const struct stream_limits *lim)
{
	struct stream_reader r;
	struct stream_batch b;
	struct stream_limits l;
	const unsigned char *s = p;
	size_t off, k;
	int rc;

	memset(g, 0, sizeof *g);
	if (lim)
		l = *lim;
	else
		stream_limits_default(&l);
	l.step = run_step;
	stream_reader_init(&r, &l);
	for (off = 0; off < n; off += k) {
		k = n - off < split ? n - off : split;
		assert_int_equal(stream_reader_feed(&r, s + off, k), 0);
		while ((rc = stream_reader_next(&r, &b)) != 0) {
			if (rc == 1) {
				take(g, &b);
				continue;
			}
			if (rc == STREAM_AGAIN) {
				assert_true(run_step != 0);
				assert_true(stream_reader_busy(&r));
				g->nagain++;
				continue;
			}
			snprintf(g->err, sizeof g->err, "%llu: %s",
			    (unsigned long long)r.err_off, r.err);
			if (rc == STREAM_EMSG) {
				g->nemsg++;
				continue;
			}
			g->nframe++;
			goto out;
		}
	}
	if ((g->end = stream_reader_end(&r)) != 0)
		snprintf(g->err, sizeof g->err, "%llu: %s",
		    (unsigned long long)r.err_off, r.err);
out:
	stream_reader_free(&r);
}

static const unsigned char v1[] = {	/* Message, int time */
	0x93, 0xa5, 't', 'a', 'g', '.', 'a', 0xce, 0x55, 0xec, 0xe6, 0xf8,
	0x81, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xa3, 'b', 'a', 'r',
};
static const unsigned char v5[] = {	/* Forward, int and EventTime */
	0x93, 0xa5, 0x74, 0x61, 0x67, 0x2e, 0x61, 0x92, 0x92, 0xce, 0x55, 0xec,
	0xe6, 0xf8, 0x81, 0xa1, 0x61, 0x01, 0x92, 0xd7, 0x00, 0x55, 0xec, 0xe6,
	0xf9, 0x00, 0x00, 0x00, 0x00, 0x81, 0xa1, 0x62, 0x02, 0x81, 0xa4, 0x73,
	0x69, 0x7a, 0x65, 0x02,
};
#define ENTRIES6 \
	0x92, 0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x81, \
	0xa1, 0x61, 0x01, 0x92, 0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x00, 0x00, \
	0x00, 0x01, 0x81, 0xa1, 0x62, 0x02
static const unsigned char entries6[] = { ENTRIES6 };
#define TOKEN_LF 'A','A','E','C','A','w','Q','F','B','g','c','I','C','Q','o', \
	'L','D','A','0','O','D','w','=','=','\n'
static const unsigned char v6[] = {	/* PackedForward as fluentd writes it */
	0x93, 0xa5, 't', 'a', 'g', '.', 'a', 0xdb, 0, 0, 0, 0x1e, ENTRIES6,
	0x83, 0xa4, 's', 'i', 'z', 'e', 0x02, 0xaa, 'c', 'o', 'm', 'p', 'r', 'e',
	's', 's', 'e', 'd', 0xa4, 't', 'e', 'x', 't', 0xa5, 'c', 'h', 'u', 'n',
	'k', 0xb9, TOKEN_LF,
};
static const unsigned char v7[] = {	/* PackedForward, bin8, no option */
	0x92, 0xa5, 't', 'a', 'g', '.', 'a', 0xc4, 0x1e, ENTRIES6,
};
static const unsigned char v11[] = {	/* v1.5 metadata time */
	0x93, 0xa5, 0x74, 0x61, 0x67, 0x2e, 0x61, 0x91, 0x92, 0x92, 0xd7, 0x00,
	0x55, 0xec, 0xe6, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x80, 0x81, 0xa1, 0x61,
	0x01, 0x81, 0xad, 0x66, 0x6c, 0x75, 0x65, 0x6e, 0x74, 0x5f, 0x73, 0x69,
	0x67, 0x6e, 0x61, 0x6c, 0x00,
};

static void
test_message_int_time(void **state)
{
	struct got g;
	(void)state;
	run(&g, v1, sizeof v1, sizeof v1, NULL);
	assert_int_equal(g.nev, 1);
	assert_string_equal(g.tag, "tag.a");
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.nsec[0], 0);
	assert_int_equal(g.reclen[0], 13);
	assert_memory_equal(g.rec[0], v1 + 12, 13);
	assert_int_equal(g.mode, STREAM_MESSAGE);
	assert_null(g.chunklen ? "chunk" : NULL);
	assert_int_equal(g.end, 0);
}

static void
test_eventtime_forms(void **state)
{
	/* fixext8 and ext8 carry the same EventTime */
	unsigned char fix[] = { 0x93, 0xa1, 't', 0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8,
		0x07, 0x5b, 0xcd, 0x15, 0x80 };
	unsigned char ext8[] = { 0x93, 0xa1, 't', 0xc7, 0x08, 0x00, 0x55, 0xec, 0xe6,
		0xf8, 0x07, 0x5b, 0xcd, 0x15, 0x80 };
	unsigned char ext16[] = { 0x93, 0xa1, 't', 0xc8, 0x00, 0x08, 0x00, 0x55, 0xec,
		0xe6, 0xf8, 0x07, 0x5b, 0xcd, 0x15, 0x80 };
	struct got g;
	(void)state;
	run(&g, fix, sizeof fix, 3, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.nsec[0], 123456789);
	run(&g, ext8, sizeof ext8, 1, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.nsec[0], 123456789);
	run(&g, ext16, sizeof ext16, 2, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.nsec[0], 123456789);
}

static void
test_float_time(void **state)
{
	/* float64 1441588984.5 */
	unsigned char m[] = { 0x93, 0xa1, 't', 0xcb, 0x41, 0xd5, 0x7b, 0x39, 0xbe, 0x20,
		0x00, 0x00, 0x80 };
	struct got g;
	(void)state;
	run(&g, m, sizeof m, sizeof m, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.nsec[0], 500000000);
}

static void
test_message_chunk(void **state)
{
	unsigned char m[] = { 0x94, 0xa5, 0x74, 0x61, 0x67, 0x2e, 0x61, 0xd7, 0x00,
		0x55, 0xec, 0xe6, 0xf8, 0x1d, 0xcd, 0x65, 0x00, 0x81, 0xa1, 0x6b,
		0xa1, 0x76, 0x81, 0xa5, 0x63, 0x68, 0x75, 0x6e, 0x6b, 0xb8,
		'p', '8', 'n', '9', 'g', 'm', 'x', 'T', 'Q', 'V', 'C', '8', '/',
		'n', 'h', '2', 'w', 'l', 'K', 'K', 'e', 'Q', '=', '=' };
	struct got g;
	(void)state;
	run(&g, m, sizeof m, sizeof m, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.nsec[0], 500000000);
	assert_int_equal(g.chunklen, 25);
	assert_memory_equal(g.chunk, m + sizeof m - 25, 25);
}

static void
test_forward_mix(void **state)
{
	struct got g;
	(void)state;
	run(&g, v5, sizeof v5, sizeof v5, NULL);
	assert_int_equal(g.nev, 2);
	assert_int_equal(g.mode, STREAM_FORWARD);
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.sec[1], T + 1);
	assert_int_equal(g.size, 2);
	assert_memory_equal(g.rec[1], "\x81\xa1" "b\x02", 4);
}

static void
test_packed_str32_chunk_lf(void **state)
{
	unsigned char tok[] = { 0xb9, TOKEN_LF };
	struct got g;
	(void)state;
	run(&g, v6, sizeof v6, sizeof v6, NULL);
	assert_int_equal(g.nev, 2);
	assert_int_equal(g.mode, STREAM_PACKED);
	assert_int_equal(g.nsec[1], 1);
	assert_int_equal(g.chunklen, 26);
	assert_memory_equal(g.chunk, tok, 26);	/* the LF is kept */
}

static void
test_packed_bin_no_option(void **state)
{
	struct stream_reader r;
	struct stream_batch b;
	(void)state;
	stream_reader_init(&r, NULL);
	stream_reader_feed(&r, v7, sizeof v7);
	assert_int_equal(stream_reader_next(&r, &b), 1);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.size, -1);
	assert_null(b.chunk);
	/* canonical entries are handed over in place, not copied */
	assert_ptr_equal(b.entries, r.in.p + 9);
	assert_int_equal(b.len, sizeof entries6);
	assert_int_equal(stream_reader_next(&r, &b), 0);
	stream_reader_free(&r);
}

static void
compressed_msg(struct buf *m, int str32, const char *method)
{
	struct buf z = BUF_INIT;

	/* two gzip members, one entry each, as fluentd's buffer writes them */
	assert_int_equal(gz_deflate(entries6, 15, &z, 6), 0);
	assert_int_equal(gz_deflate(entries6 + 15, 15, &z, 6), 0);
	buf_add(m, "\x93\xa5tag.a", 7);
	if (str32) {
		unsigned char h[5] = { 0xdb, 0, 0, (unsigned char)(z.len >> 8),
			(unsigned char)z.len };
		buf_add(m, h, 5);
	} else {
		buf_addc(m, 0xc4);
		buf_addc(m, (int)z.len);
	}
	buf_add(m, z.p, z.len);
	buf_add(m, "\x82\xaa" "compressed", 12);
	buf_addc(m, 0xa0 | (int)strlen(method));
	buf_adds(m, method);
	buf_add(m, "\xa4size\x02", 6);
	buf_free(&z);
}

static void
test_compressed_two_members(void **state)
{
	struct buf m = BUF_INIT;
	struct got g;
	(void)state;
	compressed_msg(&m, 0, "gzip");
	run(&g, m.p, m.len, 7, NULL);
	assert_int_equal(g.nev, 2);
	assert_int_equal(g.mode, STREAM_COMPRESSED);
	assert_memory_equal(g.rec[0], "\x81\xa1" "a\x01", 4);
	assert_memory_equal(g.rec[1], "\x81\xa1" "b\x02", 4);
	buf_reset(&m);
	compressed_msg(&m, 1, "gzip");
	run(&g, m.p, m.len, m.len, NULL);
	assert_int_equal(g.nev, 2);
	buf_reset(&m);
	compressed_msg(&m, 0, "zstd");	/* not supported: a clear error */
	run(&g, m.p, m.len, m.len, NULL);
	assert_int_equal(g.nev, 0);
	assert_int_equal(g.nemsg, 1);
	assert_non_null(strstr(g.err, "zstd"));
	buf_free(&m);
}

static void
test_decompressed_limit(void **state)
{
	struct buf m = BUF_INIT;
	struct stream_limits lim;
	struct got g;
	(void)state;
	stream_limits_default(&lim);
	lim.max_decompressed = 20;	/* the two entries are 30 bytes */
	compressed_msg(&m, 0, "gzip");
	run(&g, m.p, m.len, m.len, &lim);
	assert_int_equal(g.nev, 0);
	assert_int_equal(g.nemsg, 1);
	assert_non_null(strstr(g.err, "limit"));
	buf_free(&m);
}

static void
test_split_every_way(void **state)
{
	struct buf all = BUF_INIT;
	struct got whole, g;
	(void)state;
	/* vectors 1 + 5 + 6 in one write, then in every split size */
	buf_add(&all, v1, sizeof v1);
	buf_add(&all, v5, sizeof v5);
	buf_add(&all, v6, sizeof v6);
	run(&whole, all.p, all.len, all.len, NULL);
	assert_int_equal(whole.nev, 5);
	assert_int_equal(whole.nbatch, 3);
	for (size_t split = 1; split <= all.len; split++) {
		run(&g, all.p, all.len, split, NULL);
		assert_int_equal(g.nev, whole.nev);
		assert_int_equal(g.nbatch, 3);
		assert_memory_equal(g.sec, whole.sec, sizeof g.sec);
		assert_memory_equal(g.rec, whole.rec, sizeof g.rec);
		assert_int_equal(g.end, 0);
	}
	buf_free(&all);
}

static void
test_metadata_time(void **state)
{
	unsigned char packed[64];
	size_t n;
	struct got g;
	(void)state;
	run(&g, v11, sizeof v11, 1, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.sec[0], T);
	assert_memory_equal(g.rec[0], "\x81\xa1" "a\x01", 4);
	/* the same entry inside PackedForward */
	n = 0;
	memcpy(packed, "\x92\xa5tag.a\xc4", 8);
	n = 8;
	packed[n++] = 17;
	memcpy(packed + n, v11 + 8, 17);
	n += 17;
	run(&g, packed, n, n, NULL);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.sec[0], T);
	assert_int_equal(g.invalid, 0);
}

static void
test_invalid_events_skipped(void **state)
{
	/* [tag, [[1.5, {}], [T, "x"], [T, {"ok":1}], ["s", {}], [T]], {"chunk":"abc"}] */
	unsigned char m[] = { 0x93, 0xa1, 't', 0x95,
		0x92, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x80,
		0x92, 0xce, 0x55, 0xec, 0xe6, 0xf8, 0xa1, 'x',
		0x92, 0xce, 0x55, 0xec, 0xe6, 0xf8, 0x81, 0xa2, 'o', 'k', 0x01,
		0x92, 0xa1, 's', 0x80,
		0x91, 0x01,
		0x81, 0xa5, 'c', 'h', 'u', 'n', 'k', 0xa3, 'a', 'b', 'c' };
	struct got g;
	(void)state;
	run(&g, m, sizeof m, sizeof m, NULL);
	/* a float time is accepted (as research/forward-protocol.md 7.6 asks) */
	assert_int_equal(g.nev, 2);
	assert_int_equal(g.sec[0], 1);
	assert_int_equal(g.nsec[0], 500000000);
	assert_int_equal(g.sec[1], T);
	assert_int_equal(g.invalid, 3);
	assert_int_equal(g.chunklen, 4);	/* the batch is still acked */
}

static void
test_bad_messages_continue(void **state)
{
	static const unsigned char bad[][8] = {
		{ 0x81, 0xa1, 'a', 0x01 },		/* not an array */
		{ 0x91, 0xa1, 't' },			/* too short */
		{ 0x93, 0x01, 0x02, 0x80 },		/* tag not a string */
		{ 0x93, 0xa1, 't', 0xc4, 0x01, 0xc1, 0x80 }, /* entries not msgpack */
		{ 0x93, 0xa1, 't', 0x90, 0x01 },	/* option not a map */
		{ 0x92, 0xa1, 't', 0x01 },		/* Message without record */
	};
	struct buf s = BUF_INIT;
	struct got g;
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		size_t n;
		assert_int_equal(mp_skip(bad[i], sizeof bad[i], MP_MAXDEPTH, &n), MP_OK);
		buf_reset(&s);
		buf_add(&s, v1, sizeof v1);
		buf_add(&s, bad[i], n);
		buf_addc(&s, 0xc0);		/* heartbeat: ignored */
		buf_add(&s, v1, sizeof v1);
		run(&g, s.p, s.len, 1, NULL);
		assert_int_equal(g.nemsg, 1);
		assert_int_equal(g.nev, 2);
		/* the error names the message's stream offset */
		assert_int_equal(strtoul(g.err, NULL, 10), sizeof v1);
	}
	buf_free(&s);
}

static void
test_message_invalid_event_kept_batch(void **state)
{
	/* a Message whose record is not a map: dropped, batch still returned */
	unsigned char m[] = { 0x94, 0xa1, 't', 0x01, 0xa1, 'x', 0x81, 0xa5,
		'c', 'h', 'u', 'n', 'k', 0xa1, 'z' };
	struct got g;
	(void)state;
	run(&g, m, sizeof m, sizeof m, NULL);
	assert_int_equal(g.nbatch, 1);
	assert_int_equal(g.nev, 0);
	assert_int_equal(g.invalid, 1);
	assert_int_equal(g.chunklen, 2);
}

static void
test_frame_errors(void **state)
{
	unsigned char c1[] = { 0x93, 0xa1, 't', 0xc1 };
	unsigned char deep[40];
	struct stream_limits lim;
	struct buf s = BUF_INIT;
	struct got g;
	(void)state;

	buf_add(&s, v1, sizeof v1);
	buf_add(&s, c1, sizeof c1);
	run(&g, s.p, s.len, 5, NULL);
	assert_int_equal(g.nev, 1);		/* events before are kept */
	assert_int_equal(g.nframe, 1);
	assert_int_equal(strtoul(g.err, NULL, 10), sizeof v1 + 3);

	memset(deep, 0x91, sizeof deep);	/* 40 nested arrays */
	run(&g, deep, sizeof deep, sizeof deep, NULL);
	assert_int_equal(g.nframe, 1);
	assert_non_null(strstr(g.err, "deep"));

	stream_limits_default(&lim);
	lim.max_message = 16;
	run(&g, v6, sizeof v6, 1, &lim);
	assert_int_equal(g.nframe, 1);
	assert_non_null(strstr(g.err, "limit"));

	/* a header announcing 4 GiB is refused at once, not buffered */
	unsigned char huge[] = { 0x93, 0xa1, 't', 0xc6, 0xff, 0xff, 0xff, 0xff };
	run(&g, huge, sizeof huge, sizeof huge, NULL);
	assert_int_equal(g.nframe, 1);
	buf_free(&s);
}

static void
test_truncated_everywhere(void **state)
{
	const unsigned char *vec[] = { v1, v5, v6, v7, v11 };
	size_t len[] = { sizeof v1, sizeof v5, sizeof v6, sizeof v7, sizeof v11 };
	struct got g;
	(void)state;
	for (size_t v = 0; v < 5; v++) {
		for (size_t cut = 1; cut < len[v]; cut++) {
			run(&g, vec[v], cut, 1, NULL);
			assert_int_equal(g.nev, 0);
			assert_int_equal(g.end, STREAM_EFRAME);
			assert_non_null(strstr(g.err, "ends inside"));
		}
	}
}

static void
test_wrong_types_everywhere(void **state)
{
	/* replace each byte of v1 by each other byte: never a crash, and either
	 * an error or a well-defined batch */
	unsigned char m[sizeof v1 + 8];
	struct got g;
	(void)state;
	for (size_t i = 0; i < sizeof v1; i++) {
		for (int c = 0; c < 256; c++) {
			memcpy(m, v1, sizeof v1);
			memset(m + sizeof v1, 0xc0, 8);
			m[i] = (unsigned char)c;
			run(&g, m, sizeof m, sizeof m, NULL);
			assert_true(g.nev <= 1);
		}
	}
}

static int
collect_out(void *ctx, struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		buf_add(ctx, iov[i].iov_base, iov[i].iov_len);
	return 0;
}

static void
test_writer_exact(void **state)
{
	struct buf out = BUF_INIT;
	struct stream_writer w;
	static const unsigned char rec[] = { 0x81, 0xa1, 'k', 0xa1, 'v' };
	static const unsigned char want[] = {
		0x93, 0xa5, 't', 'a', 'g', '.', 'a', 0xc4, 32,
		0x92, 0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x1d, 0xcd, 0x65, 0x00,
		0x81, 0xa1, 'k', 0xa1, 'v',
		0x92, 0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf9, 0x00, 0x00, 0x00, 0x00,
		0x81, 0xa1, 'k', 0xa1, 'v',
		0x81, 0xa4, 's', 'i', 'z', 'e', 0x02,
		0x93, 0xa5, 't', 'a', 'g', '.', 'b', 0xc4, 16,
		0x92, 0xd7, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
		0x81, 0xa1, 'k', 0xa1, 'v',
		0x81, 0xa4, 's', 'i', 'z', 'e', 0x01,
	};
	(void)state;
	stream_writer_init(&w, collect_out, &out);
	assert_int_equal(stream_writer_add(&w, "tag.a", 5, T, 500000000, rec, sizeof rec), 0);
	assert_int_equal(stream_writer_add(&w, "tag.b", 5, 1, 2, rec, sizeof rec), 0);
	assert_int_equal(stream_writer_add(&w, "tag.a", 5, T + 1, 0, rec, sizeof rec), 0);
	assert_int_equal(out.len, 0);		/* batched until flushed */
	assert_int_equal(stream_writer_flush(&w), 0);
	assert_int_equal(out.len, sizeof want);
	assert_memory_equal(out.p, want, sizeof want);
	stream_writer_free(&w);
	buf_free(&out);
}

static void
test_writer_gzip_chunk_roundtrip(void **state)
{
	struct buf out = BUF_INIT;
	struct stream_writer w;
	struct got g;
	static const unsigned char rec[] = { 0x81, 0xa1, 'k', 0xc4, 2, 0, 1 };
	(void)state;
	stream_writer_init(&w, collect_out, &out);
	w.gzip = 1;
	w.chunk = 1;
	for (uint32_t i = 0; i < 10; i++)
		stream_writer_add(&w, "x", 1, T + i, i, rec, sizeof rec);
	stream_writer_flush(&w);
	run(&g, out.p, out.len, 3, NULL);
	assert_int_equal(g.nev, 10);
	assert_int_equal(g.mode, STREAM_COMPRESSED);
	assert_int_equal(g.size, 10);
	assert_int_equal(g.chunklen, 25);	/* fixstr of 24 base64 chars */
	assert_int_equal(g.chunk[0], 0xb8);
	assert_int_equal(g.sec[9], T + 9);
	assert_int_equal(g.nsec[9], 9);
	assert_memory_equal(g.rec[3], rec, sizeof rec);
	stream_writer_free(&w);
	buf_free(&out);
}

static void
test_writer_many_tags_and_big(void **state)
{
	struct buf out = BUF_INIT;
	struct stream_writer w;
	struct got g;
	char tag[16];
	static const unsigned char rec[] = { 0x80 };
	(void)state;
	stream_writer_init(&w, collect_out, &out);
	w.flush_bytes = 100;
	for (int i = 0; i < 200; i++) {
		snprintf(tag, sizeof tag, "t%d", i % 70);
		stream_writer_add(&w, tag, strlen(tag), T, 0, rec, 1);
	}
	stream_writer_flush(&w);
	struct stream_reader r;
	struct stream_batch b;
	size_t total = 0;
	stream_reader_init(&r, NULL);
	stream_reader_feed(&r, out.p, out.len);
	while (stream_reader_next(&r, &b) == 1)
		total += b.count;
	assert_int_equal(total, 200);
	stream_reader_free(&r);
	stream_writer_free(&w);
	(void)g;
	buf_free(&out);
}

static void
test_mp_scan_resumes(void **state)
{
	struct mp_scan s;
	size_t len;
	(void)state;
	mp_scan_init(&s, MP_MAXDEPTH, 1 << 20);
	for (size_t n = 1; n < sizeof v5; n++)
		assert_int_equal(mp_scan(&s, v5, n, &len), MP_MORE);
	assert_int_equal(mp_scan(&s, v5, sizeof v5, &len), MP_OK);
	assert_int_equal(len, sizeof v5);
	/* an empty array and a scalar are complete at once */
	assert_int_equal(mp_skip((const unsigned char *)"\x90", 1, 4, &len), MP_OK);
	assert_int_equal(len, 1);
	assert_int_equal(mp_skip((const unsigned char *)"\xcd\x01", 2, 4, &len), MP_MORE);
}

/* Every test that goes through run(), again with messages decoded in
 * steps of 1, 2, 7 and 64 bytes. */
static void test_all_in_steps(void **state);

/* A step inflates and checks about step bytes; the batch at the end is
 * the one decoding in one go gives, and the entries already checked of
 * a bomb of invalid entries are let go on the way. */
static void
test_steps_bounded_memory(void **state)
{
	struct stream_limits lim;
	struct stream_reader r;
	struct stream_batch b;
	struct buf ents = BUF_INIT, gz = BUF_INIT, msg = BUF_INIT, opts = BUF_INIT;
	unsigned char *zeros = calloc(1, 8u << 20);
	size_t again = 0, maxmem = 0;
	int rc;
	(void)state;
	assert_non_null(zeros);
	/* 8 MiB of zero bytes: 8 million invalid one-byte entries */
	assert_int_equal(gz_deflate(zeros, 8u << 20, &gz, 1), 0);
	stream_pack_head(&msg, "z", 1, gz.len);
	buf_add(&msg, gz.p, gz.len);
	stream_pack_options(&opts, 0, "abc", 1);
	buf_add(&msg, opts.p, opts.len);
	stream_limits_default(&lim);
	lim.step = 65536;
	stream_reader_init(&r, &lim);
	stream_reader_feed(&r, msg.p, msg.len);
	while ((rc = stream_reader_next(&r, &b)) == STREAM_AGAIN) {
		again++;
		if (stream_reader_mem(&r) > maxmem)
			maxmem = stream_reader_mem(&r);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(b.count, 0);
	assert_int_equal(b.invalid, 8u << 20);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.chunklen, 4);
	assert_true(again >= 100);
	/* the input, and a few steps of inflated bytes, never 8 MiB */
	assert_true(maxmem < msg.len + 65536 + (1u << 20));
	assert_false(stream_reader_busy(&r));
	assert_int_equal(stream_reader_next(&r, &b), 0);

	/* entries with rewrites (integer times) among canonical ones */
	buf_reset(&gz);
	buf_reset(&msg);
	for (uint32_t i = 0; i < 20000; i++) {
		unsigned char e[16] = { 0x92, 0xce, 0x55, 0xec, 0xe6, 0xf8, 0x81,
			0xa1, 'i', 0xcd, (unsigned char)(i >> 8), (unsigned char)i };
		unsigned char h[STREAM_ENTRY_HEAD];
		if (i % 3) {
			buf_add(&ents, e, 12);
		} else {
			stream_entry_head(h, T, i);
			buf_add(&ents, h, sizeof h);
			buf_add(&ents, e + 6, 6);
		}
	}
	assert_int_equal(gz_deflate(ents.p, ents.len, &gz, 6), 0);
	stream_pack_head(&msg, "z", 1, gz.len);
	buf_add(&msg, gz.p, gz.len);
	buf_add(&msg, opts.p, opts.len);
	stream_pack_head(&msg, "p", 1, ents.len);	/* and not compressed */
	buf_add(&msg, ents.p, ents.len);
	buf_addc(&msg, 0x80);
	for (int m = 0; m < 2; m++) {
		struct stream_iter it;
		struct stream_event ev;
		uint32_t n = 0;
		again = 0;
		if (m == 0)
			stream_reader_feed(&r, msg.p, msg.len);
		while ((rc = stream_reader_next(&r, &b)) == STREAM_AGAIN)
			again++;
		assert_int_equal(rc, 1);
		assert_true(again >= 3);
		assert_int_equal(b.count, 20000);
		assert_int_equal(b.invalid, 0);
		assert_int_equal(b.mode, m ? STREAM_PACKED : STREAM_COMPRESSED);
		stream_iter_init(&it, b.entries, b.len);
		while (stream_iter_next(&it, &ev) == 1) {
			assert_int_equal(ev.sec, T);
			assert_int_equal(ev.nsec, n % 3 ? 0 : n);
			assert_int_equal(ev.rec[4], (unsigned char)(n >> 8));
			assert_int_equal(ev.rec[5], (unsigned char)n);
			n++;
		}
		assert_int_equal(n, 20000);
	}
	/* given back once done: nothing pending, nothing held */
	assert_true(stream_reader_mem(&r) > (1u << 20));
	stream_reader_trim(&r, STREAM_KEEP);
	assert_true(stream_reader_mem(&r) <= 3 * STREAM_KEEP);
	stream_reader_trim(&r, 0);
	assert_int_equal(stream_reader_mem(&r), 0);
	stream_reader_free(&r);
	free(zeros);
	buf_free(&ents);
	buf_free(&gz);
	buf_free(&msg);
	buf_free(&opts);
}

static void
test_gz_steps(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT, z = BUF_INIT;
	struct gz_step g;
	const char *err;
	unsigned char p[5000];
	int rc, calls = 0;
	(void)state;
	for (size_t i = 0; i < sizeof p; i++)
		p[i] = (unsigned char)(i * 7 % 251);
	gz_deflate(p, sizeof p, &z, 6);
	gz_deflate(p, 100, &z, 6);		/* a second member */
	assert_int_equal(gz_inflate(z.p, z.len, &a, 1 << 20, &err), 0);
	assert_int_equal(gz_step_begin(&g, &err), 0);
	while ((rc = gz_step(&g, z.p, z.len, &b, 1 << 20, 100, &err)) == 0)
		calls++;
	assert_int_equal(rc, 1);
	gz_step_end(&g);
	assert_true(calls >= 50);
	assert_int_equal(a.len, 5100);
	assert_int_equal(b.len, a.len);
	assert_memory_equal(a.p, b.p, a.len);
	/* the limit counts every byte made, one byte over is an error */
	buf_reset(&b);
	assert_int_equal(gz_step_begin(&g, &err), 0);
	while ((rc = gz_step(&g, z.p, z.len, &b, 5099, 64, &err)) == 0)
		;
	assert_int_equal(rc, -1);
	assert_string_equal(err, "gzip: decompressed size exceeds the limit");
	gz_step_end(&g);
	buf_reset(&b);
	assert_int_equal(gz_step_begin(&g, &err), 0);
	while ((rc = gz_step(&g, z.p, z.len - 3, &b, 1 << 20, 64, &err)) == 0)
		;
	assert_int_equal(rc, -1);
	assert_string_equal(err, "gzip: truncated member");
	gz_step_end(&g);
	gz_step_end(&g);	/* twice is harmless */
	buf_free(&a);
	buf_free(&b);
	buf_free(&z);
}

/* The chunk option is echoed in acks: over max_chunk bytes (256 by
 * default) the message is refused, and the stream goes on. */
static void
test_chunk_limit(void **state)
{
	struct buf s = BUF_INIT, opts = BUF_INIT;
	char tok[300];
	struct got g;
	(void)state;
	memset(tok, 'a', sizeof tok);
	tok[254] = '\0';			/* str8 of 254: 256 bytes, the most */
	stream_pack_head(&s, "t", 1, sizeof entries6);
	buf_add(&s, entries6, sizeof entries6);
	stream_pack_options(&opts, 2, tok, 0);
	buf_add(&s, opts.p, opts.len);
	tok[254] = 'a';
	tok[255] = '\0';			/* 257 bytes */
	stream_pack_head(&s, "t", 1, sizeof entries6);
	buf_add(&s, entries6, sizeof entries6);
	buf_reset(&opts);
	stream_pack_options(&opts, 2, tok, 0);
	buf_add(&s, opts.p, opts.len);
	buf_add(&s, v1, sizeof v1);
	run(&g, s.p, s.len, s.len, NULL);
	assert_int_equal(g.nbatch, 2);
	assert_int_equal(g.nev, 3);
	assert_int_equal(g.nemsg, 1);
	assert_non_null(strstr(g.err, "chunk option of 257 bytes, more than 256: "
	    "message refused"));
	buf_free(&s);
	buf_free(&opts);
}

static void
test_buf_shrink(void **state)
{
	struct buf b = BUF_INIT;
	(void)state;
	buf_reserve(&b, 4096);
	buf_add(&b, "abc", 3);
	buf_shrink(&b, 8192);			/* under keep: kept */
	assert_true(b.cap >= 4096);
	buf_shrink(&b, 1024);			/* cut down, bytes kept */
	assert_int_equal(b.cap, 1024);
	assert_memory_equal(b.p, "abc", 3);
	buf_reserve(&b, 1000);
	b.len = 600;
	buf_shrink(&b, 512);			/* more than half of keep: kept */
	assert_true(b.cap > 512);
	b.len = 0;
	buf_shrink(&b, 512);			/* empty: freed */
	assert_null(b.p);
	assert_int_equal(b.cap, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_int_time),
		cmocka_unit_test(test_eventtime_forms),
		cmocka_unit_test(test_float_time),
		cmocka_unit_test(test_message_chunk),
		cmocka_unit_test(test_forward_mix),
		cmocka_unit_test(test_packed_str32_chunk_lf),
		cmocka_unit_test(test_packed_bin_no_option),
		cmocka_unit_test(test_compressed_two_members),
		cmocka_unit_test(test_decompressed_limit),
		cmocka_unit_test(test_split_every_way),
		cmocka_unit_test(test_metadata_time),
		cmocka_unit_test(test_invalid_events_skipped),
		cmocka_unit_test(test_bad_messages_continue),
		cmocka_unit_test(test_message_invalid_event_kept_batch),
		cmocka_unit_test(test_frame_errors),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_wrong_types_everywhere),
		cmocka_unit_test(test_writer_exact),
		cmocka_unit_test(test_writer_gzip_chunk_roundtrip),
		cmocka_unit_test(test_writer_many_tags_and_big),
		cmocka_unit_test(test_mp_scan_resumes),
		cmocka_unit_test(test_steps_bounded_memory),
		cmocka_unit_test(test_gz_steps),
		cmocka_unit_test(test_chunk_limit),
		cmocka_unit_test(test_buf_shrink),
		cmocka_unit_test(test_all_in_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

static void
test_all_in_steps(void **state)
{
	static void (*const all[])(void **) = {
		test_message_int_time, test_eventtime_forms, test_float_time,
		test_message_chunk, test_forward_mix, test_packed_str32_chunk_lf,
		test_compressed_two_members, test_decompressed_limit,
		test_split_every_way, test_metadata_time,
		test_invalid_events_skipped, test_bad_messages_continue,
		test_message_invalid_event_kept_batch, test_frame_errors,
		test_truncated_everywhere, test_wrong_types_everywhere,
		test_writer_gzip_chunk_roundtrip, test_chunk_limit,
	};
	static const size_t steps[] = { 1, 2, 7, 64 };

	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		run_step = steps[i];
		for (size_t j = 0; j < sizeof all / sizeof *all; j++)
			all[j](state);
	}
	run_step = 0;
}
