/* parse_syslog: Fluentd's syslog parser, its default regexp engine:
 * the time is the first words of the line (as many as the time format
 * has), the rest one of Fluentd's two expressions.  Like Fluentd, no
 * time_key and no types: the record is pri (with_priority), time (with
 * keep_time_key, the text), then the captures. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

static const char re_3164[] =
    "(?<host>[^ ]*) (?<ident>[^ :\\[]*)(?:\\[(?<pid>[0-9]+)\\])?"
    "(?:[^\\:]*\\:)? *(?<message>.*)$";
static const char re_5424[] =
    "(?<host>[!-~]{1,255}) (?<ident>[!-~]{1,48}) (?<pid>[!-~]{1,128}) "
    "(?<msgid>[!-~]{1,32}) (?<extradata>(?:\\-|(?:\\[.*?(?<!\\\\)\\])))"
    "(?: (?<message>.+))?\\z";

#define SL_3164_TIME	"%b %d %H:%M:%S"
#define SL_5424_TIME	"%Y-%m-%dT%H:%M:%S.%L%z"
#define SL_5424_PLAIN	"%Y-%m-%dT%H:%M:%S%z"

int
parse_syslog_setup(struct parser *p, const struct parse_conf *c, char *err,
    size_t n)
{
	const char *f3164 = c->time_format != NULL ? c->time_format :
	    SL_3164_TIME;
	const char *f5424 = c->rfc5424_time_format != NULL ?
	    c->rfc5424_time_format : SL_5424_TIME;

	if (c->message_format == PARSE_SYSLOG_RFC5424 && c->time_format != NULL)
		f5424 = c->time_format;
	p->sl_format = c->message_format;
	p->sl_pri = c->with_priority;
	p->sl_colonless = c->support_colonless_ident;
	if ((p->sl_fmt3164 = strdup(f3164)) == NULL ||
	    (p->sl_fmt5424 = strdup(f5424)) == NULL)
		return pf_err(err, n, "out of memory");
	if (pre_compile(&p->sl_re3164, re_3164, 0, err, n) == -1 ||
	    pre_compile(&p->sl_re5424, re_5424, PCRE2_DOTALL, err, n) == -1)
		return -1;
	return 0;
}

/* Words in a format, counted as Fluentd does: squeeze(' ').count(' ')+1. */
static int
sl_words(const char *f)
{
	int n = 1;

	for (; *f != '\0'; f++)
		if (*f == ' ' && f[1] != ' ')
			n++;
	return n;
}

/* The time text: words from idx on, found as Fluentd finds them.  *end
 * is the index of the space after it; the text is squeezed (runs of
 * spaces made one) into sq if it had runs. */
static int
sl_time(const char *s, size_t len, size_t idx, int words, size_t *end,
    char *sq, size_t sqsize, const char **t, size_t *tl)
{
	long i = (long)idx - 1;
	size_t j, o;
	int w, squeezed = 0;
	const char *sp;

	for (w = 0; w < words; w++) {
		while ((size_t)(i + 1) < len && s[i + 1] == ' ') {
			squeezed = 1;
			i++;
		}
		if ((size_t)(i + 1) >= len || (sp = memchr(s + i + 1, ' ',
		    len - (size_t)(i + 1))) == NULL)
			return -1;
		i = sp - s;
	}
	*end = (size_t)i;
	if (!squeezed) {
		*t = s + idx;
		*tl = (size_t)i - idx;
		return 0;
	}
	for (j = idx, o = 0; j < (size_t)i && o + 1 < sqsize; j++)
		if (s[j] != ' ' || o == 0 || sq[o - 1] != ' ')
			sq[o++] = s[j];
	*t = sq;
	*tl = o;
	return 0;
}

/* Ruby's chomp!: one trailing \n, \r\n or \r. */
static size_t
sl_chomp(const char *v, size_t vl)
{
	if (vl > 0 && v[vl - 1] == '\n')
		vl--;
	else if (vl > 0 && v[vl - 1] == '\r')
		return vl - 1;
	if (vl > 0 && v[vl - 1] == '\r')
		vl--;
	return vl;
}

static int
sl_parse(struct parser *p, int is5424, const char *s, size_t len,
    struct buf *rec, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	static const char *const n3164[] = { "host", "ident", "pid",
	    "message" };
	static const char *const n5424[] = { "host", "ident", "pid", "msgid",
	    "extradata", "message" };
	struct pre *re = is5424 ? &p->sl_re5424 : &p->sl_re3164;
	const char *const *names = is5424 ? n5424 : n3164;
	const char *fmt = is5424 ? p->sl_fmt5424 : p->sl_fmt3164, *t;
	size_t idx = 0, end, tl, i, nn = is5424 ? 6 : 4, j, vl;
	char sq[256];
	int pri = -1, m, g;
	PCRE2_SIZE *ov;
	struct rb b;

	if (p->sl_pri) {
		/* <1-3 digits>, and for 5424 a version and a space */
		if (len < 3 || s[0] != '<')
			return pf_err(err, errlen, "no priority");
		for (i = 1, pri = 0; i < len && i < 4 &&
		    isdigit((unsigned char)s[i]); i++)
			pri = pri * 10 + (s[i] - '0');
		if (i == 1 || i >= len || s[i] != '>')
			return pf_err(err, errlen, "no priority");
		idx = i + 1;
		if (is5424) {
			for (j = idx; j < len && j < idx + 3 &&
			    isdigit((unsigned char)s[j]); j++)
				;
			if (j == idx || j >= len ||
			    !isspace((unsigned char)s[j]))
				return pf_err(err, errlen, "no version");
			idx = j + 1;
		}
	}
	if (sl_time(s, len, idx, sl_words(fmt), &end, sq, sizeof sq, &t,
	    &tl) == -1)
		return pf_err(err, errlen, "no time");
	if (timefmt_parsez(t, tl, fmt, &p->time.zone, sec, nsec) == -1 &&
	    (!is5424 || timefmt_parsez(t, tl, SL_5424_PLAIN, &p->time.zone,
	    sec, nsec) == -1))
		return pf_err(err, errlen, "invalid time: %.*s",
		    (int)(tl > 64 ? 64 : tl), t);
	if ((m = pre_match(re, s, len, end + 1)) != 1)
		return pf_err(err, errlen, "pattern not matched");
	ov = pcre2_get_ovector_pointer(re->md);
	rb_begin(&b, rec);
	if (pri >= 0) {
		rb_key(&b, "pri", 3);
		rb_int(&b, pri);
	}
	if (p->keep_time_key) {
		rb_key(&b, "time", 4);
		rb_str(&b, t, tl);
	}
	for (i = 0; i < nn; i++) {
		for (j = 0, g = 0; j < re->nnames; j++)
			if (strcmp(re->names[j].name, names[i]) == 0)
				g = re->names[j].group;
		if (g == 0 || ov[2 * g] == PCRE2_UNSET)
			continue;
		vl = ov[2 * g + 1] - ov[2 * g];
		if (strcmp(names[i], "message") == 0)
			vl = sl_chomp(s + ov[2 * g], vl);
		rb_key(&b, names[i], strlen(names[i]));
		rb_str(&b, s + ov[2 * g], vl);
	}
	if (rb_end(&b) == -1)
		return pf_err(err, errlen, "out of memory");
	return PARSE_OK;
}

/* auto: <pri>version is RFC 5424 (Fluentd's REGEXP_DETECT_RFC5424). */
static int
sl_is5424(const char *s, size_t len)
{
	size_t i;

	if (len < 4 || s[0] != '<')
		return 0;
	for (i = 1; i < len && i < 4 && isdigit((unsigned char)s[i]); i++)
		;
	if (i == 1 || i + 1 >= len || s[i] != '>')
		return 0;
	return s[i + 1] >= '1' && s[i + 1] <= '9';
}

int
parse_syslog(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	int is5424 = p->sl_format == PARSE_SYSLOG_RFC5424 ||
	    (p->sl_format == PARSE_SYSLOG_AUTO && sl_is5424(line, len));

	return sl_parse(p, is5424, line, len, rec, sec, nsec, err, errlen);
}
