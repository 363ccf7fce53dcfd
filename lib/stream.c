#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <openssl/evp.h>

#include "gz.h"
#include "io.h"
#include "stream.h"

static inline void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void
stream_limits_default(struct stream_limits *lim)
{
	lim->max_message = STREAM_MAX_MESSAGE;
	lim->max_decompressed = STREAM_MAX_DECOMPRESSED;
	lim->max_chunk = STREAM_MAX_CHUNK;
	lim->step = 0;
	lim->max_depth = MP_MAXDEPTH;
}

void
stream_reader_init(struct stream_reader *r, const struct stream_limits *lim)
{
	memset(r, 0, sizeof *r);
	if (lim)
		r->lim = *lim;
	else
		stream_limits_default(&r->lim);
	mp_scan_init(&r->scan, r->lim.max_depth, r->lim.max_message);
}

static void
dec_reset(struct stream_reader *r)
{
	gz_step_end(&r->dec.gz);
	memset(&r->dec, 0, sizeof r->dec);
}

void
stream_reader_free(struct stream_reader *r)
{
	dec_reset(r);
	buf_free(&r->in);
	buf_free(&r->tmp);
	buf_free(&r->norm);
}

/* Drop the messages already returned; the scanner's offsets are relative
 * to the message start, and so are those of a message decoded in steps,
 * so they survive the move. */
static void
reader_consume(struct stream_reader *r)
{
	if (r->pos > 0) {
		buf_consume(&r->in, r->pos);
		r->base += r->pos;
		r->pos = 0;
	}
}

int
stream_reader_busy(const struct stream_reader *r)
{
	return r->dec.len != 0;
}

void
stream_reader_trim(struct stream_reader *r, size_t keep)
{
	if (r->dec.len)
		return;
	reader_consume(r);
	buf_reset(&r->tmp);
	buf_reset(&r->norm);
	buf_shrink(&r->in, keep);
	buf_shrink(&r->tmp, keep);
	buf_shrink(&r->norm, keep);
}

size_t
stream_reader_mem(const struct stream_reader *r)
{
	/* zlib's inflate state and its 32 KiB window */
	return r->in.cap + r->tmp.cap + r->norm.cap +
	    (r->dec.gz.active ? 48 * 1024 : 0);
}

size_t
stream_reader_partial(const struct stream_reader *r)
{
	return r->in.len - r->pos;
}

unsigned char *
stream_reader_space(struct stream_reader *r, size_t want, size_t *avail)
{
	reader_consume(r);
	if (buf_reserve(&r->in, want) == -1)
		return NULL;
	*avail = r->in.cap - r->in.len;
	return r->in.p + r->in.len;
}

void
stream_reader_wrote(struct stream_reader *r, size_t n)
{
	r->in.len += n;
}

int
stream_reader_feed(struct stream_reader *r, const void *p, size_t n)
{
	size_t avail;
	unsigned char *s;

	if (n == 0)
		return 0;	/* nothing, and maybe no buffer yet */
	if ((s = stream_reader_space(r, n, &avail)) == NULL)
		return -1;
	memcpy(s, p, n);
	stream_reader_wrote(r, n);
	return 0;
}

static int
fail(struct stream_reader *r, int rc, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
	r->err_off = off;
	if (rc == STREAM_EFRAME)
		r->broken = 1;
	return rc;
}

/* Time of an entry: EventTime (ext 0, 8 bytes, any ext form), a positive
 * integer, a float, or the v1.5 [time, metadata] pair.  Returns 1 if the
 * time is valid and already canonical (EventTime as fixext8), 2 if valid
 * but to be rewritten, 0 if invalid. */
static int
entry_time(const unsigned char **pp, const unsigned char *end, uint32_t *sec,
    uint32_t *nsec, int nested)
{
	struct mp_obj o;
	int rc, canonical = 1;

	int fix = *pp < end && **pp == 0xd7;

	if (mp_read(pp, end, &o) == -1)
		return 0;
	switch (o.type) {
	case MP_EXT:
		if (o.ext != 0 || o.n != 8)
			return 0;
		if (!fix)
			canonical = 2;	/* ext8/16/32: rewritten as fixext8 */
		*sec = (uint32_t)o.p[0] << 24 | (uint32_t)o.p[1] << 16 |
		    (uint32_t)o.p[2] << 8 | o.p[3];
		*nsec = (uint32_t)o.p[4] << 24 | (uint32_t)o.p[5] << 16 |
		    (uint32_t)o.p[6] << 8 | o.p[7];
		return *nsec < 1000000000 ? canonical : 0;
	case MP_UINT:
		/* integer seconds are valid; writers send EventTime (lf-stream(5)) */
		if (o.v.u > UINT32_MAX)
			return 0;
		*sec = (uint32_t)o.v.u;
		*nsec = 0;
		return 2;
	case MP_FLOAT:
		if (!(o.v.f >= 0 && o.v.f < 4294967296.0))
			return 0;
		*sec = (uint32_t)o.v.f;
		*nsec = (uint32_t)((o.v.f - *sec) * 1e9);
		if (*nsec > 999999999)
			*nsec = 999999999;
		return 2;
	case MP_ARRAY:
		/* v1.5: [time, {metadata}]; the metadata is dropped */
		if (nested || o.n < 1)
			return 0;
		rc = entry_time(pp, end, sec, nsec, 1);
		for (uint32_t i = 1; rc && i < o.n; i++)
			if (mp_pass(pp, end) == -1)
				return 0;
		return rc ? 2 : 0;
	default:
		return 0;
	}
}

void
stream_entry_head(unsigned char h[STREAM_ENTRY_HEAD], uint32_t sec, uint32_t nsec)
{
	h[0] = 0x92;
	h[1] = 0xd7;
	h[2] = 0x00;
	put32(h + 3, sec);
	put32(h + 7, nsec);
}

/* Check one entry at p[0..n): *len is its size.  Returns 1 if canonical,
 * 2 if valid but needing a rewrite (its time and record are returned
 * either way), 0 if well-formed msgpack but not an event, -1 if the bytes
 * are not one msgpack value. */
static int
entry_check(const struct stream_reader *r, const unsigned char *p, size_t n,
    size_t *len, uint32_t *sec, uint32_t *nsec, const unsigned char **rec,
    size_t *reclen)
{
	const unsigned char *q = p, *end = p + n;
	unsigned depth = r->lim.max_depth ? r->lim.max_depth - 1 : 0;
	struct mp_obj a;
	size_t k;
	int t;

	/* one pass over the record: it is scanned once, to find its end */
	if (mp_read(&q, end, &a) == -1 || a.type != MP_ARRAY || a.n < 2 ||
	    (t = entry_time(&q, end, sec, nsec, 0)) == 0 ||
	    q == end || !((*q & 0xf0) == 0x80 || *q == 0xde || *q == 0xdf))
		goto invalid;
	*rec = q;
	if (mp_skip(q, (size_t)(end - q), depth, reclen) != MP_OK)
		return -1;
	q += *reclen;
	for (uint32_t i = 2; i < a.n; i++, q += k) {
		if (mp_skip(q, (size_t)(end - q), depth, &k) != MP_OK)
			return -1;
		t = 2;		/* extra elements are dropped */
	}
	*len = (size_t)(q - p);
	return t;
invalid:
	/* not an event; its size is still needed to step over it */
	return mp_skip(p, n, r->lim.max_depth, len) == MP_OK ? 0 : -1;
}

/* Check the entries src[e->off..n) into canonical form, about `budget`
 * bytes of them (0: all).  Canonical entries stay where they are; from
 * the first entry that needs a rewrite on, the rest is copied into
 * r->norm.  Invalid events are dropped and counted, as Fluentd's
 * skip_invalid_event does; bytes that are not msgpack fail the message.
 * Unless final, src may end inside an entry: its scan is kept in e and
 * goes on when there is more.  1 when done, 0 when there is more to do,
 * STREAM_EMSG with r->err. */
static int
ents_run(struct stream_reader *r, struct stream_ents *e,
    const unsigned char *src, size_t n, int final, size_t budget)
{
	const unsigned char *p, *rec;
	unsigned char head[STREAM_ENTRY_HEAD];
	size_t len, reclen, stop = n;
	uint32_t sec, nsec;
	int t, rc;

	if (budget && n - e->off > budget)
		stop = e->off + budget;
	while (e->off < n) {
		if (e->off >= stop)
			return 0;
		p = src + e->off;
		t = -1;
		if (!e->cut || final)
			t = entry_check(r, p, n - e->off, &len, &sec, &nsec, &rec, &reclen);
		e->cut = e->cut && !final;
		if (t == -1 && !final) {
			/* cut short, most likely: scan on as bytes come */
			if (!e->cut)
				mp_scan_init(&e->scan, r->lim.max_depth, SIZE_MAX / 2);
			e->cut = 1;
			if ((rc = mp_scan(&e->scan, p, n - e->off, &len)) == MP_MORE)
				return 0;
			e->cut = 0;
			if (rc == MP_OK)
				t = entry_check(r, p, len, &len, &sec, &nsec, &rec, &reclen);
		}
		if (t == -1) {
			snprintf(r->err, sizeof r->err,
			    "entry %zu at entries offset %zu is not valid msgpack",
			    e->count + e->invalid + 1, e->dropped + e->off);
			return STREAM_EMSG;
		}
		if (t != 1 && !e->copying) {
			e->copying = 1;
			buf_reset(&r->norm);
			if (buf_add(&r->norm, src, e->off) == -1)
				goto nomem;
		}
		if (t == 0) {
			e->invalid++;
		} else {
			e->count++;
			if (t == 1 && e->copying) {
				if (buf_add(&r->norm, p, len) == -1)
					goto nomem;
			} else if (t == 2) {
				stream_entry_head(head, sec, nsec);
				if (buf_add(&r->norm, head, sizeof head) == -1 ||
				    buf_add(&r->norm, rec, reclen) == -1)
					goto nomem;
			}
		}
		e->off += len;
	}
	return final ? 1 : 0;
nomem:
	snprintf(r->err, sizeof r->err, "out of memory");
	return STREAM_EMSG;
}

static void
ents_batch(const struct stream_reader *r, const struct stream_ents *e,
    const unsigned char *src, size_t n, struct stream_batch *b)
{
	b->count = e->count;
	b->invalid = e->invalid;
	b->entries = e->copying ? r->norm.p : src;
	b->len = e->copying ? r->norm.len : n;
}

int
stream_entries(struct stream_reader *r, const unsigned char *p, size_t n,
    struct stream_batch *b)
{
	struct stream_ents e;

	memset(&e, 0, sizeof e);
	if (ents_run(r, &e, p, n, 1, 0) < 0)
		return STREAM_EMSG;
	ents_batch(r, &e, p, n, b);
	return 0;
}

enum { DEC_AGAIN = 1 };	/* decode: a step done, the message is not */

/* The entries src[0..n) of the message being decoded, a step at a time. */
static int
dec_entries(struct stream_reader *r, const unsigned char *src, size_t n,
    struct stream_batch *b)
{
	int rc = ents_run(r, &r->dec.ents, src, n, 1, r->lim.step);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return DEC_AGAIN;
	ents_batch(r, &r->dec.ents, src, n, b);
	return 0;
}

/* CompressedPackedForward: inflate a step, then check what it made. */
static int
dec_gzip(struct stream_reader *r, const unsigned char *z, size_t zn,
    struct stream_batch *b)
{
	struct stream_ents *e = &r->dec.ents;
	const char *zerr;
	int rc, final;

	if (!r->dec.gzip) {
		buf_reset(&r->tmp);
		if (gz_step_begin(&r->dec.gz, &zerr) == -1) {
			snprintf(r->err, sizeof r->err, "%s", zerr);
			return -1;
		}
		r->dec.gzip = 1;
	}
	if (r->dec.gz.active) {
		rc = gz_step(&r->dec.gz, z, zn, &r->tmp, r->lim.max_decompressed,
		    r->lim.step, &zerr);
		if (rc == -1) {
			snprintf(r->err, sizeof r->err, "%s", zerr);
			return -1;
		}
		if (rc == 1)
			gz_step_end(&r->dec.gz);
	}
	final = !r->dec.gz.active;
	if ((rc = ents_run(r, e, r->tmp.p, r->tmp.len, final,
	    final ? r->lim.step : 0)) < 0)
		return -1;
	if (rc == 1) {
		ents_batch(r, e, r->tmp.p, r->tmp.len, b);
		return 0;
	}
	/* Entries checked and copied are let go: a bomb of small invalid
	 * entries never holds more than a step or two of inflated bytes. */
	if (e->copying && e->off > 0 && e->off >= r->tmp.len / 2) {
		buf_consume(&r->tmp, e->off);
		e->dropped += e->off;
		e->off = 0;
	}
	return DEC_AGAIN;
}

/* The option map: "size", "chunk" (kept as raw bytes, to be echoed as the
 * same msgpack object), "compressed".  Unknown keys are ignored. */
static int
parse_options(struct stream_reader *r, const unsigned char **pp,
    const unsigned char *end, struct stream_batch *b, int *gzip)
{
	struct mp_obj o, k, v;
	const unsigned char *vstart;

	if (mp_read(pp, end, &o) == -1)
		return -1;
	if (o.type == MP_NIL)
		return 0;
	if (o.type != MP_MAP) {
		snprintf(r->err, sizeof r->err, "option is not a map");
		return -1;
	}
	for (uint32_t i = 0; i < o.n; i++) {
		if (mp_read(pp, end, &k) == -1)
			return -1;
		if (k.type == MP_MAP || k.type == MP_ARRAY) {
			snprintf(r->err, sizeof r->err, "option key is not a string");
			return -1;
		}
		vstart = *pp;
		if (mp_streq(&k, "chunk")) {
			if (mp_pass(pp, end) == -1)
				return -1;
			b->chunk = vstart;
			b->chunklen = (size_t)(*pp - vstart);
			/* it is echoed in the ack: a chunk id, not a payload */
			if (r->lim.max_chunk && b->chunklen > r->lim.max_chunk) {
				snprintf(r->err, sizeof r->err, "chunk option of %zu "
				    "bytes, more than %zu: message refused",
				    b->chunklen, r->lim.max_chunk);
				return -1;
			}
			continue;
		}
		if (mp_streq(&k, "size")) {
			if (mp_read(pp, end, &v) == -1)
				return -1;
			if (v.type == MP_UINT && v.v.u <= INT64_MAX)
				b->size = (int64_t)v.v.u;
			*pp = vstart;
		} else if (mp_streq(&k, "compressed")) {
			if (mp_read(pp, end, &v) == -1)
				return -1;
			if (mp_streq(&v, "gzip")) {
				*gzip = 1;
			} else if (!mp_streq(&v, "text")) {
				snprintf(r->err, sizeof r->err,
				    "unsupported compression \"%.*s\"",
				    v.type == MP_STR || v.type == MP_BIN ?
				    (int)(v.n > 32 ? 32 : v.n) : 1,
				    v.type == MP_STR || v.type == MP_BIN ?
				    (const char *)v.p : "?");
				return -1;
			}
			*pp = vstart;
		}
		if (mp_pass(pp, end) == -1)
			return -1;
	}
	return 0;
}

/* Decode one framed message msg[0..len) into b.  0, DEC_AGAIN when a step
 * is done but not the message, or -1 with r->err. */
static int
decode(struct stream_reader *r, const unsigned char *msg, size_t len,
    struct stream_batch *b)
{
	const unsigned char *p = msg, *end = msg + len, *body, *rec;
	struct mp_obj a, tag, o;
	uint32_t sec, nsec;
	int gzip = 0, t;
	size_t n, reclen;

	if (mp_read(&p, end, &a) == -1)
		return -1;
	if (a.type != MP_ARRAY) {
		snprintf(r->err, sizeof r->err, "message is not an array");
		return -1;
	}
	if (a.n < 2) {
		snprintf(r->err, sizeof r->err, "message has %u elements", a.n);
		return -1;
	}
	if (mp_read(&p, end, &tag) == -1)
		return -1;
	if (tag.type != MP_STR && tag.type != MP_BIN) {
		snprintf(r->err, sizeof r->err, "tag is not a string");
		return -1;
	}
	b->tag = (const char *)tag.p;
	b->taglen = tag.n;
	body = p;
	if (mp_read(&p, end, &o) == -1)
		return -1;

	if (o.type == MP_STR || o.type == MP_BIN) {
		b->mode = STREAM_PACKED;
		if (a.n > 2 && parse_options(r, &p, end, b, &gzip) == -1)
			return -1;
		if (!gzip)
			return dec_entries(r, o.p, o.n, b);
		b->mode = STREAM_COMPRESSED;
		return dec_gzip(r, o.p, o.n, b);
	}

	if (o.type == MP_ARRAY) {
		/* Forward: the array's elements, back to back, are entries */
		b->mode = STREAM_FORWARD;
		const unsigned char *first = p;
		if (!r->dec.fwd_done) {
			/* found in steps too: a step is bytes passed over */
			const unsigned char *q = first + r->dec.fwd_off, *q0 = q;
			for (; r->dec.fwd_i < o.n; r->dec.fwd_i++) {
				if (r->lim.step && (size_t)(q - q0) >= r->lim.step) {
					r->dec.fwd_off = (size_t)(q - first);
					return DEC_AGAIN;
				}
				if (mp_pass(&q, end) == -1)
					return -1;
			}
			r->dec.fwd_done = 1;
			r->dec.fwd_off = (size_t)(q - first);
		}
		n = r->dec.fwd_off;
		p = first + n;
		if (a.n > 2 && parse_options(r, &p, end, b, &gzip) == -1)
			return -1;
		return dec_entries(r, first, n, b);
	}

	/* Message: [tag, time, record, option?] */
	b->mode = STREAM_MESSAGE;
	if (a.n < 3) {
		snprintf(r->err, sizeof r->err, "message has %u elements", a.n);
		return -1;
	}
	p = body;
	t = entry_time(&p, end, &sec, &nsec, 0);
	rec = p;
	if (mp_pass(&p, end) == -1)
		return -1;
	reclen = (size_t)(p - rec);
	if (a.n > 3 && parse_options(r, &p, end, b, &gzip) == -1)
		return -1;
	if (t == 0 || rec[0] < 0x80 || (rec[0] > 0x8f && rec[0] != 0xde && rec[0] != 0xdf)) {
		b->entries = (const unsigned char *)"";
		b->len = 0;
		b->count = 0;
		b->invalid = 1;
		return 0;
	}
	unsigned char head[STREAM_ENTRY_HEAD];
	stream_entry_head(head, sec, nsec);
	buf_reset(&r->norm);
	if (buf_add(&r->norm, head, sizeof head) == -1 ||
	    buf_add(&r->norm, rec, reclen) == -1) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return -1;
	}
	b->entries = r->norm.p;
	b->len = r->norm.len;
	b->count = 1;
	b->invalid = 0;
	return 0;
}

int
stream_reader_next(struct stream_reader *r, struct stream_batch *b)
{
	size_t len;
	int rc;

	if (r->broken)
		return STREAM_EFRAME;
	for (;;) {
		if (r->dec.len == 0) {
			if (r->pos == r->in.len)
				return 0;
			rc = mp_scan(&r->scan, r->in.p + r->pos, r->in.len - r->pos, &len);
			if (rc == MP_MORE)
				return 0;
			if (rc != MP_OK)
				return fail(r, STREAM_EFRAME, r->base + r->pos +
				    (rc == MP_EBIG ? 0 : r->scan.off),
				    "%s", rc == MP_EBAD ? "invalid msgpack byte 0xc1" :
				    rc == MP_EDEPTH ? "message nested too deep" :
				    "message larger than the size limit");
			mp_scan_init(&r->scan, r->lim.max_depth, r->lim.max_message);
			if (r->in.p[r->pos] == 0xc0) {	/* nil: a heartbeat, no reply */
				r->pos += len;
				continue;
			}
			r->messages++;
			r->dec.len = len;
		}
		len = r->dec.len;
		memset(b, 0, sizeof *b);
		b->offset = r->base + r->pos;
		b->msglen = len;
		b->size = -1;
		r->err[0] = '\0';
		if ((rc = decode(r, r->in.p + r->pos, len, b)) == DEC_AGAIN)
			return STREAM_AGAIN;
		r->pos += len;
		dec_reset(r);
		if (rc == -1) {
			if (r->err[0] == '\0')
				snprintf(r->err, sizeof r->err, "message is truncated");
			r->err_off = b->offset;
			return STREAM_EMSG;
		}
		r->events += b->count;
		r->invalid += b->invalid;
		return 1;
	}
}

int
stream_reader_end(struct stream_reader *r)
{
	if (r->broken)
		return STREAM_EFRAME;
	if (r->pos < r->in.len)
		return fail(r, STREAM_EFRAME, r->base + r->pos,
		    "input ends inside a message (%zu bytes)", r->in.len - r->pos);
	return 0;
}

void
stream_iter_init(struct stream_iter *it, const unsigned char *p, size_t n)
{
	it->p = p;
	it->end = n ? p + n : p;	/* p may be NULL for no entries */
}

int
stream_iter_next(struct stream_iter *it, struct stream_event *ev)
{
	const unsigned char *q = it->p;
	struct mp_obj o;

	if (q == it->end)
		return 0;
	if (mp_read(&q, it->end, &o) == -1 || o.type != MP_ARRAY || o.n != 2)
		return -1;
	if (entry_time(&q, it->end, &ev->sec, &ev->nsec, 1) != 1)
		return -1;
	ev->rec = q;
	if (q == it->end || (*q & 0xf0) != 0x80) {
		if (q == it->end || (*q != 0xde && *q != 0xdf))
			return -1;
	}
	if (mp_pass(&q, it->end) == -1)
		return -1;
	ev->reclen = (size_t)(q - ev->rec);
	it->p = q;
	return 1;
}

/* Each record gets npairs more keys: the map header grows (to the next
 * form when it must) and the keys and values (msgpack bytes) go last, so a key the record had already comes first and a reader that
 * keeps the last one sees ours, as Fluentd's record[key] = value. */
int
stream_entries_add(struct buf *out, const unsigned char *p, size_t n,
    const void *kv, size_t kvlen, uint32_t npairs)
{
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *body;
	unsigned char h[STREAM_ENTRY_HEAD + 5];
	size_t start = out->len, hl;
	uint32_t cnt;
	int rc;

	stream_iter_init(&it, p, n);
	while ((rc = stream_iter_next(&it, &ev)) == 1) {
		stream_entry_head(h, ev.sec, ev.nsec);
		hl = STREAM_ENTRY_HEAD;
		if ((ev.rec[0] & 0xf0) == 0x80) {
			cnt = ev.rec[0] & 0x0f;
			body = ev.rec + 1;
		} else if (ev.rec[0] == 0xde) {
			cnt = (uint32_t)ev.rec[1] << 8 | ev.rec[2];
			body = ev.rec + 3;
		} else {
			cnt = (uint32_t)ev.rec[1] << 24 | (uint32_t)ev.rec[2] << 16 |
			    (uint32_t)ev.rec[3] << 8 | ev.rec[4];
			body = ev.rec + 5;
		}
		if (cnt > UINT32_MAX - npairs)
			goto bad;
		cnt += npairs;
		if (cnt < 16) {
			h[hl++] = 0x80 | (unsigned char)cnt;
		} else if (cnt < 65536) {
			h[hl++] = 0xde;
			h[hl++] = (unsigned char)(cnt >> 8);
			h[hl++] = (unsigned char)cnt;
		} else {
			h[hl++] = 0xdf;
			put32(h + hl, cnt);
			hl += 4;
		}
		if (buf_add(out, h, hl) == -1 ||
		    buf_add(out, body, ev.reclen - (size_t)(body - ev.rec)) == -1 ||
		    buf_add(out, kv, kvlen) == -1)
			goto bad;
	}
	if (rc == 0)
		return 0;
bad:
	out->len = start;
	return -1;
}

/* ---- writing ---- */

/* A str header for n bytes into h; its length. */
static size_t
str_head(unsigned char *h, size_t n)
{
	if (n < 32) {
		h[0] = 0xa0 | (unsigned char)n;
		return 1;
	}
	if (n < 256) {
		h[0] = 0xd9;
		h[1] = (unsigned char)n;
		return 2;
	}
	h[0] = 0xdb;
	put32(h + 1, (uint32_t)n);
	return 5;
}

int
stream_pack_head(struct buf *head, const char *tag, size_t taglen, size_t len)
{
	unsigned char h[10];
	size_t n = 0;

	if (buf_addc(head, 0x93) == -1 ||
	    buf_add(head, h, str_head(h, taglen)) == -1 ||
	    buf_add(head, tag, taglen) == -1)
		return -1;
	if (len < 256) {
		h[n++] = 0xc4;
		h[n++] = (unsigned char)len;
	} else if (len < 65536) {
		h[n++] = 0xc5;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	} else {
		h[n++] = 0xc6;
		put32(h + n, (uint32_t)len);
		n += 4;
	}
	return buf_add(head, h, n);
}

int
stream_pack_options(struct buf *opts, size_t count, const char *chunk, int gzip)
{
	unsigned char h[9];
	size_t n;

	if (buf_addc(opts, 0x80 | (1 + (chunk != NULL) + (gzip != 0))) == -1 ||
	    buf_add(opts, "\xa4size", 5) == -1)
		return -1;
	if (count < 128) {
		h[0] = (unsigned char)count;
		n = 1;
	} else if (count <= UINT32_MAX) {
		h[0] = 0xce;
		put32(h + 1, (uint32_t)count);
		n = 5;
	} else {
		h[0] = 0xcf;
		put32(h + 1, (uint32_t)((uint64_t)count >> 32));
		put32(h + 5, (uint32_t)count);
		n = 9;
	}
	if (buf_add(opts, h, n) == -1)
		return -1;
	if (gzip && buf_add(opts, "\xaa" "compressed\xa4gzip", 16) == -1)
		return -1;
	if (chunk) {
		n = strlen(chunk);
		if (buf_add(opts, "\xa5" "chunk", 6) == -1 ||
		    buf_add(opts, h, str_head(h, n)) == -1 ||
		    buf_add(opts, chunk, n) == -1)
			return -1;
	}
	return 0;
}

void
stream_chunk_id(unsigned char id[16], char b64[25])
{
	arc4random_buf(id, 16);
	EVP_EncodeBlock((unsigned char *)b64, id, 16);
}

struct stream_writer_tag {
	char *tag;
	size_t taglen;
	struct buf entries;
	size_t count;
};

#define STREAM_WRITER_TAGS 64	/* open batches; more tags flush the oldest */

void
stream_writer_init(struct stream_writer *w, stream_out_fn out, void *ctx)
{
	memset(w, 0, sizeof *w);
	w->out = out;
	w->ctx = ctx;
	w->flush_bytes = 1 << 20;
}

static int
writer_emit(struct stream_writer *w, struct stream_writer_tag *t)
{
	struct iovec iov[3];
	char b64[25];
	unsigned char id[16];
	const unsigned char *payload = t->entries.p;
	size_t len = t->entries.len;
	int rc;

	if (t->count == 0)
		return 0;
	if (w->batch) {
		rc = w->batch(w->ctx, t->tag, t->taglen, t->entries.p,
		    t->entries.len, t->count);
		buf_reset(&t->entries);
		t->count = 0;
		return rc;
	}
	if (w->gzip) {
		buf_reset(&w->gz);
		if (gz_deflate(payload, len, &w->gz, 6) == -1)
			return -1;
		payload = w->gz.p;
		len = w->gz.len;
	}
	if (w->chunk)
		stream_chunk_id(id, b64);
	buf_reset(&w->head);
	buf_reset(&w->opts);
	if (stream_pack_head(&w->head, t->tag, t->taglen, len) == -1 ||
	    stream_pack_options(&w->opts, t->count, w->chunk ? b64 : NULL, w->gzip) == -1)
		return -1;
	iov[0].iov_base = w->head.p;
	iov[0].iov_len = w->head.len;
	iov[1].iov_base = (void *)payload;
	iov[1].iov_len = len;
	iov[2].iov_base = w->opts.p;
	iov[2].iov_len = w->opts.len;
	rc = w->out(w->ctx, iov, 3);
	buf_reset(&t->entries);
	t->count = 0;
	return rc;
}

static struct stream_writer_tag *
writer_tag(struct stream_writer *w, const char *tag, size_t taglen)
{
	struct stream_writer_tag *t;
	size_t i;

	if (w->ntags > 0) {
		t = &w->tags[w->last];
		if (t->taglen == taglen && memcmp(t->tag, tag, taglen) == 0)
			return t;
	}
	for (i = 0; i < w->ntags; i++) {
		t = &w->tags[i];
		if (t->taglen == taglen && memcmp(t->tag, tag, taglen) == 0) {
			w->last = i;
			return t;
		}
	}
	if (w->ntags == STREAM_WRITER_TAGS) {
		/* reuse the slot after the last one used, round robin */
		i = (w->last + 1) % STREAM_WRITER_TAGS;
		t = &w->tags[i];
		if (writer_emit(w, t) == -1)
			return NULL;
		free(t->tag);
	} else {
		if (w->tags == NULL &&
		    (w->tags = calloc(STREAM_WRITER_TAGS, sizeof *w->tags)) == NULL)
			return NULL;
		i = w->ntags++;
		t = &w->tags[i];
	}
	if ((t->tag = malloc(taglen + 1)) == NULL)
		return NULL;
	memcpy(t->tag, tag, taglen);
	t->tag[taglen] = '\0';
	t->taglen = taglen;
	w->last = i;
	return t;
}

int
stream_writer_add(struct stream_writer *w, const char *tag, size_t taglen,
    uint32_t sec, uint32_t nsec, const unsigned char *rec, size_t reclen)
{
	struct stream_writer_tag *t;
	unsigned char *p;

	if ((t = writer_tag(w, tag, taglen)) == NULL)
		return -1;
	if (buf_reserve(&t->entries, STREAM_ENTRY_HEAD + reclen) == -1)
		return -1;
	p = t->entries.p + t->entries.len;
	stream_entry_head(p, sec, nsec);
	memcpy(p + STREAM_ENTRY_HEAD, rec, reclen);
	t->entries.len += STREAM_ENTRY_HEAD + reclen;
	t->count++;
	if (t->entries.len >= w->flush_bytes)
		return writer_emit(w, t);
	return 0;
}

int
stream_writer_add_entries(struct stream_writer *w, const char *tag,
    size_t taglen, const unsigned char *entries, size_t len, size_t count)
{
	struct stream_writer_tag *t;

	if ((t = writer_tag(w, tag, taglen)) == NULL)
		return -1;
	if (buf_add(&t->entries, entries, len) == -1)
		return -1;
	t->count += count;
	if (t->entries.len >= w->flush_bytes)
		return writer_emit(w, t);
	return 0;
}

int
stream_writer_flush(struct stream_writer *w)
{
	for (size_t i = 0; i < w->ntags; i++)
		if (writer_emit(w, &w->tags[i]) == -1)
			return -1;
	return 0;
}

void
stream_writer_free(struct stream_writer *w)
{
	for (size_t i = 0; i < w->ntags; i++) {
		free(w->tags[i].tag);
		buf_free(&w->tags[i].entries);
	}
	free(w->tags);
	buf_free(&w->head);
	buf_free(&w->opts);
	buf_free(&w->gz);
	w->tags = NULL;
	w->ntags = 0;
}

int
stream_out_fd(void *ctx, struct iovec *iov, int iovcnt)
{
	return io_writev_all(*(int *)ctx, iov, iovcnt);
}
