/* parse_regexp: the formats that are one regexp: regexp, apache2,
 * apache_error, nginx (Fluentd's own expressions), and multiline. */
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

/* Fluentd's, unchanged but for C's escaping: parser_apache2.rb,
 * parser_apache_error.rb, parser_nginx.rb. */
static const char re_apache2[] =
    "^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "
    "\"(?<method>\\S+)(?: +(?<path>(?:[^\\\"]|\\\\\")*?)(?: +\\S*)?)?\" "
    "(?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>(?:[^\\\"]|\\\\\")*)\" "
    "\"(?<agent>(?:[^\\\"]|\\\\\")*)\")?$";
static const char re_apache_error[] =
    "^\\[[^ ]* (?<time>[^\\]]*)\\] \\[(?<level>[^\\]]*)\\]"
    "(?: \\[pid (?<pid>[^\\]]*)\\])?( \\[client (?<client>[^\\]]*)\\])? "
    "(?<message>.*)$";
static const char re_nginx[] =
    "^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "
    "\"(?<method>\\S+)(?: +(?<path>[^\\\"]*?)(?: +\\S*)?)?\" (?<code>[^ ]*) "
    "(?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" \"(?<agent>[^\\\"]*)\""
    "(?:\\s+\\\"?(?<http_x_forwarded_for>[^\\\"]*)\\\"?)?)?$";

#define APACHE_TIME	"%d/%b/%Y:%H:%M:%S %z"
#define HELD_MAX	(1024 * 1024)	/* a multiline record past this is
					 * let go as unmatched */

/* "/body/" -> body (Fluentd's f[1..-2]); anything else as it is. */
static char *
re_body(const char *f)
{
	size_t l = strlen(f);

	if (l >= 2 && f[0] == '/' && f[l - 1] == '/')
		return strndup(f + 1, l - 2);
	return strdup(f);
}

static int
re_multiline(struct parser *p, const struct parse_conf *c, char *err,
    size_t n)
{
	struct buf all = BUF_INIT;
	char *b;
	int i, rc;

	for (i = 0; i < PARSE_MAXFORMATS && c->formats[i] != NULL; i++) {
		if ((b = re_body(c->formats[i])) == NULL ||
		    buf_adds(&all, b) == -1) {
			free(b);
			buf_free(&all);
			return pf_err(err, n, "out of memory");
		}
		free(b);
	}
	for (; i < PARSE_MAXFORMATS; i++)
		if (c->formats[i] != NULL) {
			buf_free(&all);
			return pf_err(err, n, "format%d is missing", i);
		}
	if (all.len == 0 || buf_addc(&all, '\0') == -1) {
		buf_free(&all);
		return pf_err(err, n, "multiline wants format1");
	}
	/* Ruby's Regexp::MULTILINE: '.' matches a newline too */
	rc = pre_compile(&p->re, (char *)all.p, PCRE2_DOTALL, err, n);
	buf_free(&all);
	if (rc == -1)
		return -1;
	if (c->format_firstline != NULL) {
		if ((b = re_body(c->format_firstline)) == NULL)
			return pf_err(err, n, "out of memory");
		rc = pre_compile(&p->first, b, 0, err, n);
		free(b);
	}
	return rc;
}

int
parse_regexp_setup(struct parser *p, const struct parse_conf *c, char *err,
    size_t n)
{
	const char *src = c->expression;

	switch (c->format) {
	case PARSE_FMT_APACHE2:
		free(p->time.format);
		if ((p->time.format = strdup(APACHE_TIME)) == NULL)
			return pf_err(err, n, "out of memory");
		p->time.type = PARSE_TIME_STRING;
		src = re_apache2;
		break;
	case PARSE_FMT_APACHE_ERROR:
		if (src == NULL)
			src = re_apache_error;
		break;
	case PARSE_FMT_NGINX:
		if (src == NULL)
			src = re_nginx;
		break;
	case PARSE_FMT_MULTILINE:
		if (re_multiline(p, c, err, n) == -1)
			return -1;
		goto names;
	default:
		if (src == NULL)
			return pf_err(err, n, "regexp wants an expression");
	}
	if (pre_conf(&p->re, src, 0, err, n) == -1)
		return -1;
names:
	if (p->re.nnames == 0)
		return pf_err(err, n, "no named captures in the expression");
	return 0;
}

/* The captures that took part, as string fields, then the time. */
static int
re_record(struct parser *p, const char *s, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	PCRE2_SIZE *ov;
	struct rb b;
	size_t i;
	int g, m;

	if ((m = pre_match(&p->re, s, len, 0)) != 1)
		return pf_err(err, errlen, m == 0 ? "pattern not matched" :
		    "regexp match failed (a limit)");
	ov = pcre2_get_ovector_pointer(p->re.md);
	rb_begin(&b, rec);
	for (i = 0; i < p->re.nnames; i++) {
		g = p->re.names[i].group;
		if (ov[2 * g] == PCRE2_UNSET)
			continue;
		pf_field(p, &b, p->re.names[i].name, p->re.names[i].len,
		    s + ov[2 * g], ov[2 * g + 1] - ov[2 * g], 0);
	}
	return pf_finish(p, &b, sec, nsec, err, errlen);
}

int
parse_regexp(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	return re_record(p, line, len, rec, sec, nsec, err, errlen);
}

/* apache2's record: eight fixed keys, "-" as nil, code and size as
 * integers (code 0 as nil), no types; the time always parsed. */
static void
ap_field(struct rb *b, const char *k, const char *s, PCRE2_SIZE *ov, int g,
    int dash, int num)
{
	const char *v = s + ov[2 * g];
	size_t vl = ov[2 * g + 1] - ov[2 * g];
	int64_t x = 0;
	size_t i;

	rb_key(b, k, strlen(k));
	if (ov[2 * g] == PCRE2_UNSET || (dash && vl == 1 && v[0] == '-')) {
		rb_nil(b);
		return;
	}
	if (!num) {
		rb_str(b, v, vl);
		return;
	}
	/* Ruby's to_i: leading digits (the expression allows no sign) */
	for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
		x = x < INT64_MAX / 10 ? x * 10 + (v[i] - '0') : INT64_MAX;
	if (num == 2 && x == 0)
		rb_nil(b);
	else
		rb_int(b, x);
}

static int
ap_group(const struct pre *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i].name, name) == 0)
			return r->names[i].group;
	return 0;
}

int
parse_apache2(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	static const struct { const char *k; int dash, num; } f[] = {
		{ "host", 1, 0 }, { "user", 1, 0 }, { "method", 0, 0 },
		{ "path", 0, 0 }, { "code", 0, 2 }, { "size", 1, 1 },
		{ "referer", 1, 0 }, { "agent", 1, 0 },
	};
	PCRE2_SIZE *ov;
	struct rb b;
	size_t i;
	int m, tg;

	if ((m = pre_match(&p->re, line, len, 0)) != 1)
		return pf_err(err, errlen, m == 0 ? "pattern not matched" :
		    "regexp match failed (a limit)");
	ov = pcre2_get_ovector_pointer(p->re.md);
	tg = ap_group(&p->re, "time");
	if (ptime_parse(&p->time, line + ov[2 * tg], ov[2 * tg + 1] -
	    ov[2 * tg], sec, nsec) == -1)
		return pf_err(err, errlen, "invalid time: %.*s",
		    (int)(ov[2 * tg + 1] - ov[2 * tg]), line + ov[2 * tg]);
	rb_begin(&b, rec);
	for (i = 0; i < sizeof f / sizeof *f; i++)
		ap_field(&b, f[i].k, line, ov, ap_group(&p->re, f[i].k),
		    f[i].dash, f[i].num);
	if (p->keep_time_key)
		ap_field(&b, "time", line, ov, tg, 0, 0);
	if (rb_end(&b) == -1)
		return pf_err(err, errlen, "out of memory");
	return PARSE_OK;
}

/* The held lines did not parse: keep them for parse_failed. */
static void
ml_fail(struct parser *p)
{
	struct buf t = p->fail;

	p->fail = p->held;
	p->held = t;
	buf_reset(&p->held);
	p->failed = (const char *)p->fail.p;
	p->failedlen = p->fail.len;
}

int
parse_multi_flush(struct parser *p, struct buf *rec, uint32_t *sec,
    uint32_t *nsec, char *err, size_t errlen)
{
	int rc;

	rc = re_record(p, (const char *)p->held.p, p->held.len, rec, sec, nsec,
	    err, errlen);
	if (rc < 0)
		ml_fail(p);
	else
		buf_reset(&p->held);
	return rc;
}

static int
ml_hold(struct parser *p, const char *line, size_t len)
{
	if (p->held.len > 0 && buf_addc(&p->held, '\n') == -1)
		return -1;
	return buf_add(&p->held, line, len);
}

/* With format_firstline, a first line flushes what is held and starts
 * anew; other lines join the held record (or, before any first line,
 * are unmatched).  Without, lines join until the whole matches. */
int
parse_multi_line(struct parser *p, const char *line, size_t len,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	int rc = PARSE_MORE, m;

	if (p->held.len + len + 1 > HELD_MAX) {
		ml_fail(p);
		if (ml_hold(p, line, len) == -1)
			return pf_err(err, errlen, "out of memory");
		return pf_err(err, errlen, "multiline record over %d bytes",
		    HELD_MAX);
	}
	if (p->first.code == NULL) {
		if (ml_hold(p, line, len) == -1)
			return pf_err(err, errlen, "out of memory");
		rc = re_record(p, (const char *)p->held.p, p->held.len, rec,
		    sec, nsec, err, errlen);
		if (rc < 0)
			return PARSE_MORE;
		buf_reset(&p->held);
		return rc;
	}
	if ((m = pre_match(&p->first, line, len, 0)) == 1) {
		if (p->held.len > 0)
			rc = parse_multi_flush(p, rec, sec, nsec, err, errlen);
		if (ml_hold(p, line, len) == -1)
			return pf_err(err, errlen, "out of memory");
		return rc;
	}
	if (p->held.len == 0)
		return pf_err(err, errlen, "line before the first line");
	if (ml_hold(p, line, len) == -1)
		return pf_err(err, errlen, "out of memory");
	return PARSE_MORE;
}
