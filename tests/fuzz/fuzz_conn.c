/* libFuzzer target for what lf-recv does with a connection's bytes after
 * its transport: the JSON-mode sniff (a first byte '{' or '[' makes the
 * connection JSON, lib/json's json_stream turns its values into msgpack),
 * the forward-protocol reader, and --source-address-key's rewrite of every
 * record (stream_entries_add).  The first byte picks the split size and
 * the decode step; the rest is the client's bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "json.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char kv[] = {
	0xa4, 'h', 'o', 's', 't', 0xa9, '1', '2', '7', '.', '0', '.', '0', '.', '1',
};

static int
drain(struct stream_reader *r, struct buf *tmp)
{
	struct stream_batch b;
	struct stream_iter it;
	struct stream_event ev;
	int rc;

	while ((rc = stream_reader_next(r, &b)) != 0) {
		if (rc == STREAM_EFRAME)
			return -1;
		if (rc != 1)
			continue;
		tmp->len = 0;
		if (stream_entries_add(tmp, b.entries, b.len, kv, sizeof kv, 1) == 0) {
			stream_iter_init(&it, tmp->p, tmp->len);
			while (stream_iter_next(&it, &ev) == 1)
				;
		}
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t steps[] = { 0, 1, 3, 64 };
	struct stream_limits lim = { 1 << 16, 1 << 16, MP_MAXDEPTH, 256, 0 };
	struct stream_reader r;
	struct json_stream js;
	struct buf tmp = { 0 };
	size_t split, off, k;
	int json;

	if (size < 2)
		return 0;
	split = (size_t)data[0] % 17 + 1;
	lim.step = steps[data[0] / 17 % 4];
	data++;
	size--;
	json = data[0] == '{' || data[0] == '[';
	if (json && json_stream_init(&js, lim.max_message) == -1)
		return 0;
	stream_reader_init(&r, &lim);
	for (off = 0; off < size; off += k) {
		k = size - off < split ? size - off : split;
		if (!json) {
			stream_reader_feed(&r, data + off, k);
		} else {
			if (json_stream_feed(&js, data + off, k) == -1)
				goto out;
			stream_reader_feed(&r, js.out.p, js.whole);
			json_stream_taken(&js);
		}
		if (drain(&r, &tmp) == -1)
			goto out;
	}
	if (json)
		json_stream_end(&js);
	stream_reader_end(&r);
out:
	if (json)
		json_stream_free(&js);
	stream_reader_free(&r);
	buf_free(&tmp);
	return 0;
}
