/* libFuzzer target for lib/httpin: request bytes, fed in splits the first
 * byte chooses, through the HTTP parser, the body decoders (json, ndjson,
 * msgpack, forms, gzip) and the record rewriting.  Every batch handed on
 * must be canonical entries (the probe checks it), every response a whole
 * HTTP/1.1 status line, and the answers must not depend on the split. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "httpin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	size_t ea, eb, split;

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
	run(data + 1, size - 1, split, &cf, &a, &ea);
	run(data + 1, size - 1, size, &cf, &b, &eb);
	/* the same answers and events, whatever the split (Date-free output) */
	if (ea != eb || a.len != b.len || (a.len && memcmp(a.p, b.p, a.len) != 0))
		abort();
	if (a.len > 0 && (a.len < 12 || memcmp(a.p, "HTTP/1.1 ", 9) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
