/* Codec throughput: decode, encode and gzip-decode a stream of N events of
 * ~150-byte LTSV-like records.  Prints one line per figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <msgpack.h>

#include "stream.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
to_buf(void *ctx, struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (buf_add(ctx, iov[i].iov_base, iov[i].iov_len) == -1)
			return -1;
	return 0;
}

static size_t sink_bytes;
static int
to_sink(void *ctx, struct iovec *iov, int n)
{
	(void)ctx;
	for (int i = 0; i < n; i++)
		sink_bytes += iov[i].iov_len;
	return 0;
}

static void
make_record(struct buf *rec, unsigned i)
{
	msgpack_packer pk;
	char v[64];
	static const char *k[] = { "host", "user", "method", "path", "code",
		"size", "referer", "agent" };

	buf_reset(rec);
	msgpack_packer_init(&pk, rec, buf_msgpack_write);
	msgpack_pack_map(&pk, 8);
	for (int j = 0; j < 8; j++) {
		msgpack_pack_str_with_body(&pk, k[j], strlen(k[j]));
		switch (j) {
		case 0: snprintf(v, sizeof v, "192.168.%u.%u", i % 250, i % 200); break;
		case 1: snprintf(v, sizeof v, "-"); break;
		case 2: snprintf(v, sizeof v, "GET"); break;
		case 3: snprintf(v, sizeof v, "/item/%08u", i); break;
		case 4: snprintf(v, sizeof v, "200"); break;
		case 5: snprintf(v, sizeof v, "%u", 1000 + i % 9000); break;
		case 6: snprintf(v, sizeof v, "http://example.com/"); break;
		default: snprintf(v, sizeof v, "Mozilla/5.0 (X11; Linux x86_64)"); break;
		}
		msgpack_pack_str_with_body(&pk, v, strlen(v));
	}
}

/* Decode all of s, fed in 64 KiB reads, visiting every event. */
static size_t
decode(const struct buf *s)
{
	struct stream_reader r;
	struct stream_batch b;
	struct stream_iter it;
	struct stream_event ev;
	size_t off, k, n = 0, sum = 0;

	stream_reader_init(&r, NULL);
	for (off = 0; off < s->len; off += k) {
		k = s->len - off < 65536 ? s->len - off : 65536;
		stream_reader_feed(&r, s->p + off, k);
		while (stream_reader_next(&r, &b) == 1) {
			stream_iter_init(&it, b.entries, b.len);
			while (stream_iter_next(&it, &ev) == 1) {
				sum += ev.reclen;
				n++;
			}
		}
	}
	stream_reader_free(&r);
	return n + (sum == 0);
}

static void
report(const char *what, size_t events, size_t bytes, double secs)
{
	printf("%-22s %10.0f events/s %8.1f MB/s  (%zu events, %.1f MB, %.3f s)\n",
	    what, events / secs, bytes / secs / 1e6, events, bytes / 1e6, secs);
}

int
main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000000;
	struct buf rec = BUF_INIT, plain = BUF_INIT, gz = BUF_INIT;
	struct stream_writer w;
	struct rusage ru;
	double t;
	size_t got, recbytes = 0;

	/* the input streams, built once: 1000-event PackedForward messages */
	stream_writer_init(&w, to_buf, &plain);
	w.flush_bytes = 150 * 1000;
	for (unsigned i = 0; i < n; i++) {
		make_record(&rec, i);
		recbytes += rec.len;
		stream_writer_add(&w, "app.access", 10, 1441588984 + i / 1000, i, rec.p, rec.len);
	}
	stream_writer_flush(&w);
	stream_writer_free(&w);
	stream_writer_init(&w, to_buf, &gz);
	w.flush_bytes = 150 * 1000;
	w.gzip = 1;
	for (unsigned i = 0; i < n; i++) {
		make_record(&rec, i);
		stream_writer_add(&w, "app.access", 10, 1441588984 + i / 1000, i, rec.p, rec.len);
	}
	stream_writer_flush(&w);
	stream_writer_free(&w);
	printf("records: %u, mean record %.0f bytes, stream %.1f MB, gzip %.1f MB\n",
	    n, (double)recbytes / n, plain.len / 1e6, gz.len / 1e6);

	t = now();
	got = decode(&plain);
	report("decode", got, plain.len, now() - t);

	/* encode: every event re-batched from its record bytes */
	{
		struct stream_reader r;
		struct stream_batch b;
		struct stream_iter it;
		struct stream_event ev;
		size_t cnt = 0;

		stream_reader_init(&r, NULL);
		stream_reader_feed(&r, plain.p, plain.len);
		stream_writer_init(&w, to_sink, NULL);
		t = now();
		while (stream_reader_next(&r, &b) == 1) {
			stream_iter_init(&it, b.entries, b.len);
			while (stream_iter_next(&it, &ev) == 1) {
				stream_writer_add(&w, b.tag, b.taglen, ev.sec, ev.nsec,
				    ev.rec, ev.reclen);
				cnt++;
			}
		}
		stream_writer_flush(&w);
		t = now() - t;
		report("decode+encode", cnt, sink_bytes, t);
		stream_writer_free(&w);
		stream_reader_free(&r);
	}
	{
		/* encode alone: the records are ready, as after a parser */
		size_t cnt = 0;
		struct stream_reader r;
		struct stream_batch b;
		struct stream_iter it;
		struct stream_event ev;
		struct stream_event *evs = malloc(n * sizeof *evs);

		stream_reader_init(&r, NULL);
		stream_reader_feed(&r, plain.p, plain.len);
		while (stream_reader_next(&r, &b) == 1) {
			stream_iter_init(&it, b.entries, b.len);
			while (stream_iter_next(&it, &ev) == 1)
				evs[cnt++] = ev;
		}
		sink_bytes = 0;
		stream_writer_init(&w, to_sink, NULL);
		t = now();
		for (size_t i = 0; i < cnt; i++)
			stream_writer_add(&w, "app.access", 10, evs[i].sec, evs[i].nsec,
			    evs[i].rec, evs[i].reclen);
		stream_writer_flush(&w);
		report("encode", cnt, sink_bytes, now() - t);
		stream_writer_free(&w);
		stream_reader_free(&r);
		free(evs);
	}

	{
		/* pack+encode: records packed from field strings with msgpack-c,
		 * as a parser does, then batched */
		static const char *kv[16] = { "host", "192.168.1.20", "user", "-",
			"method", "GET", "path", "/item/00012345", "code", "200",
			"size", "4523", "referer", "http://example.com/",
			"agent", "Mozilla/5.0 (X11; Linux x86_64)" };
		size_t len[16];
		msgpack_packer pk;

		for (int j = 0; j < 16; j++)
			len[j] = strlen(kv[j]);
		sink_bytes = 0;
		stream_writer_init(&w, to_sink, NULL);
		msgpack_packer_init(&pk, &rec, buf_msgpack_write);
		t = now();
		for (unsigned i = 0; i < n; i++) {
			buf_reset(&rec);
			msgpack_pack_map(&pk, 8);
			for (int j = 0; j < 16; j++)
				msgpack_pack_str_with_body(&pk, kv[j], len[j]);
			stream_writer_add(&w, "app.access", 10, 1441588984, i,
			    rec.p, rec.len);
		}
		stream_writer_flush(&w);
		report("pack+encode", n, sink_bytes, now() - t);
		stream_writer_free(&w);
	}

	t = now();
	got = decode(&gz);
	report("decode gzip", got, gz.len, now() - t);

	getrusage(RUSAGE_SELF, &ru);
	printf("peak RSS: %ld MB (holds the %.0f MB test streams)\n",
	    ru.ru_maxrss / 1024, (plain.len + gz.len) / 1e6);
	buf_free(&rec);
	buf_free(&plain);
	buf_free(&gz);
	return 0;
}
