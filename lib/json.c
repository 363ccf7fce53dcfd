#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <openssl/evp.h>
#include <yajl/yajl_parse.h>

#include "json.h"
#include "timefmt.h"

/*
 * Output: msgpack -> JSON.
 */

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
ismap(const unsigned char *p, size_t n)
{
	return n > 0 && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf);
}

/* The length of the valid UTF-8 sequence of two or more bytes at p, or 0.
 * RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static int
json_esc(struct buf *out, unsigned c)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', 'u', '0', '0', hex[c >> 4 & 0xf], hex[c & 0xf] };

	switch (c) {
	case '"': return buf_add(out, "\\\"", 2);
	case '\\': return buf_add(out, "\\\\", 2);
	case '\b': return buf_add(out, "\\b", 2);
	case '\f': return buf_add(out, "\\f", 2);
	case '\n': return buf_add(out, "\\n", 2);
	case '\r': return buf_add(out, "\\r", 2);
	case '\t': return buf_add(out, "\\t", 2);
	}
	return buf_add(out, e, sizeof e);
}

static int
json_str(struct buf *out, const unsigned char *p, size_t n)
{
	size_t i = 0, start = 0, k;
	unsigned c;

	if (buf_addc(out, '"') == -1)
		return -1;
	while (i < n) {
		c = p[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80 && (k = utf8_seq(p + i, n - i)) > 0) {
			i += k;
			continue;
		}
		/* copy runs of plain bytes at once; escape the odd one */
		if (buf_add(out, p + start, i - start) == -1 ||
		    json_esc(out, c) == -1)
			return -1;
		start = ++i;
	}
	if (buf_add(out, p + start, n - start) == -1)
		return -1;
	return buf_addc(out, '"');
}

/* Base64 without quotes. */
static int
json_b64raw(struct buf *out, const unsigned char *p, size_t n)
{
	size_t chunk;

	while (n > 0) {
		/* whole groups of 3, so padding comes only at the very end */
		chunk = n > 3 * 65536 ? 3 * 65536 : n;
		if (buf_reserve(out, 4 * ((chunk + 2) / 3) + 1) == -1)
			return -1;
		out->len += (size_t)EVP_EncodeBlock(out->p + out->len, p,
		    (int)chunk);
		p += chunk;
		n -= chunk;
	}
	return 0;
}

static int
json_b64(struct buf *out, const unsigned char *p, size_t n)
{
	if (buf_addc(out, '"') == -1 || json_b64raw(out, p, n) == -1)
		return -1;
	return buf_addc(out, '"');
}

static int
json_u64(struct buf *out, uint64_t v)
{
	char s[20];
	size_t i = sizeof s;

	do
		s[--i] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	return buf_add(out, s + i, sizeof s - i);
}

static int
json_i64(struct buf *out, int64_t v)
{
	if (v >= 0)
		return json_u64(out, (uint64_t)v);
	if (buf_addc(out, '-') == -1)
		return -1;
	/* -(v + 1) + 1 stays in range for INT64_MIN */
	return json_u64(out, (uint64_t)(-(v + 1)) + 1);
}

static int
json_double(struct buf *out, double d)
{
	char s[40];
	int prec, n = 0;

	if (!isfinite(d))
		return buf_add(out, "null", 4);
	for (prec = 15; prec <= 17; prec++) {
		n = snprintf(s, sizeof s, "%.*g", prec, d);
		if (strtod(s, NULL) == d)
			break;
	}
	if (buf_add(out, s, (size_t)n) == -1)
		return -1;
	/* "1" would read back as an integer */
	if (strpbrk(s, ".e") == NULL)
		return buf_add(out, ".0", 2);
	return 0;
}

static int
json_time(struct buf *out, uint32_t sec, uint32_t nsec)
{
	char s[24];
	int n;

	n = snprintf(s, sizeof s, "%" PRIu32 ".%09" PRIu32, sec, nsec);
	return buf_add(out, s, (size_t)n);
}

static int
json_ext(struct buf *out, const struct mp_obj *o)
{
	uint32_t nsec;

	if (o->ext == 0 && o->n == 8 && (nsec = be32(o->p + 4)) < 1000000000)
		return json_time(out, be32(o->p), nsec);
	return json_b64(out, o->p, o->n);
}

/* Make out->p[start..len), JSON text we wrote, into a JSON string in
 * place.  It holds no raw control characters, so only " and \ need a
 * backslash; work from the end so nothing is overwritten. */
static int
json_quote(struct buf *out, size_t start)
{
	size_t n = out->len - start, q = 0, i, j;
	unsigned char c;

	for (i = start; i < out->len; i++)
		if (out->p[i] == '"' || out->p[i] == '\\')
			q++;
	if (buf_reserve(out, q + 2) == -1)
		return -1;
	j = start + n + q + 1;
	out->p[j--] = '"';
	for (i = n; i-- > 0;) {
		c = out->p[start + i];
		out->p[j--] = c;
		if (c == '"' || c == '\\')
			out->p[j--] = '\\';
	}
	out->p[start] = '"';
	out->len += q + 2;
	return 0;
}

static int json_val(struct buf *, const unsigned char **, const unsigned char *,
    unsigned);

static int
json_key(struct buf *out, const unsigned char **pp, const unsigned char *end,
    unsigned depth)
{
	const unsigned char *p = *pp;
	struct mp_obj o;
	size_t start = out->len;

	if (mp_read(&p, end, &o) == -1)
		return -1;
	if (o.type == MP_STR || o.type == MP_BIN) {
		*pp = p;
		return json_str(out, o.p, o.n);
	}
	if (json_val(out, pp, end, depth) == -1)
		return -1;
	return json_quote(out, start);
}

static int
json_array(struct buf *out, const unsigned char **pp, const unsigned char *end,
    uint32_t n, unsigned depth)
{
	uint32_t i;

	if (buf_addc(out, '[') == -1)
		return -1;
	for (i = 0; i < n; i++)
		if ((i > 0 && buf_addc(out, ',') == -1) ||
		    json_val(out, pp, end, depth) == -1)
			return -1;
	return buf_addc(out, ']');
}

static int
json_obj(struct buf *out, const unsigned char **pp, const unsigned char *end,
    uint32_t n, unsigned depth)
{
	uint32_t i;

	if (buf_addc(out, '{') == -1)
		return -1;
	for (i = 0; i < n; i++)
		if ((i > 0 && buf_addc(out, ',') == -1) ||
		    json_key(out, pp, end, depth) == -1 ||
		    buf_addc(out, ':') == -1 ||
		    json_val(out, pp, end, depth) == -1)
			return -1;
	return buf_addc(out, '}');
}

/* depth: non-empty containers around this value, as mp_scan counts. */
static int
json_val(struct buf *out, const unsigned char **pp, const unsigned char *end,
    unsigned depth)
{
	struct mp_obj o;

	if (mp_read(pp, end, &o) == -1)
		return -1;
	switch (o.type) {
	case MP_NIL:
		return buf_add(out, "null", 4);
	case MP_BOOL:
		return o.v.b ? buf_add(out, "true", 4) : buf_add(out, "false", 5);
	case MP_UINT:
		return json_u64(out, o.v.u);
	case MP_INT:
		return json_i64(out, o.v.i);
	case MP_FLOAT:
		return json_double(out, o.v.f);
	case MP_STR:
		return json_str(out, o.p, o.n);
	case MP_BIN:
		return json_b64(out, o.p, o.n);
	case MP_EXT:
		return json_ext(out, &o);
	case MP_ARRAY:
	case MP_MAP:
		if (o.n > 0 && depth >= MP_MAXDEPTH)
			return -1;
		if (o.type == MP_ARRAY)
			return json_array(out, pp, end, o.n, depth + (o.n > 0));
		return json_obj(out, pp, end, o.n, depth + (o.n > 0));
	}
	return -1;
}

int
json_value(struct buf *out, const unsigned char *p, size_t n, size_t *used)
{
	const unsigned char *q = p;
	size_t len = out->len;

	if (json_val(out, &q, p + n, 0) == -1) {
		out->len = len;
		return -1;
	}
	if (used != NULL)
		*used = (size_t)(q - p);
	return 0;
}

/* A record: one map and nothing after it. */
static int
json_record(struct buf *out, const unsigned char *rec, size_t reclen)
{
	const unsigned char *p = rec;

	if (!ismap(rec, reclen) || json_val(out, &p, rec + reclen, 0) == -1)
		return -1;
	return p == rec + reclen ? 0 : -1;
}

int
json_event(struct buf *out, const char *tag, size_t taglen, uint32_t sec,
    uint32_t nsec, const unsigned char *rec, size_t reclen)
{
	size_t len = out->len;

	if (nsec >= 1000000000 ||
	    buf_add(out, "{\"tag\":", 7) == -1 ||
	    json_str(out, (const unsigned char *)tag, taglen) == -1 ||
	    buf_add(out, ",\"time\":", 8) == -1 ||
	    json_time(out, sec, nsec) == -1 ||
	    buf_add(out, ",\"record\":", 10) == -1 ||
	    json_record(out, rec, reclen) == -1 ||
	    buf_add(out, "}\n", 2) == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

static const struct json_ltsv_opt ltsv_default = { "\t", 1, ":", 1, " ", 1 };

/* Raw bytes, with the line's delimiters made the replacement.  The
 * common case (one-byte delimiter and replacement) is done in place. */
static int
ltsv_raw(struct buf *out, const unsigned char *p, size_t n,
    const struct json_ltsv_opt *o)
{
	size_t i, k, start;

	if (o->dlen == 1 && o->rlen == 1) {
		/* copy and replace in one pass: the common case, and hot */
		unsigned char *d, dc = (unsigned char)o->delim[0],
		    rc = (unsigned char)o->repl[0];

		if (buf_reserve(out, n) == -1)
			return -1;
		d = out->p + out->len;
		for (i = 0; i < n; i++)
			d[i] = p[i] == dc || p[i] == '\n' ? rc : p[i];
		out->len += n;
		return 0;
	}
	for (i = 0, start = 0; i < n;) {
		if (p[i] == '\n')
			k = 1;
		else if (o->dlen > 0 && n - i >= o->dlen &&
		    memcmp(p + i, o->delim, o->dlen) == 0)
			k = o->dlen;
		else {
			i++;
			continue;
		}
		if (buf_add(out, p + start, i - start) == -1 ||
		    buf_add(out, o->repl, o->rlen) == -1)
			return -1;
		i += k;
		start = i;
	}
	return buf_add(out, p + start, n - start);
}

/* A label or a value: str (and bin labels) raw, bin values base64,
 * everything else JSON text. */
static int
ltsv_item(struct buf *out, const unsigned char **pp, const unsigned char *end,
    int label, const struct json_ltsv_opt *opt)
{
	const unsigned char *p = *pp;
	struct mp_obj o;

	if (mp_read(&p, end, &o) == -1)
		return -1;
	if (o.type == MP_STR || (label && o.type == MP_BIN)) {
		*pp = p;
		return ltsv_raw(out, o.p, o.n, opt);
	}
	if (o.type == MP_BIN) {
		*pp = p;
		return json_b64raw(out, o.p, o.n);
	}
	return json_val(out, pp, end, 1);
}

/* A delimiter: buf_add without the call when there is room. */
static inline int
ltsv_sep(struct buf *out, const char *s, size_t n)
{
	if (out->cap - out->len < n)
		return buf_add(out, s, n);
	memcpy(out->p + out->len, s, n);
	out->len += n;
	return 0;
}

static int
ltsv_record(struct buf *out, const unsigned char *rec, size_t reclen,
    const struct json_ltsv_opt *opt)
{
	const unsigned char *p = rec, *end = rec + reclen;
	struct mp_obj o;
	uint32_t i;

	if (!ismap(rec, reclen) || mp_read(&p, end, &o) == -1)
		return -1;
	for (i = 0; i < o.n; i++)
		if ((i > 0 && ltsv_sep(out, opt->delim, opt->dlen) == -1) ||
		    ltsv_item(out, &p, end, 1, opt) == -1 ||
		    ltsv_sep(out, opt->ldelim, opt->ldlen) == -1 ||
		    ltsv_item(out, &p, end, 0, opt) == -1)
			return -1;
	return p == end ? 0 : -1;
}

int
json_ltsv_opt(struct buf *out, const unsigned char *rec, size_t reclen,
    const struct json_ltsv_opt *opt)
{
	size_t len = out->len;

	if (ltsv_record(out, rec, reclen, opt) == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

int
json_ltsv(struct buf *out, const unsigned char *rec, size_t reclen)
{
	size_t len = out->len;

	if (ltsv_record(out, rec, reclen, &ltsv_default) == -1 ||
	    buf_addc(out, '\n') == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

int
json_text(struct buf *out, const unsigned char *p, size_t n, size_t *used)
{
	const unsigned char *q = p;
	struct mp_obj o;
	size_t len = out->len;
	int rc;

	if (mp_read(&q, p + n, &o) == -1)
		return -1;
	switch (o.type) {
	case MP_NIL:
		rc = 0;
		break;
	case MP_STR:
		rc = buf_add(out, o.p, o.n);
		break;
	case MP_BIN:
		rc = json_b64raw(out, o.p, o.n);
		break;
	default:
		return json_value(out, p, n, used);
	}
	if (rc == -1) {
		out->len = len;
		return -1;
	}
	if (used != NULL)
		*used = (size_t)(q - p);
	return 0;
}

int
json_map(struct buf *out, const unsigned char *rec, size_t reclen)
{
	size_t len = out->len;

	if (json_record(out, rec, reclen) == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

/* Ruby's Time#iso8601, as Fluentd's out_file writes it. */
static int
iso8601(struct buf *out, uint32_t sec, int utc)
{
	time_t t = (time_t)sec;
	struct tm tm;
	char s[64];
	size_t n;
	long off;

	if (utc ? gmtime_r(&t, &tm) == NULL : localtime_r(&t, &tm) == NULL)
		return -1;
	if ((n = strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return -1;
	if (utc)
		return buf_add(out, s, n) == -1 ? -1 : buf_addc(out, 'Z');
	off = tm.tm_gmtoff;
	return buf_printf(out, "%.*s%c%02ld:%02ld", (int)n, s,
	    off < 0 ? '-' : '+', labs(off) / 3600, labs(off) % 3600 / 60);
}

int
json_outfile(struct buf *out, const char *tag, size_t taglen, uint32_t sec,
    uint32_t nsec, const unsigned char *rec, size_t reclen, int utc)
{
	size_t len = out->len;

	(void)nsec;	/* out_file's default time has no fraction */
	if (iso8601(out, sec, utc) == -1 ||
	    buf_addc(out, '\t') == -1 ||
	    buf_add(out, tag, taglen) == -1 ||
	    buf_addc(out, '\t') == -1 ||
	    json_record(out, rec, reclen) == -1 ||
	    buf_addc(out, '\n') == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

/*
 * Input: JSON -> msgpack, driven by yajl's events.
 *
 * A container's size is not known until it ends, so each one starts with
 * a 5-byte map32/array32 header; at its end the header is rewritten in
 * the smallest form and the body moved up, giving the same bytes as
 * msgpack-c's own packing.
 */

enum { JP_NONE, JP_TAG, JP_TIME, JP_RECORD };

struct jp_frame {
	size_t hdr;		/* where the placeholder header is in rec */
	uint32_t count;		/* elements, or pairs */
	int map;
};

struct jp {
	struct buf *rec;
	msgpack_packer pk;
	struct jp_frame st[JSON_MAXDEPTH];
	unsigned n;		/* open containers of the record */
	int done;		/* the record has ended */
	/* json_parse_record */
	const struct json_in *opt;
	int want_time;		/* the next value is the time key's */
	int keep;		/* and it stays in the record too */
	int has_time;
	/* json_stream: any values, one after another */
	int values;
	size_t whole;		/* rec's bytes of complete values */
	unsigned long skipped;	/* top-level scalars let go */
	/* json_parse_event */
	int envelope;
	int open;		/* inside the envelope object */
	int field;		/* JP_*: the key whose value comes next */
	unsigned seen;		/* 1 << JP_* */
	struct buf *tag;
	uint32_t sec, nsec;
	char *err;
	size_t errlen;
	int failed;
};

/* Record the first error; a zero return cancels yajl. */
static int
jp_fail(struct jp *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
jp_fail(struct jp *j, const char *fmt, ...)
{
	va_list ap;

	if (!j->failed && j->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(j->err, j->errlen, fmt, ap);
		va_end(ap);
	}
	j->failed = 1;
	return 0;
}

static int
jp_nomem(struct jp *j)
{
	return jp_fail(j, "out of memory");
}

static int
jp_open(struct jp *j, int map)
{
	static const unsigned char ph[2][5] = {
		{ 0xdd, 0, 0, 0, 0 }, { 0xdf, 0, 0, 0, 0 }
	};

	if (j->n == JSON_MAXDEPTH)
		return jp_fail(j, "nested deeper than %d levels", JSON_MAXDEPTH);
	if (j->n > 0 && !j->st[j->n - 1].map)
		j->st[j->n - 1].count++;
	j->st[j->n].hdr = j->rec->len;
	j->st[j->n].count = 0;
	j->st[j->n].map = map;
	j->n++;
	if (buf_add(j->rec, ph[map], 5) == -1)
		return jp_nomem(j);
	return 1;
}

static int
jp_close(struct jp *j)
{
	struct jp_frame *f = &j->st[--j->n];
	unsigned char *h = j->rec->p + f->hdr;
	uint32_t c = f->count;
	size_t hl;

	if (c < 16) {
		h[0] = (unsigned char)((f->map ? 0x80 : 0x90) | c);
		hl = 1;
	} else if (c < 65536) {
		h[0] = f->map ? 0xde : 0xdc;
		h[1] = (unsigned char)(c >> 8);
		h[2] = (unsigned char)c;
		hl = 3;
	} else {
		h[1] = (unsigned char)(c >> 24);
		h[2] = (unsigned char)(c >> 16);
		h[3] = (unsigned char)(c >> 8);
		h[4] = (unsigned char)c;
		hl = 5;
	}
	if (hl < 5) {
		memmove(h + hl, h + 5, j->rec->len - f->hdr - 5);
		j->rec->len -= 5 - hl;
	}
	if (j->n == 0) {
		j->done = 1;
		j->whole = j->rec->len;
	}
	return 1;
}

/* A scalar is about to be packed into the record. */
static void
jp_count(struct jp *j)
{
	if (!j->st[j->n - 1].map)
		j->st[j->n - 1].count++;
}

static int
jp_settime(struct jp *j, const char *s, size_t n, int isstr)
{
	const char *fmt = j->opt != NULL ? j->opt->time_format : NULL;
	int rc;

	if (isstr && fmt != NULL)
		rc = timefmt_parse(s, n, fmt, j->opt->utc, &j->sec, &j->nsec);
	else
		rc = timefmt_number(s, n, &j->sec, &j->nsec);
	if (rc == -1)
		return jp_fail(j, "cannot parse time \"%.*s\"%s%s",
		    n > 64 ? 64 : (int)n, s, fmt != NULL && isstr ?
		    " with format " : "", fmt != NULL && isstr ? fmt : "");
	j->has_time = 1;
	return 1;
}

enum { JV_NULL, JV_BOOL, JV_NUMBER, JV_STRING, JV_MAP, JV_ARRAY };

/* A value outside the record: the envelope's, or the record's start. */
static int
jp_outer(struct jp *j, int type, const char *s, size_t n)
{
	if (!j->envelope || !j->open) {
		if (type != JV_MAP || j->done)
			return jp_fail(j, "not a JSON object");
		if (!j->envelope)
			return jp_open(j, 1);
		j->open = 1;
		return 0;	/* 0: nothing to pack, go on */
	}
	switch (j->field) {
	case JP_TAG:
		if (type != JV_STRING)
			return jp_fail(j, "\"tag\" is not a string");
		if (buf_add(j->tag, s, n) == -1)
			return jp_nomem(j);
		return 1;
	case JP_TIME:
		if (type != JV_NUMBER && type != JV_STRING)
			return jp_fail(j, "\"time\" is not a number");
		return jp_settime(j, s, n, 0);
	case JP_RECORD:
		if (type != JV_MAP)
			return jp_fail(j, "\"record\" is not an object");
		return jp_open(j, 1);
	}
	return jp_fail(j, "not a JSON object");
}

/* Called before every value.  1: pack it into the record; 0 with
 * j->failed clear: it was taken care of; 0 with j->failed: stop. */
static int
jp_begin(struct jp *j, int type, const char *s, size_t n)
{
	int keep;

	if (j->n == 0 && j->values) {
		if (type == JV_MAP || type == JV_ARRAY)
			return 1;
		j->skipped++;	/* no message is a scalar */
		return 0;
	}
	if (j->n == 0) {
		(void)jp_outer(j, type, s, n);
		return 0;
	}
	if (!j->want_time)
		return 1;
	j->want_time = 0;
	keep = j->keep;
	if (type != JV_NUMBER && type != JV_STRING)
		return jp_fail(j, "time key \"%s\" is not a number or a string",
		    j->opt->time_key);
	if (jp_settime(j, s, n, type == JV_STRING) == 0)
		return 0;
	return keep;
}

/* yajl callbacks: nonzero goes on.  jp_begin's 0 without failure means
 * "handled", which is not a reason to stop. */
#define JP_BEGIN(j, t, s, n) do {					\
	if (jp_begin((j), (t), (s), (n)) == 0)				\
		return !(j)->failed;					\
} while (0)

static int
jp_null(void *ctx)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_NULL, NULL, 0);
	jp_count(j);
	return msgpack_pack_nil(&j->pk) == 0 ? 1 : jp_nomem(j);
}

static int
jp_bool(void *ctx, int b)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_BOOL, NULL, 0);
	jp_count(j);
	return (b ? msgpack_pack_true(&j->pk) : msgpack_pack_false(&j->pk)) == 0 ?
	    1 : jp_nomem(j);
}

static int
jp_packnum(struct jp *j, const char *s, size_t n)
{
	char tmp[64], *t = tmp;
	int rc, isint = memchr(s, '.', n) == NULL && memchr(s, 'e', n) == NULL &&
	    memchr(s, 'E', n) == NULL;
	unsigned long long u;
	long long i;

	if (n >= sizeof tmp && (t = malloc(n + 1)) == NULL)
		return jp_nomem(j);
	memcpy(t, s, n);
	t[n] = '\0';
	errno = 0;
	if (isint && t[0] == '-' && (i = strtoll(t, NULL, 10), errno == 0))
		rc = msgpack_pack_int64(&j->pk, i);
	else if (isint && t[0] != '-' &&
	    (u = strtoull(t, NULL, 10), errno == 0))
		rc = msgpack_pack_uint64(&j->pk, u);
	else
		rc = msgpack_pack_double(&j->pk, strtod(t, NULL));
	if (t != tmp)
		free(t);
	return rc == 0 ? 1 : jp_nomem(j);
}

static int
jp_number(void *ctx, const char *s, size_t n)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_NUMBER, s, n);
	jp_count(j);
	return jp_packnum(j, s, n);
}

static int
jp_packstr(struct jp *j, const unsigned char *s, size_t n)
{
	if (n > UINT32_MAX)
		return jp_fail(j, "string too long");
	if (msgpack_pack_str(&j->pk, n) != 0 ||
	    msgpack_pack_str_body(&j->pk, s, n) != 0)
		return jp_nomem(j);
	return 1;
}

static int
jp_string(void *ctx, const unsigned char *s, size_t n)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_STRING, (const char *)s, n);
	jp_count(j);
	return jp_packstr(j, s, n);
}

static int
jp_start_map(void *ctx)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_MAP, NULL, 0);
	return jp_open(j, 1);
}

static int
jp_start_array(void *ctx)
{
	struct jp *j = ctx;

	JP_BEGIN(j, JV_ARRAY, NULL, 0);
	return jp_open(j, 0);
}

static int
jp_envkey(struct jp *j, const unsigned char *k, size_t n)
{
	static const char *names[] = { NULL, "tag", "time", "record" };
	int f;

	for (f = JP_TAG; f <= JP_RECORD; f++)
		if (strlen(names[f]) == n && memcmp(names[f], k, n) == 0)
			break;
	if (f > JP_RECORD)
		return jp_fail(j, "unexpected key \"%.*s\"",
		    n > 64 ? 64 : (int)n, (const char *)k);
	if (j->seen & 1u << f)
		return jp_fail(j, "duplicate key \"%s\"", names[f]);
	j->seen |= 1u << f;
	j->field = f;
	return 1;
}

static int
jp_map_key(void *ctx, const unsigned char *k, size_t n)
{
	struct jp *j = ctx;
	const char *tk = j->opt != NULL ? j->opt->time_key : NULL;

	if (j->n == 0 && !j->values)
		return jp_envkey(j, k, n);
	if (j->n == 1 && tk != NULL && strlen(tk) == n && memcmp(tk, k, n) == 0) {
		j->want_time = 1;
		j->keep = j->opt->keep_time_key;
		if (!j->keep)
			return 1;
	}
	j->st[j->n - 1].count++;
	return jp_packstr(j, k, n);
}

static int
jp_end(void *ctx)
{
	struct jp *j = ctx;

	if (j->n > 0)
		return jp_close(j);
	/* the envelope's end */
	if (j->seen != (1u << JP_TAG | 1u << JP_TIME | 1u << JP_RECORD))
		return jp_fail(j, "missing %s", !(j->seen & 1u << JP_TAG) ?
		    "\"tag\"" : !(j->seen & 1u << JP_TIME) ? "\"time\"" :
		    "\"record\"");
	j->open = 0;
	j->done = 1;
	return 1;
}

static const yajl_callbacks jp_callbacks = {
	.yajl_null = jp_null,
	.yajl_boolean = jp_bool,
	.yajl_number = jp_number,
	.yajl_string = jp_string,
	.yajl_start_map = jp_start_map,
	.yajl_map_key = jp_map_key,
	.yajl_end_map = jp_end,
	.yajl_start_array = jp_start_array,
	.yajl_end_array = jp_end,
};

/* yajl's own message, on one line. */
static void
jp_yajlerr(struct jp *j, yajl_handle h, const char *line, size_t len)
{
	unsigned char *e;
	size_t n;

	if ((e = yajl_get_error(h, 0, (const unsigned char *)line, len)) == NULL) {
		jp_fail(j, "invalid JSON");
		return;
	}
	n = strlen((char *)e);
	while (n > 0 && (e[n - 1] == '\n' || e[n - 1] == ' '))
		n--;
	jp_fail(j, "%.*s", (int)n, (char *)e);
	yajl_free_error(h, e);
}

static int
jp_run(struct jp *j, const char *line, size_t len)
{
	yajl_handle h;
	yajl_status st;

	while (len > 0 && isspace((unsigned char)line[len - 1]))
		len--;
	if (len == 0)
		return jp_fail(j, "empty line"), -1;
	msgpack_packer_init(&j->pk, j->rec, buf_msgpack_write);
	if ((h = yajl_alloc(&jp_callbacks, NULL, j)) == NULL)
		return jp_nomem(j), -1;
	st = yajl_parse(h, (const unsigned char *)line, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st == yajl_status_error)
		jp_yajlerr(j, h, line, len);
	else if (st != yajl_status_ok && !j->failed)
		jp_fail(j, "parse cancelled");
	else if (st == yajl_status_ok && !j->done)
		jp_fail(j, "not a JSON object");
	yajl_free(h);
	return j->failed ? -1 : 0;
}

int
json_parse_record(const char *line, size_t len, const struct json_in *opt,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, int *has_time,
    char *err, size_t errlen)
{
	struct jp j;
	size_t start = rec->len;

	memset(&j, 0, sizeof j);
	j.rec = rec;
	j.opt = opt;
	j.err = err;
	j.errlen = errlen;
	if (jp_run(&j, line, len) == -1) {
		rec->len = start;
		return -1;
	}
	*sec = j.has_time ? j.sec : 0;
	*nsec = j.has_time ? j.nsec : 0;
	*has_time = j.has_time;
	return 0;
}

int
json_parse_event(const char *line, size_t len, struct buf *tag,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	struct jp j;
	size_t rstart = rec->len, tstart = tag->len;

	memset(&j, 0, sizeof j);
	j.rec = rec;
	j.tag = tag;
	j.envelope = 1;
	j.err = err;
	j.errlen = errlen;
	if (jp_run(&j, line, len) == -1 || buf_reserve(tag, 1) == -1) {
		if (!j.failed)
			jp_nomem(&j);
		rec->len = rstart;
		tag->len = tstart;
		return -1;
	}
	tag->p[tag->len] = '\0';
	*sec = j.sec;
	*nsec = j.nsec;
	return 0;
}

/* json_stream: values one after another, each into rec as it ends. */
struct json_stream_st {
	struct jp j;
	yajl_handle h;
};

int
json_stream_init(struct json_stream *s, size_t max)
{
	struct json_stream_st *st;

	memset(s, 0, sizeof *s);
	s->max = max;
	if ((st = calloc(1, sizeof *st)) == NULL)
		return -1;
	st->j.rec = &s->out;
	st->j.values = 1;
	st->j.err = s->err;
	st->j.errlen = sizeof s->err;
	msgpack_packer_init(&st->j.pk, &s->out, buf_msgpack_write);
	if ((st->h = yajl_alloc(&jp_callbacks, NULL, &st->j)) == NULL) {
		free(st);
		return -1;
	}
	yajl_config(st->h, yajl_allow_multiple_values, 1);
	s->st = st;
	return 0;
}

int
json_stream_feed(struct json_stream *s, const void *p, size_t n)
{
	struct json_stream_st *st = s->st;
	yajl_status rc;
	size_t before;

	if (st->j.failed)
		return -1;
	before = st->j.whole;
	rc = yajl_parse(st->h, p, n);
	if (rc == yajl_status_error && !st->j.failed)
		jp_yajlerr(&st->j, st->h, p, n);
	else if (rc != yajl_status_ok && !st->j.failed)
		jp_fail(&st->j, "parse cancelled");
	s->whole = st->j.whole;
	s->skipped = st->j.skipped;
	/* yajl holds a token cut by a read (a long string) in a buffer of
	 * its own: count the text since a value last ended, an upper bound */
	s->text = st->j.whole != before ? n : s->text + n;
	if (!st->j.failed && (s->out.len - s->whole > s->max || s->text > s->max))
		jp_fail(&st->j, "a JSON value of more than %zu bytes", s->max);
	return st->j.failed ? -1 : 0;
}

int
json_stream_end(struct json_stream *s)
{
	struct json_stream_st *st = s->st;

	if (st->j.failed)
		return -1;
	if (s->out.len > s->whole || st->j.n > 0)
		return jp_fail(&st->j, "a JSON value cut short"), -1;
	return 0;
}

void
json_stream_taken(struct json_stream *s)
{
	struct json_stream_st *st = s->st;

	buf_consume(&s->out, s->whole);
	/* the open containers' headers moved down with the rest */
	for (unsigned i = 0; i < st->j.n; i++)
		st->j.st[i].hdr -= s->whole;
	st->j.whole = s->whole = 0;
}

void
json_stream_free(struct json_stream *s)
{
	struct json_stream_st *st = s->st;

	if (st != NULL) {
		yajl_free(st->h);
		free(st);
	}
	buf_free(&s->out);
	s->st = NULL;
}
