#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "gz.h"

#define GZ_STEP 65536

int
gz_step_begin(struct gz_step *g, const char **err)
{
	memset(g, 0, sizeof *g);
	if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) {
		*err = "gzip: cannot initialise zlib";
		return -1;
	}
	g->active = 1;
	return 0;
}

void
gz_step_end(struct gz_step *g)
{
	if (g->active)
		inflateEnd(&g->z);
	g->active = 0;
}

int
gz_step(struct gz_step *g, const unsigned char *p, size_t n, struct buf *out,
    size_t limit, size_t step, const char **err)
{
	size_t made = 0, room, left, k;
	int rc;

	if (n == 0) {
		*err = "gzip: no data";	/* and p may be NULL: no arithmetic on it */
		return -1;
	}

	if (limit > SIZE_MAX / 2)
		limit = SIZE_MAX / 2;
	for (;;) {
		if (step && made >= step)
			return 0;
		if (buf_reserve(out, GZ_STEP) == -1) {
			*err = "gzip: out of memory";
			return -1;
		}
		/* one byte past the limit tells a bomb from an exact fit */
		room = out->cap - out->len;
		if (room > limit - g->total + 1)
			room = limit - g->total + 1;
		if (step && room > step - made)
			room = step - made;
		left = n - g->in_off;
		g->z.next_in = (unsigned char *)p + g->in_off;
		g->z.avail_in = (uInt)(left > UINT32_MAX ? UINT32_MAX : left);
		g->z.next_out = out->p + out->len;
		g->z.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
		rc = inflate(&g->z, Z_NO_FLUSH);
		k = (size_t)(g->z.next_out - (out->p + out->len));
		out->len += k;
		g->total += k;
		made += k;
		g->in_off = (size_t)(g->z.next_in - p);
		if (g->total > limit) {
			*err = "gzip: decompressed size exceeds the limit";
			return -1;
		}
		if (rc == Z_STREAM_END) {
			if (g->in_off == n)
				return 1;
			/* another member follows */
			if (inflateReset(&g->z) != Z_OK) {
				*err = "gzip: cannot reset zlib";
				return -1;
			}
			continue;
		}
		if (rc == Z_BUF_ERROR && g->in_off == n) {
			*err = "gzip: truncated member";
			return -1;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			*err = rc == Z_DATA_ERROR ? "gzip: corrupt data" : "gzip: inflate failed";
			return -1;
		}
	}
}

int
gz_inflate(const unsigned char *p, size_t n, struct buf *out, size_t limit,
    const char **err)
{
	struct gz_step g;
	size_t start = out->len;
	int rc;

	if (gz_step_begin(&g, err) == -1)
		return -1;
	rc = gz_step(&g, p, n, out, limit, 0, err);
	gz_step_end(&g);
	if (rc == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
gz_deflate(const unsigned char *p, size_t n, struct buf *out, int level)
{
	z_stream z;
	size_t start = out->len;
	int rc;

	if (n > UINT32_MAX)
		return -1;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	if (buf_reserve(out, deflateBound(&z, n)) == -1)
		goto fail;
	z.next_in = (unsigned char *)p;
	z.avail_in = (uInt)n;
	z.next_out = out->p + out->len;
	z.avail_out = (uInt)(out->cap - out->len);
	rc = deflate(&z, Z_FINISH);
	if (rc != Z_STREAM_END)
		goto fail;
	out->len = (size_t)(z.next_out - out->p);
	deflateEnd(&z);
	return 0;
fail:
	deflateEnd(&z);
	out->len = start;
	return -1;
}
