/* libFuzzer target for the syslog parser: RFC 3164, RFC 5424 and auto,
 * with and without priority, and the time formats they read.  The first
 * byte picks the configuration; the rest are lines. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const confs[][FZ_MAXOPTS] = {
	{ "format=syslog", NULL },
	{ "format=syslog", "with-priority", "keep-time-key", "utc", NULL },
	{ "format=syslog", "message-format=rfc5424", NULL },
	{ "format=syslog", "message-format=rfc5424", "with-priority", NULL },
	{ "format=syslog", "message-format=auto", "with-priority", NULL },
	{ "format=syslog", "time-format=%b  %d %H:%M:%S.%N", NULL },
};
#define NCONFS	(sizeof confs / sizeof *confs)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct parser *ps[NCONFS];

	fz_run(ps, confs, NCONFS, data, size, 0);
	return 0;
}
