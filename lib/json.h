/* json: records between msgpack and text.
 *
 * Output (msgpack -> text) reads msgpack bytes in place with mp_read, so
 * it allocates nothing but the output buf.  One value becomes compact
 * JSON (no spaces) by these rules:
 *	nil		null
 *	bool		true, false
 *	int		exact decimal
 *	float		the shorter of %.15g, %.16g and %.17g that reads back
 *			to the same double, with ".0" added when it has no '.'
 *			or 'e', so it reads back as a float (1.0 -> 1.0).  A
 *			float32 is written as the double it widens to.
 *			NaN and the infinities -> null
 *	str		a string.  " \ and control characters are escaped
 *			(\b \f \n \r \t, the others \u00XX); valid UTF-8 is
 *			copied; a byte that is not part of valid UTF-8 is
 *			written as \u00XX of its value (read as Latin-1), so
 *			the output is always valid UTF-8
 *	bin		a string of the bytes in base64 (standard, padded)
 *	ext 0, 8 bytes	EventTime (BE uint32 sec, BE uint32 nsec < 10^9):
 *			the number sec.nnnnnnnnn
 *	other ext	a string of the payload in base64
 *	array, map	recursive, at most MP_MAXDEPTH non-empty containers
 *			deep.  A str or bin key is a string of its bytes (as
 *			str); any other key is its own JSON text made a string
 *			(1 -> "1", [1,"a"] -> "[1,\"a\"]")
 * Duplicate map keys are written as they come.
 *
 * Every function returns 0, or -1 on malformed or truncated input or no
 * memory, leaving out as it was.  The formatters take a record: exactly
 * one map filling rec[0..reclen).
 *
 * Input (text -> msgpack) parses with yajl's event API and packs with
 * msgpack-c into a buf.  (yajl's tree API would be shorter but keeps
 * strings as C strings, cutting "a\u0000b" to "a".) */
#ifndef LF_JSON_H
#define LF_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"

/* A parsed record nests at most this deep (the record itself is 1), so
 * that an entry [time, record] stays within MP_MAXDEPTH. */
#define JSON_MAXDEPTH	(MP_MAXDEPTH - 1)

/* One msgpack value at p[0..n) -> JSON, appended to out; *used (if not
 * NULL) is set to the value's size in bytes. */
int json_value(struct buf *out, const unsigned char *p, size_t n, size_t *used);

/* {"tag":<tag>,"time":<sec>.<9-digit nsec>,"record":<json>}\n
 * nsec must be below 10^9. */
int json_event(struct buf *out, const char *tag, size_t taglen, uint32_t sec,
    uint32_t nsec, const unsigned char *rec, size_t reclen);

/* Fluentd's ltsv formatter: label:value pairs joined by TAB, then a
 * newline.  str and bin labels and str values are written raw, except
 * that TAB and newline become a space (Fluentd's replacement " "; done
 * in labels too, which Fluentd does not, to keep the line a line).  bin
 * values are base64; any other value or label is its JSON text
 * (nil -> null, {"a":1} -> {"a":1}). */
int json_ltsv(struct buf *out, const unsigned char *rec, size_t reclen);

/* ltsv with Fluentd's delimiter, label_delimiter and replacement (the
 * delimiter and newlines inside labels and values become it), and no
 * newline at the end (lib/format adds it).  json_ltsv is this with
 * "\t", ":", " " and a newline. */
struct json_ltsv_opt {
	const char *delim;
	size_t dlen;
	const char *ldelim;
	size_t ldlen;
	const char *repl;
	size_t rlen;
};
int json_ltsv_opt(struct buf *out, const unsigned char *rec, size_t reclen,
    const struct json_ltsv_opt *opt);

/* A record (exactly one map filling rec[0..reclen)) as compact JSON, no
 * newline: Fluentd's json formatter. */
int json_map(struct buf *out, const unsigned char *rec, size_t reclen);

/* One msgpack value as text, Ruby's to_s where it reads well: str raw,
 * nil nothing, bin base64, anything else its JSON text (json_value). */
int json_text(struct buf *out, const unsigned char *p, size_t n, size_t *used);

/* Fluentd's out_file formatter: TIME\tTAG\tJSON\n with TIME in ISO 8601
 * to the second, 2024-05-01T12:34:56+09:00 in local time or
 * 2024-05-01T03:34:56Z when utc is set.  The tag is written raw. */
int json_outfile(struct buf *out, const char *tag, size_t taglen,
    uint32_t sec, uint32_t nsec, const unsigned char *rec, size_t reclen,
    int utc);

struct json_in {
	const char *time_key;		/* NULL: no time key */
	const char *time_format;	/* NULL: numeric epoch, see below */
	int keep_time_key;
	int utc;			/* time_format without a zone is UTC */
};

/* One JSON object (a line; white space around it is allowed) -> one
 * msgpack map appended to rec, keys in their order, duplicates kept.
 * Values: null, true, false; strings -> str; numbers without '.', 'e'
 * or 'E' -> int (uint64 or int64, out of range -> float64), the others
 * -> float64; arrays and objects nest to JSON_MAXDEPTH.
 *
 * If opt->time_key names a top-level key, its value is the event time
 * and is removed from the record unless opt->keep_time_key: a number, or
 * without time_format a string, is read as decimal epoch seconds exactly
 * (timefmt_number); a string with time_format goes to timefmt_parse.
 * If the key appears twice the last one is the time.  *has_time says if
 * it was found; if not, *sec and *nsec are 0.  opt may be NULL.
 *
 * -1 with a message in err (at most errlen bytes) if the text is not
 * JSON, not an object, too deep, or its time will not parse; rec is then
 * as it was. */
int json_parse_record(const char *line, size_t len, const struct json_in *opt,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, int *has_time,
    char *err, size_t errlen);

/* The envelope json_event writes, {"tag":..,"time":..,"record":{..}},
 * keys in any order, each exactly once, no others.  time is a number or
 * a string of one, read exactly (timefmt_number).  The tag is appended to
 * tag with a NUL after it (not counted in tag->len); the record is
 * appended to rec as by json_parse_record.  What json_event writes
 * parses back to a record that json_event writes byte for byte the same,
 * except for invalid UTF-8 (which comes back as U+0080..U+00FF) and an
 * EventTime ext inside a record (which comes back as a float); bin and
 * other ext come back as the str of their base64.  -1 with err as above;
 * tag and rec are then as they were. */
int json_parse_event(const char *line, size_t len, struct buf *tag,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen);

/* The forward protocol's JSON mode: a connection whose first byte is
 * '{' or '[' sends JSON values one after another (Fluentd reads them
 * with yajl's stream parser).  Each value, converted to msgpack as
 * json_parse_record converts a record, is appended to out as it ends:
 * out.p[0 .. whole) are complete values for the forward-protocol reader,
 * the rest is the value under way.  A top-level scalar is no message: it
 * is let go and counted in skipped.  -1 with err once the text is not
 * JSON, a value nests too deep, or the value under way passes max bytes;
 * the stream is then lost.  The memory it holds is at most about
 * out's capacity plus text (the value under way, as text and as
 * msgpack). */
struct json_stream {
	struct buf out;
	size_t whole;
	size_t max;
	size_t text;		/* bytes of text since a value last ended */
	unsigned long skipped;
	char err[160];
	void *st;
};

int json_stream_init(struct json_stream *s, size_t max);	/* 0, -1 ENOMEM */
int json_stream_feed(struct json_stream *s, const void *p, size_t n);
/* At the end of input: -1 if a value was cut short. */
int json_stream_end(struct json_stream *s);
/* The complete values were used: drop them from out. */
void json_stream_taken(struct json_stream *s);
void json_stream_free(struct json_stream *s);

#endif
