/* parse: the API, the options, and what every text format shares: the
 * record builder, the time key, Fluentd's convert_values (types,
 * null_value_pattern, null_empty_string) and its time parsers. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "parse_int.h"

enum {
	O_FORMAT = PARSE_OPT_BASE, O_TIME_KEY, O_TIME_FORMAT, O_FALLBACKS,
	O_TIME_TYPE, O_LOCALTIME, O_UTC, O_TIMEZONE, O_KEEP_TIME_KEY, O_TYPES,
	O_NULL_PATTERN, O_NULL_EMPTY, O_ESTIMATE, O_EXPRESSION, O_KEYS,
	O_DELIMITER, O_LABEL_DELIMITER, O_FIRSTLINE, O_MESSAGE_KEY,
	O_MESSAGE_FORMAT, O_WITH_PRIORITY, O_COLONLESS, O_RFC5424_FORMAT,
	O_UNMATCHED, O_FORMATN,		/* O_FORMATN + 0 is format1 */
};

#define FMT(n)	{ "format" #n, required_argument, NULL, O_FORMATN + n - 1 }
const struct option parse_options[] = {
	{ "format", required_argument, NULL, O_FORMAT },
	{ "time-key", required_argument, NULL, O_TIME_KEY },
	{ "time-format", required_argument, NULL, O_TIME_FORMAT },
	{ "time-format-fallbacks", required_argument, NULL, O_FALLBACKS },
	{ "time-type", required_argument, NULL, O_TIME_TYPE },
	{ "localtime", optional_argument, NULL, O_LOCALTIME },
	{ "utc", optional_argument, NULL, O_UTC },
	{ "timezone", required_argument, NULL, O_TIMEZONE },
	{ "keep-time-key", optional_argument, NULL, O_KEEP_TIME_KEY },
	{ "types", required_argument, NULL, O_TYPES },
	{ "null-value-pattern", required_argument, NULL, O_NULL_PATTERN },
	{ "null-empty-string", optional_argument, NULL, O_NULL_EMPTY },
	{ "estimate-current-event", optional_argument, NULL, O_ESTIMATE },
	{ "expression", required_argument, NULL, O_EXPRESSION },
	{ "keys", required_argument, NULL, O_KEYS },
	{ "delimiter", required_argument, NULL, O_DELIMITER },
	{ "label-delimiter", required_argument, NULL, O_LABEL_DELIMITER },
	{ "format-firstline", required_argument, NULL, O_FIRSTLINE },
	{ "message-key", required_argument, NULL, O_MESSAGE_KEY },
	{ "message-format", required_argument, NULL, O_MESSAGE_FORMAT },
	{ "with-priority", optional_argument, NULL, O_WITH_PRIORITY },
	{ "support-colonless-ident", optional_argument, NULL, O_COLONLESS },
	{ "rfc5424-time-format", required_argument, NULL, O_RFC5424_FORMAT },
	{ "emit-unmatched-lines", optional_argument, NULL, O_UNMATCHED },
	FMT(1), FMT(2), FMT(3), FMT(4), FMT(5), FMT(6), FMT(7), FMT(8),
	FMT(9), FMT(10), FMT(11), FMT(12), FMT(13), FMT(14), FMT(15),
	FMT(16), FMT(17), FMT(18), FMT(19), FMT(20),
	{ NULL, 0, NULL, 0 },
};

const char parse_usage[] =
    "  --format none|ltsv|json|regexp|apache2|apache_error|nginx|syslog|\n"
    "           tsv|csv|msgpack|multiline\n"
    "  --time-key K --time-format F --time-format-fallbacks F,..\n"
    "  --time-type string|float|unixtime|mixed --localtime --utc\n"
    "  --timezone Z --keep-time-key --types K:T,.. --null-value-pattern RE\n"
    "  --null-empty-string --estimate-current-event[=false]\n"
    "  --expression /RE/ --keys K,.. --delimiter D --label-delimiter D\n"
    "  --format-firstline /RE/ --format1../RE/ --message-key K\n"
    "  --message-format rfc3164|rfc5424|auto --with-priority\n"
    "  --support-colonless-ident[=false] --rfc5424-time-format F\n"
    "  --emit-unmatched-lines[=false]\n";

static const char *const formats[] = {
	[PARSE_FMT_NONE] = "none", [PARSE_FMT_LTSV] = "ltsv",
	[PARSE_FMT_JSON] = "json", [PARSE_FMT_REGEXP] = "regexp",
	[PARSE_FMT_APACHE2] = "apache2",
	[PARSE_FMT_APACHE_ERROR] = "apache_error",
	[PARSE_FMT_NGINX] = "nginx", [PARSE_FMT_SYSLOG] = "syslog",
	[PARSE_FMT_TSV] = "tsv", [PARSE_FMT_CSV] = "csv",
	[PARSE_FMT_MSGPACK] = "msgpack", [PARSE_FMT_MULTILINE] = "multiline",
};

int
pf_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && n > 0) {
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void
parse_conf_default(struct parse_conf *c)
{
	memset(c, 0, sizeof *c);
	c->format = PARSE_FMT_NONE;
	c->estimate_current_event = 1;
	c->support_colonless_ident = 1;
	c->message_format = PARSE_SYSLOG_RFC3164;
}

/* Fluentd's bool: true, yes, 1 / false, no, 0; no argument is true. */
static int
pf_bool(const char *arg, int *v, char *err, size_t n)
{
	if (arg == NULL || strcasecmp(arg, "true") == 0 ||
	    strcasecmp(arg, "yes") == 0 || strcmp(arg, "1") == 0)
		*v = 1;
	else if (strcasecmp(arg, "false") == 0 || strcasecmp(arg, "no") == 0 ||
	    strcmp(arg, "0") == 0)
		*v = 0;
	else
		return pf_err(err, n, "not a bool: %s", arg);
	return 0;
}

static int
pf_enum(const char *arg, const char *const *names, size_t nn, int *v)
{
	size_t i;

	for (i = 0; i < nn; i++)
		if (names[i] != NULL && strcmp(arg, names[i]) == 0) {
			*v = (int)i;
			return 0;
		}
	return -1;
}

int
parse_option(struct parse_conf *c, int code, const char *arg, char *err,
    size_t n)
{
	static const char *const ttypes[] = { NULL, "string", "float",
	    "unixtime", "mixed" };
	static const char *const sfmts[] = { "rfc3164", "rfc5424", "auto" };
	int v;

	switch (code) {
	case O_FORMAT:
		if (pf_enum(arg, formats, sizeof formats / sizeof *formats,
		    &v) == -1)
			return pf_err(err, n, "unknown format: %s", arg);
		c->format = (enum parse_format)v;
		return 0;
	case O_TIME_KEY:
		c->time_key = arg;
		return 0;
	case O_TIME_FORMAT:
		c->time_format = arg;
		return 0;
	case O_FALLBACKS:
		c->time_format_fallbacks = arg;
		return 0;
	case O_TIME_TYPE:
		if (pf_enum(arg, ttypes, 5, &v) == -1)
			return pf_err(err, n, "unknown time type: %s", arg);
		c->time_type = (enum parse_time_type)v;
		return 0;
	case O_LOCALTIME:
		if (pf_bool(arg, &v, err, n) == -1)
			return -1;
		c->utc = !v;
		return 0;
	case O_UTC:
		return pf_bool(arg, &c->utc, err, n);
	case O_TIMEZONE:
		c->timezone = arg;
		return 0;
	case O_KEEP_TIME_KEY:
		return pf_bool(arg, &c->keep_time_key, err, n);
	case O_TYPES:
		c->types = arg;
		return 0;
	case O_NULL_PATTERN:
		c->null_value_pattern = arg;
		return 0;
	case O_NULL_EMPTY:
		return pf_bool(arg, &c->null_empty_string, err, n);
	case O_ESTIMATE:
		return pf_bool(arg, &c->estimate_current_event, err, n);
	case O_EXPRESSION:
		c->expression = arg;
		return 0;
	case O_KEYS:
		c->keys = arg;
		return 0;
	case O_DELIMITER:
		c->delimiter = arg;
		return 0;
	case O_LABEL_DELIMITER:
		c->label_delimiter = arg;
		return 0;
	case O_FIRSTLINE:
		c->format_firstline = arg;
		return 0;
	case O_MESSAGE_KEY:
		c->message_key = arg;
		return 0;
	case O_MESSAGE_FORMAT:
		if (pf_enum(arg, sfmts, 3, &v) == -1)
			return pf_err(err, n, "unknown message format: %s", arg);
		c->message_format = (enum parse_syslog_format)v;
		return 0;
	case O_WITH_PRIORITY:
		return pf_bool(arg, &c->with_priority, err, n);
	case O_COLONLESS:
		return pf_bool(arg, &c->support_colonless_ident, err, n);
	case O_RFC5424_FORMAT:
		c->rfc5424_time_format = arg;
		return 0;
	case O_UNMATCHED:
		return pf_bool(arg, &c->emit_unmatched_lines, err, n);
	}
	if (code >= O_FORMATN && code < O_FORMATN + PARSE_MAXFORMATS) {
		c->formats[code - O_FORMATN] = arg;
		return 0;
	}
	return pf_err(err, n, "not a parse option");
}

/* --- the record builder ------------------------------------------------ */

void
rb_begin(struct rb *b, struct buf *rec)
{
	memset(b, 0, sizeof *b);
	b->rec = rec;
	b->start = rec->len;
	/* room for a map32 header, cut down at the end; and for a usual
	 * record, so that the fields seldom grow rec */
	if (buf_reserve(rec, 512) == -1 ||
	    buf_add(rec, "\xdf\0\0\0\0", 5) == -1)
		b->nomem = 1;
}

void
rb_abort(struct rb *b)
{
	b->rec->len = b->start;
}

int
rb_end(struct rb *b)
{
	unsigned char *m;
	size_t body;
	uint32_t n = b->n;

	if (b->nomem) {
		rb_abort(b);
		return -1;
	}
	m = b->rec->p + b->start;
	body = b->rec->len - b->start - 5;
	if (n < 16) {
		m[0] = 0x80 | n;
		memmove(m + 1, m + 5, body);
		b->rec->len -= 4;
	} else if (n < 65536) {
		m[0] = 0xde;
		m[1] = n >> 8;
		m[2] = n & 0xff;
		memmove(m + 3, m + 5, body);
		b->rec->len -= 2;
	} else {
		m[1] = n >> 24;
		m[2] = (n >> 16) & 0xff;
		m[3] = (n >> 8) & 0xff;
		m[4] = n & 0xff;
	}
	return 0;
}

void
rb_raw(struct rb *b, const void *s, size_t n)
{
	if (!b->nomem && buf_add(b->rec, s, n) == -1)
		b->nomem = 1;
}

void
rb_str(struct rb *b, const char *s, size_t n)
{
	unsigned char h[5];
	size_t hl;

	if (n < 32) {
		h[0] = 0xa0 | (unsigned char)n;
		hl = 1;
	} else if (n < 256) {
		h[0] = 0xd9;
		h[1] = (unsigned char)n;
		hl = 2;
	} else if (n < 65536) {
		h[0] = 0xda;
		h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)n;
		hl = 3;
	} else {
		h[0] = 0xdb;
		h[1] = (unsigned char)(n >> 24);
		h[2] = (unsigned char)(n >> 16);
		h[3] = (unsigned char)(n >> 8);
		h[4] = (unsigned char)n;
		hl = 5;
	}
	if (b->nomem || buf_reserve(b->rec, hl + n) == -1) {
		b->nomem = 1;
		return;
	}
	memcpy(b->rec->p + b->rec->len, h, hl);
	if (n > 0)
		memcpy(b->rec->p + b->rec->len + hl, s, n);
	b->rec->len += hl + n;
}

void
rb_key(struct rb *b, const char *k, size_t kl)
{
	rb_str(b, k, kl);
	b->n++;
}

void
rb_nil(struct rb *b)
{
	rb_raw(b, "\xc0", 1);
}

/* msgpack-c's choice of int encoding: the smallest that holds v. */
void
rb_int(struct rb *b, int64_t v)
{
	unsigned char h[9];
	uint64_t u = (uint64_t)v;
	int i, w;

	if (v >= 0 && v < 128) {
		h[0] = (unsigned char)v;
		rb_raw(b, h, 1);
		return;
	}
	if (v < 0 && v >= -32) {
		h[0] = (unsigned char)(int8_t)v;
		rb_raw(b, h, 1);
		return;
	}
	if (v >= 0) {
		w = v < 256 ? 1 : v < 65536 ? 2 : v <= UINT32_MAX ? 4 : 8;
		h[0] = w == 1 ? 0xcc : w == 2 ? 0xcd : w == 4 ? 0xce : 0xcf;
	} else {
		w = v >= -128 ? 1 : v >= -32768 ? 2 : v >= INT32_MIN ? 4 : 8;
		h[0] = w == 1 ? 0xd0 : w == 2 ? 0xd1 : w == 4 ? 0xd2 : 0xd3;
	}
	for (i = 0; i < w; i++)
		h[1 + i] = (unsigned char)(u >> (8 * (w - 1 - i)));
	rb_raw(b, h, (size_t)w + 1);
}

static void
rb_float(struct rb *b, double d)
{
	unsigned char h[9];
	uint64_t u;
	int i;

	memcpy(&u, &d, 8);
	h[0] = 0xcb;
	for (i = 0; i < 8; i++)
		h[1 + i] = (unsigned char)(u >> (56 - 8 * i));
	rb_raw(b, h, 9);
}

/* Fluentd's EventTime in a record: ext 0, BE sec, BE nsec. */
static void
rb_eventtime(struct rb *b, uint32_t sec, uint32_t nsec)
{
	unsigned char h[10] = { 0xd7, 0x00 };
	int i;

	for (i = 0; i < 4; i++) {
		h[2 + i] = (unsigned char)(sec >> (24 - 8 * i));
		h[6 + i] = (unsigned char)(nsec >> (24 - 8 * i));
	}
	rb_raw(b, h, 10);
}

/* --- regexps ------------------------------------------------------------ */

/* Ruby's ^ and $ are line anchors, so PCRE2_MULTILINE always; no UTF
 * mode, as a log line need not be valid UTF-8. */
int
pre_compile(struct pre *r, const char *src, uint32_t flags, char *err,
    size_t n)
{
	PCRE2_UCHAR msg[120];
	PCRE2_SPTR tab;
	uint32_t count, size, i, j;
	int ec;
	PCRE2_SIZE off;

	memset(r, 0, sizeof *r);
	r->code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
	    flags | PCRE2_MULTILINE | PCRE2_DUPNAMES, &ec, &off, NULL);
	if (r->code == NULL) {
		pcre2_get_error_message(ec, msg, sizeof msg);
		return pf_err(err, n, "regexp /%s/ at %zu: %s", src,
		    (size_t)off, (char *)msg);
	}
	(void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
	if ((r->md = pcre2_match_data_create_from_pattern(r->code,
	    NULL)) == NULL) {
		pre_free(r);
		return pf_err(err, n, "out of memory");
	}
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
	pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &tab);
	if (count > 0 && (r->names = calloc(count, sizeof *r->names)) == NULL) {
		pre_free(r);
		return pf_err(err, n, "out of memory");
	}
	/* the table is sorted by name; Ruby lists names by first group */
	for (i = 0; i < count; i++) {
		const unsigned char *e = tab + (size_t)i * size;
		int g = e[0] << 8 | e[1];
		const char *nm = (const char *)e + 2;

		for (j = 0; j < r->nnames; j++)
			if (strcmp(r->names[j].name, nm) == 0)
				break;
		if (j < r->nnames) {
			if (g < r->names[j].group)
				r->names[j].group = g;
			continue;
		}
		r->names[r->nnames].name = nm;
		r->names[r->nnames].len = strlen(nm);
		r->names[r->nnames++].group = g;
	}
	for (i = 1; i < r->nnames; i++)
		for (j = i; j > 0 && r->names[j - 1].group >
		    r->names[j].group; j--) {
			struct pre_name t = r->names[j];
			r->names[j] = r->names[j - 1];
			r->names[j - 1] = t;
		}
	return 0;
}

/* 1 on a match, 0 on none, -1 on a matching error (a resource limit). */
int
pre_match(struct pre *r, const char *s, size_t n, size_t off)
{
	int rc;

	rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, off, 0, r->md, NULL);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	return rc < 0 ? -1 : 1;
}

PCRE2_SIZE *
pre_exec(struct pre *r, const char *s, size_t n, size_t off, char *err,
    size_t errlen)
{
	int m;

	if ((m = pre_match(r, s, n, off)) != 1) {
		pf_err(err, errlen, m == 0 ? "pattern not matched" :
		    "regexp match failed (a limit)");
		return NULL;
	}
	return pcre2_get_ovector_pointer(r->md);
}

void
pre_free(struct pre *r)
{
	pcre2_match_data_free(r->md);
	pcre2_code_free(r->code);
	free(r->names);
	memset(r, 0, sizeof *r);
}

/* "/re/flags" (Fluentd's regexp parameter) or a bare regexp. */
int
pre_conf(struct pre *r, const char *src, uint32_t extra, char *err, size_t n)
{
	const char *end;
	uint32_t flags = extra;
	char *body;
	int rc;

	if (src[0] == '/' && (end = strrchr(src + 1, '/')) != NULL &&
	    strspn(end + 1, "imx") == strlen(end + 1)) {
		if (strchr(end + 1, 'i') != NULL)
			flags |= PCRE2_CASELESS;
		if (strchr(end + 1, 'm') != NULL)
			flags |= PCRE2_DOTALL;	/* Ruby's /m */
		if (strchr(end + 1, 'x') != NULL)
			flags |= PCRE2_EXTENDED;
		if ((body = strndup(src + 1, (size_t)(end - src - 1))) == NULL)
			return pf_err(err, n, "out of memory");
		rc = pre_compile(r, body, flags, err, n);
		free(body);
		return rc;
	}
	return pre_compile(r, src, flags, err, n);
}

/* --- times --------------------------------------------------------------- */

/* Ruby's String#to_i: blanks, a sign, digits (with _ between them);
 * what follows is ignored.  -1 if no digit (Ruby would say 0: a time of
 * 1970 is never what a log line meant). */
static int
pf_to_i(const char *s, size_t n, int64_t *v)
{
	const char *p = s, *end = s + n;
	int neg = 0, any = 0;
	uint64_t u = 0;

	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	for (; p < end; p++) {
		if (isdigit((unsigned char)*p)) {
			if (u < (uint64_t)INT64_MAX / 10)
				u = u * 10 + (uint64_t)(*p - '0');
			else
				u = (uint64_t)INT64_MAX;
			any = 1;
		} else if (*p != '_' || !any || p + 1 == end ||
		    !isdigit((unsigned char)p[1]))
			break;
	}
	if (!any)
		return -1;
	if (u > (uint64_t)INT64_MAX)
		u = (uint64_t)INT64_MAX;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return 0;
}

/* Fluentd's float time: "sec.frac", the fraction's first 9 digits. */
static int
pf_time_float(const char *s, size_t n, uint32_t *sec, uint32_t *nsec)
{
	const char *dot = memchr(s, '.', n);
	int64_t v;
	uint32_t ns = 0, scale = 100000000;
	const char *p;

	if (pf_to_i(s, dot != NULL ? (size_t)(dot - s) : n, &v) == -1 ||
	    v < 0 || v > UINT32_MAX)
		return -1;
	if (dot != NULL)
		for (p = dot + 1; p < s + n && scale > 0 &&
		    isdigit((unsigned char)*p); p++, scale /= 10)
			ns += (uint32_t)(*p - '0') * scale;
	*sec = (uint32_t)v;
	*nsec = ns;
	return 0;
}

/* Time.parse is a guesser; these are the shapes it is met with in logs. */
static const char *const lenient[] = {
	"%iso8601", "%Y-%m-%d %H:%M:%S.%N%z", "%Y-%m-%d %H:%M:%S%z",
	"%Y-%m-%d %H:%M:%S.%N", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S",
	"%d/%b/%Y:%H:%M:%S %z", "%b %d %H:%M:%S.%N %Y", "%b %d %H:%M:%S %Y",
	"%a %b %d %H:%M:%S.%N %Y", "%a %b %d %H:%M:%S %Y",
	"%a, %d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M:%S %z",
	"%b %d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%N", "%Y-%m-%dT%H:%M:%S",
};

static int
pf_time_string(struct ptime *t, const char *fmt, const char *s, size_t n,
    uint32_t *sec, uint32_t *nsec)
{
	size_t i;

	if (fmt != NULL)
		return timefmt_parsez(s, n, fmt, &t->zone, sec, nsec);
	for (i = 0; i < sizeof lenient / sizeof *lenient; i++)
		if (timefmt_parsez(s, n, lenient[i], &t->zone, sec, nsec) == 0)
			return 0;
	return -1;
}

static int ptime_parse1(struct ptime *, const char *, size_t, uint32_t *,
    uint32_t *);

int
ptime_parse(struct ptime *t, const char *s, size_t n, uint32_t *sec,
    uint32_t *nsec)
{
	int i;

	for (i = 0; i < 2; i++)
		if (t->cache[i].len == n && n > 0 &&
		    memcmp(t->cache[i].key, s, n) == 0) {
			*sec = t->cache[i].sec;
			*nsec = t->cache[i].nsec;
			return 0;
		}
	if (ptime_parse1(t, s, n, sec, nsec) == -1)
		return -1;
	if (n <= PTIME_CACHEKEY) {
		i = t->cnext;
		t->cnext = !i;
		memcpy(t->cache[i].key, s, n);
		t->cache[i].len = n;
		t->cache[i].sec = *sec;
		t->cache[i].nsec = *nsec;
	}
	return 0;
}

static int
ptime_parse1(struct ptime *t, const char *s, size_t n, uint32_t *sec,
    uint32_t *nsec)
{
	int64_t v;
	int i;

	switch (t->type) {
	case PARSE_TIME_FLOAT:
		return pf_time_float(s, n, sec, nsec);
	case PARSE_TIME_UNIXTIME:
		if (pf_to_i(s, n, &v) == -1 || v < 0 || v > UINT32_MAX)
			return -1;
		*sec = (uint32_t)v;
		*nsec = 0;
		return 0;
	case PARSE_TIME_MIXED:
		if (t->format != NULL &&
		    pf_time_string(t, t->format, s, n, sec, nsec) == 0)
			return 0;
		for (i = 0; i < t->nfallbacks; i++) {
			const char *f = t->fallbacks[i];

			if (strcmp(f, "unixtime") == 0) {
				if (pf_to_i(s, n, &v) == 0 && v >= 0 &&
				    v <= UINT32_MAX) {
					*sec = (uint32_t)v;
					*nsec = 0;
					return 0;
				}
			} else if (strcmp(f, "float") == 0) {
				if (pf_time_float(s, n, sec, nsec) == 0)
					return 0;
			} else if (pf_time_string(t, f, s, n, sec, nsec) == 0)
				return 0;
		}
		return -1;
	default:
		return pf_time_string(t, t->format, s, n, sec, nsec);
	}
}

/* --- convert_values ------------------------------------------------------ */

static const struct ptype *
pf_type(const struct parser *p, const char *k, size_t kl)
{
	size_t i;

	for (i = 0; i < p->ntypes; i++)
		if (p->types[i].klen == kl && memcmp(p->types[i].key, k, kl) == 0)
			return &p->types[i];
	return NULL;
}

/* Ruby's String#to_f: the longest decimal prefix, else 0.0. */
static double
pf_to_f(const char *s, size_t n)
{
	char tmp[64];
	const char *p = s, *end = s + n, *st;
	size_t l;

	while (p < end && isspace((unsigned char)*p))
		p++;
	st = p;
	if (p < end && (*p == '+' || *p == '-'))
		p++;
	while (p < end && (isdigit((unsigned char)*p) || *p == '_'))
		p++;
	if (p + 1 < end && *p == '.' && isdigit((unsigned char)p[1]))
		for (p++; p < end && isdigit((unsigned char)*p); p++)
			;
	if (p + 1 < end && (*p == 'e' || *p == 'E')) {
		const char *q = p + 1;

		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && isdigit((unsigned char)*q)) {
			for (p = q; p < end && isdigit((unsigned char)*p); p++)
				;
		}
	}
	l = 0;
	for (; st < p && l + 1 < sizeof tmp; st++)
		if (*st != '_')
			tmp[l++] = *st;
	tmp[l] = '\0';
	return l == 0 ? 0.0 : strtod(tmp, NULL);
}

static void
pf_array(struct rb *b, const char *v, size_t vl, const char *d)
{
	size_t dl = strlen(d), cnt = 0, i, last;
	const char *p, *q, *end = v + vl;
	unsigned char h[5];

	/* Ruby's split drops trailing empty fields */
	while (vl >= dl && dl > 0 && memcmp(v + vl - dl, d, dl) == 0)
		vl -= dl;
	end = v + vl;
	if (vl > 0)
		for (cnt = 1, p = v; (q = memmem(p, (size_t)(end - p), d,
		    dl)) != NULL; p = q + dl)
			cnt++;
	if (cnt < 16) {
		h[0] = 0x90 | (unsigned char)cnt;
		rb_raw(b, h, 1);
	} else {
		h[0] = 0xdd;
		for (i = 0; i < 4; i++)
			h[1 + i] = (unsigned char)(cnt >> (24 - 8 * i));
		rb_raw(b, h, 5);
	}
	for (p = v, last = 0; last < cnt; last++) {
		q = memmem(p, (size_t)(end - p), d, dl);
		if (q == NULL)
			q = end;
		rb_str(b, p, (size_t)(q - p));
		p = q + dl;
	}
}

static int
pf_isnull(struct parser *p, const char *v, size_t vl)
{
	if (p->null_empty && vl == 0)
		return 1;
	return p->null_re.code != NULL && pre_match(&p->null_re, v, vl, 0) == 1;
}

/* A value through convert_values: nil, a type, or the string. */
void
pf_value(struct parser *p, struct rb *b, const char *k, size_t kl,
    const char *v, size_t vl)
{
	const struct ptype *t;
	int64_t i;
	uint32_t sec, nsec;

	if (p->convert && pf_isnull(p, v, vl)) {
		rb_nil(b);
		return;
	}
	if (p->ntypes == 0 || (t = pf_type(p, k, kl)) == NULL) {
		rb_str(b, v, vl);
		return;
	}
	switch (t->type) {
	case PT_INTEGER:
		rb_int(b, pf_to_i(v, vl, &i) == 0 ? i : 0);
		break;
	case PT_FLOAT:
		rb_float(b, pf_to_f(v, vl));
		break;
	case PT_BOOL:
		rb_raw(b, (vl == 4 && strncasecmp(v, "true", 4) == 0) ||
		    (vl == 3 && strncasecmp(v, "yes", 3) == 0) ||
		    (vl == 1 && v[0] == '1') ? "\xc3" : "\xc2", 1);
		break;
	case PT_TIME:
		if (ptime_parse((struct ptime *)&t->time, v, vl, &sec,
		    &nsec) == 0)
			rb_eventtime(b, sec, nsec);
		else
			rb_nil(b);
		break;
	case PT_ARRAY:
		pf_array(b, v, vl, t->delim);
		break;
	default:
		rb_str(b, v, vl);
	}
}

void
pf_field(struct parser *p, struct rb *b, const char *k, size_t kl,
    const char *v, size_t vl, int isnil)
{
	if (p->time_key != NULL && kl == p->tklen &&
	    memcmp(k, p->time_key, kl) == 0 && !isnil) {
		b->tval = v;
		b->tlen = vl;
		b->has_time = 1;
		if (!p->keep_time_key)
			return;
	}
	rb_key(b, k, kl);
	if (isnil)
		rb_nil(b);
	else
		pf_value(p, b, k, kl, v, vl);
}

int
pf_finish(struct parser *p, struct rb *b, uint32_t *sec, uint32_t *nsec,
    char *err, size_t errlen)
{
	if (b->has_time && ptime_parse(&p->time, b->tval, b->tlen, sec,
	    nsec) == -1) {
		rb_abort(b);
		return pf_err(err, errlen, "invalid time: %.*s",
		    (int)(b->tlen > 64 ? 64 : b->tlen), b->tval);
	}
	if (rb_end(b) == -1)
		return pf_err(err, errlen, "out of memory");
	if (b->has_time)
		return PARSE_OK;
	if (!p->estimate) {
		rb_abort(b);
		return pf_err(err, errlen, "no time key %s", p->time_key);
	}
	*sec = *nsec = 0;
	return PARSE_NOTIME;
}

/* --- configuration --------------------------------------------------------- */

static int
pf_ptime(struct ptime *t, enum parse_time_type type, const char *format,
    const char *fallbacks, const char *tz, int utc, char *err, size_t n)
{
	const char *f, *e;

	memset(t, 0, sizeof *t);
	t->type = type;
	if (format != NULL && (t->format = strdup(format)) == NULL)
		return pf_err(err, n, "out of memory");
	/* comma separated, as Fluentd's array parameter */
	for (f = fallbacks; f != NULL; f = *e != '\0' ? e + 1 : NULL) {
		e = f + strcspn(f, ",");
		if (t->nfallbacks == PARSE_MAXFALLBACKS)
			return pf_err(err, n, "more than %d fallbacks",
			    PARSE_MAXFALLBACKS);
		if ((t->fallbacks[t->nfallbacks++] = strndup(f,
		    (size_t)(e - f))) == NULL)
			return pf_err(err, n, "out of memory");
	}
	if (type == PARSE_TIME_MIXED && format == NULL && t->nfallbacks == 0)
		return pf_err(err, n, "time_type mixed wants time_format or "
		    "time_format_fallbacks");
	if (tz != NULL) {
		if (timefmt_zone(&t->zone, tz) == -1)
			return pf_err(err, n, "unknown timezone: %s", tz);
	} else
		(void)timefmt_zone(&t->zone, utc ? "UTC" : NULL);
	return 0;
}

static void
pf_ptime_free(struct ptime *t)
{
	int i;

	free(t->format);
	for (i = 0; i < t->nfallbacks; i++)
		free(t->fallbacks[i]);
}

/* A types "time" option: [tz:]fmt, where fmt may be "unixtime" or
 * "float"; as Fluentd, the zone ends at the first colon. */
static int
pf_typetime(struct parser *p, struct ptype *t, char *opt, char *err, size_t n)
{
	enum parse_time_type tt = PARSE_TIME_STRING;
	struct timefmt_zone z;
	const char *tz = NULL;
	char *fmt = opt, *c;

	if (opt != NULL && (c = strchr(opt, ':')) != NULL) {
		*c = '\0';
		if (timefmt_zone(&z, opt) == 0) {
			tz = opt;
			fmt = c + 1;
		} else
			*c = ':';
	}
	if (fmt != NULL && strcmp(fmt, "unixtime") == 0) {
		tt = PARSE_TIME_UNIXTIME;
		fmt = NULL;
	} else if (fmt != NULL && strcmp(fmt, "float") == 0) {
		tt = PARSE_TIME_FLOAT;
		fmt = NULL;
	}
	return pf_ptime(&t->time, tt, fmt, NULL, tz, p->utc, err, n);
}

/* "k:integer,k2:time:%Y-%m-%d,k3:array:|" */
static int
pf_types(struct parser *p, const char *spec, char *err, size_t n)
{
	static const char *const names[] = { "string", "integer", "float",
	    "bool", "time", "array" };
	char *s, *save, *ent, *ty, *opt;
	struct ptype *t;
	int v, rc = 0;
	size_t cnt = 1;
	const char *q;

	for (q = spec; *q != '\0'; q++)
		cnt += *q == ',';
	if ((p->types = calloc(cnt, sizeof *p->types)) == NULL ||
	    (s = strdup(spec)) == NULL)
		return pf_err(err, n, "out of memory");
	save = s;
	while (rc == 0 && (ent = strsep(&s, ",")) != NULL) {
		if (*ent == '\0')
			continue;
		if ((ty = strchr(ent, ':')) == NULL) {
			rc = pf_err(err, n, "types: %s has no type", ent);
			break;
		}
		*ty++ = '\0';
		if ((opt = strchr(ty, ':')) != NULL)
			*opt++ = '\0';
		if (pf_enum(ty, names, 6, &v) == -1) {
			rc = pf_err(err, n, "unknown value conversion for "
			    "key:'%s', type:'%s'", ent, ty);
			break;
		}
		t = &p->types[p->ntypes++];
		t->type = v;
		t->klen = strlen(ent);
		if ((t->key = strdup(ent)) == NULL) {
			rc = pf_err(err, n, "out of memory");
			break;
		}
		if (v == PT_ARRAY) {
			if ((t->delim = strdup(opt != NULL ? opt : ",")) == NULL)
				rc = pf_err(err, n, "out of memory");
		} else if (v == PT_TIME)
			rc = pf_typetime(p, t, opt, err, n);
	}
	free(save);
	return rc;
}

/* Fluentd's array parameter: "a,b,c" or a JSON array of strings. */
static int
pf_keys(struct parser *p, const char *spec, char *err, size_t n)
{
	char *s, *k, *save;
	size_t cnt = 1, l;
	const char *q;

	for (q = spec; *q != '\0'; q++)
		cnt += *q == ',';
	if ((p->keys = calloc(cnt, sizeof *p->keys)) == NULL ||
	    (p->klens = calloc(cnt, sizeof *p->klens)) == NULL ||
	    (s = strdup(spec)) == NULL)
		return pf_err(err, n, "out of memory");
	save = s;
	if (*s == '[' && (l = strlen(s)) > 1 && s[l - 1] == ']') {
		s[l - 1] = '\0';
		s++;
	}
	while ((k = strsep(&s, ",")) != NULL) {
		while (*k == ' ')
			k++;
		l = strlen(k);
		while (l > 0 && k[l - 1] == ' ')
			k[--l] = '\0';
		if (l >= 2 && k[0] == '"' && k[l - 1] == '"') {
			k[l - 1] = '\0';
			k++;
		}
		if ((p->keys[p->nkeys] = strdup(k)) == NULL) {
			free(save);
			return pf_err(err, n, "out of memory");
		}
		p->klens[p->nkeys] = strlen(k);
		p->nkeys++;
	}
	free(save);
	return 0;
}

/* A delimiter as typed on a command line: \t, \n, \\ are understood. */
static char *
pf_unescape(const char *s, size_t *len)
{
	char *d = malloc(strlen(s) + 1), *o = d;

	if (d == NULL)
		return NULL;
	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			s++;
			*o++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s;
		} else
			*o++ = *s;
	}
	*o = '\0';
	*len = (size_t)(o - d);
	return d;
}

static int
pf_setup(struct parser *p, const struct parse_conf *c, char *err, size_t n)
{
	enum parse_time_type tt = c->time_type;
	const char *tkey = c->time_key, *tfmt = c->time_format, *d;

	p->format = c->format;
	p->utc = c->utc;
	p->keep_time_key = c->keep_time_key;
	p->estimate = c->estimate_current_event;
	p->null_empty = c->null_empty_string;
	if (c->timezone != NULL && tfmt == NULL && c->format != PARSE_FMT_JSON &&
	    c->format != PARSE_FMT_SYSLOG && c->format != PARSE_FMT_APACHE2 &&
	    c->format != PARSE_FMT_NGINX)
		return pf_err(err, n, "specifying timezone requires time "
		    "format");
	/* the formats' own defaults, as Fluentd's config_set_default */
	if (tkey == NULL)
		tkey = "time";
	if (c->format == PARSE_FMT_NGINX && tfmt == NULL)
		tfmt = "%d/%b/%Y:%H:%M:%S %z";
	if (tt == PARSE_TIME_DEFAULT)
		tt = c->format == PARSE_FMT_JSON && c->time_format == NULL ?
		    PARSE_TIME_FLOAT : PARSE_TIME_STRING;
	if (*tkey != '\0' && c->format != PARSE_FMT_NONE) {
		if ((p->time_key = strdup(tkey)) == NULL)
			return pf_err(err, n, "out of memory");
		p->tklen = strlen(tkey);
	}
	if (pf_ptime(&p->time, tt, tfmt, c->time_format_fallbacks,
	    c->timezone, c->utc, err, n) == -1)
		return -1;
	if (c->types != NULL && pf_types(p, c->types, err, n) == -1)
		return -1;
	if (c->null_value_pattern != NULL && pre_conf(&p->null_re,
	    c->null_value_pattern, 0, err, n) == -1)
		return -1;
	p->convert = p->ntypes > 0 || p->null_re.code != NULL || p->null_empty;
	if ((p->message_key = strdup(c->message_key != NULL ? c->message_key :
	    "message")) == NULL)
		return pf_err(err, n, "out of memory");
	d = c->delimiter != NULL ? c->delimiter :
	    c->format == PARSE_FMT_CSV ? "," : "\t";
	if ((p->delim = pf_unescape(d, &p->dlen)) == NULL ||
	    (p->ldelim = pf_unescape(c->label_delimiter != NULL ?
	    c->label_delimiter : ":", &p->ldlen)) == NULL)
		return pf_err(err, n, "out of memory");
	if (p->dlen == 0 || p->ldlen == 0)
		return pf_err(err, n, "empty delimiter");
	switch (c->format) {
	case PARSE_FMT_TSV:
	case PARSE_FMT_CSV:
		if (c->keys == NULL)
			return pf_err(err, n, "%s wants keys",
			    formats[c->format]);
		if (pf_keys(p, c->keys, err, n) == -1)
			return -1;
		if ((p->csvcols = calloc(p->nkeys,
		    sizeof *p->csvcols)) == NULL)
			return pf_err(err, n, "out of memory");
		return 0;
	case PARSE_FMT_JSON:
		/* json_parse_record reads a float time itself, exactly from
		 * the digits; a string time is read here, through the cache
		 * and the zone */
		p->json_direct = tt == PARSE_TIME_FLOAT;
		if ((p->jr = json_reader_new()) == NULL)
			return pf_err(err, n, "out of memory");
		return 0;
	case PARSE_FMT_REGEXP:
	case PARSE_FMT_APACHE2:
	case PARSE_FMT_APACHE_ERROR:
	case PARSE_FMT_NGINX:
	case PARSE_FMT_MULTILINE:
		return parse_regexp_setup(p, c, err, n);
	case PARSE_FMT_SYSLOG:
		return parse_syslog_setup(p, c, err, n);
	default:
		return 0;
	}
}

struct parser *
parse_new(const struct parse_conf *c, char *err, size_t n)
{
	struct parser *p;

	if ((p = calloc(1, sizeof *p)) == NULL) {
		pf_err(err, n, "out of memory");
		return NULL;
	}
	if (pf_setup(p, c, err, n) == -1) {
		parse_free(p);
		return NULL;
	}
	return p;
}

void
parse_free(struct parser *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->time_key);
	json_reader_free(p->jr);
	pf_ptime_free(&p->time);
	for (i = 0; i < p->ntypes; i++) {
		free(p->types[i].key);
		free(p->types[i].delim);
		pf_ptime_free(&p->types[i].time);
	}
	free(p->types);
	pre_free(&p->null_re);
	pre_free(&p->re);
	pre_free(&p->first);
	pre_free(&p->sl_re3164);
	pre_free(&p->sl_re5424);
	free(p->sl_fmt3164);
	free(p->sl_fmt5424);
	free(p->message_key);
	free(p->delim);
	free(p->ldelim);
	for (i = 0; i < p->nkeys; i++)
		free(p->keys[i]);
	free(p->keys);
	free(p->klens);
	free(p->csvcols);
	buf_free(&p->held);
	buf_free(&p->fail);
	buf_free(&p->scratch);
	free(p);
}

typedef int (*parse_fn)(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);

static const parse_fn parse_fns[] = {
	[PARSE_FMT_NONE] = parse_none, [PARSE_FMT_LTSV] = parse_ltsv,
	[PARSE_FMT_JSON] = parse_json, [PARSE_FMT_REGEXP] = parse_regexp,
	[PARSE_FMT_APACHE2] = parse_apache2,
	[PARSE_FMT_APACHE_ERROR] = parse_regexp,
	[PARSE_FMT_NGINX] = parse_regexp, [PARSE_FMT_SYSLOG] = parse_syslog,
	[PARSE_FMT_TSV] = parse_tsv, [PARSE_FMT_CSV] = parse_csv,
	[PARSE_FMT_MSGPACK] = parse_msgpack,
	[PARSE_FMT_MULTILINE] = parse_multi_line,
};

int
parse_line(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	int rc;

	p->failed = line;
	p->failedlen = len;
	*sec = *nsec = 0;
	rc = parse_fns[p->format](p, line, len, rec, sec, nsec, err, errlen);
	return rc < 0 ? PARSE_ERR : rc;
}

int
parse_flush(struct parser *p, struct buf *rec, uint32_t *sec, uint32_t *nsec,
    char *err, size_t errlen)
{
	*sec = *nsec = 0;
	if (p->format != PARSE_FMT_MULTILINE || p->held.len == 0)
		return PARSE_MORE;
	return parse_multi_flush(p, rec, sec, nsec, err, errlen);
}

int
parse_pending(const struct parser *p)
{
	return p->held.len > 0;
}

const char *
parse_failed(const struct parser *p, size_t *len)
{
	*len = p->failedlen;
	return p->failed;
}

int
parse_unmatched(struct buf *rec, const char *line, size_t len)
{
	struct rb b;

	rb_begin(&b, rec);
	rb_key(&b, "unmatched_line", 14);
	rb_str(&b, line, len);
	return rb_end(&b);
}
