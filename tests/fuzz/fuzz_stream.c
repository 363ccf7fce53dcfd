/* libFuzzer target for the stream reader: the bytes of a network peer or a
 * pipe, fed in splits chosen by the first input byte, and decoded in
 * steps (stream_limits.step) chosen by it too.  Every batch is
 * walked to the last event, so the iterator sees what the reader passed. */
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t steps[] = { 0, 1, 3, 64 };
	struct stream_limits lim = { 1 << 16, 1 << 16, MP_MAXDEPTH, 256, 0 };
	struct stream_reader r;
	struct stream_batch b;
	struct stream_iter it;
	struct stream_event ev;
	size_t split, off, k;
	int rc;

	if (size == 0)
		return 0;
	split = (size_t)data[0] % 17 + 1;
	lim.step = steps[data[0] / 17 % 4];
	data++;
	size--;
	stream_reader_init(&r, &lim);
	for (off = 0; off < size; off += k) {
		k = size - off < split ? size - off : split;
		stream_reader_feed(&r, data + off, k);
		while ((rc = stream_reader_next(&r, &b)) != 0) {
			if (rc == STREAM_EFRAME)
				goto out;
			if (rc != 1)
				continue;
			stream_iter_init(&it, b.entries, b.len);
			while (stream_iter_next(&it, &ev) == 1)
				;
		}
	}
	stream_reader_end(&r);
out:
	stream_reader_free(&r);
	return 0;
}
