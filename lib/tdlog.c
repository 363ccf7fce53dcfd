#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "tdlog.h"

/* ---- names ---- */

int
tdlog_name_normalize(const char *in, size_t n, char *out)
{
	size_t i, o = 0, chars = 0;
	unsigned char ch;

	if (n == 0)
		return -1;
	for (i = 0; i < n && chars < TDLOG_NAME_MAX; i++) {
		ch = (unsigned char)in[i];
		if ((ch & 0xc0) == 0x80)	/* the rest of a character */
			continue;
		chars++;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '_'))
			ch = '_';
		out[o++] = (char)ch;
	}
	/* longer than the limit: td-client's cut, "__" at the end */
	for (; i < n; i++)
		if (((unsigned char)in[i] & 0xc0) != 0x80) {
			out[TDLOG_NAME_MAX - 2] = '_';
			out[TDLOG_NAME_MAX - 1] = '_';
			break;
		}
	while (o < TDLOG_NAME_MIN)
		out[o++] = '_';
	out[o] = '\0';
	return 0;
}

int
tdlog_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < TDLOG_NAME_MIN || n > TDLOG_NAME_MAX)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int
tdlog_tag_names(const char *tag, size_t len, char *db, char *table,
    char *err, size_t errlen)
{
	const char *dot2, *dot1 = NULL;
	size_t i;

	for (i = len; i > 0; i--)
		if (tag[i - 1] == '.')
			break;
	if (i == 0)
		goto bad;
	dot2 = tag + i - 1;
	for (i = (size_t)(dot2 - tag); i > 0; i--)
		if (tag[i - 1] == '.') {
			dot1 = tag + i - 1;
			break;
		}
	if (dot1 == NULL)
		dot1 = tag - 1;
	if (tdlog_name_normalize(dot1 + 1, (size_t)(dot2 - dot1 - 1), db) == -1 ||
	    tdlog_name_normalize(dot2 + 1, (size_t)(tag + len - dot2 - 1),
	    table) == -1)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "tag '%.*s' does not end in .DATABASE.TABLE",
	    len > 200 ? 200 : (int)len, tag);
	return -1;
}

/* ---- records ---- */

static size_t
put_uint(unsigned char *h, uint32_t v)
{
	if (v < 128) {
		h[0] = (unsigned char)v;
		return 1;
	}
	if (v < 256) {
		h[0] = 0xcc;
		h[1] = (unsigned char)v;
		return 2;
	}
	if (v < 65536) {
		h[0] = 0xcd;
		h[1] = (unsigned char)(v >> 8);
		h[2] = (unsigned char)v;
		return 3;
	}
	h[0] = 0xce;
	h[1] = (unsigned char)(v >> 24);
	h[2] = (unsigned char)(v >> 16);
	h[3] = (unsigned char)(v >> 8);
	h[4] = (unsigned char)v;
	return 5;
}

static int
is_time_key(const struct mp_obj *k)
{
	return k->n == 4 && memcmp(k->p, "time", 4) == 0;
}

/* "time" first, then every other pair as it was, in one copy unless the
 * record had a "time" of its own to leave out. */
int
tdlog_record(struct buf *out, uint32_t sec, const unsigned char *rec,
    size_t reclen, const char **why)
{
	const unsigned char *q = rec, *end = rec + reclen, *body, *pair;
	const unsigned char *skip = NULL, *skip_end = NULL;
	unsigned char h[16];
	struct mp_obj m, k;
	uint32_t i, n;
	size_t hl;

	if (mp_read(&q, end, &m) == -1 || m.type != MP_MAP) {
		*why = "not a map";
		return 1;
	}
	if (m.n > TDLOG_KEYS_MAX) {
		*why = "too many keys";
		return 1;
	}
	body = q;
	n = m.n;
	for (i = 0; i < m.n; i++) {
		pair = q;
		if (mp_read(&q, end, &k) == -1 || k.type != MP_STR) {
			*why = "a key is not a string";
			return 1;
		}
		if (mp_pass(&q, end) == -1) {
			*why = "not a map";
			return 1;
		}
		if (is_time_key(&k)) {
			if (skip != NULL) {	/* two: msgpack allows it */
				*why = "two \"time\" keys";
				return 1;
			}
			skip = pair;
			skip_end = q;
			n--;
		}
	}
	n++;
	if (n < 16) {
		h[0] = (unsigned char)(0x80 | n);
		hl = 1;
	} else {
		h[0] = 0xde;
		h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)n;
		hl = 3;
	}
	memcpy(h + hl, "\xa4time", 5);
	hl += 5;
	hl += put_uint(h + hl, sec);
	if (buf_reserve(out, hl + (size_t)(q - body)) == -1)
		return -1;
	buf_add(out, h, hl);
	if (skip == NULL) {
		buf_add(out, body, (size_t)(q - body));
	} else {
		buf_add(out, body, (size_t)(skip - body));
		buf_add(out, skip_end, (size_t)(q - skip_end));
	}
	return 0;
}

/* ---- gzip ---- */

int
tdlog_gz_init(struct tdlog_gz *g, int level)
{
	memset(g, 0, sizeof *g);
	if (deflateInit2(&g->z, level, Z_DEFLATED, 16 + MAX_WBITS, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	g->on = 1;
	return 0;
}

int
tdlog_gz_run(struct tdlog_gz *g, int finish)
{
	size_t off = 0, chunk;
	int rc;

	g->raw += g->in.len;
	do {
		chunk = g->in.len - off;
		if (chunk > UINT32_MAX / 2)
			chunk = UINT32_MAX / 2;
		if (buf_reserve(&g->out, deflateBound(&g->z, chunk) + 64) == -1)
			return -1;
		g->z.next_in = g->in.p ? g->in.p + off : NULL;
		g->z.avail_in = (uInt)chunk;
		do {
			if (g->out.cap - g->out.len < 64 &&
			    buf_reserve(&g->out, 65536) == -1)
				return -1;
			g->z.next_out = g->out.p + g->out.len;
			g->z.avail_out = (uInt)(g->out.cap - g->out.len);
			rc = deflate(&g->z, finish && off + chunk == g->in.len ?
			    Z_FINISH : Z_NO_FLUSH);
			if (rc == Z_STREAM_ERROR)
				return -1;
			g->out.len = (size_t)(g->z.next_out - g->out.p);
		} while (g->z.avail_in > 0 || (finish && off + chunk ==
		    g->in.len && rc != Z_STREAM_END));
		off += chunk;
	} while (off < g->in.len);
	g->in.len = 0;
	return 0;
}

void
tdlog_gz_free(struct tdlog_gz *g)
{
	if (g->on)
		deflateEnd(&g->z);
	g->on = 0;
	buf_free(&g->in);
	buf_free(&g->out);
}

/* ---- endpoints ---- */

static char *
replace_host(const char *url, const char *from, const char *to)
{
	const char *h = strstr(url, "://"), *e;
	size_t flen = strlen(from);
	char *out;

	if (h == NULL)
		return strdup(url);
	h += 3;
	e = h + strcspn(h, ":/");
	if ((size_t)(e - h) < flen || strncmp(h, from, flen) != 0 ||
	    (from[flen - 1] != '.' && (size_t)(e - h) != flen)) {
		return strdup(url);
	}
	if (asprintf(&out, "%.*s%s%s", (int)(h - url), url, to, h + flen) == -1)
		return NULL;
	return out;
}

char *
tdlog_endpoint(const char *v, int use_ssl, int import)
{
	char *u, *r;
	size_t n;

	if (strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0)
		u = strdup(v);
	else if (asprintf(&u, "%s://%s", use_ssl ? "https" : "http", v) == -1)
		u = NULL;
	if (u == NULL)
		return NULL;
	n = strlen(u);
	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
	if (!import)
		return u;
	r = replace_host(u, "api.treasuredata.com", "api-import.treasuredata.com");
	free(u);
	return r;
}

char *
tdlog_api_from_import(const char *import_url)
{
	return replace_host(import_url, "api-import.", "api.");
}
