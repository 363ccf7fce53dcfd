/* libFuzzer target for lib/match: the input is a pattern string, a NUL,
 * and a tag (tags come from clients; patterns from the operator, fuzzed
 * too).  Whatever compiles must match within match.h's bound of
 * 2 * (tag length + 1) * states steps, and "**" added as another pattern
 * must match every tag.  A '/' becomes '.': regular expressions are
 * glibc's regcomp(3), not lf's code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t plen = nul ? (size_t)(nul - data) : size;
	const char *tag = nul ? (const char *)nul + 1 : "";
	size_t tlen = nul ? size - plen - 1 : 0;
	char *pat, err[256];
	struct match *m;
	int r;

	if (plen > MATCH_MAX_PATTERN - 3 || (pat = malloc(plen + 4)) == NULL)
		return 0;
	memcpy(pat, data, plen);
	for (size_t i = 0; i < plen; i++)
		if (pat[i] == '/')
			pat[i] = '.';
	pat[plen] = '\0';
	if ((m = match_compile(pat, err, sizeof err)) != NULL) {
		r = match_tag(m, tag, tlen);
		if (match_ops(m) > 2 * (tlen + 1) * match_states(m))
			abort();
		if (match_tag(m, tag, tlen) != r)
			abort();
		match_free(m);
		memcpy(pat + plen, " **", 4);
		if ((m = match_compile(pat, err, sizeof err)) == NULL ||
		    match_tag(m, tag, tlen) != 1)
			abort();
		match_free(m);
	}
	free(pat);
	return 0;
}
