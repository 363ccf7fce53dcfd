/* tail_recode: in_tail's from_encoding -> encoding, one line at a time
 * (iconv(3)).
 *
 * Fluentd converts each line with String#encode(encoding, from_encoding)
 * and, when that raises, again with invalid: :replace, undef: :replace:
 * a byte sequence not valid in from_encoding, or a character that
 * encoding cannot hold, becomes one replacement character, U+FFFD when
 * encoding is a Unicode one and '?' otherwise.  So here; the one
 * difference is that an invalid sequence is replaced a byte at a time
 * (Ruby replaces the longest invalid prefix of a character once).
 *
 * Both encodings must be ASCII-compatible: lines are cut at the byte
 * '\n' and the parsers read ASCII delimiters, so UTF-16 and UTF-32 are
 * refused. */
#ifndef LF_TAIL_RECODE_H
#define LF_TAIL_RECODE_H

#include <stddef.h>

#include "buf.h"

struct tail_recode;

/* NULL with a message in err: an encoding iconv does not know, or one
 * that is not ASCII-compatible, or no memory. */
struct tail_recode *tail_recode_new(const char *from, const char *to,
	    char *err, size_t n);
/* in[0..len) converted, replacing out's content; the replacements made
 * are added to *nrepl.  0, or -1 ENOMEM. */
int	tail_recode_line(struct tail_recode *r, const char *in, size_t len,
	    struct buf *out, unsigned long long *nrepl);
void	tail_recode_free(struct tail_recode *r);

#endif
