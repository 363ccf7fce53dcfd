/* chunk: the chunk file of a spool (lf-spool(5)).
 *
 *   offset size
 *   0      8    magic: c1 'l' 'f' 'c' 'h' 'u' 'n' 'k' (0xc1 is never msgpack)
 *   8      1    version, 1
 *   9      1    state: 'S' staged (being written), 'R' sealed (ready)
 *   10     2    zero
 *   12     4    header length H (the body starts at H)
 *   16     16   chunk id (random; the forward "chunk" option, TD's unique_id)
 *   32     8    created, microseconds since the epoch
 *   40     8    body length: committed bytes of the body
 *   48     8    event count of those bytes
 *   56     4    CRC-32 (zlib's) of those bytes
 *   60     4    CRC-32 of the header: bytes 0..59 then 64..H-1
 *   64     H-64 chunk keys: a msgpack map {"tag": str, "timekey": int,
 *               "variables": {key: value, ...}}; "tag" is always there
 *   H      ...  body: PackedForward entries of the one tag
 *
 * Integers are big-endian.  Bytes 40..63 are the only ones that change
 * after creation, with the state byte: a staged chunk rewrites its first
 * 64 bytes (one disk sector) on each commit, in the same fdatasync as the
 * body bytes they describe, and sealing sets the state to 'R'. */
#ifndef LF_CHUNK_H
#define LF_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CHUNK_MAGIC	"\xc1lfchunk"
#define CHUNK_VERSION	1
#define CHUNK_FIXED	64	/* bytes before the keys */
#define CHUNK_MAXHEAD	65536
#define CHUNK_STAGED	'S'
#define CHUNK_SEALED	'R'

struct chunk_head {
	int state;
	uint32_t hlen;
	unsigned char id[16];
	uint64_t created_us;
	uint64_t bodylen;
	uint64_t count;
	uint32_t bodycrc;
	/* keys, pointing into the bytes given to chunk_head_decode */
	const char *tag;
	size_t taglen;
	int has_timekey;
	int64_t timekey;
	const unsigned char *vars;	/* msgpack map, or NULL */
	size_t varslen;
	const unsigned char *keys;	/* the whole keys map */
	size_t keyslen;
};

/* Build the keys map into out. */
int chunk_keys_encode(struct buf *out, const char *tag, size_t taglen,
    int has_timekey, int64_t timekey, const unsigned char *vars, size_t varslen);

/* Header bytes for h with the keys map keys[0..keyslen); h->hlen is set. */
int chunk_head_encode(struct buf *out, struct chunk_head *h,
    const unsigned char *keys, size_t keyslen);

/* Rewrite bytes 40..63 (and the state byte) of an encoded header in place
 * and recompute its CRC. */
void chunk_head_update(unsigned char *head, size_t hlen, int state,
    uint64_t bodylen, uint64_t count, uint32_t bodycrc);

/* Parse and check a header from p[0..n).  0, 1 if n is too short for
 * the whole header (h->hlen says how much is needed), or -1 with a reason
 * in err. */
int chunk_head_decode(const unsigned char *p, size_t n, struct chunk_head *h,
    char *err, size_t errlen);

uint32_t chunk_crc(uint32_t crc, const void *p, size_t n);

/* "0123...ef": 32 lowercase hex digits of an id. */
void chunk_id_hex(const unsigned char id[16], char hex[33]);
int chunk_id_parse(const char *hex, unsigned char id[16]);

#endif
