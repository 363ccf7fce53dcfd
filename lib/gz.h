/* gz: gzip for CompressedPackedForward, over zlib. */
#ifndef LF_GZ_H
#define LF_GZ_H

#include <stddef.h>

#include "buf.h"

/* Append the inflated bytes of p[0..n) to out.  p may hold several gzip
 * members one after another (Fluentd writes one member per buffer append);
 * all are inflated.  More than limit output bytes is an error, checked as
 * it inflates, so a small bomb cannot take the memory.  0, or -1 with a
 * static message in *err. */
int gz_inflate(const unsigned char *p, size_t n, struct buf *out, size_t limit,
    const char **err);

/* Append one gzip member holding p[0..n) to out.  0 or -1. */
int gz_deflate(const unsigned char *p, size_t n, struct buf *out, int level);

#endif
