/* What the fuzz_parse_* targets share: a parser per configuration, built
 * once, and the checks every parse_line answer must pass. */
#ifndef FUZZ_PARSE_H
#define FUZZ_PARSE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "parse.h"

/* A parser from "name=value" strings (value absent: a bare flag),
 * NULL-ended; abort if it will not build: the configurations are ours. */
static struct parser *
fz_parser(const char *const *opts)
{
	struct parse_conf c;
	const struct option *o;
	char err[256], name[64];
	const char *eq;
	struct parser *p;

	parse_conf_default(&c);
	for (; *opts != NULL; opts++) {
		eq = strchr(*opts, '=');
		snprintf(name, sizeof name, "%.*s", (int)(eq != NULL ?
		    eq - *opts : (long)strlen(*opts)), *opts);
		for (o = parse_options; o->name != NULL; o++)
			if (strcmp(o->name, name) == 0)
				break;
		if (o->name == NULL || parse_option(&c, o->val, eq != NULL ?
		    eq + 1 : NULL, err, sizeof err) != 0)
			abort();
	}
	if ((p = parse_new(&c, err, sizeof err)) == NULL)
		abort();
	return p;
}

/* rec held `before` bytes before the call that returned rc. */
static void
fz_check(struct parser *p, int rc, const struct buf *rec, size_t before,
    uint32_t nsec, const char *err)
{
	size_t used, fl;

	switch (rc) {
	case PARSE_OK:
	case PARSE_NOTIME:
		/* exactly one map appended */
		if (rec->len <= before || ((rec->p[before] & 0xf0) != 0x80 &&
		    rec->p[before] != 0xde && rec->p[before] != 0xdf))
			abort();
		if (mp_skip(rec->p + before, rec->len - before, MP_MAXDEPTH,
		    &used) != MP_OK || used != rec->len - before)
			abort();
		if (nsec >= 1000000000u)
			abort();
		break;
	case PARSE_MORE:
		if (rec->len != before)
			abort();
		break;
	case PARSE_ERR:
		if (rec->len != before || err[0] == '\0')
			abort();
		(void)parse_failed(p, &fl);
		break;
	default:
		abort();
	}
}

/* Feed each line of data (split at '\n') to p, checking each answer;
 * then flush what a multiline parser holds. */
static void
fz_lines(struct parser *p, const char *data, size_t size, struct buf *rec)
{
	const char *s = data, *end = data + size, *e;
	uint32_t sec, nsec;
	char err[256];
	size_t before;
	int rc;

	for (; s <= end; s = e + 1) {
		if ((e = memchr(s, '\n', (size_t)(end - s))) == NULL)
			e = end;
		before = rec->len;
		err[0] = '\0';
		rc = parse_line(p, s, (size_t)(e - s), rec, &sec, &nsec, err,
		    sizeof err);
		fz_check(p, rc, rec, before, nsec, err);
		if (e == end)
			break;
	}
	before = rec->len;
	err[0] = '\0';
	rc = parse_flush(p, rec, &sec, &nsec, err, sizeof err);
	fz_check(p, rc, rec, before, nsec, err);
}

#define FZ_MAXOPTS	8

/* One input: its first byte picks a configuration (its parser built on
 * first use and kept), the rest is lines, or with whole one value. */
static void
fz_run(struct parser **ps, const char *const (*confs)[FZ_MAXOPTS],
    size_t nconfs, const uint8_t *data, size_t size, int whole)
{
	struct buf rec = BUF_INIT;
	uint32_t sec, nsec;
	char err[256];
	size_t i;
	int rc;

	if (size == 0)
		return;
	i = data[0] % nconfs;
	if (ps[i] == NULL)
		ps[i] = fz_parser(confs[i]);
	buf_add(&rec, "x", 1);
	if (whole) {
		err[0] = '\0';
		rc = parse_line(ps[i], (const char *)data + 1, size - 1, &rec,
		    &sec, &nsec, err, sizeof err);
		fz_check(ps[i], rc, &rec, 1, nsec, err);
	} else
		fz_lines(ps[i], (const char *)data + 1, size - 1, &rec);
	buf_free(&rec);
}

#endif
