#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mp.h"
#include "mysql_sql.h"

#define TIME_KEY	"${time}"

/* ---- configuration ---- */

/* Split s on ',' into out[], each item stripped of blanks; the items
 * point into *mem, a copy of s.  The count, or -1 with a message. */
static int
split_list(const char *opt, const char *s, char **mem, char **out, int max,
    char *err, size_t errlen)
{
	char *p, *q, *e;
	int n = 0;

	if ((*mem = strdup(s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = *mem;; p = q + 1) {
		if ((q = strchr(p, ',')) != NULL)
			*q = '\0';
		while (isspace((unsigned char)*p))
			p++;
		for (e = p + strlen(p); e > p && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		if (*p == '\0') {
			snprintf(err, errlen, "--%s: an empty name in '%s'", opt, s);
			return -1;
		}
		if (n == max) {
			snprintf(err, errlen, "--%s: more than %d names", opt, max);
			return -1;
		}
		out[n++] = p;
		if (q == NULL)
			return n;
	}
}

/* Mark in flags the keys of c named by the list s. */
static int
mark_keys(struct mysql_sql_conf *c, const char *opt, const char *s,
    char **mem, unsigned char *flags, char *err, size_t errlen)
{
	char *names[MYSQL_SQL_MAXCOLS];
	int n, i, j, found;

	if ((n = split_list(opt, s, mem, names, MYSQL_SQL_MAXCOLS, err,
	    errlen)) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		found = 0;
		for (j = 0; j < c->ncols; j++)
			if (strcmp(c->keys[j], names[i]) == 0)
				flags[j] = found = 1;
		if (!found) {
			snprintf(err, errlen, "--%s: '%s' is not one of the "
			    "key names", opt, names[i]);
			return -1;
		}
	}
	return 0;
}

static int
build_tail(struct mysql_sql_conf *c)
{
	int i;

	if (c->nupd == 0)
		return 0;
	if (buf_adds(&c->tail, " ON DUPLICATE KEY UPDATE ") == -1)
		return -1;
	for (i = 0; i < c->nupd; i++) {
		size_t n = strlen(c->upd[i]);

		if ((i && buf_addc(&c->tail, ',') == -1) ||
		    mysql_sql_ident(&c->tail, c->upd[i], n) == -1 ||
		    buf_adds(&c->tail, " = VALUES(") == -1 ||
		    mysql_sql_ident(&c->tail, c->upd[i], n) == -1 ||
		    buf_addc(&c->tail, ')') == -1)
			return -1;
	}
	return 0;
}

int
mysql_sql_conf_init(struct mysql_sql_conf *c, const char *column_names,
    const char *key_names, const char *json_key_names,
    const char *unixtimestamp_key_names, int odku,
    const char *on_duplicate_update_keys, char *err, size_t errlen)
{
	int i, n;

	memset(c, 0, sizeof *c);
	if (column_names == NULL) {
		snprintf(err, errlen, "--column-names: required");
		return -1;
	}
	if ((c->ncols = split_list("column-names", column_names, &c->mem[0],
	    c->cols, MYSQL_SQL_MAXCOLS, err, errlen)) == -1)
		return -1;
	if (key_names == NULL) {
		memcpy(c->keys, c->cols, sizeof c->cols);
	} else {
		if ((n = split_list("key-names", key_names, &c->mem[1],
		    c->keys, MYSQL_SQL_MAXCOLS, err, errlen)) == -1)
			return -1;
		if (n != c->ncols) {
			snprintf(err, errlen, "--key-names: %d names for %d "
			    "columns of --column-names", n, c->ncols);
			return -1;
		}
	}
	for (i = 0; i < c->ncols; i++)
		c->keylen[i] = strlen(c->keys[i]);
	if (json_key_names && mark_keys(c, "json-key-names", json_key_names,
	    &c->mem[2], c->json, err, errlen) == -1)
		return -1;
	if (unixtimestamp_key_names && mark_keys(c, "unixtimestamp-key-names",
	    unixtimestamp_key_names, &c->mem[3], c->unixts, err, errlen) == -1)
		return -1;
	if (odku && on_duplicate_update_keys == NULL) {
		snprintf(err, errlen, "--on-duplicate-key-update needs "
		    "--on-duplicate-update-keys");
		return -1;
	}
	if (!odku && on_duplicate_update_keys) {
		snprintf(err, errlen, "--on-duplicate-update-keys needs "
		    "--on-duplicate-key-update");
		return -1;
	}
	if (odku && (c->nupd = split_list("on-duplicate-update-keys",
	    on_duplicate_update_keys, &c->mem[4], c->upd, MYSQL_SQL_MAXCOLS,
	    err, errlen)) == -1)
		return -1;
	if (build_tail(c) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void
mysql_sql_conf_free(struct mysql_sql_conf *c)
{
	int i;

	for (i = 0; i < 5; i++)
		free(c->mem[i]);
	buf_free(&c->tail);
	memset(c, 0, sizeof *c);
}

/* ---- statements ---- */

int
mysql_sql_ident(struct buf *out, const char *name, size_t len)
{
	size_t i;

	if (buf_reserve(out, 2 * len + 2) == -1)
		return -1;
	out->p[out->len++] = '`';
	for (i = 0; i < len; i++) {
		if (name[i] == '`')
			out->p[out->len++] = '`';
		out->p[out->len++] = (unsigned char)name[i];
	}
	out->p[out->len++] = '`';
	return 0;
}

int
mysql_sql_head(struct buf *out, const struct mysql_sql_conf *c,
    const char *db, const char *table)
{
	int i;

	if (buf_adds(out, "INSERT INTO ") == -1)
		return -1;
	if (db && (mysql_sql_ident(out, db, strlen(db)) == -1 ||
	    buf_addc(out, '.') == -1))
		return -1;
	if (mysql_sql_ident(out, table, strlen(table)) == -1 ||
	    buf_adds(out, " (") == -1)
		return -1;
	for (i = 0; i < c->ncols; i++)
		if ((i && buf_addc(out, ',') == -1) ||
		    mysql_sql_ident(out, c->cols[i], strlen(c->cols[i])) == -1)
			return -1;
	return buf_adds(out, ") VALUES ");
}

/* 'YYYY-MM-DD HH:MM:SS' of sec; the last one is kept, as rows of a
 * chunk mostly share their second. */
static int
put_time(struct buf *out, int64_t sec, int utc)
{
	static int64_t last_sec = INT64_MIN;
	static int last_utc;
	static char last[32];
	time_t t = (time_t)sec;
	struct tm tm;

	if (sec != last_sec || utc != last_utc) {
		if ((utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) == NULL ||
		    strftime(last + 1, sizeof last - 2, "%Y-%m-%d %H:%M:%S",
		    &tm) == 0)
			return buf_adds(out, "NULL");
		last[0] = '\'';
		strcat(last, "'");
		last_sec = sec;
		last_utc = utc;
	}
	return buf_adds(out, last);
}

static int
put_quoted(struct buf *out, const void *p, size_t n, mysql_escape_fn esc,
    void *ctx)
{
	unsigned long len;

	if (buf_reserve(out, 2 * n + 3) == -1)
		return -1;
	out->p[out->len++] = '\'';
	len = esc(ctx, (char *)out->p + out->len, p, (unsigned long)n);
	if (len == (unsigned long)-1)
		return -1;
	out->len += len;
	out->p[out->len++] = '\'';
	return 0;
}

/* A value's JSON text, quoted. */
static int
put_json(struct buf *out, const unsigned char *v, const unsigned char *end,
    mysql_escape_fn esc, void *ctx, struct buf *scratch)
{
	buf_reset(scratch);
	if (json_value(scratch, v, (size_t)(end - v), NULL) == -1)
		return -1;
	return put_quoted(out, scratch->p, scratch->len, esc, ctx);
}

static int
put_unixts(struct buf *out, const unsigned char *v, const unsigned char *end,
    int utc)
{
	struct mp_obj o;

	if (v == NULL || mp_read(&v, end, &o) == -1)
		return buf_adds(out, "NULL");
	switch (o.type) {
	case MP_UINT:
		if (o.v.u > INT64_MAX)
			break;
		return put_time(out, (int64_t)o.v.u, utc);
	case MP_INT:
		return put_time(out, o.v.i, utc);
	case MP_FLOAT:
		if (o.v.f > -9e15 && o.v.f < 9e15)
			return put_time(out, (int64_t)(o.v.f < 0 ?
			    o.v.f - 1 + 1e-9 : o.v.f), utc);
		break;
	default:
		break;
	}
	return buf_adds(out, "NULL");
}

static int
put_value(struct buf *out, const struct mysql_sql_conf *c, int i,
    const unsigned char *v, const unsigned char *end, mysql_escape_fn esc,
    void *ctx, struct buf *scratch)
{
	const unsigned char *q = v;
	struct mp_obj o;

	if (c->json[i]) {
		if (v == NULL)
			return buf_adds(out, "'null'");
		return put_json(out, v, end, esc, ctx, scratch);
	}
	if (c->unixts[i])
		return put_unixts(out, v, end, c->utc);
	if (v == NULL || mp_read(&q, end, &o) == -1)
		return buf_adds(out, "NULL");
	switch (o.type) {
	case MP_NIL:
		return buf_adds(out, "NULL");
	case MP_BOOL:
		return buf_adds(out, o.v.b ? "TRUE" : "FALSE");
	case MP_UINT:
		return buf_printf(out, "'%" PRIu64 "'", o.v.u);
	case MP_INT:
		return buf_printf(out, "'%" PRId64 "'", o.v.i);
	case MP_STR:
	case MP_BIN:
		return put_quoted(out, o.p, o.n, esc, ctx);
	default:	/* float, map, array, ext: their JSON text */
		return put_json(out, v, end, esc, ctx, scratch);
	}
}

int
mysql_sql_row(struct buf *out, const struct mysql_sql_conf *c, uint32_t sec,
    const unsigned char *rec, size_t reclen, mysql_escape_fn esc, void *ctx,
    struct buf *scratch)
{
	const unsigned char *vals[MYSQL_SQL_MAXCOLS];
	const unsigned char *p = rec, *end = rec + reclen, *v;
	size_t start = out->len;
	struct mp_obj m, k;
	uint32_t n;
	int i;

	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return -1;
	memset(vals, 0, sizeof vals[0] * (size_t)c->ncols);
	for (n = 0; n < m.n; n++) {
		if (mp_read(&p, end, &k) == -1)
			return -1;
		v = p;
		if (mp_pass(&p, end) == -1)
			return -1;
		if (k.type != MP_STR)
			continue;
		/* the last of a duplicate key wins, as Fluentd's Hash */
		for (i = 0; i < c->ncols; i++)
			if (k.n == c->keylen[i] &&
			    memcmp(k.p, c->keys[i], k.n) == 0)
				vals[i] = v;
	}
	if (buf_addc(out, '(') == -1)
		goto fail;
	for (i = 0; i < c->ncols; i++) {
		if (i && buf_addc(out, ',') == -1)
			goto fail;
		if (strcmp(c->keys[i], TIME_KEY) == 0 && vals[i] == NULL) {
			if (put_time(out, sec, c->utc) == -1)
				goto fail;
		} else if (put_value(out, c, i, vals[i], end, esc, ctx,
		    scratch) == -1) {
			goto fail;
		}
	}
	if (buf_addc(out, ')') == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	return -1;
}

int
mysql_sql_add_row(struct buf *stmt, size_t headlen, const void *row,
    size_t rowlen, size_t taillen, size_t cap)
{
	int first = stmt->len == headlen;

	if (headlen + rowlen + taillen > cap)
		return 2;
	if (stmt->len + !first + rowlen + taillen > cap)
		return 1;
	if ((!first && buf_addc(stmt, ',') == -1) ||
	    buf_add(stmt, row, rowlen) == -1)
		return -1;
	return 0;
}

/* ---- names from templates ---- */

int
mysql_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MYSQL_SQL_NAMEMAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '$')
			return 0;
	return 1;
}

static int
key_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

/* The inside of one ${...}: tag, tag[N] or a key. */
static int
parse_part(struct mysql_tmpl *t, int np, const char *in, size_t n, char *err,
    size_t errlen)
{
	char buf[64], *e;
	size_t i;

	if (n == 0 || n >= sizeof buf) {
		snprintf(err, errlen, "'%s': an empty or long placeholder",
		    t->src);
		return -1;
	}
	memcpy(buf, in, n);
	buf[n] = '\0';
	if (strcmp(buf, "tag") == 0) {
		t->parts[np].kind = 1;
		return 0;
	}
	if (strncmp(buf, "tag[", 4) == 0) {
		errno = 0;
		t->parts[np].idx = strtol(buf + 4, &e, 10);
		if (e == buf + 4 || strcmp(e, "]") != 0 || errno) {
			snprintf(err, errlen, "'%s': ${%s} is not ${tag[N]}",
			    t->src, buf);
			return -1;
		}
		t->parts[np].kind = 2;
		return 0;
	}
	for (i = 0; i < n; i++)
		if (!key_char((unsigned char)buf[i])) {
			snprintf(err, errlen, "'%s': ${%s} is not a chunk key's "
			    "name", t->src, buf);
			return -1;
		}
	t->parts[np].kind = 3;
	memcpy(t->parts[np].key, buf, n + 1);
	return 0;
}

int
mysql_tmpl_parse(struct mysql_tmpl *t, const char *src, char *err,
    size_t errlen)
{
	const char *p = src, *open, *close;
	int np = 0;

	memset(t, 0, sizeof *t);
	t->src = src;
	for (;;) {
		open = strstr(p, "${");
		t->parts[np].off = (size_t)(p - src);
		t->parts[np].len = open ? (size_t)(open - p) : strlen(p);
		if (memchr(p, '%', t->parts[np].len))
			t->has_time = 1;
		if (open == NULL)
			break;
		if (np == MYSQL_SQL_MAXPARTS) {
			snprintf(err, errlen, "'%s': more than %d placeholders",
			    src, MYSQL_SQL_MAXPARTS);
			return -1;
		}
		if ((close = strchr(open + 2, '}')) == NULL) {
			snprintf(err, errlen, "'%s': '${' without '}'", src);
			return -1;
		}
		if (parse_part(t, np, open + 2, (size_t)(close - open - 2),
		    err, errlen) == -1)
			return -1;
		np++;
		p = close + 1;
	}
	t->nparts = np;
	return 0;
}

int
mysql_tmpl_fixed(const struct mysql_tmpl *t)
{
	return t->nparts == 0 && !t->has_time;
}

/* The value of variable key in h's chunk keys, or NULL. */
static const unsigned char *
chunk_var(const struct chunk_head *h, const char *key)
{
	const unsigned char *p = h->vars, *end, *v;
	struct mp_obj m, k;
	uint32_t i;

	if (p == NULL)
		return NULL;
	end = p + h->varslen;
	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return NULL;
	for (i = 0; i < m.n; i++) {
		if (mp_read(&p, end, &k) == -1)
			return NULL;
		v = p;
		if (mp_pass(&p, end) == -1)
			return NULL;
		if (mp_streq(&k, key))
			return v;
	}
	return NULL;
}

int
mysql_tmpl_keyed(const struct mysql_tmpl *t, const struct chunk_head *h,
    char *what, size_t whatlen)
{
	int i;

	for (i = 0; i < t->nparts; i++)
		if (t->parts[i].kind == 3 && chunk_var(h, t->parts[i].key) ==
		    NULL) {
			snprintf(what, whatlen, "%s", t->parts[i].key);
			return 0;
		}
	if (t->has_time && !h->has_timekey) {
		snprintf(what, whatlen, "time (a %%-conversion)");
		return 0;
	}
	return 1;
}

/* The tag's part N (from the end if negative), or NULL. */
static const char *
tag_part(const struct chunk_head *h, long idx, size_t *len)
{
	const char *p = h->tag, *end = h->tag + h->taglen, *dot;
	long nparts = 1, i;

	for (dot = p; dot < end; dot++)
		nparts += *dot == '.';
	if (idx < 0)
		idx += nparts;
	if (idx < 0 || idx >= nparts)
		return NULL;
	for (i = 0; i < idx; i++)
		p = memchr(p, '.', (size_t)(end - p)) + 1;
	dot = memchr(p, '.', (size_t)(end - p));
	*len = (size_t)((dot ? dot : end) - p);
	return p;
}

/* A variable's value as text into tmp; NULL if it has no text. */
static const char *
var_text(const unsigned char *v, const unsigned char *end, char *tmp,
    size_t tmplen, size_t *len)
{
	struct mp_obj o;

	if (mp_read(&v, end, &o) == -1)
		return NULL;
	switch (o.type) {
	case MP_STR:
		*len = o.n;
		return (const char *)o.p;
	case MP_NIL:
		*len = 0;
		return "";
	case MP_UINT:
		*len = (size_t)snprintf(tmp, tmplen, "%" PRIu64, o.v.u);
		return tmp;
	case MP_INT:
		*len = (size_t)snprintf(tmp, tmplen, "%" PRId64, o.v.i);
		return tmp;
	case MP_BOOL:
		*len = o.v.b ? 4 : 5;
		return o.v.b ? "true" : "false";
	default:
		return NULL;
	}
}

/* The literal src[off..off+len), through strftime if it has a
 * conversion and the chunk a time slice. */
static int
put_literal(char *out, size_t outlen, size_t *o, const char *lit, size_t len,
    const struct chunk_head *h, int utc)
{
	char fmt[256], tmp[256];
	time_t tt;
	struct tm tm;
	size_t n;

	if (memchr(lit, '%', len) == NULL || !h->has_timekey) {
		if (*o + len >= outlen)
			return -1;
		memcpy(out + *o, lit, len);
		*o += len;
		return 0;
	}
	if (len >= sizeof fmt)
		return -1;
	memcpy(fmt, lit, len);
	fmt[len] = '\0';
	tt = (time_t)h->timekey;
	if ((utc ? gmtime_r(&tt, &tm) : localtime_r(&tt, &tm)) == NULL)
		return -1;
	n = strftime(tmp, sizeof tmp, fmt, &tm);
	if (*o + n >= outlen)
		return -1;
	memcpy(out + *o, tmp, n);
	*o += n;
	return 0;
}

int
mysql_tmpl_expand(const struct mysql_tmpl *t, const struct chunk_head *h,
    int utc, char *out, size_t outlen, char *err, size_t errlen)
{
	char what[80], tmp[32];
	const unsigned char *v;
	const char *s;
	size_t o = 0, n = 0, i;
	int j;

	if (!mysql_tmpl_keyed(t, h, what, sizeof what)) {
		snprintf(err, errlen, "'%s': the chunk is not keyed by %s",
		    t->src, what);
		return -1;
	}
	for (j = 0; j <= t->nparts; j++) {
		if (put_literal(out, outlen, &o, t->src + t->parts[j].off,
		    t->parts[j].len, h, utc) == -1)
			goto toolong;
		if (j == t->nparts)
			break;
		switch (t->parts[j].kind) {
		case 1:
			s = h->tag;
			n = h->taglen;
			break;
		case 2:
			if ((s = tag_part(h, t->parts[j].idx, &n)) == NULL) {
				s = "";
				n = 0;
			}
			break;
		default:
			v = chunk_var(h, t->parts[j].key);
			s = var_text(v, h->vars + h->varslen, tmp, sizeof tmp,
			    &n);
			if (s == NULL) {
				snprintf(err, errlen, "'%s': ${%s} is not a "
				    "string or a number", t->src,
				    t->parts[j].key);
				return -1;
			}
		}
		if (o + n >= outlen)
			goto toolong;
		memcpy(out + o, s, n);
		o += n;
	}
	out[o] = '\0';
	for (i = 0; i < o; i++)
		if (out[i] == '.')
			out[i] = '_';
	if (!mysql_name_valid(out))
		goto bad;
	return 0;
toolong:
	o = 0;
	out[0] = '\0';
bad:
	snprintf(err, errlen, "'%s' gives '%.*s': not a name of 1 to %d of "
	    "A-Z, a-z, 0-9, _ and $", t->src, (int)(o > 80 ? 80 : o), out,
	    MYSQL_SQL_NAMEMAX);
	return -1;
}

int
mysql_tmpl_sql(const struct mysql_tmpl *t, const struct chunk_head *h,
    struct buf *out, char *err, size_t errlen)
{
	struct mysql_tmpl one;
	char name[MYSQL_SQL_NAMEMAX + 1];
	int j;

	/* each placeholder alone is a template of its own whose result
	 * must be a name */
	for (j = 0; j <= t->nparts; j++) {
		if (buf_add(out, t->src + t->parts[j].off, t->parts[j].len) ==
		    -1)
			goto nomem;
		if (j == t->nparts)
			break;
		memset(&one, 0, sizeof one);
		one.src = "${...}";
		one.nparts = 1;
		one.parts[0] = t->parts[j];
		one.parts[0].off = one.parts[0].len = 0;
		one.parts[1].off = one.parts[1].len = 0;
		if (mysql_tmpl_expand(&one, h, 0, name, sizeof name, err,
		    errlen) == -1)
			return -1;
		if (buf_adds(out, name) == -1)
			goto nomem;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}
