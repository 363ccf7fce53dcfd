/* buf: a growable byte buffer, the one allocator pattern lf uses for bytes. */
#ifndef LF_BUF_H
#define LF_BUF_H

#include <stddef.h>

struct buf {
	unsigned char *p;
	size_t len, cap;
};

#define BUF_INIT { 0, 0, 0 }

int buf_reserve(struct buf *b, size_t extra);	/* 0, or -1 with ENOMEM */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_addc(struct buf *b, int c);
int buf_adds(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);	/* drop n bytes from the front */
void buf_reset(struct buf *b);
/* Give memory back: more than keep bytes of capacity holding at most
 * keep / 2 are cut down to keep, or freed if empty. */
void buf_shrink(struct buf *b, size_t keep);
void buf_free(struct buf *b);

/* msgpack-c's packer writes through a callback; this one appends to a buf. */
int buf_msgpack_write(void *data, const char *p, size_t n);

#endif
