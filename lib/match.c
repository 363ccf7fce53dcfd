/* match: Fluentd's tag match patterns (see match.h).
 *
 * Fluentd turns a glob into a Ruby regular expression; here the same
 * translation builds a small NFA (Thompson's construction), run by
 * keeping the set of live states while reading the tag once.  The set
 * is a list plus a generation mark per state, so no state is visited
 * twice at one position whatever the pattern: the work is bounded by
 * (tag length + 1) * states, where a backtracking matcher (Ruby's)
 * can take exponential time on patterns such as *a*a*a*b. */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"

enum op {
	OP_CHAR,	/* the byte c */
	OP_NOTDOT,	/* any byte but '.' */
	OP_ANY,		/* any byte */
	OP_SPLIT,	/* go on at x and at y */
	OP_JMP,		/* go on at x */
	OP_PARTEND,	/* only if the next byte is '.' or the tag ends */
	OP_BEGIN,	/* only at the start of the tag */
	OP_MATCH,
};

#define MAX_STATES 65535	/* indices are uint16_t */
#define MAX_NEST 32		/* braces within braces */
#define NONE 0xffff
#define CACHE_TAG 128		/* a tag up to this long is remembered */

struct insn {
	uint8_t op, c;
	uint16_t x, y;
};

struct match {
	struct insn *prog;
	size_t n, cap;
	uint16_t *cur, *next, *stack;	/* scratch of match_tag, n each */
	uint32_t *mark;
	uint32_t gen;
	regex_t *re;
	size_t nre;
	unsigned long ops;
	/* the last tag and its answer: a connection sends one tag mostly
	 * (Fluentd keeps a cache of tags too) */
	char last[CACHE_TAG];
	size_t lastlen;
	int lastres;		/* -1: none */
};

struct comp {
	struct match *m;
	const char *p, *start, *end;	/* the glob being compiled */
	int dot;		/* a '.' read and not yet emitted (Ruby's "dot") */
	int depth;
	char *err;
	size_t errlen;
};

static int
fail(struct comp *c, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "pattern '%.*s': %s",
	    (int)(c->end - c->start > 200 ? 200 : c->end - c->start), c->start, what);
	errno = EINVAL;
	return -1;
}

/* Append one instruction; its index, or -1. */
static int
emit(struct comp *c, int op, int ch, int x, int y)
{
	struct match *m = c->m;

	if (m->n == MAX_STATES)
		return fail(c, "too many states");
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 32;
		struct insn *p = reallocarray(m->prog, cap, sizeof *p);
		if (p == NULL) {
			snprintf(c->err, c->errlen, "out of memory");
			return -1;
		}
		m->prog = p;
		m->cap = cap;
	}
	m->prog[m->n] = (struct insn){ (uint8_t)op, (uint8_t)ch, (uint16_t)x,
	    (uint16_t)y };
	return (int)m->n++;
}

/* e*, for e one byte class: L: split L+1 L+3; L+1: e; L+2: jmp L */
static int
star(struct comp *c, int op)
{
	int l = (int)c->m->n;

	if (emit(c, OP_SPLIT, 0, l + 1, l + 3) == -1 ||
	    emit(c, op, 0, 0, 0) == -1 || emit(c, OP_JMP, 0, l, 0) == -1)
		return -1;
	return 0;
}

/* "**." is Ruby's (?:.*\.|\A): any parts and a dot, or the tag's start. */
static int
any_parts_dot(struct comp *c)
{
	int l = (int)c->m->n;

	if (emit(c, OP_SPLIT, 0, l + 1, l + 6) == -1 || star(c, OP_ANY) == -1 ||
	    emit(c, OP_CHAR, '.', 0, 0) == -1 || emit(c, OP_JMP, 0, l + 7, 0) == -1 ||
	    emit(c, OP_BEGIN, 0, 0, 0) == -1)
		return -1;
	return 0;
}

static int seq(struct comp *c);

/* {x,y,...} after its '{': each alternative is a split to it or to the
 * next one; each ends with a jump past the last, chained through y
 * until the end is known. */
static int
alternatives(struct comp *c)
{
	struct insn *prog;
	int s, j, chain = NONE;

	if (++c->depth > MAX_NEST)
		return fail(c, "braces nested deeper than %d", MAX_NEST);
	for (;;) {
		if ((s = emit(c, OP_SPLIT, 0, (int)c->m->n + 1, 0)) == -1 ||
		    seq(c) == -1)
			return -1;
		if (c->p == c->end)
			return fail(c, "unbalanced '{'");
		if ((j = emit(c, OP_JMP, 0, 0, chain)) == -1)
			return -1;
		chain = j;
		prog = c->m->prog;
		if (*c->p++ == ',') {
			prog[s].y = (uint16_t)c->m->n;
			continue;
		}
		prog[s].y = prog[s].x;	/* the last: no other way */
		break;
	}
	prog = c->m->prog;
	while (chain != NONE) {
		j = prog[chain].y;
		prog[chain].x = (uint16_t)c->m->n;
		prog[chain].y = 0;
		chain = j;
	}
	c->depth--;
	return 0;
}

/* "**": with a '.' before it, that '.' becomes Ruby's (?![^.]) (the part
 * before ends here), so a.** matches a; with one after, (?:.*\.|\A). */
static int
any_parts(struct comp *c)
{
	if (c->dot && emit(c, OP_PARTEND, 0, 0, 0) == -1)
		return -1;
	c->dot = 0;
	if (c->p + 2 < c->end && c->p[2] == '.') {
		if (c->p + 3 == c->end)
			return fail(c, "empty part (trailing '.')");
		c->p += 3;
		return any_parts_dot(c);
	}
	c->p += 2;
	return star(c, OP_ANY);
}

/* A sequence, up to the ',' or '}' ending an alternative or the end. */
static int
seq(struct comp *c)
{
	while (c->p < c->end) {
		int ch = (unsigned char)*c->p;

		if (ch == '*' && c->p + 1 < c->end && c->p[1] == '*') {
			if (any_parts(c) == -1)
				return -1;
			continue;
		}
		if (c->dot) {
			if (ch == '.')
				return fail(c, "empty part (\"..\")");
			if ((ch == ',' || ch == '}') && c->depth > 0)
				return fail(c, "empty part (\".%c\")", ch);
			if (emit(c, OP_CHAR, '.', 0, 0) == -1)
				return -1;
			c->dot = 0;
		}
		switch (ch) {
		case '\\':
			if (c->p + 1 == c->end)
				return fail(c, "trailing '\\'");
			if (emit(c, OP_CHAR, (unsigned char)c->p[1], 0, 0) == -1)
				return -1;
			c->p += 2;
			continue;
		case '.':
			if (c->p == c->start)
				return fail(c, "empty part (leading '.')");
			c->dot = 1;
			break;
		case '*':
			if (star(c, OP_NOTDOT) == -1)
				return -1;
			break;
		case '{':
			c->p++;
			if (alternatives(c) == -1)
				return -1;
			continue;
		case '}':
			if (c->depth == 0)
				return fail(c, "unbalanced '}'");
			return 0;
		default:
			/* ',' outside braces is a literal, as in Fluentd */
			if (ch == ',' && c->depth > 0)
				return 0;
			if (emit(c, OP_CHAR, ch, 0, 0) == -1)
				return -1;
		}
		c->p++;
	}
	if (c->dot)
		return fail(c, "empty part (trailing '.')");
	return 0;
}

/* One glob, a way of the top-level split chain, ending in MATCH. */
static int
glob(struct comp *c, const char *p, size_t len, int *split)
{
	int s;

	if ((s = emit(c, OP_SPLIT, 0, (int)c->m->n + 1, 0)) == -1)
		return -1;
	if (*split >= 0)
		c->m->prog[*split].y = (uint16_t)s;
	*split = s;
	c->p = c->start = p;
	c->end = p + len;
	c->dot = 0;
	c->depth = 0;
	if (seq(c) == -1 || emit(c, OP_MATCH, 0, 0, 0) == -1)
		return -1;
	return 0;
}

/* What POSIX ERE reads differently from Ruby is refused (see match.h). */
static int
regex_check(struct comp *c, const char *re, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = re[i];
		if (ch == '[') {
			/* a bracket expression: ']' first (or after '^') is a
			 * member; [:class:] [.coll.] [=equiv=] nest */
			if (++i < len && re[i] == '^')
				i++;
			if (i < len && re[i] == ']')
				i++;
			for (; i < len && re[i] != ']'; i++) {
				if (re[i] == '\\')
					return fail(c, "'\\' in a bracket expression "
					    "(POSIX ERE reads it as a literal)");
				if (re[i] == '[' && i + 1 < len && re[i + 1] != '\0' &&
				    strchr(":.=", re[i + 1])) {
					char end = re[i + 1];
					for (i += 2; i + 1 < len && !(re[i] == end &&
					    re[i + 1] == ']'); i++)
						;
					i++;
				}
			}
			if (i >= len)
				return fail(c, "unbalanced '['");
		} else if (ch == '(' && i + 1 < len && re[i + 1] == '?') {
			return fail(c, "\"(?\" groups are Ruby's, not POSIX ERE's");
		} else if (ch == '\\') {
			if (++i == len)
				return fail(c, "trailing '\\'");
			ch = re[i];
			if ((ch >= '0' && ch <= '9') || strchr("<>`'", ch) ||
			    (((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') &&
			    strchr("wWsSbB", ch) == NULL))
				return fail(c, "\\%c is not supported (POSIX ERE)", ch);
		}
	}
	return 0;
}

/* /re/: anchored as Fluentd anchors it, \A(re)\Z. */
static int
regex(struct comp *c, const char *p, size_t len)
{
	struct match *m = c->m;
	regex_t *r;
	char *src;
	int rc;

	c->start = p;
	c->end = p + len;
	if (len < 2 || p[len - 1] != '/')
		return fail(c, "a regular expression wants a closing '/'");
	if (regex_check(c, p + 1, len - 2) == -1)
		return -1;
	if ((r = reallocarray(m->re, m->nre + 1, sizeof *r)) == NULL)
		goto nomem;
	m->re = r;
	if ((src = malloc(len + 3)) == NULL)
		goto nomem;
	snprintf(src, len + 3, "^(%.*s)$", (int)(len - 2), p + 1);
	rc = regcomp(&m->re[m->nre], src, REG_EXTENDED | REG_NOSUB);
	free(src);
	if (rc != 0) {
		char what[96];
		regerror(rc, NULL, what, sizeof what);
		return fail(c, "%s", what);
	}
	m->nre++;
	return 0;
nomem:
	snprintf(c->err, c->errlen, "out of memory");
	return -1;
}

static int
is_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' ||
	    ch == '\f' || ch == '\r';
}

/* Each field of the string (Ruby's split(/\s+/)) is a glob or a /re/. */
static int
compile_fields(struct comp *c, const char *s)
{
	int split = -1, fields = 0;

	for (;;) {
		size_t len;
		while (is_space((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		for (len = 0; s[len] != '\0' && !is_space((unsigned char)s[len]); len++)
			;
		if (*s == '/' ? regex(c, s, len) : glob(c, s, len, &split))
			return -1;
		fields++;
		s += len;
	}
	if (fields == 0) {
		snprintf(c->err, c->errlen, "empty pattern");
		errno = EINVAL;
		return -1;
	}
	if (split >= 0)
		c->m->prog[split].y = c->m->prog[split].x;
	return 0;
}

struct match *
match_compile(const char *patterns, char *err, size_t errlen)
{
	struct comp c = { .err = err, .errlen = errlen };
	struct match *m;
	size_t n;

	if (strlen(patterns) > MATCH_MAX_PATTERN) {
		snprintf(err, errlen, "pattern longer than %d bytes",
		    MATCH_MAX_PATTERN);
		errno = EINVAL;
		return NULL;
	}
	if ((c.m = m = calloc(1, sizeof *m)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (compile_fields(&c, patterns) == -1)
		goto fail;
	m->lastres = -1;
	n = m->n ? m->n : 1;
	m->cur = calloc(n, sizeof *m->cur);
	m->next = calloc(n, sizeof *m->next);
	m->stack = calloc(n, sizeof *m->stack);
	m->mark = calloc(n, sizeof *m->mark);
	if (!m->cur || !m->next || !m->stack || !m->mark) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return m;
fail:
	match_free(m);
	return NULL;
}

void
match_free(struct match *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nre; i++)
		regfree(&m->re[i]);
	free(m->re);
	free(m->prog);
	free(m->cur);
	free(m->next);
	free(m->stack);
	free(m->mark);
	free(m);
}

/* Add state pc and what it reaches without reading a byte, at position
 * pos, to list: each state once per generation. */
static void
add(struct match *m, uint16_t *list, size_t *nlist, int pc,
    const char *tag, size_t len, size_t pos)
{
	size_t sp = 0;

	if (m->mark[pc] == m->gen)
		return;
	m->mark[pc] = m->gen;
	m->stack[sp++] = (uint16_t)pc;
	while (sp > 0) {
		const struct insn *in = &m->prog[pc = m->stack[--sp]];
		int to[2], nto = 0;

		m->ops++;
		switch (in->op) {
		case OP_JMP:
			to[nto++] = in->x;
			break;
		case OP_SPLIT:
			to[nto++] = in->y;
			to[nto++] = in->x;
			break;
		case OP_PARTEND:
			if (pos == len || tag[pos] == '.')
				to[nto++] = pc + 1;
			break;
		case OP_BEGIN:
			if (pos == 0)
				to[nto++] = pc + 1;
			break;
		default:
			list[(*nlist)++] = (uint16_t)pc;
		}
		for (int i = 0; i < nto; i++) {
			if (m->mark[to[i]] != m->gen) {
				m->mark[to[i]] = m->gen;
				m->stack[sp++] = (uint16_t)to[i];
			}
		}
	}
}

static void
next_gen(struct match *m)
{
	if (++m->gen == 0) {
		memset(m->mark, 0, m->n * sizeof *m->mark);
		m->gen = 1;
	}
}

static int
nfa(struct match *m, const char *tag, size_t len)
{
	size_t ncur = 0, nnext;
	uint16_t *t;

	if (m->n == 0)
		return 0;
	next_gen(m);
	add(m, m->cur, &ncur, 0, tag, len, 0);
	for (size_t i = 0; i < len && ncur > 0; i++) {
		unsigned char ch = (unsigned char)tag[i];
		next_gen(m);
		nnext = 0;
		for (size_t k = 0; k < ncur; k++) {
			const struct insn *in = &m->prog[m->cur[k]];
			m->ops++;
			if ((in->op == OP_CHAR && in->c == ch) || in->op == OP_ANY ||
			    (in->op == OP_NOTDOT && ch != '.'))
				add(m, m->next, &nnext, m->cur[k] + 1, tag, len, i + 1);
		}
		t = m->cur, m->cur = m->next, m->next = t;
		ncur = nnext;
	}
	for (size_t k = 0; k < ncur; k++)
		if (m->prog[m->cur[k]].op == OP_MATCH)
			return 1;
	return 0;
}

static int
match_all(struct match *m, const char *tag, size_t len)
{
	if (nfa(m, tag, len))
		return 1;
	for (size_t i = 0; i < m->nre; i++) {
		regmatch_t rm = { .rm_so = 0, .rm_eo = (regoff_t)len };
		if (regexec(&m->re[i], tag, 1, &rm, REG_STARTEND) == 0)
			return 1;
	}
	return 0;
}

int
match_tag(struct match *m, const char *tag, size_t len)
{
	int r;

	m->ops = 0;
	if (m->lastres >= 0 && len == m->lastlen &&
	    (len == 0 || memcmp(tag, m->last, len) == 0))
		return m->lastres;
	r = match_all(m, tag, len);
	if (len <= CACHE_TAG) {
		if (len > 0)
			memcpy(m->last, tag, len);
		m->lastlen = len;
		m->lastres = r;
	}
	return r;
}

unsigned long
match_ops(const struct match *m)
{
	return m->ops;
}

size_t
match_states(const struct match *m)
{
	return m->n;
}

void
match_rules_init(struct match_rules *r)
{
	memset(r, 0, sizeof *r);
}

int
match_rules_add(struct match_rules *r, const char *patterns, char *err,
    size_t errlen)
{
	struct match *m = NULL;

	if (r->n == MATCH_MAX_RULES) {
		snprintf(err, errlen, "more than %d rules", MATCH_MAX_RULES);
		errno = EINVAL;
		return -1;
	}
	if (patterns && (m = match_compile(patterns, err, errlen)) == NULL)
		return -1;
	r->m[r->n] = m;
	return r->n++;
}

int
match_rules_first(struct match_rules *r, const char *tag, size_t len)
{
	for (int i = 0; i < r->n; i++)
		if (r->m[i] == NULL || match_tag(r->m[i], tag, len))
			return i;
	return -1;
}

uint64_t
match_rules_all(struct match_rules *r, const char *tag, size_t len)
{
	uint64_t mask = 0;

	for (int i = 0; i < r->n; i++)
		if (r->m[i] == NULL || match_tag(r->m[i], tag, len))
			mask |= 1ull << i;
	return mask;
}

void
match_rules_free(struct match_rules *r)
{
	for (int i = 0; i < r->n; i++)
		match_free(r->m[i]);
	r->n = 0;
}
