#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include <msgpack.h>

#include "chunk.h"
#include "mp.h"

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

uint32_t
chunk_crc(uint32_t crc, const void *p, size_t n)
{
	return (uint32_t)crc32_z(crc, p, n);
}

static uint32_t
head_crc(const unsigned char *head, size_t hlen)
{
	uint32_t c = chunk_crc(0, head, 60);

	return chunk_crc(c, head + CHUNK_FIXED, hlen - CHUNK_FIXED);
}

int
chunk_keys_encode(struct buf *out, const char *tag, size_t taglen,
    int has_timekey, int64_t timekey, const unsigned char *vars, size_t varslen)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, buf_msgpack_write);
	if (msgpack_pack_map(&pk, 1 + (has_timekey != 0) + (vars != NULL)) ||
	    msgpack_pack_str_with_body(&pk, "tag", 3) ||
	    msgpack_pack_str_with_body(&pk, tag, taglen))
		return -1;
	if (has_timekey && (msgpack_pack_str_with_body(&pk, "timekey", 7) ||
	    msgpack_pack_int64(&pk, timekey)))
		return -1;
	if (vars && (msgpack_pack_str_with_body(&pk, "variables", 9) ||
	    buf_add(out, vars, varslen) == -1))
		return -1;
	return 0;
}

int
chunk_head_encode(struct buf *out, struct chunk_head *h,
    const unsigned char *keys, size_t keyslen)
{
	unsigned char f[CHUNK_FIXED];
	size_t start = out->len;

	if (CHUNK_FIXED + keyslen > CHUNK_MAXHEAD)
		return -1;
	h->hlen = (uint32_t)(CHUNK_FIXED + keyslen);
	memset(f, 0, sizeof f);
	memcpy(f, CHUNK_MAGIC, 8);
	f[8] = CHUNK_VERSION;
	f[9] = (unsigned char)h->state;
	put32(f + 12, h->hlen);
	memcpy(f + 16, h->id, 16);
	put64(f + 32, h->created_us);
	if (buf_add(out, f, sizeof f) == -1 || buf_add(out, keys, keyslen) == -1)
		return -1;
	chunk_head_update(out->p + start, h->hlen, h->state, h->bodylen, h->count,
	    h->bodycrc);
	return 0;
}

void
chunk_head_update(unsigned char *head, size_t hlen, int state,
    uint64_t bodylen, uint64_t count, uint32_t bodycrc)
{
	head[9] = (unsigned char)state;
	put64(head + 40, bodylen);
	put64(head + 48, count);
	put32(head + 56, bodycrc);
	put32(head + 60, head_crc(head, hlen));
}

static int
bad(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

/* The keys map: "tag" is required; "timekey" and "variables" optional. */
static int
keys_decode(struct chunk_head *h, char *err, size_t errlen)
{
	const unsigned char *p = h->keys, *end = h->keys + h->keyslen, *v;
	struct mp_obj m, k, o;

	if (mp_read(&p, end, &m) == -1 || m.type != MP_MAP)
		return bad(err, errlen, "chunk keys are not a map");
	for (uint32_t i = 0; i < m.n; i++) {
		if (mp_read(&p, end, &k) == -1)
			return bad(err, errlen, "chunk keys are truncated");
		v = p;
		if (mp_streq(&k, "variables")) {
			if (mp_pass(&p, end) == -1 || *v < 0x80 ||
			    (*v > 0x8f && *v != 0xde && *v != 0xdf))
				return bad(err, errlen, "chunk variables are not a map");
			h->vars = v;
			h->varslen = (size_t)(p - v);
			continue;
		}
		if (mp_read(&p, end, &o) == -1)
			return bad(err, errlen, "chunk keys are truncated");
		if (mp_streq(&k, "tag") && o.type == MP_STR) {
			h->tag = (const char *)o.p;
			h->taglen = o.n;
		} else if (mp_streq(&k, "timekey") && (o.type == MP_UINT || o.type == MP_INT)) {
			h->has_timekey = 1;
			h->timekey = o.type == MP_UINT ? (int64_t)o.v.u : o.v.i;
		} else if (o.type == MP_ARRAY || o.type == MP_MAP) {
			return bad(err, errlen, "unexpected value in chunk keys");
		}
	}
	if (p != end)
		return bad(err, errlen, "trailing bytes after chunk keys");
	if (h->tag == NULL)
		return bad(err, errlen, "chunk keys have no tag");
	return 0;
}

int
chunk_head_decode(const unsigned char *p, size_t n, struct chunk_head *h,
    char *err, size_t errlen)
{
	memset(h, 0, sizeof *h);
	if (n < CHUNK_FIXED) {
		if (n >= 8 && memcmp(p, CHUNK_MAGIC, 8) != 0)
			return bad(err, errlen, "not a chunk file (bad magic)");
		h->hlen = CHUNK_FIXED;
		return 1;
	}
	if (memcmp(p, CHUNK_MAGIC, 8) != 0)
		return bad(err, errlen, "not a chunk file (bad magic)");
	if (p[8] != CHUNK_VERSION)
		return bad(err, errlen, "unknown chunk format version");
	h->hlen = get32(p + 12);
	if (h->hlen < CHUNK_FIXED + 1 || h->hlen > CHUNK_MAXHEAD)
		return bad(err, errlen, "bad chunk header length");
	if (n < h->hlen)
		return 1;
	if (get32(p + 60) != head_crc(p, h->hlen))
		return bad(err, errlen, "chunk header checksum mismatch");
	h->state = p[9];
	if (h->state != CHUNK_STAGED && h->state != CHUNK_SEALED)
		return bad(err, errlen, "bad chunk state");
	memcpy(h->id, p + 16, 16);
	h->created_us = get64(p + 32);
	h->bodylen = get64(p + 40);
	h->count = get64(p + 48);
	h->bodycrc = get32(p + 56);
	h->keys = p + CHUNK_FIXED;
	h->keyslen = h->hlen - CHUNK_FIXED;
	return keys_decode(h, err, errlen);
}

void
chunk_id_hex(const unsigned char id[16], char hex[33])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		hex[2 * i] = digits[id[i] >> 4];
		hex[2 * i + 1] = digits[id[i] & 15];
	}
	hex[32] = '\0';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
chunk_id_parse(const char *hex, unsigned char id[16])
{
	for (int i = 0; i < 16; i++) {
		int a = hexval(hex[2 * i]), b = a < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (a < 0 || b < 0)
			return -1;
		id[i] = (unsigned char)(a << 4 | b);
	}
	return 0;
}
