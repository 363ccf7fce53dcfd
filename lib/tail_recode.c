/* tail_recode: from_encoding -> encoding per line (tail_recode.h). */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tail_recode.h"

struct tail_recode {
	iconv_t	cd;		/* from -> to */
	iconv_t	valid;		/* from -> UTF-8: is a sequence a character? */
	char	repl[8];	/* U+FFFD in to, or "?" */
	size_t	repllen;
};

/* s converted whole by a fresh cd into out (up to *n): 0, or -1. */
static int
conv_all(iconv_t cd, const char *s, size_t len, char *out, size_t *n)
{
	char *in = (char *)s, *o = out;
	size_t il = len, ol = *n;

	iconv(cd, NULL, NULL, NULL, NULL);
	if (iconv(cd, &in, &il, &o, &ol) == (size_t)-1 ||
	    iconv(cd, NULL, NULL, &o, &ol) == (size_t)-1)
		return -1;
	*n = (size_t)(o - out);
	return 0;
}

/* Does enc write the ASCII the parsers and the line cutting rely on as
 * ASCII? */
static int
ascii_compatible(const char *enc)
{
	static const char probe[] = "\t\n\r \"#,-.0123456789:;[]{}AZaz";
	char out[64];
	size_t n = sizeof out;
	iconv_t cd = iconv_open(enc, "ASCII");
	int ok;

	if (cd == (iconv_t)-1)
		return 0;
	ok = conv_all(cd, probe, sizeof probe - 1, out, &n) == 0 &&
	    n == sizeof probe - 1 && memcmp(out, probe, n) == 0;
	iconv_close(cd);
	return ok;
}

struct tail_recode *
tail_recode_new(const char *from, const char *to, char *err, size_t n)
{
	struct tail_recode *r;
	const char *bad = NULL;
	iconv_t u;

	if ((r = calloc(1, sizeof *r)) == NULL) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	r->cd = r->valid = (iconv_t)-1;
	if ((r->cd = iconv_open(to, from)) == (iconv_t)-1 ||
	    (r->valid = iconv_open("UTF-8", from)) == (iconv_t)-1) {
		snprintf(err, n, "no conversion from \"%s\" to \"%s\" (iconv -l "
		    "lists the encodings)", from, to);
		goto fail;
	}
	if (!ascii_compatible(from))
		bad = from;
	else if (!ascii_compatible(to))
		bad = to;
	if (bad != NULL) {
		snprintf(err, n, "\"%s\" is not ASCII-compatible: lines are cut "
		    "at the byte '\\n'", bad);
		goto fail;
	}
	/* Ruby's replacement: U+FFFD where the target can hold it */
	r->repllen = sizeof r->repl;
	if ((u = iconv_open(to, "UTF-8")) == (iconv_t)-1 ||
	    conv_all(u, "\xef\xbf\xbd", 3, r->repl, &r->repllen) == -1) {
		r->repl[0] = '?';
		r->repllen = 1;
	}
	if (u != (iconv_t)-1)
		iconv_close(u);
	return r;
fail:
	tail_recode_free(r);
	return NULL;
}

/* At an EILSEQ: the length of the character at p if it is a valid one
 * (that the target cannot hold: replaced whole), else 1 (an invalid
 * byte: replaced alone). */
static size_t
char_len(struct tail_recode *r, const char *p, size_t left)
{
	char out[32];
	size_t k, n;

	for (k = 1; k <= 4 && k <= left; k++) {
		n = sizeof out;
		if (conv_all(r->valid, p, k, out, &n) == 0)
			return k;
	}
	return 1;
}

int
tail_recode_line(struct tail_recode *r, const char *in, size_t len,
    struct buf *out, unsigned long long *nrepl)
{
	char *ip = (char *)in, *op;
	size_t il = len, ol, k;
	int done = 0;

	buf_reset(out);
	iconv(r->cd, NULL, NULL, NULL, NULL);
	for (;;) {
		if (buf_reserve(out, il + il / 2 + 16) == -1)
			return -1;
		op = (char *)out->p + out->len;
		ol = out->cap - out->len;
		/* the input, then (inbuf NULL) the end of a shift state */
		k = iconv(r->cd, done ? NULL : &ip, &il, &op, &ol);
		out->len = (size_t)(op - (char *)out->p);
		if (k != (size_t)-1) {
			if (done)
				return 0;
			done = il == 0;
			continue;
		}
		if (errno == E2BIG)
			continue;
		if (done)
			return 0;	/* cannot happen: nothing to replace */
		if (errno == EILSEQ)
			k = char_len(r, ip, il);
		else	/* EINVAL: a character cut short by the line's end */
			k = il;
		if (buf_add(out, r->repl, r->repllen) == -1)
			return -1;
		(*nrepl)++;
		ip += k;
		il -= k;
	}
}

void
tail_recode_free(struct tail_recode *r)
{
	if (r == NULL)
		return;
	if (r->cd != (iconv_t)-1)
		iconv_close(r->cd);
	if (r->valid != (iconv_t)-1)
		iconv_close(r->valid);
	free(r);
}
