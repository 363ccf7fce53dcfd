/* parse: Fluentd's <parse> section as a library: one text line -> one
 * msgpack record and its event time.
 *
 * Used by lf-tail (in_tail), lf-cat and lf-recv's HTTP input.  Formats,
 * with Fluentd's names and defaults:
 *	none		{message_key: line}, message_key "message"; no time
 *	ltsv		label:value fields split on delimiter ("\t"), each on
 *			its first label_delimiter (":"); a field without one
 *			is dropped
 *	json		one JSON object (lib/json's json_parse_record);
 *			time_type float unless time_format is set
 *	regexp		expression, PCRE2 with named captures (JIT when the
 *			library has it); "/re/flags" (i m x) or a bare re
 *	apache2 apache_error nginx   Fluentd's own expressions and times
 *	syslog		message_format rfc3164 (default), rfc5424 or auto;
 *			with_priority; Fluentd's fields and time formats
 *	tsv csv		keys (required), delimiter ("\t", ","); csv quotes
 *	msgpack		the bytes given are one msgpack map (not a line
 *			format: for lf-cat and HTTP bodies; lf-tail, which
 *			cuts at newlines, cannot carry binary msgpack)
 *	multiline	format_firstline and format1..N (see parse_line)
 *
 * Common options, applied to every text format as Fluentd applies them:
 * time_key ("time") is taken out of the record (kept with keep_time_key)
 * and read by time_type: string with time_format (strptime through
 * lib/timefmt; fast paths for %iso8601-like and the apache format),
 * float or unixtime (decimal epoch), mixed (time_format, then each
 * time_format_fallbacks entry).  A time without a zone is local time,
 * or UTC with utc, or in timezone ("+09:00", "Asia/Tokyo").  types
 * ("key:integer,key:float,key:bool,key:string,key:time[:fmt],
 * key:array[:delim]") converts values; null_value_pattern (a regexp
 * matching the whole value) and null_empty_string make values nil.
 * Without a time in the line the caller uses the current time
 * (PARSE_NOTIME) when estimate_current_event (the default); without it
 * such a line is an error, as Fluentd then yields no event.
 *
 * Unmatched lines: a line that does not parse is never dropped by this
 * module: parse_line returns PARSE_ERR with the reason and leaves rec
 * as it was.  The caller counts and warns, and with emit_unmatched_lines
 * emits parse_unmatched's record {"unmatched_line": text} (Fluentd's
 * in_tail shape) at the current time, text from parse_failed. */
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
	const char *time_format_fallbacks[PARSE_MAXFALLBACKS];
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
 * was).  For multiline a first line returns the previous held record,
 * if any, as PARSE_OK or PARSE_NOTIME, or PARSE_ERR if it did not
 * match; the new line is then held.  Allocates nothing per line beyond
 * rec's growth (and the multiline hold buffer). */
int parse_line(struct parser *p, const char *line, size_t len,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen);

/* Multiline: parse the held record now (the caller's flush timeout, or
 * the end of the file).  Returns as parse_line; PARSE_MORE if nothing
 * is held. */
int parse_flush(struct parser *p, struct buf *rec, uint32_t *sec,
    uint32_t *nsec, char *err, size_t errlen);
int parse_pending(const struct parser *p);	/* bytes held, or 0 */

/* After PARSE_ERR: the text that failed, for the unmatched record: the
 * line itself, or for multiline the held lines joined by "\n" (or a
 * line before the first first-line).  Valid until the next call. */
const char *parse_failed(const struct parser *p, size_t *len);

/* {"unmatched_line": line}, appended to rec.  0, or -1 ENOMEM. */
int parse_unmatched(struct buf *rec, const char *line, size_t len);

void parse_free(struct parser *p);

#endif
