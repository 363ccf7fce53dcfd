/* match: Fluentd's tag match patterns (<match PATTERN>), compiled once.
 *
 * A pattern string is one or more patterns separated by white space; a
 * tag matches the string if it matches any of them.  Each pattern is
 * read as Fluentd's GlobMatchPattern reads it (lib/fluent/match.rb):
 *
 *	a.b	the tag a.b; bytes other than the ones below are literal
 *	*	any run of bytes without a dot, so a.* matches a.b, not a
 *		nor a.b.c; it may share a part with other bytes (a*.b)
 *	**	zero or more parts: a.** matches a, a.b, a.b.c but not ab;
 *		**.b matches b and x.y.b; a** matches a, ab and ab.c
 *	{x,y}	x or y, each a pattern itself: a.{b,c.**}, {a,b}.*;
 *		braces nest
 *	\c	the byte c itself (\* \{ \, \\)
 *	/re/	the whole tag matched against the regular expression re
 *
 * Where lf is stricter than Fluentd, the pattern is refused with a
 * message rather than read in a surprising way: unbalanced braces (a
 * stray '}' is a literal in Fluentd, a lone '{' a quirk of Ruby), a
 * pattern with an empty part (a leading or trailing dot, "..", ".}" or
 * ".,": Fluentd ignores a trailing dot), a trailing backslash, and in a
 * regular expression what POSIX ERE (regcomp(3), which lf uses in place
 * of Ruby's Onigmo) would read differently from Ruby: back references,
 * "(?" groups such as look-ahead, '\' in a bracket expression, and '\'
 * before a letter or digit other than \w \W \s \S \b \B, or before
 * < > ` '.  Everything else is read as Fluentd reads it, including a ','
 * outside braces, which is a literal.  Tags are bytes: '**' matches any
 * byte, where Ruby's '.' stops at a newline and its \Z also matches
 * before a last newline, and an invalid UTF-8 tag makes Ruby's match
 * raise; a tag holding either may be routed otherwise by Fluentd.
 *
 * Cost: a glob pattern is an NFA run over the tag once, so matching a tag
 * of n bytes takes at most 2 (n + 1) states steps (match_ops counts them:
 * each state entered once per position, and stepped once), with no
 * backtracking and no allocation; states grow linearly with the pattern
 * (at most MATCH_MAX_PATTERN bytes).  A regular expression is regexec(3)
 * with REG_NOSUB and no back references, which glibc matches without
 * backtracking (under a millisecond for /(a*)*b/ on 20,000 a's), but it
 * allocates and is outside match_ops.  The last tag matched (up to 128
 * bytes) and its answer are remembered: the same tag again costs a
 * memcmp.  A compiled pattern holds its matching scratch and that cache:
 * one thread at a time. */
#ifndef LF_MATCH_H
#define LF_MATCH_H

#include <stddef.h>
#include <stdint.h>

#define MATCH_MAX_PATTERN 4096	/* bytes of one pattern string */
#define MATCH_MAX_RULES 64	/* rules of a match_rules, a uint64_t mask */

struct match;

/* Compile a pattern string (patterns separated by white space).  The
 * compiled pattern, or NULL with a message in err naming the pattern
 * and what is wrong with it (errno EINVAL), or NULL on ENOMEM. */
struct match *match_compile(const char *patterns, char *err, size_t errlen);
/* Does the tag (len bytes, NUL or not) match?  1 or 0. */
int match_tag(struct match *m, const char *tag, size_t len);
/* NFA steps the last match_tag took (for tests of the bound above; 0
 * when the answer was remembered). */
unsigned long match_ops(const struct match *m);
/* NFA states of the compiled glob patterns. */
size_t match_states(const struct match *m);
void match_free(struct match *m);

/* An ordered list of rules, each a pattern string or "every tag", whose
 * index is the caller's target (a spool, an output).  Fluentd checks its
 * <match> sections in order and the first one matching takes the event:
 * match_rules_first.  For copies (out_copy, lf-buffer's spools) every rule
 * that matches counts: match_rules_all. */
struct match_rules {
	struct match *m[MATCH_MAX_RULES];	/* NULL: every tag */
	int n;
};

void match_rules_init(struct match_rules *r);
/* Add a rule (patterns NULL: every tag).  Its index, or -1 with err
 * (a bad pattern, or more than MATCH_MAX_RULES rules). */
int match_rules_add(struct match_rules *r, const char *patterns,
    char *err, size_t errlen);
/* The index of the first rule the tag matches, or -1. */
int match_rules_first(struct match_rules *r, const char *tag, size_t len);
/* Bit i set for every rule i the tag matches (0: none). */
uint64_t match_rules_all(struct match_rules *r, const char *tag, size_t len);
void match_rules_free(struct match_rules *r);

#endif
