/* prom: a reader of Prometheus's text exposition format 0.0.4, for the
 * metrics files other processes write (lf-top reads them).
 *
 *   # HELP name doc         doc: \\ and \n escapes
 *   # TYPE name counter|gauge|histogram|summary|untyped
 *   # anything else         a comment
 *   name{label="value",...} value [timestamp_ms]
 *
 * Nothing in the text is trusted: a document, a line and a sample's
 * labels have bounded sizes, names are checked against their character
 * sets, values and HELP texts must be UTF-8 and are unescaped, and the
 * first thing wrong stops the parse with "line N: why", as
 * node_exporter's textfile collector rejects a whole file.  A file with
 * a NUL byte is not text.
 *
 * Families: a TYPE or HELP line makes one, and so does a sample whose
 * family was not named before (it is untyped).  A sample named
 * NAME_bucket, NAME_sum or NAME_count belongs to NAME if NAME is a
 * histogram (or, but for _bucket, a summary).  A second HELP or TYPE for
 * a family, or a TYPE after samples of the family, is an error.  The
 * format's rules beyond the syntax (a histogram's le labels, the order of
 * series) are not checked. */
#ifndef LF_PROM_H
#define LF_PROM_H

#include <stddef.h>

#define PROM_TEXT_MAX	(4u << 20)	/* bytes in a document */
#define PROM_LINE_MAX	65536		/* bytes in a line, without its LF */
#define PROM_LABELS_MAX	32		/* labels of one sample */
#define PROM_SAMPLES_MAX 100000		/* samples in a document */
#define PROM_FAMILIES_MAX 20000

enum prom_type {
	PROM_UNTYPED, PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM, PROM_SUMMARY
};

struct prom_label {
	const char *name, *value;
};

struct prom_family {
	const char *name;
	const char *help;	/* NULL without a HELP line */
	enum prom_type type;
	int typed;		/* it had a TYPE line */
	size_t nsamples;
};

struct prom_sample {
	const char *name;	/* as written: NAME_sum, ... */
	size_t family;		/* index in fams */
	size_t label, nlabels;	/* labels[label .. label + nlabels) */
	double value;
	int has_time;
	long long time_ms;
};

struct prom_doc {
	char *strs;		/* every string, unescaped, NUL-terminated */
	size_t strslen;
	struct prom_family *fams;
	size_t nfams, capfams;
	struct prom_sample *samples;
	size_t nsamples, capsamples;
	struct prom_label *labels;
	size_t nlabels, caplabels;
	size_t *hash;		/* family index + 1 by name; 0 free */
	size_t caphash;
};

#define PROM_DOC_INIT { 0 }

/* Parse text[0..len) into d (which must be PROM_DOC_INIT or freed).  0;
 * or -1 with "line N: why" in err (d is then empty), errno ENOMEM when
 * memory ran out. */
int prom_parse(struct prom_doc *d, const char *text, size_t len, char *err,
    size_t errlen);
void prom_free(struct prom_doc *d);

/* The value of a sample's label, or NULL. */
const char *prom_label(const struct prom_doc *d, const struct prom_sample *s,
    const char *name);

/* A family by name (as its TYPE or HELP line names it), or NULL. */
const struct prom_family *prom_family(const struct prom_doc *d,
    const char *name);

/* "counter", ... */
const char *prom_type_name(enum prom_type t);

#endif
