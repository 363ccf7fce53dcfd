/* parse_text: the formats that are split, not matched: none, ltsv, tsv,
 * csv; and the structured ones, json and msgpack. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mp.h"
#include "parse_int.h"

int
parse_none(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	struct rb b;

	rb_begin(&b, rec);
	rb_key(&b, p->message_key, strlen(p->message_key));
	rb_str(&b, line, len);
	/* Fluentd's none has no time key: now, or no event */
	return pf_finish(p, &b, sec, nsec, err, errlen);
}

static const char *
pf_find(const char *s, const char *end, const char *d, size_t dl)
{
	if (dl == 1)
		return memchr(s, d[0], (size_t)(end - s));
	return memmem(s, (size_t)(end - s), d, dl);
}

/* Each field split on its first label delimiter; one without any is
 * dropped, as Ruby's pair.split(ld, 2) gives no value. */
int
parse_ltsv(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	const char *s = line, *end = line + len, *f, *l;
	struct rb b;

	rb_begin(&b, rec);
	if (p->dlen == 1 && p->ldlen == 1) {
		/* one pass per field for the common one-byte delimiters:
		 * fields are short, two memchr calls cost more */
		const char d = p->delim[0], ld = p->ldelim[0];

		while (s < end) {
			for (f = s, l = NULL; f < end && *f != d; f++)
				if (*f == ld && l == NULL)
					l = f;
			if (l != NULL)
				pf_field(p, &b, s, (size_t)(l - s), l + 1,
				    (size_t)(f - l - 1), 0);
			s = f == end ? end : f + 1;
		}
		return pf_finish(p, &b, sec, nsec, err, errlen);
	}
	while (s < end) {
		if ((f = pf_find(s, end, p->delim, p->dlen)) == NULL)
			f = end;
		if ((l = pf_find(s, f, p->ldelim, p->ldlen)) != NULL)
			pf_field(p, &b, s, (size_t)(l - s), l + p->ldlen,
			    (size_t)(f - l - p->ldlen), 0);
		s = f == end ? end : f + p->dlen;
	}
	return pf_finish(p, &b, sec, nsec, err, errlen);
}

/* split(delimiter, keys.size): the last key keeps the rest of the
 * line; keys past the fields are nil. */
int
parse_tsv(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	const char *s = line, *end = line + len, *f;
	struct rb b;
	size_t i;

	rb_begin(&b, rec);
	for (i = 0; i < p->nkeys; i++) {
		if (s == NULL) {
			pf_field(p, &b, p->keys[i], p->klens[i], NULL, 0, 1);
			continue;
		}
		f = i + 1 < p->nkeys ? pf_find(s, end, p->delim, p->dlen) : NULL;
		pf_field(p, &b, p->keys[i], p->klens[i], s,
		    (size_t)((f != NULL ? f : end) - s), 0);
		s = f != NULL ? f + p->dlen : NULL;
	}
	return pf_finish(p, &b, sec, nsec, err, errlen);
}

/* One CSV field at *pp (RFC 4180, Ruby's CSV.parse_line): a quoted
 * field with "" for a quote, unescaped into p->scratch; an unquoted
 * empty field is nil.  0, 1 at the end of the line, -1 malformed. */
static int
csv_field(struct parser *p, const char **pp, const char *end, const char **v,
    size_t *vl, int *isnil, size_t *soff)
{
	const char *s = *pp, *f;

	*isnil = 0;
	if (s < end && *s == '"') {
		*soff = p->scratch.len;
		for (s++;; s++) {
			if (s == end)
				return -1;	/* Unclosed quoted field */
			if (*s == '"') {
				if (s + 1 < end && s[1] == '"') {
					s++;
				} else
					break;
			}
			if (buf_addc(&p->scratch, *s) == -1)
				return -1;
		}
		s++;
		*v = NULL;	/* in scratch at *soff, once it stops moving */
		*vl = p->scratch.len - *soff;
		if (s == end) {
			*pp = end;
			return 1;
		}
		if ((size_t)(end - s) < p->dlen || memcmp(s, p->delim,
		    p->dlen) != 0)
			return -1;	/* Any value after quoted field */
		*pp = s + p->dlen;
		return 0;
	}
	f = pf_find(s, end, p->delim, p->dlen);
	*v = s;
	*vl = (size_t)((f != NULL ? f : end) - s);
	if (memchr(s, '"', *vl) != NULL)
		return -1;	/* Illegal quoting */
	*isnil = *vl == 0;
	*pp = f != NULL ? f + p->dlen : end;
	return f == NULL;
}

int
parse_csv(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	struct csv_col *col = p->csvcols;
	const char *s = line, *end = line + len;
	size_t i, n = 0, want = p->nkeys;
	struct rb b;
	int rc = 0;

	if (len == 0)
		return pf_err(err, errlen, "empty csv line");
	buf_reset(&p->scratch);
	while (rc == 0 && n < want) {
		rc = csv_field(p, &s, end, &col[n].v, &col[n].vl,
		    &col[n].isnil, &col[n].soff);
		if (rc == -1)
			return pf_err(err, errlen, "malformed csv");
		n++;
		if (rc == 0 && s == end && n < want) {
			/* a trailing delimiter: one more, empty, field */
			col[n].v = s;
			col[n].vl = 0;
			col[n].isnil = 1;
			n++;
			break;
		}
	}
	rb_begin(&b, rec);
	for (i = 0; i < p->nkeys; i++) {
		if (i >= n) {
			pf_field(p, &b, p->keys[i], p->klens[i], NULL, 0, 1);
			continue;
		}
		pf_field(p, &b, p->keys[i], p->klens[i], col[i].v != NULL ?
		    col[i].v : (const char *)p->scratch.p + col[i].soff,
		    col[i].vl, col[i].isnil);
	}
	return pf_finish(p, &b, sec, nsec, err, errlen);
}

/* A number as a time_key value: float splits, an integer is seconds. */
static int
pf_numtime(const struct mp_obj *o, uint32_t *sec, uint32_t *nsec)
{
	double ip, fp;

	switch (o->type) {
	case MP_UINT:
		if (o->v.u > UINT32_MAX)
			return -1;
		*sec = (uint32_t)o->v.u;
		*nsec = 0;
		return 0;
	case MP_INT:
		if (o->v.i < 0 || o->v.i > UINT32_MAX)
			return -1;
		*sec = (uint32_t)o->v.i;
		*nsec = 0;
		return 0;
	case MP_FLOAT:
		if (!(o->v.f >= 0 && o->v.f <= UINT32_MAX))
			return -1;
		fp = modf(o->v.f, &ip);
		*sec = (uint32_t)ip;
		*nsec = (uint32_t)(fp * 1e9);
		return 0;
	default:
		return -1;
	}
}

/* A decoded map at m[0..n) -> rec, with the time key taken out here (if
 * take_time) and string values through convert_values. */
static int
pf_walk(struct parser *p, const unsigned char *m, size_t n, int take_time,
    int pre_time, struct buf *rec, uint32_t *sec, uint32_t *nsec, int *has_time,
    char *err, size_t errlen)
{
	const unsigned char *q = m, *end = m + n, *vs;
	struct mp_obj map, k, v;
	struct rb b;
	uint32_t i, s2, n2;
	int is_time, numtime = 0;

	if (mp_read(&q, end, &map) == -1 || map.type != MP_MAP)
		return pf_err(err, errlen, "not a map");
	rb_begin(&b, rec);
	for (i = 0; i < map.n; i++) {
		vs = q;
		if (mp_read(&q, end, &k) == -1)
			goto bad;
		if (k.type == MP_ARRAY || k.type == MP_MAP) {
			q = vs;
			if (mp_pass(&q, end) == -1)
				goto bad;
		}
		is_time = take_time && p->time_key != NULL &&
		    (k.type == MP_STR || k.type == MP_BIN) &&
		    k.n == p->tklen && memcmp(k.p, p->time_key, k.n) == 0;
		const unsigned char *ks = vs, *ke = q;
		vs = q;
		if (mp_read(&q, end, &v) == -1)
			goto bad;
		if (v.type == MP_ARRAY || v.type == MP_MAP) {
			q = vs;
			if (mp_pass(&q, end) == -1)
				goto bad;
		}
		if (is_time) {
			if (v.type == MP_STR) {
				b.tval = (const char *)v.p;
				b.tlen = v.n;
				b.has_time = 1;
				numtime = 0;
			} else if (pf_numtime(&v, &s2, &n2) == 0) {
				*sec = s2;
				*nsec = n2;
				b.has_time = 0;
				numtime = 1;
			} else {
				rb_abort(&b);
				return pf_err(err, errlen, "invalid time value");
			}
			if (!p->keep_time_key)
				continue;
		}
		rb_raw(&b, ks, (size_t)(ke - ks));
		b.n++;
		if (v.type == MP_STR && p->convert)
			pf_value(p, &b, (const char *)k.p, k.type == MP_STR ||
			    k.type == MP_BIN ? k.n : 0, (const char *)v.p, v.n);
		else
			rb_raw(&b, vs, (size_t)(q - vs));
	}
	*has_time = numtime || pre_time;
	if (*has_time) {
		/* pf_finish must not read a string time over the number */
		if (rb_end(&b) == -1)
			return pf_err(err, errlen, "out of memory");
		return PARSE_OK;
	}
	return pf_finish(p, &b, sec, nsec, err, errlen);
bad:
	rb_abort(&b);
	return pf_err(err, errlen, "truncated msgpack");
}

/* json_reader's time_fn where the time is the parser's (a string with
 * time_format, through the cache and the zone): a string goes to
 * ptime_parse; a number is read as its msgpack value would be (an
 * integer is seconds, a float splits). */
static int
pf_jsontime(void *arg, const char *s, size_t n, int isstr, uint32_t *sec,
    uint32_t *nsec)
{
	struct parser *p = arg;
	struct mp_obj o;
	char tmp[64];

	if (isstr)
		return ptime_parse(&p->time, s, n, sec, nsec);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(&o, 0, sizeof o);
	errno = 0;
	if (strpbrk(tmp, ".eE") == NULL && tmp[0] == '-') {
		o.type = MP_INT;
		o.v.i = strtoll(tmp, NULL, 10);
	} else if (strpbrk(tmp, ".eE") == NULL) {
		o.type = MP_UINT;
		o.v.u = strtoull(tmp, NULL, 10);
	}
	if (o.type == MP_NIL || errno != 0) {	/* as json packs it: a float */
		o.type = MP_FLOAT;
		o.v.f = strtod(tmp, NULL);
	}
	return pf_numtime(&o, sec, nsec);
}

int
parse_json(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	struct json_in opt;
	int has_time = 0;
	size_t start = rec->len;

	memset(&opt, 0, sizeof opt);
	opt.keep_time_key = p->keep_time_key;
	opt.utc = p->utc;
	if (p->json_direct)
		opt.time_key = p->time_key;	/* a float time, exactly */
	if (p->convert) {
		buf_reset(&p->scratch);
		if (json_reader_record(p->jr, line, len, &opt, &p->scratch, sec,
		    nsec, &has_time, err, errlen) == -1)
			return PARSE_ERR;
		return pf_walk(p, p->scratch.p, p->scratch.len,
		    !p->json_direct, p->json_direct && has_time, rec, sec,
		    nsec, &has_time, err, errlen);
	}
	/* the time key's value read as the record is made, not looked for
	 * in it afterwards */
	opt.time_key = p->time_key;
	if (!p->json_direct) {
		opt.time_fn = pf_jsontime;
		opt.time_arg = p;
	}
	if (json_reader_record(p->jr, line, len, &opt, rec, sec, nsec,
	    &has_time, err, errlen) == -1)
		return PARSE_ERR;
	if (has_time)
		return PARSE_OK;
	if (!p->estimate) {
		/* no event without a time: take the record back */
		rec->len = start;
		return pf_err(err, errlen, "no time key %s", p->time_key ?
		    p->time_key : "(none)");
	}
	return PARSE_NOTIME;
}

/* The bytes are one msgpack map: for lf-cat and HTTP bodies, not for
 * lf-tail (a file of msgpack has no lines).  An array of maps, which
 * Fluentd takes as several records, is an error here: one call, one
 * record. */
int
parse_msgpack(struct parser *p, const char *line, size_t len, struct buf *rec,
    uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
	size_t used;
	int has_time;

	if (mp_skip((const unsigned char *)line, len, MP_MAXDEPTH - 1,
	    &used) != MP_OK || used != len)
		return pf_err(err, errlen, "not one msgpack value");
	return pf_walk(p, (const unsigned char *)line, len, 1, 0, rec, sec,
	    nsec, &has_time, err, errlen);
}
