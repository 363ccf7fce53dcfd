/* gz: gzip for CompressedPackedForward, over zlib. */
#ifndef LF_GZ_H
#define LF_GZ_H

#include <stddef.h>

#include <zlib.h>

#include "buf.h"

/* Append the inflated bytes of p[0..n) to out.  p may hold several gzip
 * members one after another (Fluentd writes one member per buffer append);
 * all are inflated.  More than limit output bytes is an error, checked as
 * it inflates, so a small bomb cannot take the memory.  0, or -1 with a
 * static message in *err. */
int gz_inflate(const unsigned char *p, size_t n, struct buf *out, size_t limit,
    const char **err);

/* The same in steps, so that a reader serving many inputs can go back to
 * the others between them: each call appends about `step` bytes (all of
 * it if step is 0) and returns 0 to be called again, 1 when every member
 * is inflated, or -1 with *err.  The input is passed again at each call,
 * the same bytes, but they may have moved; out may have been consumed
 * from the front in between, since `limit` counts every byte made since
 * gz_step_begin. */
struct gz_step {
	z_stream z;
	int active;
	size_t in_off;		/* input consumed */
	size_t total;		/* output made */
};
int gz_step_begin(struct gz_step *g, const char **err);
int gz_step(struct gz_step *g, const unsigned char *p, size_t n, struct buf *out,
    size_t limit, size_t step, const char **err);
void gz_step_end(struct gz_step *g);

/* Append one gzip member holding p[0..n) to out.  0 or -1. */
int gz_deflate(const unsigned char *p, size_t n, struct buf *out, int level);

#endif
