/* libFuzzer target for the split formats (none, ltsv, tsv, csv) and the
 * structured ones (json, msgpack), with the common options that touch
 * every value: types, null patterns, time types.  The first byte picks
 * the configuration; the rest are lines. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const confs[][FZ_MAXOPTS] = {
	{ "format=none", NULL },
	{ "format=ltsv", NULL },
	{ "format=ltsv", "time-format=%Y-%m-%dT%H:%M:%S.%N%z",
	    "keep-time-key", "types=a:integer,b:float,c:bool,d:array,"
	    "e:time,f:time:unixtime,g:array:|", NULL },
	{ "format=ltsv", "delimiter=||", "label-delimiter==>",
	    "null-value-pattern=^-$", "null-empty-string", NULL },
	{ "format=ltsv", "time-type=float", "estimate-current-event=false",
	    NULL },
	{ "format=ltsv", "time-type=mixed", "time-format=%d/%b/%Y:%H:%M:%S %z",
	    "time-format-fallbacks=%iso8601,unixtime,float", NULL },
	{ "format=tsv", "keys=time,a,b,c", "types=b:integer", NULL },
	{ "format=csv", "keys=a,b,time,d", "time-type=unixtime", NULL },
	{ "format=csv", "keys=a,b", "delimiter=;;", NULL },
	{ "format=json", NULL },
	{ "format=json", "time-format=%iso8601", "types=a:integer,b:string",
	    "null-empty-string", NULL },
	{ "format=json", "time-type=unixtime", "keep-time-key", NULL },
	{ "format=msgpack", NULL },
	{ "format=msgpack", "types=a:integer", "time-type=float", NULL },
	{ "format=ltsv", "time-format=%Y-%m-%d %H:%M:%S",
	    "timezone=America/New_York", NULL },
};
#define NCONFS	(sizeof confs / sizeof *confs)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct parser *ps[NCONFS];

	/* msgpack: the whole input is one value */
	fz_run(ps, confs, NCONFS, data, size, size > 0 &&
	    strcmp(confs[data[0] % NCONFS][0], "format=msgpack") == 0);
	return 0;
}
