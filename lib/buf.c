#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t cap;
	unsigned char *p;

	if (b->cap - b->len >= extra)
		return 0;
	if (extra > ((size_t)-1) / 2 - b->len) {
		errno = ENOMEM;
		return -1;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_addc(struct buf *b, int c)
{
	if (b->len == b->cap && buf_reserve(b, 1) == -1)
		return -1;
	b->p[b->len++] = (unsigned char)c;
	return 0;
}

int
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
}

void
buf_shrink(struct buf *b, size_t keep)
{
	unsigned char *p;

	if (b->cap <= keep || b->len > keep / 2)
		return;
	if (b->len == 0) {
		buf_free(b);
		return;
	}
	if ((p = realloc(b->p, keep)) == NULL)
		return;		/* keeping the larger one is no error */
	b->p = p;
	b->cap = keep;
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
buf_msgpack_write(void *data, const char *p, size_t n)
{
	return buf_add(data, p, n);
}
