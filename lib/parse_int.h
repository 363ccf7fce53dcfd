/* parse_int: what the parse_*.c files share; not for the tools. */
#ifndef LF_PARSE_INT_H
#define LF_PARSE_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "parse.h"
#include "timefmt.h"

enum { PT_STRING, PT_INTEGER, PT_FLOAT, PT_BOOL, PT_TIME, PT_ARRAY };

#define PTIME_CACHEKEY	48	/* longer time texts are not cached */

/* How a time text becomes an event time: a time_key's, or a types
 * "time" conversion's. */
struct ptime {
	enum parse_time_type type;
	char *format;			/* NULL: lenient, as Time.parse */
	char *fallbacks[PARSE_MAXFALLBACKS];
	int nfallbacks;
	struct timefmt_zone zone;
	/* Fluentd's TimeParser keeps its last two answers: log times
	 * repeat for a second's worth of lines */
	struct {
		char key[PTIME_CACHEKEY];
		size_t len;
		uint32_t sec, nsec;
	} cache[2];
	int cnext;
};

struct ptype {
	char *key;
	size_t klen;
	int type;
	char *delim;			/* array */
	struct ptime time;		/* time */
};

/* One regexp, its names in the order Ruby lists them (by group). */
struct pre_name {
	const char *name;		/* in the compiled code's table */
	size_t len;
	int group;			/* the first group of that name */
};

struct pre {
	pcre2_code *code;
	pcre2_match_data *md;
	size_t nnames;
	struct pre_name *names;
};

/* A record under construction in rec: its start, and the fields so far.
 * The map header is fixed up at the end (rb_end). */
struct rb {
	struct buf *rec;
	size_t start;
	uint32_t n;
	const char *tval;		/* the time_key's text, if seen */
	size_t tlen;
	int has_time;
	int nomem;
};

/* A csv field: in the line, or (v NULL) unquoted in scratch at soff. */
struct csv_col {
	const char *v;
	size_t vl, soff;
	int isnil;
};

struct parser {
	enum parse_format format;
	char *time_key;
	size_t tklen;
	struct ptime time;
	int keep_time_key;
	int estimate;
	int null_empty;
	struct pre null_re;		/* code NULL: none */
	struct ptype *types;
	size_t ntypes;
	int convert;			/* types or a null option set */
	char *message_key;
	char *delim, *ldelim;
	size_t dlen, ldlen;
	char **keys;
	size_t *klens;
	size_t nkeys;
	struct csv_col *csvcols;	/* csv: one per key */
	struct pre re;			/* regexp, nginx, apache_error, multiline */
	struct pre first;		/* multiline format_firstline */
	int ap_groups[9];		/* apache2's fields' groups, time last */
	int json_direct;		/* json_parse_record does the time */
	struct json_reader *jr;		/* json: one yajl handle */
	int utc;
	/* syslog */
	enum parse_syslog_format sl_format;
	int sl_pri, sl_colonless, sl_user_fmt;
	char *sl_fmt3164, *sl_fmt5424;
	struct pre sl_re3164, sl_re5424;
	/* multiline */
	struct buf held, fail;
	/* after PARSE_ERR */
	const char *failed;
	size_t failedlen;
	struct buf scratch;
};

/* parse.c */
int pf_err(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rb_begin(struct rb *b, struct buf *rec);
int rb_end(struct rb *b);			/* fixes the header; 0, -1 */
void rb_abort(struct rb *b);
void rb_str(struct rb *b, const char *s, size_t n);
void rb_raw(struct rb *b, const void *s, size_t n);
void rb_nil(struct rb *b);
void rb_int(struct rb *b, int64_t v);
void rb_key(struct rb *b, const char *k, size_t kl);
/* A field of a text format: the time key is set aside (kept too with
 * keep_time_key); the others go through null_value_pattern,
 * null_empty_string and types, as Fluentd's convert_values.  isnil: a
 * missing value (tsv's, csv's), which stays nil. */
void pf_field(struct parser *p, struct rb *b, const char *k, size_t kl,
    const char *v, size_t vl, int isnil);
/* A string value through convert_values (null options, types). */
void pf_value(struct parser *p, struct rb *b, const char *k, size_t kl,
    const char *v, size_t vl);
/* The end of a text record: parse the time set aside; PARSE_OK,
 * PARSE_NOTIME or PARSE_ERR (rec rolled back). */
int pf_finish(struct parser *p, struct rb *b, uint32_t *sec, uint32_t *nsec,
    char *err, size_t errlen);
int ptime_parse(struct ptime *t, const char *s, size_t n, uint32_t *sec,
    uint32_t *nsec);
int pre_compile(struct pre *r, const char *src, uint32_t flags, char *err,
    size_t n);
int pre_match(struct pre *r, const char *s, size_t n, size_t off);
/* The match's offsets, or NULL with err set. */
PCRE2_SIZE *pre_exec(struct pre *r, const char *s, size_t n, size_t off,
    char *err, size_t errlen);
void pre_free(struct pre *r);
/* "/re/flags" (i m x, Ruby's) or a bare regexp; extra: more flags. */
int pre_conf(struct pre *r, const char *src, uint32_t extra, char *err,
    size_t n);

/* parse_text.c */
int parse_none(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_ltsv(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_tsv(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_csv(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_json(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_msgpack(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);

/* parse_regexp.c */
int parse_regexp(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_apache2(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_regexp_setup(struct parser *p, const struct parse_conf *c,
    char *err, size_t n);
int parse_multi_line(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);
int parse_multi_flush(struct parser *, struct buf *, uint32_t *, uint32_t *,
    char *, size_t);

/* parse_syslog.c */
int parse_syslog_setup(struct parser *p, const struct parse_conf *c,
    char *err, size_t n);
int parse_syslog(struct parser *, const char *, size_t, struct buf *,
    uint32_t *, uint32_t *, char *, size_t);

#endif
