/* libFuzzer target for JSON-lines input (lf-cat -i json, later lf-tail's
 * json parser): a line parsed as a record and as an envelope; whatever
 * parses is printed back as JSON, which must parse again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_in opt = { "time", NULL, 0, 1 };
	struct buf rec = BUF_INIT, tag = BUF_INIT, out = BUF_INIT, rec2 = BUF_INIT;
	uint32_t sec, nsec, s2, n2;
	int has_time;
	char err[256];

	if (size > 0 && data[0] & 1)
		opt.time_format = "%Y-%m-%dT%H:%M:%S%z";
	if (json_parse_record((const char *)data, size, &opt, &rec, &sec, &nsec,
	    &has_time, err, sizeof err) == 0) {
		if (json_event(&out, "t", 1, sec, nsec % 1000000000, rec.p, rec.len) == 0 &&
		    json_parse_event((const char *)out.p, out.len, &tag, &rec2, &s2, &n2,
		    err, sizeof err) != 0)
			abort();	/* what lf-cat prints must read back */
	}
	buf_reset(&tag);
	buf_reset(&rec);
	json_parse_event((const char *)data, size, &tag, &rec, &sec, &nsec, err, sizeof err);
	buf_free(&rec);
	buf_free(&rec2);
	buf_free(&tag);
	buf_free(&out);
	return 0;
}
