#include <string.h>

#include "mp.h"

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* Header size for each first byte of the 0xc0..0xdf range; the length
 * field (if any) is the last 1, 2 or 4 bytes before the body. */
static const unsigned char mp_hlen[32] = {
	1, 1, 1, 1,		/* nil, (never used), false, true */
	2, 3, 5,		/* bin 8/16/32 */
	3, 4, 6,		/* ext 8/16/32: length, then type */
	1, 1,			/* float 32/64 (body 4/8) */
	1, 1, 1, 1,		/* uint 8/16/32/64 */
	1, 1, 1, 1,		/* int 8/16/32/64 */
	2, 2, 2, 2, 2,		/* fixext 1/2/4/8/16: type byte */
	2, 3, 5,		/* str 8/16/32 */
	3, 5, 3, 5,		/* array 16/32, map 16/32 */
};

/* Decode the header at p[0..n): *hl header bytes, *body payload bytes,
 * *kids child values.  MP_MORE if the header itself is cut. */
static inline int
mp_head(const unsigned char *p, size_t n, size_t *hl, uint64_t *body, uint64_t *kids)
{
	unsigned c = p[0];

	*body = 0;
	*kids = 0;
	if (c <= 0x7f || c >= 0xe0) {
		*hl = 1;
		return MP_OK;
	}
	if (c <= 0x8f) {
		*hl = 1;
		*kids = 2 * (uint64_t)(c & 0x0f);
		return MP_OK;
	}
	if (c <= 0x9f) {
		*hl = 1;
		*kids = c & 0x0f;
		return MP_OK;
	}
	if (c <= 0xbf) {
		*hl = 1;
		*body = c & 0x1f;
		return MP_OK;
	}
	if (c == 0xc1)
		return MP_EBAD;
	*hl = mp_hlen[c - 0xc0];
	if (n < *hl)
		return MP_MORE;
	switch (c) {
	case 0xc4: case 0xd9: *body = p[1]; break;
	case 0xc5: case 0xda: *body = be16(p + 1); break;
	case 0xc6: case 0xdb: *body = be32(p + 1); break;
	case 0xc7: *body = p[1]; break;
	case 0xc8: *body = be16(p + 1); break;
	case 0xc9: *body = be32(p + 1); break;
	case 0xca: *body = 4; break;
	case 0xcb: *body = 8; break;
	case 0xcc: case 0xd0: *body = 1; break;
	case 0xcd: case 0xd1: *body = 2; break;
	case 0xce: case 0xd2: *body = 4; break;
	case 0xcf: case 0xd3: *body = 8; break;
	case 0xd4: *body = 1; break;
	case 0xd5: *body = 2; break;
	case 0xd6: *body = 4; break;
	case 0xd7: *body = 8; break;
	case 0xd8: *body = 16; break;
	case 0xdc: *kids = be16(p + 1); break;
	case 0xdd: *kids = be32(p + 1); break;
	case 0xde: *kids = 2 * (uint64_t)be16(p + 1); break;
	case 0xdf: *kids = 2 * (uint64_t)be32(p + 1); break;
	}
	return MP_OK;
}

void
mp_scan_init(struct mp_scan *s, unsigned maxdepth, size_t maxsize)
{
	s->off = 0;
	s->depth = 0;
	s->done = 0;
	s->maxdepth = maxdepth > MP_MAXDEPTH ? MP_MAXDEPTH : maxdepth;
	s->maxsize = maxsize;
}

int
mp_scan(struct mp_scan *s, const unsigned char *p, size_t n, size_t *len)
{
	size_t hl;
	uint64_t body, kids;
	int rc;

	for (;;) {
		if (s->off > s->maxsize)
			return MP_EBIG;
		if (s->off >= n && !(s->done && s->off == n))
			return MP_MORE;
		if (s->done) {
			*len = s->off;
			return MP_OK;
		}
		if ((rc = mp_head(p + s->off, n - s->off, &hl, &body, &kids)) != MP_OK)
			return rc;
		if (body > s->maxsize)
			return MP_EBIG;
		s->off += hl + (size_t)body;
		if (kids > 0) {
			/* every child takes at least one byte */
			if (kids > s->maxsize)
				return MP_EBIG;
			if (s->depth == s->maxdepth)
				return MP_EDEPTH;
			s->left[s->depth++] = kids;
			continue;
		}
		/* a whole value ended: close every container it completes */
		while (s->depth > 0 && --s->left[s->depth - 1] == 0)
			s->depth--;
		if (s->depth == 0)
			s->done = 1;
	}
}

int
mp_skip(const unsigned char *p, size_t n, unsigned maxdepth, size_t *len)
{
	struct mp_scan s;

	/* no size bound: running past n is MP_MORE, and the loop ends by n */
	mp_scan_init(&s, maxdepth, SIZE_MAX / 4);
	return mp_scan(&s, p, n, len);
}

int
mp_read(const unsigned char **pp, const unsigned char *end, struct mp_obj *o)
{
	const unsigned char *p = *pp;
	size_t n = (size_t)(end - p), hl;
	uint64_t body, kids;
	unsigned c;

	if (n == 0 || mp_head(p, n, &hl, &body, &kids) != MP_OK)
		return -1;
	if (body > n - hl)
		return -1;
	c = p[0];
	o->p = p + hl;
	o->n = (uint32_t)body;
	if (c <= 0x7f) {
		o->type = MP_UINT;
		o->v.u = c;
	} else if (c >= 0xe0) {
		o->type = MP_INT;
		o->v.i = (int8_t)c;
	} else if (c <= 0x8f || c == 0xde || c == 0xdf) {
		o->type = MP_MAP;
		o->n = (uint32_t)(kids / 2);
	} else if (c <= 0x9f || c == 0xdc || c == 0xdd) {
		o->type = MP_ARRAY;
		o->n = (uint32_t)kids;
	} else if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb)) {
		o->type = MP_STR;
	} else if (c >= 0xc4 && c <= 0xc6) {
		o->type = MP_BIN;
	} else if (c == 0xc0) {
		o->type = MP_NIL;
	} else if (c == 0xc2 || c == 0xc3) {
		o->type = MP_BOOL;
		o->v.b = c == 0xc3;
	} else if (c == 0xca) {
		float f;
		uint32_t u = be32(o->p);
		memcpy(&f, &u, 4);
		o->type = MP_FLOAT;
		o->v.f = f;
	} else if (c == 0xcb) {
		uint64_t u = be64(o->p);
		o->type = MP_FLOAT;
		memcpy(&o->v.f, &u, 8);
	} else if (c >= 0xcc && c <= 0xcf) {
		o->type = MP_UINT;
		o->v.u = c == 0xcc ? o->p[0] : c == 0xcd ? be16(o->p) :
		    c == 0xce ? be32(o->p) : be64(o->p);
	} else if (c >= 0xd0 && c <= 0xd3) {
		o->type = MP_INT;
		o->v.i = c == 0xd0 ? (int8_t)o->p[0] : c == 0xd1 ? (int16_t)be16(o->p) :
		    c == 0xd2 ? (int32_t)be32(o->p) : (int64_t)be64(o->p);
		/* non-negative values in signed encodings are still integers >= 0 */
		if (o->v.i >= 0) {
			o->type = MP_UINT;
			o->v.u = (uint64_t)o->v.i;
		}
	} else {		/* ext 8/16/32, fixext: the type byte ends the header */
		o->type = MP_EXT;
		o->ext = (int8_t)p[hl - 1];
	}
	if (o->type == MP_MAP || o->type == MP_ARRAY)
		*pp = p + hl;
	else
		*pp = p + hl + body;
	return 0;
}

int
mp_pass(const unsigned char **pp, const unsigned char *end)
{
	size_t len;

	if (mp_skip(*pp, (size_t)(end - *pp), MP_MAXDEPTH, &len) != MP_OK)
		return -1;
	*pp += len;
	return 0;
}

int
mp_streq(const struct mp_obj *o, const char *s)
{
	size_t n = strlen(s);

	return (o->type == MP_STR || o->type == MP_BIN) && o->n == n &&
	    memcmp(o->p, s, n) == 0;
}
