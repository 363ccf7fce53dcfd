/* mp: msgpack framing and reading without building objects.
 *
 * msgpack-c unpacks every value into a tree of msgpack_object; the stream
 * tools mostly need to know only where a message, an entry or a record
 * starts and ends, and whether it is well formed.  This module scans bytes
 * in place for that.  Packing, and unpacking a record a tool really looks
 * into, are msgpack-c's job. */
#ifndef LF_MP_H
#define LF_MP_H

#include <stddef.h>
#include <stdint.h>

#define MP_MAXDEPTH 32	/* msgpack-c's own unpacker stops at 32 levels */

enum {
	MP_OK = 0,
	MP_MORE = 1,	/* the object is not complete yet */
	MP_EBAD = -1,	/* 0xc1, the one byte msgpack never uses */
	MP_EDEPTH = -2,	/* nested deeper than the bound */
	MP_EBIG = -3,	/* larger than the size bound */
};

/* A resumable scanner: call mp_scan() with the same object start and a
 * growing n until it returns MP_OK with *len set to the object's size.
 * Every byte is looked at once, however the input is split. */
struct mp_scan {
	size_t off;		/* next header, or the end once done */
	size_t maxsize;
	unsigned depth, maxdepth, done;
	uint64_t left[MP_MAXDEPTH];	/* children still to come, per level */
};

void mp_scan_init(struct mp_scan *s, unsigned maxdepth, size_t maxsize);
int mp_scan(struct mp_scan *s, const unsigned char *p, size_t n, size_t *len);

/* The size of the one complete object at p, or an error; MP_MORE if p[0..n)
 * ends inside it. */
int mp_skip(const unsigned char *p, size_t n, unsigned maxdepth, size_t *len);

enum mp_type {
	MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT,
	MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT,
};

/* One value's header.  For str, bin and ext, p/n is the payload; for array
 * and map, n is the element or pair count and the children follow. */
struct mp_obj {
	enum mp_type type;
	int8_t ext;
	uint32_t n;
	const unsigned char *p;
	union {
		uint64_t u;
		int64_t i;
		double f;
		int b;
	} v;
};

/* Read one header at *pp (bounded by end) and advance past it, and past the
 * payload of a str, bin or ext.  0, or -1 if truncated or 0xc1. */
int mp_read(const unsigned char **pp, const unsigned char *end, struct mp_obj *o);

/* Pass over one whole value.  0 or -1. */
int mp_pass(const unsigned char **pp, const unsigned char *end);

/* Is the value at p a str (or bin) equal to the C string s? */
int mp_streq(const struct mp_obj *o, const char *s);

#endif
