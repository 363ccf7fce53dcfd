/* libFuzzer target for lib/prom: any bytes as a metrics file (lf's, a
 * node_exporter textfile, garbage).  What parses is sound (names in
 * their character sets, indices in range, strings UTF-8 without NUL)
 * and is written back in the text format, which must parse to the same
 * families and samples, values bit for bit. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_name(const char *s, int metric)
{
	const char *set = metric ?
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789" :
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";

	if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9') ||
	    strspn(s, set) != strlen(s))
		abort();
}

static void
escaped(struct buf *b, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_adds(b, "\\\\");
		else if (*s == '\n')
			buf_adds(b, "\\n");
		else if (quote && *s == '"')
			buf_adds(b, "\\\"");
		else
			buf_addc(b, *s);
	}
}

static void
value(struct buf *b, double v)
{
	if (isnan(v))
		buf_adds(b, "NaN");
	else if (isinf(v))
		buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	else
		buf_printf(b, "%.17g", v);
}

/* Every family's HELP and TYPE first, then the samples in order. */
static void
write_doc(struct buf *b, const struct prom_doc *d)
{
	for (size_t i = 0; i < d->nfams; i++) {
		const struct prom_family *f = &d->fams[i];

		if (f->help) {
			buf_printf(b, "# HELP %s ", f->name);
			escaped(b, f->help, 0);
			buf_addc(b, '\n');
		}
		if (f->typed)
			buf_printf(b, "# TYPE %s %s\n", f->name,
			    prom_type_name(f->type));
	}
	for (size_t i = 0; i < d->nsamples; i++) {
		const struct prom_sample *s = &d->samples[i];

		buf_adds(b, s->name);
		buf_addc(b, '{');
		for (size_t k = 0; k < s->nlabels; k++) {
			buf_printf(b, "%s=\"", d->labels[s->label + k].name);
			escaped(b, d->labels[s->label + k].value, 1);
			buf_adds(b, "\",");
		}
		buf_adds(b, "} ");
		value(b, s->value);
		if (s->has_time)
			buf_printf(b, " %lld", s->time_ms);
		buf_addc(b, '\n');
	}
}

static void
check_sound(const struct prom_doc *d)
{
	for (size_t i = 0; i < d->nfams; i++) {
		check_name(d->fams[i].name, 1);
		if (prom_family(d, d->fams[i].name) != &d->fams[i])
			abort();
	}
	for (size_t i = 0; i < d->nsamples; i++) {
		const struct prom_sample *s = &d->samples[i];

		check_name(s->name, 1);
		if (s->family >= d->nfams || s->label + s->nlabels > d->nlabels ||
		    s->nlabels > PROM_LABELS_MAX)
			abort();
		if (strncmp(s->name, d->fams[s->family].name,
		    strlen(d->fams[s->family].name)) != 0)
			abort();
		for (size_t k = 0; k < s->nlabels; k++)
			check_name(d->labels[s->label + k].name, 0);
	}
}

static int
same_value(double a, double b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static int
same_help(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void
check_same(const struct prom_doc *a, const struct prom_doc *b)
{
	if (a->nfams != b->nfams || a->nsamples != b->nsamples)
		abort();
	for (size_t i = 0; i < a->nfams; i++) {
		const struct prom_family *f = &a->fams[i];
		const struct prom_family *g = prom_family(b, f->name);

		if (g == NULL || g->type != f->type || g->typed != f->typed ||
		    g->nsamples != f->nsamples || !same_help(f->help, g->help))
			abort();
	}
	for (size_t i = 0; i < a->nsamples; i++) {
		const struct prom_sample *s = &a->samples[i], *t = &b->samples[i];

		if (strcmp(s->name, t->name) != 0 ||
		    strcmp(a->fams[s->family].name, b->fams[t->family].name) != 0 ||
		    !same_value(s->value, t->value) ||
		    s->has_time != t->has_time || s->time_ms != t->time_ms ||
		    s->nlabels != t->nlabels)
			abort();
		for (size_t k = 0; k < s->nlabels; k++) {
			const struct prom_label *l = &a->labels[s->label + k];
			const struct prom_label *m = &b->labels[t->label + k];

			if (strcmp(l->name, m->name) != 0 ||
			    strcmp(l->value, m->value) != 0)
				abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prom_doc d, back;
	struct buf out = BUF_INIT;
	char err[256];

	if (prom_parse(&d, (const char *)data, size, err, sizeof err) == -1) {
		if (strlen(err) == 0)
			abort();
		return 0;
	}
	check_sound(&d);
	write_doc(&out, &d);
	/* a line may grow by its escapes and "{}": only the shorter ones
	 * are sure to fit the line limit when written back */
	if (prom_parse(&back, (const char *)out.p, out.len, err,
	    sizeof err) == -1) {
		if (strstr(err, "longer than") == NULL &&
		    strstr(err, "more than") == NULL) {
			fprintf(stderr, "written back, refused: %s\n%.*s", err,
			    (int)out.len, (const char *)out.p);
			abort();
		}
	} else {
		check_same(&d, &back);
		prom_free(&back);
	}
	buf_free(&out);
	prom_free(&d);
	return 0;
}
