/* libFuzzer target for chunk files (lf-spool(5)): a chunk read from disk
 * may be torn or corrupt; its header and body checks must never crash. */
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chunk_head h;
	struct stream_iter it;
	struct stream_event ev;
	char err[256];
	uint64_t n = 0;

	if (chunk_head_decode(data, size, &h, err, sizeof err) != 0)
		return 0;
	if (h.bodylen > size - h.hlen)
		return 0;
	if (chunk_crc(0, data + h.hlen, h.bodylen) != h.bodycrc && size > 1 && data[1] & 1)
		return 0;
	stream_iter_init(&it, data + h.hlen, h.bodylen);
	while (stream_iter_next(&it, &ev) == 1)
		n++;
	return (int)(n & 0);
}
