/* libFuzzer target for the regexp formats: regexp, apache2,
 * apache_error, nginx, and multiline (lines held and flushed).  The
 * first byte picks the configuration; the rest are lines. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const confs[][FZ_MAXOPTS] = {
	{ "format=apache2", NULL },
	{ "format=apache2", "keep-time-key", NULL },
	{ "format=apache_error", NULL },
	{ "format=nginx", "types=code:integer,size:integer", NULL },
	{ "format=regexp", "expression=/^(?<time>[^ ]+) (?<level>\\w+)"
	    "(?: (?<msg>.*))?$/", "time-format=%Y-%m-%dT%H:%M:%S%z",
	    "null-value-pattern=^$", NULL },
	{ "format=regexp", "expression=/(?<a>x)|(?<a>y)|(?<b>.)/i", NULL },
	{ "format=multiline", "format-firstline=/^\\d{4}-/",
	    "format1=/^(?<time>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d) /",
	    "format2=/(?<level>\\w+) (?<msg>.*)/",
	    "time-format=%Y-%m-%d %H:%M:%S", NULL },
	{ "format=multiline", "format1=/^begin (?<body>.*) end$/", NULL },
};
#define NCONFS	(sizeof confs / sizeof *confs)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct parser *ps[NCONFS];

	fz_run(ps, confs, NCONFS, data, size, 0);
	return 0;
}
