/* tdlog: Treasure Data's import format and names, for lf-tdlog.
 *
 * An import body is gzip(map || map || ...): each event's record as a
 * msgpack map with "time" set to the event time in whole seconds (any
 * "time" the record had is replaced, as out_tdlog's record["time"] =
 * time.to_i does), the maps end to end, one gzip member.
 *
 * Names follow td-client's normalisation for names taken from a tag
 * (never rejected: padded, cut, lower-cased, other characters made
 * "_"), with one change: a name is cut at 128 characters, not 255,
 * since the current naming rules of the service say 3 to 128 and a
 * longer one would only be refused there (research/td-api.md §3). */
#ifndef LF_TDLOG_H
#define LF_TDLOG_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "buf.h"

#define TDLOG_NAME_MIN	3
#define TDLOG_NAME_MAX	128
#define TDLOG_KEYS_MAX	512	/* out_tdlog's @key_num_limit */

/* in[0..n) normalised into out (TDLOG_NAME_MAX + 1 bytes): 0, or -1 if
 * it is empty.  A UTF-8 character counts as one, as in Ruby. */
int tdlog_name_normalize(const char *in, size_t n, char *out);
/* A configured name: ^[a-z0-9_]{3,128}$.  1 or 0. */
int tdlog_name_valid(const char *s);
/* The database and table of a tag: its last two parts, normalised.  0,
 * or -1 with a reason (fewer than two parts, an empty one). */
int tdlog_tag_names(const char *tag, size_t len, char *db, char *table,
    char *err, size_t errlen);

/* One record as the import wants it, appended to out: 0; 1 if it must
 * be set aside (not a map, too many keys, a key that is not a string),
 * with *why; -1 if out of memory.  rec is one whole msgpack value. */
int tdlog_record(struct buf *out, uint32_t sec, const unsigned char *rec,
    size_t reclen, const char **why);

/* A gzip member made in pieces: append records to in, call
 * tdlog_gz_run (which empties in) and take the compressed bytes from
 * out; finish at the end.  raw and packed count the bytes in and out. */
struct tdlog_gz {
	z_stream z;
	int on;
	struct buf in, out;
	uint64_t raw, packed;
};
int tdlog_gz_init(struct tdlog_gz *g, int level);	/* 0 or -1 */
int tdlog_gz_run(struct tdlog_gz *g, int finish);	/* 0 or -1 */
void tdlog_gz_free(struct tdlog_gz *g);

/* An endpoint as td-client reads it: "http://..." or "https://..." is
 * used as given (TLS by the scheme), anything else is a host[:port]
 * that gets https:// (http:// if use_ssl is 0).  The trailing "/" is
 * dropped.  With import set, the host api.treasuredata.com becomes
 * api-import.treasuredata.com.  A malloc'd string, or NULL. */
char *tdlog_endpoint(const char *v, int use_ssl, int import);
/* The API endpoint that goes with an import endpoint: the same, with a
 * host "api-import.X" made "api.X", so one region is used for both. */
char *tdlog_api_from_import(const char *import_url);

#endif
