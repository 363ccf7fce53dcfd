/* format: Fluentd's <format> section as a library: one event (tag, time,
 * msgpack record) -> bytes of output.
 *
 * Used by lf-cat (-o), lf-file and lf-exec, so every tool writes the same
 * bytes for the same options.  Formats, with Fluentd's names, defaults
 * and line shapes:
 *	out_file	TIME<d>TAG<d>JSON<nl>: delimiter "\t" (SPACE, COMMA
 *			accepted, as Fluentd); TIME by time_format, or
 *			without one ISO 8601 to the second in the zone
 *			(2024-05-01T12:34:56+09:00; Z in UTC);
 *			--no-output-time, --no-output-tag drop a column
 *	json		the record as compact JSON (lib/json's rules), <nl>
 *	ltsv		label<ld>value joined by delimiter ("\t"), label
 *			delimiter ":"; the delimiter and newlines inside
 *			labels and values become " " (Fluentd's
 *			replacement; it leaves labels alone); str raw, bin
 *			base64, anything else its JSON text
 *	csv		the values of fields (required, "a,b"), delimiter
 *			"," ("\t" or TAB for a tab), force_quotes true (every
 *			field quoted, " doubled); without force_quotes, as
 *			Ruby's CSV: quoted only when it holds the delimiter,
 *			a quote, CR or LF, an empty string is "", nil is
 *			nothing
 *	tsv		the values of fields joined by delimiter ("\t"), no
 *			escaping (Fluentd's), except that a newline in a
 *			value becomes " " so that a line stays a line
 *	single_value	the value of message_key ("message") as text
 *	event		{"tag":..,"time":sec.nsec,"record":{..}}<nl>, lib/json's
 *			json_event: what lf-cat -i json reads back (lf-cat's
 *			-o json)
 *	msgpack		an lf-stream(5) PackedForward message per call
 *			(format_entries: one per batch), so that lf-cat and
 *			lf-buffer can replay it (Fluentd's msgpack formatter
 *			writes bare records, which lose the tag and time)
 * A value as text (csv, tsv, single_value, ltsv values): str raw, nil
 * empty (csv: see above; ltsv: null), true/false, integers, floats as
 * lib/json writes them, bin base64, arrays and maps their JSON text
 * (Ruby writes inspect(), which no other program reads).
 * add_newline (true) ends each line with "\n" (newline crlf: "\r\n");
 * out_file always ends its lines.
 *
 * Inject (Fluentd's <inject>, and v0.12's include_time_key and
 * include_tag_key that map onto it): with include_tag_key the record
 * gets tag_key ("tag"): the tag; with include_time_key it gets time_key
 * ("time"): the event time by time_type: string (the default here, as
 * include_time_key was in v0.12: time_format, or ISO 8601 as out_file),
 * float (sec.usec, Fluentd's microsecond float), unixtime (integer).
 * An injected key that is in the record already takes its value in
 * place; otherwise it goes last, tag before time, as Fluentd's
 * record[key] = value.
 *
 * time_format: strftime(3) conversions plus Fluentd's %N (9 digits),
 * %<w>N (w digits), %L (3 digits), %:z (+09:00).  The zone: local time
 * by default, --utc, --localtime, or --timezone ("+09:00", "Asia/Tokyo"). */
#ifndef LF_FORMAT_H
#define LF_FORMAT_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum format_type {
	FORMAT_OUT_FILE, FORMAT_JSON, FORMAT_LTSV, FORMAT_CSV, FORMAT_TSV,
	FORMAT_SINGLE_VALUE, FORMAT_MSGPACK, FORMAT_EVENT,
};

enum format_time_type {
	FORMAT_TIME_STRING, FORMAT_TIME_FLOAT, FORMAT_TIME_UNIXTIME,
};

/* Every string is borrowed: it must live until format_new returns, which
 * copies what it keeps.  NULL is "not set", the format's default. */
struct format_conf {
	enum format_type type;		/* out_file */
	int include_time_key;		/* 0 */
	const char *time_key;		/* "time" */
	int include_tag_key;		/* 0 */
	const char *tag_key;		/* "tag" */
	enum format_time_type time_type;	/* string */
	const char *time_format;	/* NULL: ISO 8601 */
	int utc;			/* 0: local time */
	const char *timezone;
	const char *delimiter;		/* per format, see above */
	const char *label_delimiter;	/* ltsv ":" */
	const char *replacement;	/* ltsv " " */
	int add_newline;		/* 1 */
	int crlf;			/* newline crlf: 0 */
	const char *fields;		/* csv, tsv: "a,b,c" */
	int force_quotes;		/* csv: 1 */
	const char *message_key;	/* single_value: "message" */
	int output_time, output_tag;	/* out_file: 1, 1 */
};

void format_conf_default(struct format_conf *c);

/* Options shared by lf-cat, lf-file and lf-exec: a getopt_long table
 * fragment ending in a zero entry, long names as Fluentd's <format> and
 * <inject> parameters with '-' for '_' (--format, --include-time-key,
 * --time-key ...), val codes from FORMAT_OPT_BASE up.  Copy it into the
 * tool's own table.  Each code goes to format_option: 0, or -1 with a
 * message in err.  --format takes the names above; boolean options take
 * an optional =BOOL. */
#define FORMAT_OPT_BASE	0x5200
#define FORMAT_OPT_END	(FORMAT_OPT_BASE + 0x100)	/* codes below */
#define FORMAT_OPT_FORMAT	FORMAT_OPT_BASE		/* --format's code */
extern const struct option format_options[];
int format_option(struct format_conf *c, int code, const char *arg, char *err,
    size_t n);
/* For a usage message, one option per line. */
extern const char format_usage[];

/* The name given to --format: 0 and *t set, or -1. */
int format_type_name(const char *name, enum format_type *t);

struct formatter;

/* NULL with a message in err on a bad configuration (csv without
 * fields, an unknown timezone ...) or no memory. */
struct formatter *format_new(const struct format_conf *c, char *err,
    size_t n);

/* One event appended to out.  0, or -1 (the record is not one msgpack
 * map, or no memory) with out as it was. */
int format_event(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, uint32_t sec, uint32_t nsec, const unsigned char *rec,
    size_t reclen);

/* A batch of one tag: canonical entries (lib/stream's stream_iter) and
 * their count, appended to out: each event as format_event, or for
 * msgpack one PackedForward message.  0, or -1 with out as it was. */
int format_entries(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, const unsigned char *entries, size_t len, size_t count);

/* 1 if the output is binary (msgpack): not for a terminal. */
int format_binary(const struct formatter *f);

void format_free(struct formatter *f);

#endif
