#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "gz.h"

#define GZ_STEP 65536

int
gz_inflate(const unsigned char *p, size_t n, struct buf *out, size_t limit,
    const char **err)
{
	z_stream z;
	size_t start = out->len;
	int rc;

	if (limit > SIZE_MAX / 2)
		limit = SIZE_MAX / 2;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		*err = "gzip: cannot initialise zlib";
		return -1;
	}
	z.next_in = (unsigned char *)p;
	z.avail_in = 0;
	for (;;) {
		size_t room;

		if (z.avail_in == 0) {
			size_t chunk = n > UINT32_MAX ? UINT32_MAX : n;
			z.avail_in = (uInt)chunk;
			n -= chunk;
		}
		if (buf_reserve(out, GZ_STEP) == -1) {
			*err = "gzip: out of memory";
			goto fail;
		}
		room = out->cap - out->len;
		if (room > limit - (out->len - start) + 1)
			room = limit - (out->len - start) + 1;
		z.next_out = out->p + out->len;
		z.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
		rc = inflate(&z, Z_NO_FLUSH);
		out->len = (size_t)(z.next_out - out->p);
		if (out->len - start > limit) {
			*err = "gzip: decompressed size exceeds the limit";
			goto fail;
		}
		if (rc == Z_STREAM_END) {
			if (z.avail_in == 0 && n == 0)
				break;
			/* another member follows */
			if (inflateReset(&z) != Z_OK) {
				*err = "gzip: cannot reset zlib";
				goto fail;
			}
			continue;
		}
		if (rc == Z_BUF_ERROR && z.avail_in == 0 && n == 0) {
			*err = "gzip: truncated member";
			goto fail;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			*err = rc == Z_DATA_ERROR ? "gzip: corrupt data" : "gzip: inflate failed";
			goto fail;
		}
	}
	inflateEnd(&z);
	return 0;
fail:
	inflateEnd(&z);
	out->len = start;
	return -1;
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
