/* libFuzzer target for lib/httpin: request bytes, fed in splits the first
 * byte chooses, through the HTTP parser, the body decoders (json, ndjson,
 * msgpack, forms, gzip) and the record rewriting.  Every batch handed on
 * must be canonical entries (the probe checks it), every response a whole
 * HTTP/1.1 status line, and the answers must not depend on the split,
 * except the last before a close: a request both malformed and over a
 * bound may be told either, as the parser sees one or the other first. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "httpin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the last response begins. */
static size_t
last_resp(const struct buf *b)
{
	size_t i = b->len;

	while (i > 9 && memcmp(b->p + i - 9, "HTTP/1.1 ", 9) != 0)
		i--;
	return i > 9 ? i - 9 : 0;
}

static int
run(const uint8_t *data, size_t size, size_t split, const struct httpin_conf *cf,
    struct buf *out, size_t *events)
{
	struct httpin_probe *pr = httpin_probe_new(cf);
	size_t off = 0, n;
	int rc = 0;

	if (pr == NULL)
		abort();
	*events = 0;
	while (off < size && rc == 0) {
		n = size - off < split ? size - off : split;
		rc = httpin_probe_feed(pr, data + off, n, out, events);
		off += n;
	}
	httpin_probe_free(pr);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpin_conf cf;
	struct buf a = BUF_INIT, b = BUF_INIT;
	size_t ea, eb, split, la, lb;
	int ra, rb;

	if (size < 1)
		return 0;
	httpin_conf_default(&cf);
	cf.body_size_limit = 1 << 16;
	cf.decompression_size_limit = 1 << 18;
	cf.max_header_size = 4096;
	cf.max_url = 1024;
	cf.add_http_headers = data[0] & 0x10;
	cf.add_remote_addr = data[0] & 0x20;
	cf.add_query_params = data[0] & 0x40;
	cf.use_204_response = data[0] & 0x80;
	cf.cors_allow_origins = data[0] & 0x08 ? "https://a.example, *.b.example" : NULL;
	split = (data[0] & 0x07) + 1;
	split = split == 8 ? size : split * split;
	ra = run(data + 1, size - 1, split, &cf, &a, &ea);
	rb = run(data + 1, size - 1, size, &cf, &b, &eb);
	/* the same answers and events, whatever the split (Date-free output) */
	la = ra == -1 ? last_resp(&a) : a.len;
	lb = rb == -1 ? last_resp(&b) : b.len;
	if (ea != eb || ra != rb || la != lb || (la && memcmp(a.p, b.p, la) != 0))
		abort();
	if (ra == -1 && !(a.len == b.len && memcmp(a.p + la, b.p + lb,
	    a.len - la) == 0) && (a.len - la < 12 || b.len - lb < 12 ||
	    a.p[la + 9] < '4' || b.p[lb + 9] < '4'))
		abort();	/* if told apart, closed after an error either way */
	if (a.len > 0 && (a.len < 12 || memcmp(a.p, "HTTP/1.1 ", 9) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
