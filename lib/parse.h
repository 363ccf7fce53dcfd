/* parse: Fluentd's <parse> section as a library: one text line -> one
 * msgpack record and its event time.
 *
 * Used by lf-tail (in_tail), lf-cat and lf-recv's HTTP input.  Formats,
 * with Fluentd's names, defaults and record shapes:
 *	none		{message_key: line}, message_key "message"; no time
 *	ltsv		label:value fields split on delimiter ("\t"), each on
 *			its first label_delimiter (":"); a field without one
 *			is dropped
 *	json		one JSON object (lib/json's json_reader: yajl, one
 *			handle a parser); time_type float unless time_format
 *			is set; the time key, if twice, is the last one and
 *			both are taken out (Fluentd's hash has one).  A
 *			top-level array, which Fluentd takes as one record
 *			per object, is an error here (one line, one record)
 *	regexp		expression, PCRE2 with named captures (JIT when the
 *			library has it); "/re/flags" (i, m as Ruby's: '.'
 *			matches newline, x) or a bare re; ^ and $ match at
 *			line ends as in Ruby.  Captures that took part, in
 *			the order of their groups, as strings
 *	apache2		Fluentd's expression; host user method path code size
 *			referer agent, always all eight, "-" as nil, code and
 *			size integers (code 0 nil); time "%d/%b/%Y:%H:%M:%S
 *			%z"; keep_time_key adds the text as "time"; no types
 *	apache_error nginx   regexp with Fluentd's expressions (nginx: time
 *			format as apache2's; apache_error: a lenient time)
 *	syslog		message_format rfc3164 (default), rfc5424 or auto;
 *			with_priority; Fluentd's regexp engine, fields (pri,
 *			time with keep_time_key, host ident pid [msgid
 *			extradata] message) and time formats (rfc3164 "%b %d
 *			%H:%M:%S", this year; rfc5424 "%Y-%m-%dT%H:%M:%S.%L%z"
 *			then without .%L); no types, as Fluentd
 *	tsv csv		keys (required, "a,b" or ["a","b"]), delimiter ("\t",
 *			","); tsv splits into at most keys fields, csv reads
 *			quotes as Ruby's CSV (an unquoted empty field is nil,
 *			"" is ""; malformed quoting and an empty line are
 *			errors); missing fields nil, extra ones ignored
 *	msgpack		the bytes given are one msgpack map (not a line
 *			format: for lf-cat and HTTP bodies; lf-tail, which
 *			cuts at newlines, cannot carry binary msgpack, so it
 *			should refuse --format msgpack)
 *	multiline	format_firstline and format1..N (see parse_line)
 * A delimiter is given as typed on a command line: "\t" is a TAB.
 *
 * Common options, applied as Fluentd applies them (parse_time, then
 * convert_values) to ltsv, json, regexp, apache_error, nginx, tsv, csv,
 * msgpack and multiline: time_key ("time") is taken out of the record
 * (kept with keep_time_key) and read by time_type: string with
 * time_format (lib/timefmt: strptime conversions, the common ones and
 * %N %L %3N %z read natively, "%iso8601"), or without one leniently (as
 * Ruby's Time.parse is met in logs: ISO 8601 with T or a space, the
 * apache, syslog, ctime and RFC 2822 shapes); float ("sec.frac", the
 * fraction's first 9 digits) or unixtime (leading digits, as Ruby's
 * to_i; none at all is an error, not 1970); mixed (time_format, then
 * each of time_format_fallbacks, where "unixtime" and "float" name the
 * types).  The last two answers are cached, as Fluentd's TimeParser.
 * A time without a zone is local time, or UTC with utc, or in timezone
 * ("+09:00", "-0700", "Asia/Tokyo"); a zone in the text wins.
 * types: "key:integer,key:float,key:bool,key:string,key:time[:tz][:fmt],
 * key:array[:delim]", each as Ruby converts (to_i, to_f, true for
 * true/yes/1 in any case; time -> an EventTime ext, nil if it will not
 * parse; array split on delim, "," by default, trailing empty fields
 * dropped); as in Fluentd the zone ends at the first colon ("+0900:fmt",
 * not "+09:00:fmt").  null_value_pattern (a regexp that matches
 * anywhere in the value, as Ruby's match?: anchor it) and
 * null_empty_string make a value nil before its type applies.  On json
 * and msgpack records these apply to top-level string values only.
 * Without a time in the line the caller uses the current time
 * (PARSE_NOTIME) when estimate_current_event (the default); without it
 * such a line is an error, as Fluentd then yields no event.
 * A key twice in a line (ltsv) is written twice; Fluentd's hash keeps
 * the last value.
 *
 * Unmatched lines: a line that does not parse is never dropped by this
 * module: parse_line returns PARSE_ERR with the reason and leaves rec
 * as it was.  The caller counts and warns, and with emit_unmatched_lines
 * emits parse_unmatched's record {"unmatched_line": text} (Fluentd's
 * in_tail shape, under the same tag, at the current time; in_tail adds
 * path_key to it too), text from parse_failed. */
#ifndef LF_PARSE_H
#define LF_PARSE_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum {
	PARSE_OK = 0,		/* a record, with its time */
	PARSE_NOTIME = 1,	/* a record; no time in it: use now */
	PARSE_MORE = 2,		/* multiline: held, waiting for more lines */
	PARSE_ERR = -1,		/* err says why; rec unchanged */
};

enum parse_format {
	PARSE_FMT_NONE, PARSE_FMT_LTSV, PARSE_FMT_JSON, PARSE_FMT_REGEXP,
	PARSE_FMT_APACHE2, PARSE_FMT_APACHE_ERROR, PARSE_FMT_NGINX,
	PARSE_FMT_SYSLOG, PARSE_FMT_TSV, PARSE_FMT_CSV, PARSE_FMT_MSGPACK,
	PARSE_FMT_MULTILINE,
};

enum parse_time_type {
	PARSE_TIME_DEFAULT,	/* the format's: float for json, else string */
	PARSE_TIME_STRING, PARSE_TIME_FLOAT, PARSE_TIME_UNIXTIME,
	PARSE_TIME_MIXED,
};

enum parse_syslog_format {
	PARSE_SYSLOG_RFC3164, PARSE_SYSLOG_RFC5424, PARSE_SYSLOG_AUTO,
};

#define PARSE_MAXFORMATS	20	/* format1..format20, as Fluentd */
#define PARSE_MAXFALLBACKS	8	/* time_format_fallbacks */

/* Every string is borrowed (argv, a config file): it must live until
 * parse_new returns, which copies what it keeps.  NULL is "not set". */
struct parse_conf {
	enum parse_format format;
	const char *time_key;		/* "time"; "" for none */
	const char *time_format;
	const char *time_format_fallbacks;	/* "f1,f2"; unixtime, float */
	enum parse_time_type time_type;
	int utc;			/* localtime is the default */
	const char *timezone;
	int keep_time_key;
	const char *types;
	const char *null_value_pattern;
	int null_empty_string;
	int estimate_current_event;	/* 1 */
	const char *expression;		/* regexp */
	const char *keys;		/* tsv, csv: "a,b,c" */
	const char *delimiter;		/* ltsv "\t", tsv "\t", csv "," */
	const char *label_delimiter;	/* ltsv ":" */
	const char *format_firstline;	/* multiline */
	const char *formats[PARSE_MAXFORMATS];	/* multiline format1..N */
	const char *message_key;	/* none: "message" */
	enum parse_syslog_format message_format;
	int with_priority;		/* syslog: 0 */
	int support_colonless_ident;	/* syslog: 1 */
	const char *rfc5424_time_format;
	int emit_unmatched_lines;	/* for the caller: 0 */
};

void parse_conf_default(struct parse_conf *c);

/* Options shared by lf-tail and lf-cat: a getopt_long table fragment
 * ending in a zero entry, long names as Fluentd's <parse> parameters
 * with '-' for '_' (--format, --time-key, --format1 ...), val codes
 * from PARSE_OPT_BASE up.  Copy it into the tool's own table.  Each
 * code goes to parse_option: 0, or -1 with a message in err. */
#define PARSE_OPT_BASE	0x5000
#define PARSE_OPT_END	(PARSE_OPT_BASE + 0x100)	/* codes below */
extern const struct option parse_options[];
int parse_option(struct parse_conf *c, int code, const char *arg, char *err,
    size_t n);
/* For a usage message: "--format F --time-key K ..." one per line. */
extern const char parse_usage[];

struct parser;

/* NULL with a message in err on a bad configuration (unknown type, a
 * regexp that will not compile, tsv without keys ...) or no memory. */
struct parser *parse_new(const struct parse_conf *c, char *err, size_t n);

/* One line, without its newline, -> one record appended to rec as a
 * msgpack map, and its time (*sec, *nsec): PARSE_OK, PARSE_NOTIME (the
 * caller uses now), PARSE_MORE (multiline: the line was taken into the
 * held record, nothing appended), PARSE_ERR (err says why, rec as it
 * was).  Multiline with format_firstline: a first line returns the
 * previous held record, if any, as PARSE_OK or PARSE_NOTIME, or
 * PARSE_ERR if it did not match (parse_failed has it); the new line is
 * then held (PARSE_MORE if nothing was).  Another line joins the held
 * record with "\n" (PARSE_MORE), or with nothing held is PARSE_ERR
 * (Fluentd's "got incomplete line before first line").  Without
 * format_firstline, lines join until the whole matches.  A held record
 * past 1 MiB is let go as PARSE_ERR.  Fluentd yields every match in a
 * multiline record; this, the first.  Allocates nothing per line beyond
 * the growth of rec and of buffers the parser keeps (the multiline
 * record, csv's unquoting, json's scratch record). */
int parse_line(struct parser *p, const char *line, size_t len,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen);

/* Multiline: parse the held record now (the caller's flush timeout, or
 * the end of the file).  Returns as parse_line; PARSE_MORE if nothing
 * is held. */
int parse_flush(struct parser *p, struct buf *rec, uint32_t *sec,
    uint32_t *nsec, char *err, size_t errlen);
/* 1 if a multiline record is held: the caller's flush timer runs. */
int parse_pending(const struct parser *p);

/* After PARSE_ERR: the text that failed, for the unmatched record: the
 * line itself (the caller's bytes: valid while they are), or for
 * multiline the held lines joined by "\n" (held here until the next
 * call), or a line before the first first-line. */
const char *parse_failed(const struct parser *p, size_t *len);

/* {"unmatched_line": line}, appended to rec.  0, or -1 ENOMEM. */
int parse_unmatched(struct buf *rec, const char *line, size_t len);

void parse_free(struct parser *p);

#endif
