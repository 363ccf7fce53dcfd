/* entries: a test helper, count canonical entries [EventTime, {"a": i}]
 * (lib/stream), in a malloc'd block of *len bytes. */
#ifndef TEST_ENTRIES_H
#define TEST_ENTRIES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

static unsigned char *
entries(size_t count, size_t *len)
{
	unsigned char *p = malloc(count * (STREAM_ENTRY_HEAD + 4)), *q = p;

	assert_non_null(p);
	for (size_t i = 0; i < count; i++) {
		stream_entry_head(q, 1441588984u, (uint32_t)i);
		q += STREAM_ENTRY_HEAD;
		memcpy(q, "\x81\xa1" "a", 3);
		q[3] = (unsigned char)(i & 0x7f);
		q += 4;
	}
	*len = (size_t)(q - p);
	return p;
}

#endif
