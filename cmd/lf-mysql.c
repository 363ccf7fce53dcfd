/* lf-mysql: deliver a spool into MySQL or MariaDB tables (Fluentd's
 * out_mysql_bulk as a tool).
 *
 * lf-mysql [options] SPOOL
 *
 * lib/consume claims the chunks, oldest first, --flush-thread-count at
 * once, each on a connection of its own (kept from chunk to chunk).  A
 * chunk is one transaction:
 *	START TRANSACTION
 *	[INSERT INTO `db`.`dedup` (chunk_id) VALUES ('<chunk id>')]
 *	INSERT INTO `db`.`table` (...) VALUES (...),(...) [ON DUPLICATE ...]
 *	... as many as the cap on a statement's bytes asks
 *	COMMIT
 * so a chunk is in the table whole or not at all, and a retry never
 * doubles rows.  With --dedup-table the chunk's id goes in first: if it
 * is there already (1062), the chunk was committed before a crash let
 * it be deleted from the spool, and it is skipped: exactly once.
 *
 * The MariaDB client's calls would block; they are made with its
 * non-blocking API (mysql_*_start/_cont) driven by a libev watcher on
 * the connection's socket and a timer for its timeouts, so the one loop
 * keeps claiming, answering signals and writing the state while queries
 * run, with no threads (and none of their locking) at all.
 *
 * Errors are classed by the server's number (lib/mysql_err.h): a lost
 * connection or a "try again" closes the connection and retries with
 * lib/consume's backoff; a missing table is created from
 * --auto-create-table's DDL, then the chunk is tried again; any other
 * refusal is for good: the chunk goes to dead/ with the server's text.
 *
 * Every second the counters replace SPOOL/state/mysql (--state-file). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>
#include <mysql.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "chunk.h"
#include "conf.h"
#include "consume.h"
#include "io.h"
#include "log.h"
#include "mysql_err.h"
#include "mysql_sql.h"
#include "report.h"
#include "secret.h"
#include "sig.h"
#include "spool.h"
#include "stream.h"

#define USAGE \
"usage: lf-mysql [-v] --database NAME --username NAME --table NAME\n" \
"                --column-names LIST [--host HOST] [--port N] [--socket PATH]\n" \
"                [--password-file FILE] [--key-names LIST]\n" \
"                [--json-key-names LIST] [--unixtimestamp-key-names LIST]\n" \
"                [--on-duplicate-key-update[=BOOL]]\n" \
"                [--on-duplicate-update-keys LIST]\n" \
"                [--transaction-isolation-level LEVEL]\n" \
"                [--auto-create-table FILE] [--dedup-table NAME]\n" \
"                [--max-statement-size SIZE] [--connect-timeout DUR]\n" \
"                [--read-timeout DUR] [--utc] [--shutdown-timeout DUR]\n" \
"                [--state-file PATH] [--notify-fd N] [--log-file FILE]\n" \
"                [consume options] SPOOL\n"

#define PACKET_MARGIN	1024	/* below max_allowed_packet: the header */
#define ERRMAX		40	/* error numbers counted by number */

struct mconn;

struct my {
	struct ev_loop *loop;
	struct spool spool;
	struct consume *consume;
	struct consume_conf cc;
	struct mysql_sql_conf sql;
	struct mysql_tmpl t_table, t_db, t_ddl;
	const char *host, *socket, *user, *pwfile, *logfile, *dedup;
	const char *database, *table, *ddl_file, *isolation;
	char *ddl;			/* --auto-create-table's text */
	unsigned port;
	struct secret pw;
	double connect_timeout, read_timeout;
	uint64_t max_stmt;
	int notify_fd, odku;
	char *state_file;
	ev_timer state_t;
	struct mconn *conns;
	unsigned nconns;
	/* counters */
	unsigned long long chunks, rows, stmts, bytes, retries, dead;
	unsigned long long skipped, tables, connects;
	unsigned errnos[ERRMAX], errcount[ERRMAX];
	char last_error[1024];
};

enum op { OP_CONNECT, OP_QUERY, OP_STORE, OP_COMMIT };

struct mconn {
	struct my *m;
	MYSQL *db;
	int up;				/* connected, set up */
	ev_io io;
	ev_timer tm;
	enum op op;
	void (*next)(struct mconn *);
	int ret_int;
	my_bool ret_bool;
	MYSQL *ret_mysql;
	MYSQL_RES *ret_res;
	const char *what;		/* the statement, for a reason */
	size_t max_stmt;		/* cap from max_allowed_packet */
	char dedup_db[MYSQL_SQL_NAMEMAX + 1];	/* dedup table made there */
	/* the chunk */
	struct consume_job *job;
	char dbn[MYSQL_SQL_NAMEMAX + 1], tbl[MYSQL_SQL_NAMEMAX + 1], id[33];
	struct buf q, row, scratch, win;
	struct stream_iter it;
	uint64_t off, rows, nrows;
	int pending, created;
	/* the statement built while the one before it runs */
	struct buf nq;
	uint64_t nq_rows;
	int nq_state;			/* enum built, NQ_NONE: not built */
	char reason[1024];		/* why the chunk failed */
	enum consume_result result;	/* and what that means */
};

enum built { NQ_NONE, NQ_ROWS, NQ_END, NQ_BIG, NQ_ERR };

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0)
		fputs("\n"
"  --host HOST                server over TCP (127.0.0.1)\n"
"  --port N                   its port (3306)\n"
"  --socket PATH              a Unix socket instead of TCP\n"
"  --database NAME            database; placeholders as --table (required)\n"
"  --username NAME            (required)\n"
"  --password-file FILE       the password (mode 0600); else none\n"
"  --table NAME               table; ${tag}, ${tag[N]}, ${KEY} of the chunk\n"
"                             keys, %Y... of the time slice (required)\n"
"  --column-names LIST        columns to insert (required)\n"
"  --key-names LIST           record keys for them, ${time} the event\n"
"                             time (the column names)\n"
"  --json-key-names LIST      keys whose value goes in as JSON text\n"
"  --unixtimestamp-key-names LIST  keys of epoch seconds -> DATETIME\n"
"  --on-duplicate-key-update[=BOOL]  ON DUPLICATE KEY UPDATE (false)\n"
"  --on-duplicate-update-keys LIST   the columns it updates\n"
"  --transaction-isolation-level LEVEL  read_uncommitted, read_committed,\n"
"                             repeatable_read or serializable (server's)\n"
"  --auto-create-table FILE   DDL (placeholders as --table) run when the\n"
"                             table does not exist\n"
"  --dedup-table NAME         record chunk ids there: exactly once\n"
"  --max-statement-size SIZE  cap on one INSERT (1m; and below the\n"
"                             server's max_allowed_packet)\n"
"  --connect-timeout DUR      (10s)\n"
"  --read-timeout DUR         no answer this long: retry (120s)\n"
"  --utc                      ${time} and the time slice in UTC\n"
"  --shutdown-timeout DUR     on TERM, wait this long for chunks (30s)\n"
"  --state-file PATH          the counters (SPOOL/state/mysql)\n"
"  --notify-fd N              write a newline to fd N once started\n"
"  --log-file FILE            log there (reopened on SIGHUP)\n"
"  -v, --verbose              log more\n"
CONSUME_USAGE, stdout);
	exit(code);
}

/* ---- the non-blocking calls, driven by the loop ---- */

static int
op_start(struct mconn *c)
{
	struct my *m = c->m;

	switch (c->op) {
	case OP_CONNECT:
		return mysql_real_connect_start(&c->ret_mysql, c->db,
		    m->socket ? "localhost" : m->host, m->user,
		    m->pw.p ? m->pw.p : "", mysql_tmpl_fixed(&m->t_db) ?
		    m->database : NULL, m->port, m->socket, 0);
	case OP_QUERY:
		return mysql_real_query_start(&c->ret_int, c->db,
		    (const char *)c->q.p, c->q.len);
	case OP_STORE:
		return mysql_store_result_start(&c->ret_res, c->db);
	case OP_COMMIT:
		return mysql_commit_start(&c->ret_bool, c->db);
	}
	return 0;
}

static int
op_cont(struct mconn *c, int st)
{
	switch (c->op) {
	case OP_CONNECT:
		return mysql_real_connect_cont(&c->ret_mysql, c->db, st);
	case OP_QUERY:
		return mysql_real_query_cont(&c->ret_int, c->db, st);
	case OP_STORE:
		return mysql_store_result_cont(&c->ret_res, c->db, st);
	case OP_COMMIT:
		return mysql_commit_cont(&c->ret_bool, c->db, st);
	}
	return 0;
}

static void
op_step(struct mconn *c, int st)
{
	struct ev_loop *loop = c->m->loop;
	int ev = 0;

	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->tm);
	if (st == 0) {
		c->next(c);
		return;
	}
	if (st & MYSQL_WAIT_READ)
		ev |= EV_READ;
	if (st & MYSQL_WAIT_WRITE)
		ev |= EV_WRITE;
	if (ev) {
		ev_io_set(&c->io, mysql_get_socket(c->db), ev);
		ev_io_start(loop, &c->io);
	}
	if (st & MYSQL_WAIT_TIMEOUT) {
		ev_timer_set(&c->tm, mysql_get_timeout_value_ms(c->db) / 1e3,
		    0);
		ev_timer_start(loop, &c->tm);
	}
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mconn *c = w->data;
	int st = 0;

	(void)loop;
	if (revents & EV_READ)
		st |= MYSQL_WAIT_READ;
	if (revents & EV_WRITE)
		st |= MYSQL_WAIT_WRITE;
	op_step(c, op_cont(c, st));
}

static void
tm_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mconn *c = w->data;

	(void)loop, (void)revents;
	op_step(c, op_cont(c, MYSQL_WAIT_TIMEOUT));
}

static void
op_run(struct mconn *c, enum op op, void (*next)(struct mconn *))
{
	c->op = op;
	c->next = next;
	op_step(c, op_start(c));
}

/* c->q as a statement; what names it in a reason. */
static void
query(struct mconn *c, const char *what, void (*next)(struct mconn *))
{
	c->what = what;
	op_run(c, OP_QUERY, next);
}

static void
query_text(struct mconn *c, const char *sql, void (*next)(struct mconn *))
{
	buf_reset(&c->q);
	if (buf_adds(&c->q, sql) == -1)
		c->q.len = 0;	/* an empty query fails: out of memory */
	query(c, sql, next);
}

/* ---- connections ---- */

/* Drop the connection.  Unless polite (at exit, all done), the socket
 * is shut down first: the server may be gone or the connection in the
 * middle of a call, and mysql_close's COM_QUIT must never wait on it. */
static void
conn_drop(struct mconn *c, int polite)
{
	int fd;

	ev_io_stop(c->m->loop, &c->io);
	ev_timer_stop(c->m->loop, &c->tm);
	if (c->db) {
		if (!polite && (fd = (int)mysql_get_socket(c->db)) >= 0)
			shutdown(fd, SHUT_RDWR);
		mysql_close(c->db);
	}
	c->db = NULL;
	c->up = 0;
	c->dedup_db[0] = '\0';
}

static void
conn_close(struct mconn *c)
{
	conn_drop(c, 0);
}

static void
count_errno(struct my *m, unsigned e)
{
	int i;

	for (i = 0; i < ERRMAX && m->errnos[i] && m->errnos[i] != e; i++)
		;
	if (i == ERRMAX)
		return;
	m->errnos[i] = e;
	m->errcount[i]++;
}

/* The chunk's fate, and the connection made ready for the next. */
static void
finish(struct mconn *c, enum consume_result r, const char *reason)
{
	struct my *m = c->m;
	struct consume_job *job = c->job;
	char why[sizeof c->reason];

	/* consume may hand this connection its next chunk at once */
	snprintf(why, sizeof why, "%s", reason ? reason : "unknown");
	reason = why;
	c->nq_state = NQ_NONE;
	if (r == CONSUME_OK) {
		m->chunks++;
		m->rows += c->nrows;
	} else {
		snprintf(m->last_error, sizeof m->last_error, "%s", reason);
		if (r == CONSUME_FAIL)
			m->dead++;
		else
			m->retries++;
	}
	c->job = NULL;
	buf_reset(&c->win);
	buf_shrink(&c->q, 1u << 20);
	buf_shrink(&c->nq, 1u << 20);
	buf_shrink(&c->win, 0);
	consume_job_done(job, r, r == CONSUME_OK ? NULL : reason);
}

static void
fail_now(struct mconn *c, enum consume_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_now(struct mconn *c, enum consume_result r, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	finish(c, r, reason);
}

static void start_chunk(struct mconn *c);
static void send_rows(struct mconn *c);
static void rolled_back(struct mconn *c);

/* A statement failed: decide by the error's class. */
static void
failed(struct mconn *c)
{
	struct my *m = c->m;
	unsigned e = mysql_errno(c->db);
	enum mysql_err_class k = mysql_err_class(e);

	count_errno(m, e);
	snprintf(c->reason, sizeof c->reason, "%s%s%s: (%u) %s", c->what,
	    c->tbl[0] ? " " : "", c->tbl, e, mysql_error(c->db));
	if (k == MYSQL_ERR_CONN || k == MYSQL_ERR_TEMP || !c->up) {
		/* the server rolls an open transaction back when the
		 * connection goes; a new one is made for the retry */
		if (k != MYSQL_ERR_CONN)
			log_warn("%s: %s", c->job->chunk.name, c->reason);
		conn_close(c);
		finish(c, CONSUME_RETRY, c->reason);
		return;
	}
	c->result = CONSUME_FAIL;
	if (k == MYSQL_ERR_NOTABLE && m->ddl && !c->created)
		c->result = CONSUME_RETRY;	/* create, then again */
	query_text(c, "ROLLBACK", rolled_back);
}

static void create_table(struct mconn *c);

static void
rolled_back(struct mconn *c)
{
	const char *reason = c->reason;

	if (c->ret_int != 0) {
		conn_close(c);
		finish(c, c->result, reason);
		return;
	}
	if (c->result == CONSUME_RETRY) {
		create_table(c);
		return;
	}
	finish(c, CONSUME_FAIL, reason);
}

static void
setup_done(struct mconn *c)
{
	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	c->up = 1;
	start_chunk(c);
}

static void
packet_read(struct mconn *c)
{
	MYSQL_ROW r;
	unsigned long long v = 0;
	struct my *m = c->m;

	if (c->ret_res == NULL) {
		failed(c);
		return;
	}
	if ((r = mysql_fetch_row(c->ret_res)) != NULL && r[0])
		v = strtoull(r[0], NULL, 10);
	mysql_free_result(c->ret_res);
	c->ret_res = NULL;
	c->max_stmt = m->max_stmt;
	if (v > PACKET_MARGIN * 2 && v - PACKET_MARGIN < c->max_stmt)
		c->max_stmt = (size_t)(v - PACKET_MARGIN);
	log_debug("connected: max_allowed_packet %llu, statements up to %zu "
	    "bytes", v, c->max_stmt);
	if (m->isolation == NULL) {
		c->ret_int = 0;
		setup_done(c);
		return;
	}
	buf_reset(&c->q);
	if (buf_printf(&c->q, "SET SESSION TRANSACTION ISOLATION LEVEL %s",
	    m->isolation) == -1)
		c->q.len = 0;
	query(c, "SET SESSION TRANSACTION ISOLATION LEVEL", setup_done);
}

static void
packet_asked(struct mconn *c)
{
	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	op_run(c, OP_STORE, packet_read);
}

static void
connected(struct mconn *c)
{
	if (c->ret_mysql == NULL) {
		failed(c);
		return;
	}
	c->m->connects++;
	query_text(c, "SELECT @@max_allowed_packet", packet_asked);
}

static void
conn_open(struct mconn *c)
{
	struct my *m = c->m;
	unsigned ct = (unsigned)(m->connect_timeout + 0.999);
	unsigned rt = (unsigned)(m->read_timeout + 0.999);
	unsigned proto = m->socket ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;

	if ((c->db = mysql_init(NULL)) == NULL) {
		fail_now(c, CONSUME_RETRY, "mysql_init: out of memory");
		return;
	}
	mysql_options(c->db, MYSQL_OPT_NONBLOCK, 0);
	mysql_options(c->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(c->db, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_options(c->db, MYSQL_OPT_READ_TIMEOUT, &rt);
	mysql_options(c->db, MYSQL_OPT_WRITE_TIMEOUT, &rt);
	mysql_options(c->db, MYSQL_OPT_PROTOCOL, &proto);
	c->what = "connect";
	op_run(c, OP_CONNECT, connected);
}

/* ---- a chunk ---- */

static void dedup_made(struct mconn *c);
static void begun(struct mconn *c);
static void dedup_done(struct mconn *c);
static void inserted(struct mconn *c);
static void committed(struct mconn *c);

static unsigned long
escape(void *ctx, char *to, const char *from, unsigned long len)
{
	return mysql_real_escape_string(ctx, to, from, len);
}

/* The chunk from its first row, in a new transaction. */
static void
start_chunk(struct mconn *c)
{
	struct my *m = c->m;

	c->off = 0;
	c->rows = c->nrows = 0;
	c->pending = 0;
	c->nq_state = NQ_NONE;
	buf_reset(&c->win);
	stream_iter_init(&c->it, c->win.p, 0);
	if (m->dedup && strcmp(c->dedup_db, c->dbn) != 0) {
		buf_reset(&c->q);
		if (buf_adds(&c->q, "CREATE TABLE IF NOT EXISTS ") == -1 ||
		    mysql_sql_ident(&c->q, c->dbn, strlen(c->dbn)) == -1 ||
		    buf_addc(&c->q, '.') == -1 ||
		    mysql_sql_ident(&c->q, m->dedup, strlen(m->dedup)) == -1 ||
		    buf_adds(&c->q, " (chunk_id CHAR(32) CHARACTER SET ascii "
		    "NOT NULL PRIMARY KEY, done_at TIMESTAMP NOT NULL DEFAULT "
		    "CURRENT_TIMESTAMP) ENGINE=InnoDB") == -1)
			c->q.len = 0;
		query(c, "CREATE TABLE (--dedup-table)", dedup_made);
		return;
	}
	query_text(c, "START TRANSACTION", begun);
}

static void
dedup_made(struct mconn *c)
{
	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	snprintf(c->dedup_db, sizeof c->dedup_db, "%s", c->dbn);
	query_text(c, "START TRANSACTION", begun);
}

static void
begun(struct mconn *c)
{
	struct my *m = c->m;

	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	if (m->dedup == NULL) {
		send_rows(c);
		return;
	}
	buf_reset(&c->q);
	if (buf_adds(&c->q, "INSERT INTO ") == -1 ||
	    mysql_sql_ident(&c->q, c->dbn, strlen(c->dbn)) == -1 ||
	    buf_addc(&c->q, '.') == -1 ||
	    mysql_sql_ident(&c->q, m->dedup, strlen(m->dedup)) == -1 ||
	    buf_printf(&c->q, " (chunk_id) VALUES ('%s')", c->id) == -1)
		c->q.len = 0;
	query(c, "INSERT INTO (--dedup-table)", dedup_done);
}

static void
dedup_skipped(struct mconn *c)
{
	if (c->ret_int != 0)
		conn_close(c);
	c->m->skipped++;
	log_info("%s: committed before (in --dedup-table): skipped",
	    c->job->chunk.name);
	c->nrows = 0;
	finish(c, CONSUME_OK, NULL);
}

static void
dedup_done(struct mconn *c)
{
	if (c->ret_int != 0 && mysql_errno(c->db) == 1062) {
		query_text(c, "ROLLBACK", dedup_skipped);
		return;
	}
	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	send_rows(c);
}

/* The next event of the chunk's body, read SPOOL_BLOCK at a time: 1, 0
 * at the end, -1 with a reason in c->reason. */
static int
next_event(struct mconn *c, struct stream_event *ev)
{
	struct spool_chunk *ch = &c->job->chunk;
	size_t want;
	ssize_t got;

	for (;;) {
		if (stream_iter_next(&c->it, ev) == 1)
			return 1;
		buf_consume(&c->win, (size_t)(c->it.p - c->win.p));
		if (c->off >= ch->h.bodylen) {
			if (c->win.len == 0)
				return 0;
			snprintf(c->reason, sizeof c->reason,
			    "%s: changed since it was verified", ch->name);
			return -1;
		}
		want = ch->h.bodylen - c->off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(ch->h.bodylen - c->off);
		if (buf_reserve(&c->win, want) == -1) {
			snprintf(c->reason, sizeof c->reason, "out of memory");
			return -1;
		}
		got = io_pread_all(ch->fd, c->win.p + c->win.len, want,
		    (off_t)(ch->h.hlen + c->off));
		if (got != (ssize_t)want) {
			snprintf(c->reason, sizeof c->reason, "%s: read: %s",
			    ch->name, got == -1 ? strerror(errno) :
			    "short read");
			return -1;
		}
		c->win.len += want;
		c->off += want;
		stream_iter_init(&c->it, c->win.p, c->win.len);
	}
}

/* Fill q with the chunk's next rows, up to the cap on a statement:
 * NQ_ROWS with *rows rows, NQ_END when there are no more, NQ_BIG for a
 * row that fits in no statement, NQ_ERR (c->reason) if the body cannot
 * be read or memory is short. */
static enum built
build(struct mconn *c, struct buf *q, uint64_t *rows)
{
	struct my *m = c->m;
	struct stream_event ev;
	size_t tail = m->sql.tail.len, headlen;
	int r;

	buf_reset(q);
	*rows = 0;
	if (mysql_sql_head(q, &m->sql, c->dbn, c->tbl) == -1)
		goto nomem;
	headlen = q->len;
	for (;;) {
		if (!c->pending) {
			if ((r = next_event(c, &ev)) == -1)
				return NQ_ERR;
			if (r == 0)
				break;
			buf_reset(&c->row);
			if (mysql_sql_row(&c->row, &m->sql, ev.sec, ev.rec,
			    ev.reclen, escape, c->db, &c->scratch) == -1)
				goto nomem;
		}
		r = mysql_sql_add_row(q, headlen, c->row.p, c->row.len, tail,
		    c->max_stmt);
		if (r == -1)
			goto nomem;
		if (r == 2) {
			snprintf(c->reason, sizeof c->reason, "a row of %zu "
			    "bytes does not fit in a statement of %zu (the "
			    "server's max_allowed_packet, --max-statement-size)",
			    c->row.len, c->max_stmt);
			return NQ_BIG;
		}
		c->pending = r == 1;
		if (r == 1)
			break;
		(*rows)++;
	}
	if (*rows == 0)
		return NQ_END;
	if (buf_add(q, m->sql.tail.p, tail) == -1)
		goto nomem;
	return NQ_ROWS;
nomem:
	snprintf(c->reason, sizeof c->reason, "out of memory");
	return NQ_ERR;
}

/* Send the next statement, or commit at the end.  While a statement
 * runs, the next one is built: the server works on one while lf-mysql
 * escapes the other. */
static void
send_rows(struct mconn *c)
{
	struct consume_job *job = c->job;
	struct buf t;
	enum built st;

	if (c->nq_state == NQ_NONE)
		c->nq_state = build(c, &c->nq, &c->nq_rows);
	st = c->nq_state;
	c->nq_state = NQ_NONE;
	switch (st) {
	case NQ_END:
		c->what = "COMMIT";
		op_run(c, OP_COMMIT, committed);
		return;
	case NQ_BIG:
		c->result = CONSUME_FAIL;
		query_text(c, "ROLLBACK", rolled_back);
		return;
	case NQ_ERR:
	case NQ_NONE:
		conn_close(c);
		finish(c, CONSUME_RETRY, c->reason);
		return;
	case NQ_ROWS:
		break;
	}
	t = c->q;
	c->q = c->nq;
	c->nq = t;
	c->rows = c->nq_rows;
	c->m->bytes += c->q.len;
	query(c, "INSERT INTO", inserted);
	/* under way (not answered at once, and the chunk still ours) */
	if (c->job == job && c->nq_state == NQ_NONE &&
	    (ev_is_active(&c->io) || ev_is_active(&c->tm)))
		c->nq_state = build(c, &c->nq, &c->nq_rows);
}

static void
inserted(struct mconn *c)
{
	if (c->ret_int != 0) {
		failed(c);
		return;
	}
	c->m->stmts++;
	c->nrows += c->rows;
	send_rows(c);
}

static void
committed(struct mconn *c)
{
	if (c->ret_bool) {
		failed(c);
		return;
	}
	log_debug("%s: %llu rows into %s.%s", c->job->chunk.name,
	    (unsigned long long)c->nrows, c->dbn, c->tbl);
	finish(c, CONSUME_OK, NULL);
}

/* ---- --auto-create-table ---- */

static void
table_made(struct mconn *c)
{
	if (c->ret_int != 0 && mysql_errno(c->db) != 1050) {
		c->created = 1;	/* the DDL is at fault: no second try */
		failed(c);
		return;
	}
	c->created = 1;
	c->m->tables++;
	log_info("created table %s.%s", c->dbn, c->tbl);
	start_chunk(c);
}

static void
create_table(struct mconn *c)
{
	struct my *m = c->m;
	char err[256];

	buf_reset(&c->q);
	if (mysql_tmpl_sql(&m->t_ddl, &c->job->chunk.h, &c->q,
	    err, sizeof err) == -1) {
		fail_now(c, CONSUME_FAIL, "--auto-create-table %s: %s",
		    m->ddl_file, err);
		return;
	}
	query(c, "CREATE TABLE (--auto-create-table)", table_made);
}

/* ---- consume callbacks ---- */

static void
check_keyed(struct my *m, const struct chunk_head *h, const char *name)
{
	static const char *const opt[] = { "table", "database",
		"auto-create-table" };
	const struct mysql_tmpl *t[] = { &m->t_table, &m->t_db, &m->t_ddl };
	char what[80];
	int i;

	for (i = 0; i < 3; i++)
		if (t[i]->src && !mysql_tmpl_keyed(t[i], h, what, sizeof what))
			log_fatal(EX_USAGE, "--%s %s: the chunks of %s are not "
			    "keyed by %s (%s); lf-buffer --chunk-key", opt[i],
			    t[i]->src, m->spool.path, what, name);
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct my *m = ctx;
	struct spool_chunk *ch = &job->chunk;
	struct mconn *c = NULL;
	char err[512];
	unsigned i;

	for (i = 0; i < m->nconns; i++)
		if (m->conns[i].job == NULL) {
			c = &m->conns[i];
			break;
		}
	if (c == NULL) {	/* consume keeps to flush_thread_count */
		consume_job_done(job, CONSUME_RETRY, "no connection free");
		return;
	}
	/* a spool keyed otherwise than --table says: the operator's to fix */
	check_keyed(m, &ch->h, ch->name);
	c->job = job;
	c->created = 0;
	c->tbl[0] = '\0';
	chunk_id_hex(ch->h.id, c->id);
	if (mysql_tmpl_expand(&m->t_db, &ch->h, m->sql.utc, c->dbn,
	    sizeof c->dbn, err, sizeof err) == -1) {
		fail_now(c, CONSUME_FAIL, "--database: %s", err);
		return;
	}
	if (mysql_tmpl_expand(&m->t_table, &ch->h, m->sql.utc, c->tbl,
	    sizeof c->tbl, err, sizeof err) == -1) {
		fail_now(c, CONSUME_FAIL, "--table: %s", err);
		return;
	}
	if (c->up)
		start_chunk(c);
	else
		conn_open(c);
}

/* The shutdown timeout: the connection goes (the server rolls back),
 * the chunk stays in new/. */
static void
cancel(void *ctx, struct consume_job *job)
{
	struct my *m = ctx;
	unsigned i;

	for (i = 0; i < m->nconns; i++)
		if (m->conns[i].job == job) {
			conn_close(&m->conns[i]);
			m->conns[i].job = NULL;
		}
}

/* ---- the state file ---- */

static unsigned
in_flight(const struct my *m)
{
	unsigned i, n = 0;

	for (i = 0; i < m->nconns; i++)
		n += m->conns[i].job != NULL;
	return n;
}

/* --metrics-file: what lf-mysql adds to consume's. */
static void
metrics_mysql(void *ctx, struct metrics *m)
{
	const struct my *my = ctx;
	char b[16];

	metrics_one_u64(m, "lf_mysql_rows_total", "counter",
	    "Rows written (committed).", my->rows);
	metrics_one_u64(m, "lf_mysql_statements_total", "counter",
	    "INSERT statements run.", my->stmts);
	metrics_one_u64(m, "lf_mysql_statement_bytes_total", "counter",
	    "Bytes of the INSERT statements run.", my->bytes);
	metrics_family(m, "lf_mysql_errors_total", "counter",
	    "Errors from the server, by MariaDB error number.");
	for (int i = 0; i < ERRMAX && my->errnos[i]; i++) {
		snprintf(b, sizeof b, "%u", my->errnos[i]);
		metrics_u64(m, my->errcount[i], "code", b, (char *)NULL);
	}
	metrics_one_u64(m, "lf_mysql_dedup_skipped_chunks_total", "counter",
	    "Chunks found already written (--dedup-table) and not written "
	    "again.", my->skipped);
	metrics_one_u64(m, "lf_mysql_tables_created_total", "counter",
	    "Tables created (--auto-create-table).", my->tables);
	metrics_one_u64(m, "lf_mysql_connects_total", "counter",
	    "Connections made to the server.", my->connects);
}

/* The counters for an operator, replaced whole every second and at
 * exit (as lf-send's and lf-tdlog's): a report, not a record. */
static void
state_write(struct my *m)
{
	yajl_gen g = report_new();
	char b[32];
	int i;

	if (g == NULL)
		return;
	report_int(g, "chunks", m->chunks);
	report_int(g, "rows", m->rows);
	report_int(g, "statements", m->stmts);
	report_int(g, "bytes", m->bytes);
	report_int(g, "retries", m->retries);
	report_str(g, "errors_by");
	yajl_gen_map_open(g);
	for (i = 0; i < ERRMAX && m->errnos[i]; i++) {
		snprintf(b, sizeof b, "%u", m->errnos[i]);
		report_int(g, b, m->errcount[i]);
	}
	yajl_gen_map_close(g);
	report_int(g, "dead_letters", m->dead);
	report_int(g, "dedup_skipped", m->skipped);
	report_int(g, "tables_created", m->tables);
	report_int(g, "connects", m->connects);
	report_int(g, "in_flight", in_flight(m));
	report_strn(g, "last_error", m->last_error);
	report_write(g, m->state_file);
}

static void
state_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)revents;
	state_write(w->data);
}

/* ---- setup ---- */

static void
sig_term(void *ctx)
{
	consume_stop(((struct my *)ctx)->consume);
}

static void
sig_now(void *ctx)
{
	consume_kick(((struct my *)ctx)->consume);
}

static const struct sig_actions my_sig_actions = { sig_term, sig_now, NULL };

static const struct conf_name isolations[] = {
	{ "read_uncommitted", 1 }, { "read_committed", 2 },
	{ "repeatable_read", 3 }, { "serializable", 4 }, { NULL, 0 }
};
static const char *const isolation_sql[] = { NULL, "READ UNCOMMITTED",
	"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE" };

static char *
read_file(const char *path)
{
	struct buf b = BUF_INIT;
	int fd;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		log_fatal(EX_NOINPUT, "--auto-create-table %s: %s", path,
		    strerror(errno));
	for (;;) {
		if (buf_reserve(&b, 4096) == -1)
			log_fatal(EX_OSERR, "out of memory");
		if ((n = read(fd, b.p + b.len, 4095)) <= 0)
			break;
		b.len += (size_t)n;
		if (b.len > 65536)
			log_fatal(EX_USAGE, "--auto-create-table %s: more than "
			    "64 KiB", path);
	}
	if (n == -1)
		log_fatal(EX_NOINPUT, "--auto-create-table %s: %s", path,
		    strerror(errno));
	close(fd);
	while (b.len && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == ' ' ||
	    b.p[b.len - 1] == ';'))
		b.len--;
	if (b.len == 0)
		log_fatal(EX_USAGE, "--auto-create-table %s: empty", path);
	b.p[b.len] = '\0';
	return (char *)b.p;
}

static void
parse_templates(struct my *m)
{
	char err[256];

	if (mysql_tmpl_parse(&m->t_table, m->table, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--table: %s", err);
	if (mysql_tmpl_parse(&m->t_db, m->database, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--database: %s", err);
	if (m->ddl_file) {
		m->ddl = read_file(m->ddl_file);
		if (mysql_tmpl_parse(&m->t_ddl, m->ddl, err, sizeof err) == -1)
			log_fatal(EX_USAGE, "--auto-create-table: %s", err);
		m->t_ddl.has_time = 0;	/* a '%' in DDL is SQL's */
	}
	if (mysql_tmpl_fixed(&m->t_table) && !mysql_name_valid(m->table))
		log_fatal(EX_USAGE, "--table: 1 to %d of A-Z, a-z, 0-9, _ and "
		    "$: '%s'", MYSQL_SQL_NAMEMAX, m->table);
	if (mysql_tmpl_fixed(&m->t_db) && !mysql_name_valid(m->database))
		log_fatal(EX_USAGE, "--database: 1 to %d of A-Z, a-z, 0-9, _ "
		    "and $: '%s'", MYSQL_SQL_NAMEMAX, m->database);
	if (m->dedup && !mysql_name_valid(m->dedup))
		log_fatal(EX_USAGE, "--dedup-table: 1 to %d of A-Z, a-z, 0-9, "
		    "_ and $: '%s'", MYSQL_SQL_NAMEMAX, m->dedup);
}

/* The chunks ready now must be keyed as the templates ask: a usage
 * error at start, not a dead letter per chunk later. */
static void
check_spool(struct my *m)
{
	struct spool_list l;
	struct spool_chunk ch;
	char err[256];
	size_t i;

	if (spool_list(m->spool.new, &l) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", m->spool.path);
	for (i = 0; i < l.n; i++) {
		if (spool_chunk_open(m->spool.new, l.names[i], &ch, err,
		    sizeof err) == 0)
			check_keyed(m, &ch.h, l.names[i]);
		spool_release(&ch);
	}
	spool_list_free(&l);
}

static void
parse_args(struct my *m, int argc, char **argv)
{
	enum { O_HOST = 256, O_PORT, O_SOCKET, O_DB, O_USER, O_PWFILE,
		O_TABLE, O_COLS, O_KEYS, O_JSON, O_UNIXTS, O_ODKU, O_UPD,
		O_ISO, O_AUTO, O_DEDUP, O_MAXSTMT, O_CONNTIME, O_READTIME,
		O_UTC, O_SHUTTIME, O_STATE, O_NOTIFY, O_LOG, O_VERSION };
	static const struct option opts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "database", required_argument, NULL, O_DB },
		{ "username", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "table", required_argument, NULL, O_TABLE },
		{ "column-names", required_argument, NULL, O_COLS },
		{ "key-names", required_argument, NULL, O_KEYS },
		{ "json-key-names", required_argument, NULL, O_JSON },
		{ "unixtimestamp-key-names", required_argument, NULL, O_UNIXTS },
		{ "on-duplicate-key-update", optional_argument, NULL, O_ODKU },
		{ "on-duplicate-update-keys", required_argument, NULL, O_UPD },
		{ "transaction-isolation-level", required_argument, NULL,
		    O_ISO },
		{ "auto-create-table", required_argument, NULL, O_AUTO },
		{ "dedup-table", required_argument, NULL, O_DEDUP },
		{ "max-statement-size", required_argument, NULL, O_MAXSTMT },
		{ "connect-timeout", required_argument, NULL, O_CONNTIME },
		{ "read-timeout", required_argument, NULL, O_READTIME },
		{ "utc", no_argument, NULL, O_UTC },
		{ "shutdown-timeout", required_argument, NULL, O_SHUTTIME },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "notify-fd", required_argument, NULL, O_NOTIFY },
		{ "log-file", required_argument, NULL, O_LOG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		CONSUME_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	const char *cols = NULL, *keys = NULL, *json = NULL, *unixts = NULL;
	const char *upd = NULL;
	char err[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (consume_opt(&m->cc, ch, optarg))
			continue;
		switch (ch) {
		case O_HOST: m->host = optarg; break;
		case O_PORT:
			m->port = (unsigned)conf_opt_uint("port", optarg, 65535);
			break;
		case O_SOCKET: m->socket = optarg; break;
		case O_DB: m->database = optarg; break;
		case O_USER: m->user = optarg; break;
		case O_PWFILE: m->pwfile = optarg; break;
		case O_TABLE: m->table = optarg; break;
		case O_COLS: cols = optarg; break;
		case O_KEYS: keys = optarg; break;
		case O_JSON: json = optarg; break;
		case O_UNIXTS: unixts = optarg; break;
		case O_ODKU:
			m->odku = conf_opt_bool("on-duplicate-key-update",
			    optarg);
			break;
		case O_UPD: upd = optarg; break;
		case O_ISO:
			m->isolation = isolation_sql[conf_opt_enum(
			    "transaction-isolation-level", optarg, isolations)];
			break;
		case O_AUTO: m->ddl_file = optarg; break;
		case O_DEDUP: m->dedup = optarg; break;
		case O_MAXSTMT:
			m->max_stmt = conf_opt_size("max-statement-size",
			    optarg);
			break;
		case O_CONNTIME:
			m->connect_timeout = conf_opt_duration(
			    "connect-timeout", optarg);
			break;
		case O_READTIME:
			m->read_timeout = conf_opt_duration("read-timeout",
			    optarg);
			break;
		case O_UTC: m->sql.utc = 1; break;
		case O_SHUTTIME:
			m->cc.shutdown_timeout = conf_opt_duration(
			    "shutdown-timeout", optarg);
			break;
		case O_STATE:
			free(m->state_file);
			if ((m->state_file = strdup(optarg)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
			break;
		case O_NOTIFY:
			m->notify_fd = (int)conf_opt_uint("notify-fd", optarg,
			    INT_MAX);
			break;
		case O_LOG: m->logfile = optarg; break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-mysql " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc - 1)
		usage(EX_USAGE);
	if (m->database == NULL || m->user == NULL || m->table == NULL)
		log_fatal(EX_USAGE, "--database, --username and --table are "
		    "required");
	{
		int utc = m->sql.utc;

		if (mysql_sql_conf_init(&m->sql, cols, keys, json, unixts,
		    m->odku, upd, err, sizeof err) == -1)
			log_fatal(EX_USAGE, "%s", err);
		m->sql.utc = utc;
	}
	if (m->max_stmt < 4096)
		log_fatal(EX_USAGE, "--max-statement-size: at least 4k");
	if (!(m->read_timeout >= 1) || !(m->connect_timeout >= 1))
		log_fatal(EX_USAGE, "--read-timeout, --connect-timeout: at "
		    "least 1s");
	if (consume_conf_check(&m->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	parse_templates(m);
}

static void
read_password(struct my *m)
{
	char err[512];

	if (m->pwfile && secret_read(&m->pw, m->pwfile, err, sizeof err) == -1)
		log_fatal(EX_CONFIG, "--password-file: %s", err);
	if (m->pw.p && strlen(m->pw.p) != m->pw.n)
		log_fatal(EX_CONFIG, "--password-file: a NUL in the password");
}

static void
conns_init(struct my *m)
{
	unsigned i;

	m->nconns = m->cc.flush_thread_count;
	if ((m->conns = calloc(m->nconns, sizeof *m->conns)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (i = 0; i < m->nconns; i++) {
		m->conns[i].m = m;
		ev_init(&m->conns[i].io, io_cb);
		m->conns[i].io.data = &m->conns[i];
		ev_init(&m->conns[i].tm, tm_cb);
		m->conns[i].tm.data = &m->conns[i];
	}
}

static void
conns_free(struct my *m)
{
	unsigned i;

	for (i = 0; i < m->nconns; i++) {
		struct mconn *c = &m->conns[i];

		conn_drop(c, c->job == NULL);
		buf_free(&c->q);
		buf_free(&c->nq);
		buf_free(&c->row);
		buf_free(&c->scratch);
		buf_free(&c->win);
	}
	free(m->conns);
}

int
main(int argc, char **argv)
{
	static struct my m;
	struct sig sig;
	char err[512];
	int rc;

	log_init(argv[0]);
	consume_conf_default(&m.cc);
	m.host = "127.0.0.1";		/* out_mysql_bulk's defaults */
	m.port = 3306;
	m.max_stmt = 1u << 20;	/* bigger: no faster, more server memory */
	m.connect_timeout = 10;
	m.read_timeout = 120;		/* above innodb_lock_wait_timeout */
	m.notify_fd = -1;
	parse_args(&m, argc, argv);
	if (m.logfile && log_open(m.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", m.logfile, strerror(errno));
	read_password(&m);
	if (spool_open(&m.spool, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	check_spool(&m);
	if (m.state_file == NULL && asprintf(&m.state_file, "%s/state/mysql",
	    m.spool.path) == -1)
		log_fatal(EX_OSERR, "out of memory");
	if (mysql_library_init(0, NULL, NULL) != 0)
		log_fatal(EX_OSERR, "cannot set up the MariaDB client library");
	m.loop = EV_DEFAULT;
	conns_init(&m);
	if ((m.consume = consume_new(m.loop, &m.spool, &m.cc, deliver, cancel,
	    &m)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	consume_set_metrics(m.consume, "mysql_bulk", metrics_mysql);
	ev_timer_init(&m.state_t, state_timer, 0, 1);
	m.state_t.data = &m;
	ev_timer_again(m.loop, &m.state_t);
	sig_start(&sig, m.loop, &my_sig_actions, &m);
	if (consume_start(m.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", m.spool.path);
	if (m.notify_fd >= 0) {
		(void)!write(m.notify_fd, "\n", 1);
		close(m.notify_fd);
	}
	if (m.socket)
		log_info("ready: %s to %s", m.spool.path, m.socket);
	else
		log_info("ready: %s to %s port %u", m.spool.path, m.host,
		    m.port);
	ev_run(m.loop, 0);
	rc = consume_status(m.consume);
	sig_stop(&sig);
	log_info("stats: chunks=%llu rows=%llu statements=%llu retries=%llu "
	    "dead=%llu dedup_skipped=%llu", m.chunks, m.rows, m.stmts,
	    m.retries, m.dead, m.skipped);
	log_limit_summary();
	ev_timer_stop(m.loop, &m.state_t);
	state_write(&m);
	conns_free(&m);
	consume_free(m.consume);
	spool_close(&m.spool);
	mysql_library_end();
	mysql_sql_conf_free(&m.sql);
	secret_free(&m.pw);
	free(m.ddl);
	free(m.state_file);
	return rc;
}
