#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "conf.h"
#include "format.h"
#include "json.h"
#include "mp.h"
#include "stream.h"
#include "timefmt.h"

#define FORMAT_MAXFIELDS	256

enum {
	O_FORMAT = FORMAT_OPT_BASE, O_INCLUDE_TIME_KEY, O_TIME_KEY,
	O_INCLUDE_TAG_KEY, O_TAG_KEY, O_TIME_TYPE, O_TIME_FORMAT, O_LOCALTIME,
	O_UTC, O_TIMEZONE, O_DELIMITER, O_LABEL_DELIMITER, O_REPLACEMENT,
	O_ADD_NEWLINE, O_NEWLINE, O_FIELDS, O_FORCE_QUOTES, O_MESSAGE_KEY,
	O_OUTPUT_TIME, O_OUTPUT_TAG,
};

const struct option format_options[] = {
	{ "format", required_argument, NULL, O_FORMAT },
	{ "include-time-key", optional_argument, NULL, O_INCLUDE_TIME_KEY },
	{ "time-key", required_argument, NULL, O_TIME_KEY },
	{ "include-tag-key", optional_argument, NULL, O_INCLUDE_TAG_KEY },
	{ "tag-key", required_argument, NULL, O_TAG_KEY },
	{ "time-type", required_argument, NULL, O_TIME_TYPE },
	{ "time-format", required_argument, NULL, O_TIME_FORMAT },
	{ "localtime", optional_argument, NULL, O_LOCALTIME },
	{ "utc", optional_argument, NULL, O_UTC },
	{ "timezone", required_argument, NULL, O_TIMEZONE },
	{ "delimiter", required_argument, NULL, O_DELIMITER },
	{ "label-delimiter", required_argument, NULL, O_LABEL_DELIMITER },
	{ "replacement", required_argument, NULL, O_REPLACEMENT },
	{ "add-newline", optional_argument, NULL, O_ADD_NEWLINE },
	{ "newline", required_argument, NULL, O_NEWLINE },
	{ "fields", required_argument, NULL, O_FIELDS },
	{ "keys", required_argument, NULL, O_FIELDS },
	{ "force-quotes", optional_argument, NULL, O_FORCE_QUOTES },
	{ "message-key", required_argument, NULL, O_MESSAGE_KEY },
	{ "output-time", optional_argument, NULL, O_OUTPUT_TIME },
	{ "output-tag", optional_argument, NULL, O_OUTPUT_TAG },
	{ NULL, 0, NULL, 0 },
};

const char format_usage[] =
    "  --format out_file|json|ltsv|csv|tsv|single_value|msgpack|event\n"
    "  --include-time-key[=BOOL] --time-key K (time) --include-tag-key[=BOOL]\n"
    "  --tag-key K (tag) --time-type string|float|unixtime --time-format F\n"
    "  --localtime --utc --timezone Z --delimiter D --label-delimiter D\n"
    "  --replacement S --add-newline[=BOOL] --newline lf|crlf --fields A,B\n"
    "  --force-quotes[=BOOL] --message-key K --output-time[=BOOL]\n"
    "  --output-tag[=BOOL]\n";

static const char *const type_names[] = {
	[FORMAT_OUT_FILE] = "out_file", [FORMAT_JSON] = "json",
	[FORMAT_LTSV] = "ltsv", [FORMAT_CSV] = "csv", [FORMAT_TSV] = "tsv",
	[FORMAT_SINGLE_VALUE] = "single_value", [FORMAT_MSGPACK] = "msgpack",
	[FORMAT_EVENT] = "event",
};

struct field {
	const char *name;
	size_t len;
};

struct formatter {
	enum format_type type;
	int inject_time, inject_tag;
	char *time_key, *tag_key, *time_format, *message_key;
	enum format_time_type time_type;
	struct timefmt_zone zone;
	long long zone_hour;	/* the hour whose offset is cached, or -1 */
	long zone_off;
	char zone_abbr[16];
	struct json_ltsv_opt ltsv;
	char *delim, *ldelim, *repl;
	const char *nl;
	size_t nllen;
	int add_newline, force_quotes, output_time, output_tag;
	char *fieldtext;	/* the names, NUL-separated */
	struct field fields[FORMAT_MAXFIELDS];
	size_t nfields;
	struct buf rec;		/* a record with keys injected */
	struct buf ents;	/* msgpack: entries with keys injected */
	struct buf tfmt;	/* time_format with Fluentd's conversions done */
	struct buf ttext;	/* a time as text, to be packed */
};

static int
ferr(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

void
format_conf_default(struct format_conf *c)
{
	memset(c, 0, sizeof *c);
	c->type = FORMAT_OUT_FILE;
	c->time_type = FORMAT_TIME_STRING;
	c->add_newline = 1;
	c->force_quotes = 1;
	c->output_time = c->output_tag = 1;
}

int
format_type_name(const char *name, enum format_type *t)
{
	size_t i;

	for (i = 0; i < sizeof type_names / sizeof *type_names; i++)
		if (strcmp(name, type_names[i]) == 0) {
			*t = (enum format_type)i;
			return 0;
		}
	return -1;
}

/* A boolean option: no argument is true. */
static int
fbool(const char *opt, const char *arg, int *v, char *err, size_t n)
{
	if (arg == NULL) {
		*v = 1;
		return 0;
	}
	if (conf_bool(arg, v) == -1)
		return ferr(err, n, "--%s: not a boolean: %s", opt, arg);
	return 0;
}

int
format_option(struct format_conf *c, int code, const char *arg, char *err,
    size_t n)
{
	int v;

	switch (code) {
	case O_FORMAT:
		if (format_type_name(arg, &c->type) == -1)
			return ferr(err, n, "unknown format: %s", arg);
		return 0;
	case O_INCLUDE_TIME_KEY:
		return fbool("include-time-key", arg, &c->include_time_key, err, n);
	case O_TIME_KEY: c->time_key = arg; return 0;
	case O_INCLUDE_TAG_KEY:
		return fbool("include-tag-key", arg, &c->include_tag_key, err, n);
	case O_TAG_KEY: c->tag_key = arg; return 0;
	case O_TIME_TYPE:
		if (strcmp(arg, "string") == 0)
			c->time_type = FORMAT_TIME_STRING;
		else if (strcmp(arg, "float") == 0)
			c->time_type = FORMAT_TIME_FLOAT;
		else if (strcmp(arg, "unixtime") == 0)
			c->time_type = FORMAT_TIME_UNIXTIME;
		else
			return ferr(err, n, "unknown time type: %s", arg);
		return 0;
	case O_TIME_FORMAT: c->time_format = arg; return 0;
	case O_LOCALTIME:
		if (fbool("localtime", arg, &v, err, n) == -1)
			return -1;
		c->utc = !v;
		return 0;
	case O_UTC: return fbool("utc", arg, &c->utc, err, n);
	case O_TIMEZONE: c->timezone = arg; return 0;
	case O_DELIMITER: c->delimiter = arg; return 0;
	case O_LABEL_DELIMITER: c->label_delimiter = arg; return 0;
	case O_REPLACEMENT: c->replacement = arg; return 0;
	case O_ADD_NEWLINE:
		return fbool("add-newline", arg, &c->add_newline, err, n);
	case O_NEWLINE:
		if (strcmp(arg, "lf") == 0)
			c->crlf = 0;
		else if (strcmp(arg, "crlf") == 0)
			c->crlf = 1;
		else
			return ferr(err, n, "--newline: lf or crlf, not %s", arg);
		return 0;
	case O_FIELDS: c->fields = arg; return 0;
	case O_FORCE_QUOTES:
		return fbool("force-quotes", arg, &c->force_quotes, err, n);
	case O_MESSAGE_KEY: c->message_key = arg; return 0;
	case O_OUTPUT_TIME:
		return fbool("output-time", arg, &c->output_time, err, n);
	case O_OUTPUT_TAG:
		return fbool("output-tag", arg, &c->output_tag, err, n);
	}
	return ferr(err, n, "not a format option: %d", code);
}

/* A delimiter as typed on a command line: "\t" and TAB are a tab, and
 * out_file's SPACE and COMMA name theirs (as Fluentd's, any case). */
static char *
delim_dup(const char *s, const char *def)
{
	if (s == NULL)
		s = def;
	if (strcmp(s, "\\t") == 0 || strcasecmp(s, "TAB") == 0)
		s = "\t";
	else if (strcasecmp(s, "SPACE") == 0)
		s = " ";
	else if (strcasecmp(s, "COMMA") == 0)
		s = ",";
	return strdup(s);
}

/* fields "a,b, c": names trimmed, empty ones dropped (Fluentd's). */
static int
fields_split(struct formatter *f, const char *s, char *err, size_t n)
{
	char *p, *e;
	size_t len;

	if ((f->fieldtext = strdup(s)) == NULL)
		return ferr(err, n, "out of memory");
	for (p = f->fieldtext; p != NULL; p = e) {
		if ((e = strchr(p, ',')) != NULL)
			*e++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		len = strlen(p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			p[--len] = '\0';
		if (len == 0)
			continue;
		if (p[0] == '$')
			return ferr(err, n, "fields: nested fields (%s) are "
			    "not supported", p);
		if (f->nfields == FORMAT_MAXFIELDS)
			return ferr(err, n, "fields: more than %d",
			    FORMAT_MAXFIELDS);
		f->fields[f->nfields].name = p;
		f->fields[f->nfields++].len = len;
	}
	if (f->nfields == 0)
		return ferr(err, n, "%s needs --fields", type_names[f->type]);
	return 0;
}

static int
format_setup(struct formatter *f, const struct format_conf *c, char *err,
    size_t n)
{
	const char *ddef = c->type == FORMAT_CSV ? "," : "\t";

	f->time_key = strdup(c->time_key ? c->time_key : "time");
	f->tag_key = strdup(c->tag_key ? c->tag_key : "tag");
	f->message_key = strdup(c->message_key ? c->message_key : "message");
	f->time_format = c->time_format ? strdup(c->time_format) : NULL;
	f->delim = delim_dup(c->delimiter, ddef);
	f->ldelim = strdup(c->label_delimiter ? c->label_delimiter : ":");
	f->repl = strdup(c->replacement ? c->replacement : " ");
	if (f->time_key == NULL || f->tag_key == NULL ||
	    f->message_key == NULL || f->delim == NULL || f->ldelim == NULL ||
	    f->repl == NULL || (c->time_format && f->time_format == NULL))
		return ferr(err, n, "out of memory");
	if (c->type == FORMAT_CSV && strlen(f->delim) != 1)
		return ferr(err, n, "csv: the delimiter is one character");
	if (c->type == FORMAT_OUT_FILE && c->delimiter != NULL &&
	    strcmp(f->delim, " ") != 0 && strcmp(f->delim, ",") != 0)
		f->delim[0] = '\t', f->delim[1] = '\0';	/* Fluentd's else */
	if (c->timezone != NULL) {
		if (timefmt_zone(&f->zone, c->timezone) == -1)
			return ferr(err, n, "unknown timezone: %s", c->timezone);
	} else
		(void)timefmt_zone(&f->zone, c->utc ? "UTC" : NULL);
	if ((c->type == FORMAT_CSV || c->type == FORMAT_TSV) &&
	    fields_split(f, c->fields ? c->fields : "", err, n) == -1)
		return -1;
	return 0;
}

struct formatter *
format_new(const struct format_conf *c, char *err, size_t n)
{
	struct formatter *f;

	if ((f = calloc(1, sizeof *f)) == NULL) {
		ferr(err, n, "out of memory");
		return NULL;
	}
	f->type = c->type;
	f->inject_time = c->include_time_key;
	f->inject_tag = c->include_tag_key;
	f->time_type = c->time_type;
	f->add_newline = c->add_newline;
	f->force_quotes = c->force_quotes;
	f->output_time = c->output_time;
	f->output_tag = c->output_tag;
	f->nl = c->crlf ? "\r\n" : "\n";
	f->nllen = c->crlf ? 2 : 1;
	f->zone_hour = -1;
	if (format_setup(f, c, err, n) == -1) {
		format_free(f);
		return NULL;
	}
	f->ltsv = (struct json_ltsv_opt){ f->delim, strlen(f->delim),
	    f->ldelim, strlen(f->ldelim), f->repl, strlen(f->repl) };
	return f;
}

void
format_free(struct formatter *f)
{
	if (f == NULL)
		return;
	free(f->time_key);
	free(f->tag_key);
	free(f->message_key);
	free(f->time_format);
	free(f->delim);
	free(f->ldelim);
	free(f->repl);
	free(f->fieldtext);
	buf_free(&f->rec);
	buf_free(&f->ents);
	buf_free(&f->tfmt);
	buf_free(&f->ttext);
	free(f);
}

int
format_binary(const struct formatter *f)
{
	return f->type == FORMAT_MSGPACK;
}

/*
 * Time.
 */

/* The zone's offset at t, found once per hour (zones change on the hour
 * or half hour at most; DST's own changes fall on hours), since
 * localtime_r under another TZ is slow. */
static int
zone_tm(struct formatter *f, time_t t, struct tm *tm)
{
	struct timefmt_zone *z = &f->zone;
	long long hour = (long long)t / 1800;
	char *old = NULL, *o;
	struct tm lt;
	int rc;

	if (z->kind == TIMEFMT_UTC || z->kind == TIMEFMT_OFFSET) {
		f->zone_off = z->kind == TIMEFMT_UTC ? 0 : z->off;
		snprintf(f->zone_abbr, sizeof f->zone_abbr, "%s",
		    z->kind == TIMEFMT_UTC ? "UTC" : "");
	} else if (hour != f->zone_hour) {
		if (z->kind == TIMEFMT_NAMED) {
			if ((o = getenv("TZ")) != NULL && (old = strdup(o)) == NULL)
				return -1;
			setenv("TZ", z->name, 1);
			tzset();
		}
		rc = localtime_r(&t, &lt) == NULL ? -1 : 0;
		if (z->kind == TIMEFMT_NAMED) {
			if (old != NULL)
				setenv("TZ", old, 1);
			else
				unsetenv("TZ");
			tzset();
			free(old);
		}
		if (rc == -1)
			return -1;
		f->zone_off = lt.tm_gmtoff;
		snprintf(f->zone_abbr, sizeof f->zone_abbr, "%s",
		    lt.tm_zone ? lt.tm_zone : "");
		f->zone_hour = hour;
	}
	t += f->zone_off;
	if (gmtime_r(&t, tm) == NULL)
		return -1;
	tm->tm_gmtoff = f->zone_off;
	tm->tm_zone = f->zone_abbr;
	return 0;
}

static int
add_offset(struct buf *out, long off, int colon)
{
	long a = off < 0 ? -off : off;

	return buf_printf(out, colon ? "%c%02ld:%02ld" : "%c%02ld%02ld",
	    off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
}

/* Ruby's Time#iso8601: local offsets as +09:00, UTC as Z. */
static int
time_iso8601(struct formatter *f, struct buf *out, const struct tm *tm)
{
	if (buf_printf(out, "%04d-%02d-%02dT%02d:%02d:%02d",
	    tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
	    tm->tm_min, tm->tm_sec) == -1)
		return -1;
	if (f->zone.kind == TIMEFMT_UTC)
		return buf_addc(out, 'Z');
	return add_offset(out, tm->tm_gmtoff, 1);
}

/* time_format with Fluentd's conversions (%N %<w>N %L %:z) written out
 * as text, and '%' in that text doubled, then strftime(3) for the rest. */
static int
time_strftime(struct formatter *f, struct buf *out, const struct tm *tm,
    uint32_t nsec)
{
	const char *p = f->time_format;
	char digits[16];
	size_t n, w;

	buf_reset(&f->tfmt);
	for (; *p != '\0'; p++) {
		if (p[0] != '%' || p[1] == '\0') {
			if (buf_addc(&f->tfmt, *p) == -1)
				return -1;
			continue;
		}
		w = 0;
		if (p[1] >= '1' && p[1] <= '9' && p[2] == 'N')
			w = (size_t)(p[1] - '0'), p++;
		else if (p[1] == 'N')
			w = 9;
		else if (p[1] == 'L')
			w = 3;
		if (w > 0) {
			snprintf(digits, sizeof digits, "%09u", nsec);
			if (buf_add(&f->tfmt, digits, w) == -1)
				return -1;
			p++;
			continue;
		}
		if (p[1] == ':' && p[2] == 'z') {
			if (add_offset(&f->tfmt, tm->tm_gmtoff, 1) == -1)
				return -1;
			p += 2;
			continue;
		}
		if (buf_add(&f->tfmt, p, 2) == -1)
			return -1;
		p++;
	}
	if (buf_addc(&f->tfmt, '\0') == -1)
		return -1;
	/* strftime's 0 is also an empty result: give it room, then trust it */
	if (buf_reserve(out, f->tfmt.len * 4 + 64) == -1)
		return -1;
	n = strftime((char *)out->p + out->len, f->tfmt.len * 4 + 64,
	    (char *)f->tfmt.p, tm);
	out->len += n;
	return 0;
}

/* The event time as text: time_format, or ISO 8601. */
static int
time_text(struct formatter *f, struct buf *out, uint32_t sec, uint32_t nsec)
{
	struct tm tm;

	if (zone_tm(f, (time_t)sec, &tm) == -1)
		return -1;
	if (f->time_format == NULL)
		return time_iso8601(f, out, &tm);
	return time_strftime(f, out, &tm, nsec);
}

/*
 * Records.
 */

static int
pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	if (msgpack_pack_str(pk, n) == -1)
		return -1;
	return msgpack_pack_str_body(pk, s, n);
}

/* The time as time_type makes it, packed. */
static int
pack_time(struct formatter *f, msgpack_packer *pk, uint32_t sec,
    uint32_t nsec)
{
	switch (f->time_type) {
	case FORMAT_TIME_UNIXTIME:
		return msgpack_pack_uint32(pk, sec);
	case FORMAT_TIME_FLOAT:
		/* Fluentd: time.to_r.truncate(6).to_f */
		return msgpack_pack_double(pk, (double)sec +
		    (double)(nsec / 1000) / 1e6);
	case FORMAT_TIME_STRING:
		break;
	}
	buf_reset(&f->ttext);
	if (time_text(f, &f->ttext, sec, nsec) == -1)
		return -1;
	return pack_str(pk, (const char *)f->ttext.p, f->ttext.len);
}

static int
keyeq(const struct mp_obj *o, const char *s, size_t n)
{
	return (o->type == MP_STR || o->type == MP_BIN) && o->n == n &&
	    memcmp(o->p, s, n) == 0;
}

/* One pair of a map at *pp: the key's header in *key (a container key
 * is passed over whole), its bytes from *k, the value's from *v.  0, -1. */
static int
next_pair(const unsigned char **pp, const unsigned char *end,
    struct mp_obj *key, const unsigned char **k, const unsigned char **v)
{
	*k = *pp;
	if (mp_read(pp, end, key) == -1)
		return -1;
	if (key->type == MP_ARRAY || key->type == MP_MAP) {
		*pp = *k;
		if (mp_pass(pp, end) == -1)
			return -1;
	}
	*v = *pp;
	return mp_pass(pp, end);
}

/* Exactly one map fills rec[0..reclen). */
static int
is_record(const unsigned char *rec, size_t reclen)
{
	size_t len;

	if (reclen == 0 || ((rec[0] & 0xf0) != 0x80 && rec[0] != 0xde &&
	    rec[0] != 0xdf))
		return 0;
	return mp_skip(rec, reclen, MP_MAXDEPTH, &len) == MP_OK &&
	    len == reclen;
}

/* The record with tag_key and time_key set, into f->rec: a key already
 * there keeps its place, new ones go last (tag, then time). */
static int
inject(struct formatter *f, const char *tag, size_t taglen, uint32_t sec,
    uint32_t nsec, const unsigned char *rec, size_t reclen)
{
	const unsigned char *p = rec, *end = rec + reclen, *q, *k, *v;
	size_t tkl = strlen(f->time_key), gkl = strlen(f->tag_key);
	int have_time = 0, have_tag = 0, is_time, is_tag;
	struct mp_obj m, o;
	msgpack_packer pk;
	uint32_t i;

	buf_reset(&f->rec);
	if (!is_record(rec, reclen) || mp_read(&p, end, &m) == -1)
		return -1;
	/* the count first: how many keys are new */
	for (q = p, i = 0; i < m.n; i++) {
		if (next_pair(&q, end, &o, &k, &v) == -1)
			return -1;
		have_time |= f->inject_time && keyeq(&o, f->time_key, tkl);
		have_tag |= f->inject_tag && keyeq(&o, f->tag_key, gkl);
	}
	msgpack_packer_init(&pk, &f->rec, buf_msgpack_write);
	if (msgpack_pack_map(&pk, m.n + (f->inject_tag && !have_tag) +
	    (f->inject_time && !have_time)) == -1)
		return -1;
	for (i = 0; i < m.n; i++) {
		if (next_pair(&p, end, &o, &k, &v) == -1)
			return -1;
		is_time = f->inject_time && keyeq(&o, f->time_key, tkl);
		is_tag = f->inject_tag && keyeq(&o, f->tag_key, gkl);
		if (buf_add(&f->rec, k, (size_t)(v - k)) == -1)
			return -1;
		if (is_time ? pack_time(f, &pk, sec, nsec) == -1 :
		    is_tag ? pack_str(&pk, tag, taglen) == -1 :
		    buf_add(&f->rec, v, (size_t)(p - v)) == -1)
			return -1;
	}
	if (f->inject_tag && !have_tag && (pack_str(&pk, f->tag_key,
	    gkl) == -1 || pack_str(&pk, tag, taglen) == -1))
		return -1;
	if (f->inject_time && !have_time && (pack_str(&pk, f->time_key,
	    tkl) == -1 || pack_time(f, &pk, sec, nsec) == -1))
		return -1;
	return 0;
}

/* The value of key name in the record (the last, if twice), or NULL. */
static const unsigned char *
lookup(const unsigned char *rec, size_t reclen, const char *name,
    size_t namelen, size_t *vlen)
{
	const unsigned char *p = rec, *end = rec + reclen, *k, *vp, *v = NULL;
	struct mp_obj m, o;
	uint32_t i;

	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return NULL;
	for (i = 0; i < m.n; i++) {
		if (next_pair(&p, end, &o, &k, &vp) == -1)
			return NULL;
		if (keyeq(&o, name, namelen)) {
			v = vp;
			*vlen = (size_t)(p - vp);
		}
	}
	return v;
}

static int
newline(struct formatter *f, struct buf *out)
{
	return f->add_newline ? buf_add(out, f->nl, f->nllen) : 0;
}

/* Ruby's CSV: a field is quoted if forced, or if it holds the separator,
 * a quote, CR or LF, or is an empty string (nil stays empty). */
static int
csv_field(struct formatter *f, struct buf *out, const unsigned char *v,
    size_t vlen)
{
	struct buf *t = &f->tfmt;
	int quote = f->force_quotes || (v != NULL && *v != 0xc0 &&
	    (*v == 0xa0 || (vlen == 2 && (*v == 0xc4 || *v == 0xd9))));
	size_t i, start;

	buf_reset(t);
	if (v != NULL && json_text(t, v, vlen, NULL) == -1)
		return -1;
	for (i = 0; i < t->len && !quote; i++)
		quote = t->p[i] == '"' || t->p[i] == '\r' || t->p[i] == '\n' ||
		    t->p[i] == (unsigned char)f->delim[0];
	if (!quote)
		return buf_add(out, t->p, t->len);
	if (buf_addc(out, '"') == -1)
		return -1;
	for (i = start = 0; i < t->len; i++)
		if (t->p[i] == '"') {
			/* the quote, and the run before it, then a second */
			if (buf_add(out, t->p + start, i + 1 - start) == -1)
				return -1;
			start = i;
		}
	if (buf_add(out, t->p + start, t->len - start) == -1)
		return -1;
	return buf_addc(out, '"');
}

static int
fields_line(struct formatter *f, struct buf *out, const unsigned char *rec,
    size_t reclen)
{
	const unsigned char *v;
	size_t i, vlen = 0, start;

	if (!is_record(rec, reclen))
		return -1;
	for (i = 0; i < f->nfields; i++) {
		if (i > 0 && buf_adds(out, f->delim) == -1)
			return -1;
		v = lookup(rec, reclen, f->fields[i].name, f->fields[i].len,
		    &vlen);
		if (f->type == FORMAT_CSV) {
			if (csv_field(f, out, v, vlen) == -1)
				return -1;
			continue;
		}
		start = out->len;
		if (v != NULL && json_text(out, v, vlen, NULL) == -1)
			return -1;
		for (; start < out->len; start++)
			if (out->p[start] == '\n')
				out->p[start] = ' ';
	}
	return newline(f, out);
}

static int
single_value(struct formatter *f, struct buf *out, const unsigned char *rec,
    size_t reclen)
{
	const unsigned char *v;
	size_t vlen = 0;

	if (!is_record(rec, reclen))
		return -1;
	v = lookup(rec, reclen, f->message_key, strlen(f->message_key), &vlen);
	if (v != NULL && json_text(out, v, vlen, NULL) == -1)
		return -1;
	return newline(f, out);
}

static int
out_file(struct formatter *f, struct buf *out, const char *tag, size_t taglen,
    uint32_t sec, uint32_t nsec, const unsigned char *rec, size_t reclen)
{
	if (f->output_time && (time_text(f, out, sec, nsec) == -1 ||
	    buf_adds(out, f->delim) == -1))
		return -1;
	if (f->output_tag && (buf_add(out, tag, taglen) == -1 ||
	    buf_adds(out, f->delim) == -1))
		return -1;
	if (json_map(out, rec, reclen) == -1)
		return -1;
	return buf_add(out, f->nl, f->nllen);
}

/* One PackedForward message of the entries. */
static int
packed(struct buf *out, const char *tag, size_t taglen,
    const unsigned char *entries, size_t len, size_t count)
{
	if (stream_pack_head(out, tag, taglen, len) == -1 ||
	    buf_add(out, entries, len) == -1)
		return -1;
	return stream_pack_options(out, count, NULL, 0);
}

static int
one_event(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, uint32_t sec, uint32_t nsec, const unsigned char *rec,
    size_t reclen)
{
	unsigned char h[STREAM_ENTRY_HEAD];

	if ((f->inject_time || f->inject_tag) && f->type != FORMAT_EVENT) {
		if (inject(f, tag, taglen, sec, nsec, rec, reclen) == -1)
			return -1;
		rec = f->rec.p;
		reclen = f->rec.len;
	}
	switch (f->type) {
	case FORMAT_OUT_FILE:
		return out_file(f, out, tag, taglen, sec, nsec, rec, reclen);
	case FORMAT_JSON:
		if (json_map(out, rec, reclen) == -1)
			return -1;
		return newline(f, out);
	case FORMAT_LTSV:
		if (json_ltsv_opt(out, rec, reclen, &f->ltsv) == -1)
			return -1;
		return newline(f, out);
	case FORMAT_CSV:
	case FORMAT_TSV:
		return fields_line(f, out, rec, reclen);
	case FORMAT_SINGLE_VALUE:
		return single_value(f, out, rec, reclen);
	case FORMAT_EVENT:
		return json_event(out, tag, taglen, sec, nsec, rec, reclen);
	case FORMAT_MSGPACK:
		break;
	}
	if (!is_record(rec, reclen))
		return -1;
	buf_reset(&f->ents);
	stream_entry_head(h, sec, nsec);
	if (buf_add(&f->ents, h, sizeof h) == -1 ||
	    buf_add(&f->ents, rec, reclen) == -1)
		return -1;
	return packed(out, tag, taglen, f->ents.p, f->ents.len, 1);
}

int
format_event(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, uint32_t sec, uint32_t nsec, const unsigned char *rec,
    size_t reclen)
{
	size_t len = out->len;

	if (one_event(f, out, tag, taglen, sec, nsec, rec, reclen) == -1) {
		out->len = len;
		return -1;
	}
	return 0;
}

/* msgpack with keys injected: the entries are rebuilt first. */
static int
packed_injected(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, const unsigned char *entries, size_t len, size_t count)
{
	unsigned char h[STREAM_ENTRY_HEAD];
	struct stream_iter it;
	struct stream_event ev;
	struct buf ents = BUF_INIT;
	int rc;

	stream_iter_init(&it, entries, len);
	while ((rc = stream_iter_next(&it, &ev)) == 1) {
		stream_entry_head(h, ev.sec, ev.nsec);
		if (inject(f, tag, taglen, ev.sec, ev.nsec, ev.rec,
		    ev.reclen) == -1 || buf_add(&ents, h, sizeof h) == -1 ||
		    buf_add(&ents, f->rec.p, f->rec.len) == -1) {
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		rc = packed(out, tag, taglen, ents.p, ents.len, count);
	buf_free(&ents);
	return rc;
}

int
format_entries(struct formatter *f, struct buf *out, const char *tag,
    size_t taglen, const unsigned char *entries, size_t len, size_t count)
{
	struct stream_iter it;
	struct stream_event ev;
	size_t start = out->len;
	int rc;

	if (f->type == FORMAT_MSGPACK) {
		rc = f->inject_time || f->inject_tag ?
		    packed_injected(f, out, tag, taglen, entries, len, count) :
		    packed(out, tag, taglen, entries, len, count);
	} else {
		stream_iter_init(&it, entries, len);
		while ((rc = stream_iter_next(&it, &ev)) == 1)
			if (one_event(f, out, tag, taglen, ev.sec, ev.nsec,
			    ev.rec, ev.reclen) == -1) {
				rc = -1;
				break;
			}
	}
	if (rc == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}
