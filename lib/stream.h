/* stream: the event stream of lf-stream(5), Fluentd's forward protocol.
 *
 * The reader takes bytes in any split and yields one batch per message:
 * the message's tag, its options, and its events as PackedForward entries
 * (concatenated msgpack [time, record] arrays).  Every mode normalises to
 * that form, so a tool that only stores or forwards events passes the
 * entries on as bytes; records are never unpacked into objects here.
 * A tool that looks into records walks the entries with stream_iter.
 *
 * The writer batches events per tag into PackedForward messages with the
 * entries as bin, EventTime times, the "size" option and, on request, a
 * "chunk" id and gzip compression (CompressedPackedForward). */
#ifndef LF_STREAM_H
#define LF_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "buf.h"
#include "gz.h"
#include "mp.h"

#define STREAM_MAX_MESSAGE	(256u << 20)	/* Fluentd's file chunks are 256m */
#define STREAM_MAX_DECOMPRESSED	(256u << 20)	/* in_forward's decompression_size_limit */
#define STREAM_MAX_CHUNK	256	/* Fluentd's chunk ids take 26 bytes */
#define STREAM_KEEP		(1u << 20)	/* buffer capacity kept when idle */

struct stream_limits {
	size_t max_message;		/* bytes of one message as received */
	size_t max_decompressed;	/* bytes of one message's entries, inflated */
	unsigned max_depth;		/* nesting of one message, <= MP_MAXDEPTH */
	size_t max_chunk;		/* bytes of the "chunk" option, as msgpack;
					 * 0: no limit */
	size_t step;			/* bytes of entries checked (or inflated)
					 * per call of stream_reader_next; 0: all */
};

enum stream_mode {
	STREAM_MESSAGE = 1,	/* [tag, time, record, option?] */
	STREAM_FORWARD,		/* [tag, [[time, record], ...], option?] */
	STREAM_PACKED,		/* [tag, bin|str entries, option?] */
	STREAM_COMPRESSED,	/* PackedForward with option compressed: gzip */
};

enum {
	STREAM_AGAIN = 2,	/* part of a large message was decoded: call again */
	STREAM_EMSG = -1,	/* this message is bad; the stream goes on */
	STREAM_EFRAME = -2,	/* the bytes are not msgpack: the stream is lost */
};

struct stream_batch {
	const char *tag;
	size_t taglen;
	const unsigned char *entries;	/* canonical entries, see stream_iter */
	size_t len;
	size_t count;			/* entries in entries */
	size_t invalid;			/* events dropped as invalid */
	const unsigned char *chunk;	/* option "chunk" as msgpack bytes, or NULL */
	size_t chunklen;
	int64_t size;			/* option "size", or -1 */
	enum stream_mode mode;
	uint64_t offset;		/* stream offset of the message */
	size_t msglen;
	uint64_t taken;			/* free for the tool: which of its
					 * outputs already took the batch */
};

/* Entries being checked, possibly over several calls. */
struct stream_ents {
	size_t off;		/* the next entry, from the start of the source */
	size_t dropped;		/* bytes of the source already let go */
	size_t count, invalid;
	int copying;		/* entries go into norm from the first rewrite */
	int cut;		/* scan holds progress on an entry cut short */
	struct mp_scan scan;
};

struct stream_reader {
	struct stream_limits lim;
	struct buf in;		/* in.p[pos] starts the message being framed */
	size_t pos;
	uint64_t base;		/* stream offset of in.p[0] */
	struct mp_scan scan;
	struct buf tmp;		/* inflated entries, or a Message-mode entry */
	struct buf norm;	/* entries rewritten into canonical form */
	struct {		/* the message being decoded in steps */
		size_t len;	/* its length at in.p[pos], 0 if none */
		size_t fwd_off;	/* Forward: elements passed over so far */
		uint32_t fwd_i;
		int fwd_done, gzip;
		struct gz_step gz;
		struct stream_ents ents;
	} dec;
	char err[256];
	uint64_t err_off;	/* stream offset the error was found at */
	int broken;
	unsigned long messages, events, invalid;
};

void stream_limits_default(struct stream_limits *lim);
void stream_reader_init(struct stream_reader *r, const struct stream_limits *lim);
void stream_reader_free(struct stream_reader *r);

/* Room for at least want more bytes: read(2) into it, then call
 * stream_reader_wrote.  Batches returned before are invalid after this. */
unsigned char *stream_reader_space(struct stream_reader *r, size_t want, size_t *avail);
void stream_reader_wrote(struct stream_reader *r, size_t n);
int stream_reader_feed(struct stream_reader *r, const void *p, size_t n);

/* 1 and a batch, 0 when more bytes are needed, or STREAM_EMSG or
 * STREAM_EFRAME with r->err and r->err_off set.  The batch points into the
 * reader and is valid until the next call on it.  With lim.step set, a
 * message larger than the step is decoded over several calls, each of
 * which returns STREAM_AGAIN until the last; bytes must not be added
 * while one is under way (stream_reader_busy). */
int stream_reader_next(struct stream_reader *r, struct stream_batch *b);
int stream_reader_busy(const struct stream_reader *r);

/* Give memory back between messages: buffers of more than keep bytes
 * are freed if empty, or cut down to keep if they hold at most half of
 * it (see buf_shrink); with keep 0, every empty buffer is freed.  Batches
 * returned before are invalid after this. */
void stream_reader_trim(struct stream_reader *r, size_t keep);
/* Bytes of memory the reader holds. */
size_t stream_reader_mem(const struct stream_reader *r);
/* Bytes of a message begun but not yet whole. */
size_t stream_reader_partial(const struct stream_reader *r);

/* At end of input: 0, or STREAM_EFRAME if a message was cut short. */
int stream_reader_end(struct stream_reader *r);

/* Check raw entries (a chunk file body, a PackedForward payload) and put
 * them into b in canonical form: valid events are kept, invalid ones are
 * counted in b->invalid and dropped.  0, or STREAM_EMSG if the bytes are
 * not a sequence of msgpack values. */
int stream_entries(struct stream_reader *r, const unsigned char *p, size_t n,
    struct stream_batch *b);

/* Canonical entries: each one is a 2-element array of an EventTime as
 * fixext8 and a map. */
struct stream_event {
	uint32_t sec, nsec;
	const unsigned char *rec;	/* the record's msgpack bytes */
	size_t reclen;
};
struct stream_iter {
	const unsigned char *p, *end;
};
void stream_iter_init(struct stream_iter *it, const unsigned char *p, size_t n);
int stream_iter_next(struct stream_iter *it, struct stream_event *ev); /* 1, 0 at end, -1 */

/* Canonical entries p, n with npairs more keys in every record: kv is
 * the keys' and values' msgpack bytes, key, value, key, value...  They
 * go last, so a reader that keeps the last of a duplicate key sees them
 * (Fluentd's record[key] = value).  Appended to out; 0, or -1 (no
 * memory, or p not canonical) with out as it was. */
int stream_entries_add(struct buf *out, const unsigned char *p, size_t n,
    const void *kv, size_t kvlen, uint32_t npairs);

/* Encoding */
#define STREAM_ENTRY_HEAD 11	/* 0x92, then an EventTime as fixext8 */
void stream_entry_head(unsigned char h[STREAM_ENTRY_HEAD], uint32_t sec, uint32_t nsec);

/* The parts of one PackedForward message around its payload:
 * head = [tag, bin header of len], opts = {"size", "compressed", "chunk"}.
 * chunk is a base64 string (or NULL); gzip says the payload is compressed. */
int stream_pack_head(struct buf *head, const char *tag, size_t taglen, size_t len);
int stream_pack_options(struct buf *opts, size_t count, const char *chunk, int gzip);

/* A fresh chunk id: 16 random bytes, and their base64 (24 chars + NUL). */
void stream_chunk_id(unsigned char id[16], char b64[25]);

struct stream_writer_tag;
typedef int (*stream_out_fn)(void *ctx, struct iovec *iov, int iovcnt);
/* Instead of packed bytes: a tag's batch as it is, canonical entries and
 * their count, for a sender that packs messages itself (lib/hop). */
typedef int (*stream_batch_fn)(void *ctx, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count);

struct stream_writer {
	stream_out_fn out;
	stream_batch_fn batch;	/* if set, used instead of out */
	void *ctx;
	int gzip;		/* CompressedPackedForward */
	int chunk;		/* add a random "chunk" option to each message */
	size_t flush_bytes;	/* emit a tag's batch once it holds this much */
	struct stream_writer_tag *tags;
	size_t ntags, last;
	struct buf head, opts, gz;
};

void stream_writer_init(struct stream_writer *w, stream_out_fn out, void *ctx);
int stream_writer_add(struct stream_writer *w, const char *tag, size_t taglen,
    uint32_t sec, uint32_t nsec, const unsigned char *rec, size_t reclen);
int stream_writer_add_entries(struct stream_writer *w, const char *tag,
    size_t taglen, const unsigned char *entries, size_t len, size_t count);
int stream_writer_flush(struct stream_writer *w);
void stream_writer_free(struct stream_writer *w);

/* An out function that writes everything to the file descriptor in ctx. */
int stream_out_fd(void *ctx, struct iovec *iov, int iovcnt);

#endif
