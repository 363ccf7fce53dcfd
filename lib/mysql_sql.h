/* mysql_sql: the SQL lf-mysql sends, out_mysql_bulk's, built without a
 * server so that it can be tested without one.
 *
 * A chunk becomes statements of the form
 *	INSERT INTO `db`.`table` (`c1`,`c2`) VALUES (...),(...)
 *	    [ON DUPLICATE KEY UPDATE `k` = VALUES(`k`),...]
 * each at most a given number of bytes, so that a statement never passes
 * the server's max_allowed_packet (the client would get 2006 "server has
 * gone away" for it, again at every retry: an endless loop).
 *
 * Identifiers are always quoted with backticks, a backtick in one
 * doubled (out_mysql_bulk quotes the columns only).  Table and database
 * names made from a template are checked as well: after Fluentd's
 * '.' -> '_' they must be 1 to 64 of [A-Za-z0-9_$], so that a record
 * value can never reach the SQL as anything but a name.
 *
 * Values, per key of key_names (out_mysql_bulk's rules, except where
 * said):
 *	${time}		the event time, 'YYYY-MM-DD HH:MM:SS' in local time
 *	missing, nil	NULL (a JSON key: 'null', the plugin's Oj.dump(nil))
 *	true, false	TRUE, FALSE
 *	number		its text, quoted: '1', '3.5' (as the plugin sends)
 *	str, bin	the bytes, escaped, quoted
 *	map, array	their JSON text, quoted (the plugin sends Ruby's
 *			inspect string, which nothing can read back)
 *	a JSON key	the value's JSON text (lib/json.h), quoted
 *	a unixtimestamp key  a number of seconds -> 'YYYY-MM-DD HH:MM:SS'
 *			local; anything else NULL (the plugin raises)
 * Escaping is the caller's function: mysql_real_escape_string with the
 * connection (its charset, its sql_mode) in lf-mysql, a stand-in in the
 * unit tests. */
#ifndef LF_MYSQL_SQL_H
#define LF_MYSQL_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chunk.h"

#define MYSQL_SQL_MAXCOLS	512	/* columns of one INSERT */
#define MYSQL_SQL_NAMEMAX	64	/* bytes of a table or database name */
#define MYSQL_SQL_MAXPARTS	32	/* placeholders of one template */

/* Escape from[0..len) into to (room for 2 * len + 1); the output length. */
typedef unsigned long (*mysql_escape_fn)(void *ctx, char *to,
    const char *from, unsigned long len);

struct mysql_sql_conf {
	char *cols[MYSQL_SQL_MAXCOLS];	/* column_names */
	char *keys[MYSQL_SQL_MAXCOLS];	/* key_names (default: cols) */
	unsigned char json[MYSQL_SQL_MAXCOLS];	/* key i is a json key */
	unsigned char unixts[MYSQL_SQL_MAXCOLS]; /* key i: unix timestamp */
	size_t keylen[MYSQL_SQL_MAXCOLS];
	int ncols;
	char *upd[MYSQL_SQL_MAXCOLS];	/* on_duplicate_update_keys */
	int nupd;			/* 0: no ON DUPLICATE KEY UPDATE */
	int utc;			/* times in UTC instead of local */
	struct buf tail;		/* " ON DUPLICATE KEY UPDATE ..." */
	char *mem[5];			/* the lists' storage */
};

/* Build conf from the options' texts (NULL: not given).  Lists are split
 * on ',' and each item stripped of blanks (out_mysql_bulk strips only the
 * column and key names, so "a, b" never matches " b" there).  Checked
 * here, not at the first flush as out_mysql_bulk does: column_names given,
 * as many key_names as column_names, every json and unixtimestamp key
 * one of key_names, update keys given iff odku.  0, or -1 with a message
 * in err naming the option. */
int mysql_sql_conf_init(struct mysql_sql_conf *c, const char *column_names,
    const char *key_names, const char *json_key_names,
    const char *unixtimestamp_key_names, int odku,
    const char *on_duplicate_update_keys, char *err, size_t errlen);
void mysql_sql_conf_free(struct mysql_sql_conf *c);

/* `name` with backticks doubled, appended to out.  0 or -1 (ENOMEM). */
int mysql_sql_ident(struct buf *out, const char *name, size_t len);

/* "INSERT INTO `db`.`table` (`c1`,...) VALUES " (db may be NULL: the
 * connection's).  0 or -1. */
int mysql_sql_head(struct buf *out, const struct mysql_sql_conf *c,
    const char *db, const char *table);

/* One row "(v1,v2,...)" of one record (a msgpack map) appended to out.
 * scratch is working memory kept by the caller.  0, or -1 (ENOMEM, or
 * rec not a map). */
int mysql_sql_row(struct buf *out, const struct mysql_sql_conf *c,
    uint32_t sec, const unsigned char *rec, size_t reclen,
    mysql_escape_fn esc, void *ctx, struct buf *scratch);

/* Add row[0..rowlen) to the statement stmt (head, then rows so far),
 * keeping stmt plus ',' plus the row plus taillen within cap bytes:
 *	0	added
 *	1	does not fit: send stmt (it has rows), start again, add again
 *	2	does not fit even alone after the head: never sendable
 *	-1	no memory */
int mysql_sql_add_row(struct buf *stmt, size_t headlen, const void *row,
    size_t rowlen, size_t taillen, size_t cap);

/* ---- names from templates: data_${category} ----
 * ${tag}, ${tag[N]} (N from 0, or negative from the end), ${KEY} of the
 * chunk keys' variables, and strftime's conversions of the time slice
 * (timekey) in what is not a placeholder.  As in out_mysql_bulk, every
 * '.' of the result becomes '_'. */
struct mysql_tmpl {
	const char *src;
	int has_time;			/* a '%' outside the placeholders */
	int nparts;
	struct {
		size_t off, len;	/* the literal before the placeholder */
		int kind;		/* 0 the end, 1 tag, 2 tag[N], 3 key */
		long idx;
		char key[64];
	} parts[MYSQL_SQL_MAXPARTS + 1];
};

/* 0, or -1 with a message (a '${' not closed, an empty or odd key, too
 * many placeholders). */
int mysql_tmpl_parse(struct mysql_tmpl *t, const char *src, char *err,
    size_t errlen);
/* Does t use no placeholder and no conversion? */
int mysql_tmpl_fixed(const struct mysql_tmpl *t);
/* Is every key t names among h's chunk keys (and the time slice if t has
 * a conversion)?  1, or 0 with the first missing one in what ("category",
 * "time (a %-conversion)"). */
int mysql_tmpl_keyed(const struct mysql_tmpl *t, const struct chunk_head *h,
    char *what, size_t whatlen);
/* The name for a chunk: 0; -1 with a reason if it is not a valid name
 * (empty, too long, a character outside [A-Za-z0-9_$]) or t needs a key
 * h lacks.  utc: the time slice in UTC. */
int mysql_tmpl_expand(const struct mysql_tmpl *t, const struct chunk_head *h,
    int utc, char *out, size_t outlen, char *err, size_t errlen);
/* SQL from a template (--auto-create-table's DDL): the literal text as
 * it is, each placeholder's value with '.' -> '_' and checked to be a
 * name, so that a chunk key cannot add SQL.  Appended to out; 0, or -1
 * with a reason. */
int mysql_tmpl_sql(const struct mysql_tmpl *t, const struct chunk_head *h,
    struct buf *out, char *err, size_t errlen);
/* Is s a name of 1 to 64 of [A-Za-z0-9_$]? */
int mysql_name_valid(const char *s);

#endif
