/* libFuzzer target for lib/posfile: any bytes as a position file (a
 * td-agent one, a torn one, garbage).  What parses is written back in
 * Fluentd's format, which must parse to the same entries; no entry is
 * at the unwatched position or keyed twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "posfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct posfile pf = { 0 }, back = { 0 };
	struct buf out = BUF_INIT;
	size_t i, j;

	pf.by_inode = back.by_inode = size > 0 && data[0] & 1;
	if (posfile_parse(&pf, (const char *)data, size) == -1)
		abort();
	for (i = 0; i < pf.n; i++) {
		if (pf.e[i].pos == POSFILE_UNWATCHED || pf.e[i].path[0] == '\0')
			abort();
		for (j = i + 1; j < pf.n; j++)
			if (pf.by_inode ? pf.e[i].ino == pf.e[j].ino :
			    strcmp(pf.e[i].path, pf.e[j].path) == 0)
				abort();
	}
	if (posfile_format(&pf, &out) == -1 ||
	    posfile_parse(&back, (const char *)out.p, out.len) == -1)
		abort();
	/* a path with a newline is not written: the rest reads back */
	for (i = j = 0; i < pf.n; i++) {
		if (strchr(pf.e[i].path, '\n') != NULL)
			continue;
		if (j >= back.n || strcmp(pf.e[i].path, back.e[j].path) != 0 ||
		    pf.e[i].pos != back.e[j].pos || pf.e[i].ino != back.e[j].ino)
			abort();
		j++;
	}
	if (j != back.n || back.unparsable != 0)
		abort();
	buf_free(&out);
	posfile_free(&pf);
	posfile_free(&back);
	return 0;
}
