/* prom: Prometheus's text exposition format 0.0.4, read (prom.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prom.h"

#define PROM_LABELS_TOTAL (PROM_SAMPLES_MAX * 4)

/* One line being read: p moves from its start to end (its LF or the end
 * of the text). */
struct lex {
	const char *p, *end;
	struct prom_doc *d;
	size_t lineno;
	char *err;
	size_t errlen;
};

static const char *const type_names[] = {
	"untyped", "counter", "gauge", "histogram", "summary"
};

const char *
prom_type_name(enum prom_type t)
{
	return (unsigned)t < sizeof type_names / sizeof *type_names ?
	    type_names[t] : "?";
}

static int
fail(struct lex *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(x->err, x->errlen, "line %zu: ", x->lineno);
	if (n < 0 || (size_t)n >= x->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
nomem(struct lex *x)
{
	fail(x, "out of memory");
	errno = ENOMEM;
	return -1;
}

static int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static void
skip_blank(struct lex *x)
{
	while (x->p < x->end && is_blank(*x->p))
		x->p++;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for a metric, the same without ':' for a
 * label: its length at x->p, 0 if none starts there. */
static size_t
name_len(const struct lex *x, int metric)
{
	const char *p = x->p;

	for (; p < x->end; p++) {
		int c = (unsigned char)*p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || (metric && c == ':') ||
		    (p > x->p && c >= '0' && c <= '9')))
			break;
	}
	return (size_t)(p - x->p);
}

/* Well-formed UTF-8: no overlong forms, surrogates or code points past
 * U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, min, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, min = 0x80, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, min = 0x800, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, min = 0x10000, cp = c & 0x07;
		else
			return 0;
		if (n - i <= need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* The string arena never moves: it was sized for the whole text, and
 * no string is longer unescaped than written. */
static const char *
str_add(struct prom_doc *d, const char *p, size_t n)
{
	char *s = d->strs + d->strslen;

	memcpy(s, p, n);
	s[n] = '\0';
	d->strslen += n + 1;
	return s;
}

/* Read escaped text up to stop (a '"'; or 0: the end of the line) into
 * the arena.  quote: \" is an escape too. */
static const char *
str_unescape(struct lex *x, int quote)
{
	char *s = x->d->strs + x->d->strslen, *o = s;

	for (;;) {
		if (x->p == x->end) {
			if (quote) {
				fail(x, "a label value is not closed");
				return NULL;
			}
			break;
		}
		if (quote && *x->p == '"') {
			x->p++;
			break;
		}
		if (*x->p != '\\') {
			*o++ = *x->p++;
			continue;
		}
		if (++x->p == x->end) {
			fail(x, "a backslash at the end of the line");
			return NULL;
		}
		if (*x->p == '\\' || (quote && *x->p == '"'))
			*o++ = *x->p++;
		else if (*x->p == 'n')
			*o++ = '\n', x->p++;
		else {
			fail(x, "an unknown escape \\%c in a %s",
			    *x->p >= ' ' && *x->p < 127 ? *x->p : '?',
			    quote ? "label value" : "HELP text");
			return NULL;
		}
	}
	*o = '\0';
	if (!utf8_valid((const unsigned char *)s, (size_t)(o - s))) {
		fail(x, "a %s is not UTF-8", quote ? "label value" : "HELP text");
		return NULL;
	}
	x->d->strslen += (size_t)(o - s) + 1;
	return s;
}

/* ---- families, found by name through a small open hash ---- */

static size_t
hash_of(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	while (n--)
		h = (h ^ (unsigned char)*p++) * 1099511628211ull;
	return (size_t)h;
}

static size_t *
hash_slot(const struct prom_doc *d, const char *p, size_t n)
{
	size_t i = hash_of(p, n) & (d->caphash - 1);

	for (;; i = (i + 1) & (d->caphash - 1)) {
		const char *name;

		if (d->hash[i] == 0)
			return &d->hash[i];
		name = d->fams[d->hash[i] - 1].name;
		if (strncmp(name, p, n) == 0 && name[n] == '\0')
			return &d->hash[i];
	}
}

static int
hash_grow(struct prom_doc *d)
{
	size_t cap = d->caphash ? d->caphash * 2 : 64, *old = d->hash;
	size_t oldcap = d->caphash;

	if ((d->hash = calloc(cap, sizeof *d->hash)) == NULL) {
		d->hash = old;
		return -1;
	}
	d->caphash = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i]) {
			const char *name = d->fams[old[i] - 1].name;

			*hash_slot(d, name, strlen(name)) = old[i];
		}
	free(old);
	return 0;
}

static struct prom_family *
fam_find(const struct prom_doc *d, const char *p, size_t n)
{
	size_t *slot;

	if (d->caphash == 0)
		return NULL;
	slot = hash_slot(d, p, n);
	return *slot ? &d->fams[*slot - 1] : NULL;
}

const struct prom_family *
prom_family(const struct prom_doc *d, const char *name)
{
	return fam_find(d, name, strlen(name));
}

static int
grow(void *pp, size_t *cap, size_t need, size_t size)
{
	void *p;
	size_t c;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	if (c < need)
		c = need;
	if ((p = realloc(*(void **)pp, c * size)) == NULL)
		return -1;
	*(void **)pp = p;
	*cap = c;
	return 0;
}

static struct prom_family *
fam_get(struct lex *x, const char *p, size_t n)
{
	struct prom_doc *d = x->d;
	struct prom_family *f;

	if ((f = fam_find(d, p, n)) != NULL)
		return f;
	if (d->nfams == PROM_FAMILIES_MAX) {
		fail(x, "more than %d metric families", PROM_FAMILIES_MAX);
		return NULL;
	}
	if (grow(&d->fams, &d->capfams, d->nfams + 1, sizeof *d->fams) == -1 ||
	    ((d->nfams + 1) * 2 > d->caphash && hash_grow(d) == -1)) {
		nomem(x);
		return NULL;
	}
	f = &d->fams[d->nfams++];
	memset(f, 0, sizeof *f);
	f->name = str_add(d, p, n);
	*hash_slot(d, p, n) = d->nfams;
	return f;
}

/* The family a sample named p[0..n) belongs to (prom.h). */
static struct prom_family *
fam_of_sample(struct lex *x, const char *p, size_t n)
{
	static const struct {
		const char *suffix;
		int summary;		/* a summary has it too */
	} sfx[] = { { "_bucket", 0 }, { "_sum", 1 }, { "_count", 1 } };
	struct prom_family *f;

	for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
		size_t k = strlen(sfx[i].suffix);

		if (n <= k || memcmp(p + n - k, sfx[i].suffix, k) != 0)
			continue;
		if ((f = fam_find(x->d, p, n - k)) != NULL &&
		    (f->type == PROM_HISTOGRAM ||
		    (sfx[i].summary && f->type == PROM_SUMMARY)))
			return f;
	}
	return fam_get(x, p, n);
}

/* ---- # lines ---- */

static int
has_samples(const struct prom_doc *d, const char *name, size_t n,
    const char *suffix)
{
	char b[PROM_LINE_MAX + 16];
	const struct prom_family *f;
	size_t k = strlen(suffix);

	memcpy(b, name, n);
	memcpy(b + n, suffix, k);
	f = fam_find(d, b, n + k);
	return f != NULL && f->nsamples > 0;
}

static int
set_type(struct lex *x, const char *name, size_t n)
{
	const char *t = x->p, *e = x->end;
	struct prom_family *f;
	size_t i;

	while (e > t && is_blank(e[-1]))
		e--;
	for (i = 0; i < sizeof type_names / sizeof *type_names; i++)
		if ((size_t)(e - t) == strlen(type_names[i]) &&
		    memcmp(t, type_names[i], (size_t)(e - t)) == 0)
			break;
	if (i == sizeof type_names / sizeof *type_names)
		return fail(x, "an unknown metric type in a TYPE line");
	if ((f = fam_get(x, name, n)) == NULL)
		return -1;
	if (f->typed)
		return fail(x, "a second TYPE line for %s", f->name);
	/* samples read before would belong elsewhere */
	if (f->nsamples > 0 || ((i == PROM_HISTOGRAM || i == PROM_SUMMARY) &&
	    (has_samples(x->d, name, n, "_sum") ||
	    has_samples(x->d, name, n, "_count") ||
	    (i == PROM_HISTOGRAM && has_samples(x->d, name, n, "_bucket")))))
		return fail(x, "a TYPE line for %s after its samples", f->name);
	f->type = (enum prom_type)i;
	f->typed = 1;
	x->p = x->end;
	return 0;
}

static int
set_help(struct lex *x, const char *name, size_t n)
{
	struct prom_family *f;
	const char *help;

	if ((f = fam_get(x, name, n)) == NULL)
		return -1;
	if (f->help != NULL)
		return fail(x, "a second HELP line for %s", f->name);
	if ((help = str_unescape(x, 0)) == NULL)
		return -1;
	f->help = help;
	return 0;
}

/* "# HELP name doc", "# TYPE name type", or a comment. */
static int
hash_line(struct lex *x)
{
	const char *kw, *name;
	size_t n;

	x->p++;
	skip_blank(x);
	kw = x->p;
	while (x->p < x->end && !is_blank(*x->p))
		x->p++;
	n = (size_t)(x->p - kw);
	if (n != 4 || (memcmp(kw, "HELP", 4) != 0 && memcmp(kw, "TYPE", 4) != 0))
		return 0;
	skip_blank(x);
	if (x->p == x->end)
		return 0;	/* "# HELP" alone: a comment, as Prometheus has it */
	name = x->p;
	if ((n = name_len(x, 1)) == 0)
		return fail(x, "not a metric name after # %.4s", kw);
	x->p += n;
	if (x->p < x->end && !is_blank(*x->p))
		return fail(x, "not a metric name after # %.4s", kw);
	skip_blank(x);
	return kw[0] == 'H' ? set_help(x, name, n) : set_type(x, name, n);
}

/* ---- samples ---- */

static int
label_add(struct lex *x, struct prom_sample *s)
{
	struct prom_doc *d = x->d;
	const char *name, *value;
	size_t n;

	if ((n = name_len(x, 0)) == 0)
		return fail(x, "not a label name");
	name = str_add(d, x->p, n);
	x->p += n;
	skip_blank(x);
	if (x->p == x->end || *x->p != '=')
		return fail(x, "no = after the label name %s", name);
	x->p++;
	skip_blank(x);
	if (x->p == x->end || *x->p != '"')
		return fail(x, "no \" to start the value of label %s", name);
	x->p++;
	if ((value = str_unescape(x, 1)) == NULL)
		return -1;
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(d->labels[s->label + i].name, name) == 0)
			return fail(x, "the label %s twice", name);
	if (s->nlabels == PROM_LABELS_MAX)
		return fail(x, "more than %d labels", PROM_LABELS_MAX);
	if (d->nlabels == PROM_LABELS_TOTAL)
		return fail(x, "more than %d labels in all", PROM_LABELS_TOTAL);
	if (grow(&d->labels, &d->caplabels, d->nlabels + 1,
	    sizeof *d->labels) == -1)
		return nomem(x);
	d->labels[d->nlabels].name = name;
	d->labels[d->nlabels].value = value;
	d->nlabels++;
	s->nlabels++;
	return 0;
}

static int
labels(struct lex *x, struct prom_sample *s)
{
	x->p++;			/* { */
	for (;;) {
		skip_blank(x);
		if (x->p < x->end && *x->p == '}')
			break;
		if (label_add(x, s) == -1)
			return -1;
		skip_blank(x);
		if (x->p < x->end && *x->p == ',') {
			x->p++;
			continue;
		}
		if (x->p < x->end && *x->p == '}')
			break;
		return fail(x, "no , or } after a label");
	}
	x->p++;			/* } */
	return 0;
}

static size_t
token(struct lex *x, const char **t)
{
	*t = x->p;
	while (x->p < x->end && !is_blank(*x->p))
		x->p++;
	return (size_t)(x->p - *t);
}

/* A float as Prometheus writes one: decimal, or NaN, Inf, +Inf, -Inf
 * (any case, "Infinity" too); never hexadecimal. */
static int
parse_value(const char *t, size_t n, double *v)
{
	char b[64], *end;
	const char *s;

	if (n == 0 || n >= sizeof b)
		return -1;
	memcpy(b, t, n);
	b[n] = '\0';
	s = b + (b[0] == '+' || b[0] == '-');
	if (strcasecmp(s, "nan") != 0 && strcasecmp(s, "inf") != 0 &&
	    strcasecmp(s, "infinity") != 0) {
		if (strspn(s, "0123456789.eE+-") != strlen(s) ||
		    strpbrk(s, "0123456789") == NULL)
			return -1;
	}
	*v = strtod(b, &end);	/* an overflow is an infinity, as in Go */
	return end == b + n ? 0 : -1;
}

static int
parse_time(const char *t, size_t n, long long *ms)
{
	char b[32], *end;

	if (n == 0 || n >= sizeof b)
		return -1;
	memcpy(b, t, n);
	b[n] = '\0';
	if (strspn(b + (b[0] == '-'), "0123456789") != n - (b[0] == '-') ||
	    n == (size_t)(b[0] == '-'))
		return -1;
	errno = 0;
	*ms = strtoll(b, &end, 10);
	return errno == ERANGE ? -1 : 0;
}

static int
sample_line(struct lex *x)
{
	struct prom_doc *d = x->d;
	struct prom_sample s = { 0 };
	struct prom_family *f;
	const char *t;
	size_t n;

	if ((n = name_len(x, 1)) == 0)
		return fail(x, "not a metric name");
	s.name = str_add(d, x->p, n);
	x->p += n;
	s.label = d->nlabels;
	if (x->p < x->end && !is_blank(*x->p) && *x->p != '{')
		return fail(x, "not a metric name");
	skip_blank(x);		/* "name {" is allowed, as in Prometheus */
	if (x->p < x->end && *x->p == '{') {
		if (labels(x, &s) == -1)
			return -1;
		if (x->p < x->end && !is_blank(*x->p))
			return fail(x, "no blank after the labels");
		skip_blank(x);
	}
	n = token(x, &t);
	if (parse_value(t, n, &s.value) == -1)
		return fail(x, "not a sample value");
	skip_blank(x);
	if (x->p < x->end) {
		n = token(x, &t);
		if (parse_time(t, n, &s.time_ms) == -1)
			return fail(x, "not a timestamp in milliseconds");
		s.has_time = 1;
		skip_blank(x);
		if (x->p < x->end)
			return fail(x, "more after the sample's timestamp");
	}
	if (d->nsamples == PROM_SAMPLES_MAX)
		return fail(x, "more than %d samples", PROM_SAMPLES_MAX);
	if ((f = fam_of_sample(x, s.name, strlen(s.name))) == NULL)
		return -1;
	if (grow(&d->samples, &d->capsamples, d->nsamples + 1,
	    sizeof *d->samples) == -1)
		return nomem(x);
	f->nsamples++;
	s.family = (size_t)(f - d->fams);
	d->samples[d->nsamples++] = s;
	return 0;
}

static int
line(struct lex *x)
{
	skip_blank(x);
	if (x->p == x->end)
		return 0;
	return *x->p == '#' ? hash_line(x) : sample_line(x);
}

int
prom_parse(struct prom_doc *d, const char *text, size_t len, char *err,
    size_t errlen)
{
	struct lex x = { .d = d, .err = err, .errlen = errlen };
	const char *p = text, *end, *nl, *nul;

	memset(d, 0, sizeof *d);
	if (len == 0)
		return 0;	/* no family (and text may be NULL) */
	end = text + len;
	if (len > PROM_TEXT_MAX) {
		snprintf(err, errlen, "more than %u bytes", PROM_TEXT_MAX);
		return -1;
	}
	if ((nul = memchr(text, '\0', len)) != NULL) {
		for (x.lineno = 1; p < nul; p++)
			x.lineno += *p == '\n';
		return fail(&x, "a NUL byte: not a text file");
	}
	/* each string is shorter than the bytes it was read from, and
	 * there are fewer strings than bytes: twice the text holds them */
	if ((d->strs = malloc(2 * len + 2)) == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	for (x.lineno = 1; p < end; p = nl + 1, x.lineno++) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (nl - p > PROM_LINE_MAX) {
			fail(&x, "longer than %d bytes", PROM_LINE_MAX);
			goto bad;
		}
		x.p = p;
		x.end = nl;
		if (line(&x) == -1)
			goto bad;
	}
	return 0;
bad:
	prom_free(d);
	return -1;
}

void
prom_free(struct prom_doc *d)
{
	free(d->strs);
	free(d->fams);
	free(d->samples);
	free(d->labels);
	free(d->hash);
	memset(d, 0, sizeof *d);
}

const char *
prom_label(const struct prom_doc *d, const struct prom_sample *s,
    const char *name)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(d->labels[s->label + i].name, name) == 0)
			return d->labels[s->label + i].value;
	return NULL;
}
