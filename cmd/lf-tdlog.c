/* lf-tdlog: deliver a spool to Treasure Data's import API (Fluentd's
 * out_tdlog as a tool).
 *
 * lf-tdlog [options] SPOOL
 *
 * lib/consume claims the chunks, oldest first; the chunk keys are the
 * tag, so one chunk goes to one table: td.DB.TABLE's last two parts,
 * normalised (lib/tdlog), or --database and --table.  Each chunk is
 * encoded (records as msgpack maps with "time" from the event time) and
 * gzipped, a SPOOL_BLOCK of entries at a time, into an unnamed file in
 * SPOOL/tmp, then sent as one
 *	PUT /v3/table/import_with_id/DB/TABLE/UNIQUE_ID/msgpack.gz
 * whose UNIQUE_ID is the chunk's id in hex: the same for every attempt,
 * across restarts, so the service keeps one copy of a chunk sent twice.
 *
 * The requests go through lib/http_client (libcurl's multi interface in
 * the one libev loop): --flush-thread-count chunks in flight at once,
 * none blocking the loop.  The answer decides the chunk's fate:
 *	2xx			delivered
 *	404			--auto-create-table: create the table (and on
 *				404 the database), "already exists" (409)
 *				being success, then PUT again, once; a 404
 *				after that is retried with the backoff (a
 *				region mismatch must not spin, as the Ruby
 *				plugin does)
 *	429, 5xx, others,	retried with lib/consume's backoff (Fluentd's)
 *	no answer
 *	other 4xx		refused for good: dead/, the status and the
 *				answer's body as the reason
 * Records that are not maps, have more than 512 keys or a key that is
 * not a string are not sent: they are set aside as a chunk of their
 * own in dead/ (the reason says how many and why), named after the
 * chunk with its id's bits inverted, so an attempt made again sets
 * nothing aside twice.
 *
 * Every second the counters replace SPOOL/state/tdlog (--state-file). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "chunk.h"
#include "conf.h"
#include "consume.h"
#include "durable.h"
#include "http_client.h"
#include "io.h"
#include "log.h"
#include "report.h"
#include "secret.h"
#include "sig.h"
#include "spool.h"
#include "stream.h"
#include "tdlog.h"

#define USAGE \
"usage: lf-tdlog [-v] [--apikey-file FILE] [--endpoint URL]\n" \
"                [--api-endpoint URL] [--use-ssl BOOL]\n" \
"                [--database NAME --table NAME] [--auto-create-table[=BOOL]]\n" \
"                [--http-proxy URL] [--connect-timeout DUR] [--read-timeout DUR]\n" \
"                [--ca-file FILE] [--ca-path DIR] [--compression-level N]\n" \
"                [--shutdown-timeout DUR] [--state-file PATH] [--notify-fd N]\n" \
"                [--log-file FILE] [consume options] SPOOL\n"

#define GZ_STEP		(256u << 10)	/* records gzipped at once */
#define REASON_BODY	300		/* bytes of an answer in a reason */
#define DEFAULT_API	"api.treasuredata.com"
#define DEFAULT_IMPORT	"api-import.treasuredata.com"

enum { FAILS = 5 };			/* enum http_fail */

struct td {
	struct ev_loop *loop;
	struct spool spool;
	struct consume *consume;
	struct consume_conf cc;
	struct http_client *http;
	struct http_client_conf hc;
	const char *endpoint_arg, *api_arg, *keyfile, *logfile;
	char *import_url, *api_url;
	int use_ssl, auto_create, level, notify_fd;
	const char *database, *table;
	struct secret key;
	char *auth;			/* "Authorization: TD1 <key>" */
	char ua[128];
	char *state_file;
	ev_timer state_t;
	struct tjob *jobs;		/* in flight */
	/* counters */
	unsigned long long chunks, events, raw, packed, retries, dead;
	unsigned long long aside, aside_chunks, tables, databases;
	unsigned long long by_status[600], by_fail[FAILS];
	char last_error[512];
};

enum step { IMPORT, CREATE_TABLE, CREATE_DB, CREATE_TABLE2 };

struct tjob {
	struct td *t;
	struct consume_job *job;
	struct tjob *next, **prevp;
	char db[TDLOG_NAME_MAX + 1], table[TDLOG_NAME_MAX + 1], id[33];
	int gzfd;
	int nospace;			/* the gzipped chunk hit a full disk */
	uint64_t gzlen, raw, records;
	enum step step;
	int created;			/* a create cycle was made */
	struct http_call *call;
};

static const char *const fail_names[FAILS] = {
	"none", "timeout", "connect", "tls", "other"
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0)
		fputs("\n"
"  --apikey-file FILE         the API key (mode 0600); else $TD_API_KEY\n"
"  --endpoint URL             import host (" DEFAULT_IMPORT ")\n"
"  --api-endpoint URL         host for creating tables (the endpoint's\n"
"                             region: api-import.X gives api.X)\n"
"  --use-ssl BOOL             https for an endpoint with no scheme (true)\n"
"  --database NAME            fixed database (with --table); else the tag's\n"
"  --table NAME               fixed table; else the tag's last part\n"
"  --auto-create-table[=BOOL] create a missing table on 404 (true)\n"
"  --http-proxy URL           proxy (else libcurl's http_proxy, ...)\n"
"  --connect-timeout DUR      (60s)\n"
"  --read-timeout DUR         no progress in this long: retry (600s)\n"
"  --ca-file FILE             CA certificates to trust (PEM)\n"
"  --ca-path DIR              a directory of them (c_rehash'd)\n"
"  --compression-level N      gzip level 1-9 (1)\n"
"  --shutdown-timeout DUR     on TERM, wait this long for answers (30s)\n"
"  --state-file PATH          the counters (SPOOL/state/tdlog)\n"
"  --notify-fd N              write a newline to fd N once started\n"
"  --log-file FILE            log there (reopened on SIGHUP)\n"
"  -v, --verbose              log more\n"
CONSUME_USAGE, stdout);
	exit(code);
}

/* ---- jobs ---- */

static void
tjob_free(struct tjob *j)
{
	*j->prevp = j->next;
	if (j->next)
		j->next->prevp = j->prevp;
	if (j->gzfd != -1)
		close(j->gzfd);
	free(j);
}

static void
finish(struct tjob *j, enum consume_result r, const char *reason)
{
	struct td *t = j->t;

	if (r == CONSUME_OK) {
		t->chunks++;
		t->events += j->records;
		t->raw += j->raw;
		t->packed += j->gzlen;
		/* what went to Treasure Data, not what was set aside */
		j->job->events = j->records;
		j->job->bytes = j->raw;
	} else {
		snprintf(t->last_error, sizeof t->last_error, "%s", reason);
		if (r == CONSUME_FAIL)
			t->dead++;
		else
			t->retries++;
	}
	consume_job_done(j->job, r, reason);
	tjob_free(j);
}

/* The first bytes of an answer's body, on one line, for a reason. */
static void
body_text(const struct http_result *r, char *out, size_t outlen)
{
	size_t i, o = 0;
	unsigned char ch;

	for (i = 0; i < r->bodylen && i < REASON_BODY && o + 5 < outlen; i++) {
		ch = r->body[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	if (i < r->bodylen && o + 4 < outlen)
		o += (size_t)snprintf(out + o, outlen - o, "...");
	out[o] = '\0';
}

/* Retry, or refuse for good, with what the answer said. */
static void
answer_fail(struct tjob *j, const char *what, const struct http_result *r,
    enum consume_result res)
{
	struct td *t = j->t;
	char body[REASON_BODY * 4 + 8], reason[2048];

	if (r->fail != HTTP_FAIL_NONE) {
		t->by_fail[r->fail]++;
		snprintf(reason, sizeof reason, "%s %s.%s: %s (%s)", what,
		    j->db, j->table, r->error, fail_names[r->fail]);
	} else {
		if (res == CONSUME_RETRY && r->status >= 0 && r->status < 600)
			t->by_status[r->status]++;
		body_text(r, body, sizeof body);
		snprintf(reason, sizeof reason, "%s %s.%s: HTTP %ld: %s", what,
		    j->db, j->table, r->status, body[0] ? body : "(no body)");
	}
	finish(j, res, reason);
}

static enum consume_result
classify(long status)
{
	if (status == 429 || status < 400 || status >= 500)
		return CONSUME_RETRY;
	return CONSUME_FAIL;
}

/* ---- requests ---- */

static void import_done(void *arg, const struct http_result *r);
static void create_done(void *arg, const struct http_result *r);

static int
start(struct tjob *j, const char *method, const char *url, int body,
    http_done_fn done)
{
	struct td *t = j->t;
	struct http_req rq;
	char date[64];
	const char *hdrs[4];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT", &tm);
	hdrs[0] = t->auth;
	hdrs[1] = date;
	hdrs[2] = body ? "Content-Type: application/octet-stream" :
	    "Content-Type: application/x-www-form-urlencoded";
	hdrs[3] = NULL;
	memset(&rq, 0, sizeof rq);
	rq.method = method;
	rq.url = url;
	rq.headers = hdrs;
	rq.body_fd = body ? j->gzfd : -1;
	rq.body_len = body ? j->gzlen : 0;
	if ((j->call = http_start(t->http, &rq, done, j)) == NULL)
		return -1;
	return 0;
}

static void
start_or_retry(struct tjob *j, const char *method, const char *url, int body,
    http_done_fn done)
{
	char reason[256];

	if (start(j, method, url, body, done) == -1) {
		snprintf(reason, sizeof reason, "cannot start a request: %s",
		    strerror(errno));
		finish(j, CONSUME_RETRY, reason);
	}
}

static void
import(struct tjob *j)
{
	char url[1024];

	j->step = IMPORT;
	snprintf(url, sizeof url, "%s/v3/table/import_with_id/%s/%s/%s/"
	    "msgpack.gz", j->t->import_url, j->db, j->table, j->id);
	start_or_retry(j, "PUT", url, 1, import_done);
}

static void
create(struct tjob *j, enum step step)
{
	char url[1024];

	j->step = step;
	if (step == CREATE_DB)
		snprintf(url, sizeof url, "%s/v3/database/create/%s",
		    j->t->api_url, j->db);
	else
		snprintf(url, sizeof url, "%s/v3/table/create/%s/%s/log",
		    j->t->api_url, j->db, j->table);
	start_or_retry(j, "POST", url, 0, create_done);
}

static void
import_done(void *arg, const struct http_result *r)
{
	struct tjob *j = arg;
	struct td *t = j->t;

	j->call = NULL;
	if (r->fail != HTTP_FAIL_NONE) {
		answer_fail(j, "import to", r, CONSUME_RETRY);
		return;
	}
	if (r->status >= 200 && r->status < 300) {
		log_debug("%s: %llu events to %s.%s (%llu bytes, gzip %llu), "
		    "id %s", j->job->chunk.name, (unsigned long long)j->records,
		    j->db, j->table, (unsigned long long)j->raw,
		    (unsigned long long)j->gzlen, j->id);
		finish(j, CONSUME_OK, NULL);
		return;
	}
	if (r->status == 404 && t->auto_create && !j->created) {
		log_info("creating table %s.%s", j->db, j->table);
		j->created = 1;
		create(j, CREATE_TABLE);
		return;
	}
	if (r->status == 404 && t->auto_create) {
		/* created, and still missing: the import and API endpoints
		 * are not the same region, or the table went away again */
		answer_fail(j, "import (after creating the table; do "
		    "--endpoint and --api-endpoint name one region?) to", r,
		    CONSUME_RETRY);
		return;
	}
	answer_fail(j, "import to", r, classify(r->status));
}

static void
create_done(void *arg, const struct http_result *r)
{
	struct tjob *j = arg;
	struct td *t = j->t;
	const char *what = j->step == CREATE_DB ? "create database for" :
	    "create table";

	j->call = NULL;
	if (r->fail != HTTP_FAIL_NONE) {
		answer_fail(j, what, r, CONSUME_RETRY);
		return;
	}
	/* 409: another writer made it first; that is what we wanted */
	if ((r->status >= 200 && r->status < 300) || r->status == 409) {
		if (j->step == CREATE_DB) {
			t->databases += r->status != 409;
			create(j, CREATE_TABLE2);
		} else {
			t->tables += r->status != 409;
			import(j);
		}
		return;
	}
	if (r->status == 404 && j->step == CREATE_TABLE) {
		create(j, CREATE_DB);
		return;
	}
	answer_fail(j, what, r, classify(r->status));
}

/* ---- encoding ---- */

/* Set-aside records as a chunk of dead/, its reason beside it, made
 * durable the way spool_bury does it: the reason, then the chunk under
 * a dotfile name (never listed), synced, renamed.  Its id is the
 * chunk's inverted, so a second attempt finds it there.  0 or -1. */
static int
set_aside(struct td *t, struct consume_job *job, const struct buf *ents,
    uint64_t count, const char *why)
{
	struct spool_chunk *c = &job->chunk;
	struct chunk_head h;
	struct buf out = BUF_INIT, reason = BUF_INIT;
	char name[SPOOL_NAMELEN], tmp[SPOOL_NAMELEN + 8], rname[SPOOL_NAMELEN + 8];
	uint64_t seal;
	int fd = -1, rc = -1, i;

	memset(&h, 0, sizeof h);
	for (i = 0; i < 16; i++)
		h.id[i] = (unsigned char)~c->h.id[i];
	if (spool_name_seal_us(c->name, &seal) == -1)
		seal = c->h.created_us;
	spool_ready_name(name, seal, h.id);
	if (faccessat(t->spool.dead, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;	/* set aside at an earlier attempt */
	h.state = CHUNK_SEALED;
	h.created_us = c->h.created_us;
	h.bodylen = ents->len;
	h.count = count;
	h.bodycrc = chunk_crc(0, ents->p, ents->len);
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	snprintf(rname, sizeof rname, "%s.reason", name);
	if (chunk_head_encode(&out, &h, c->h.keys, c->h.keyslen) == -1 ||
	    buf_add(&out, ents->p, ents->len) == -1 ||
	    buf_printf(&reason, "%llu records set aside by lf-tdlog (not "
	    "sent to %s): %s\n", (unsigned long long)count, job->chunk.name,
	    why) == -1)
		goto out;
	if ((fd = openat(t->spool.dead, tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC | O_NOFOLLOW, 0644)) == -1)
		goto out;
	if (durable_replace(t->spool.dead, rname, reason.p, reason.len) == -1)
		goto out;
	if (durable_commit(fd, out.p, out.len, 0, t->spool.dead, tmp,
	    t->spool.dead, name, RENAME_NOREPLACE) == DURABLE_NOT_MOVED)
		goto out;
	log_warn("%s: %llu records set aside (%s); in dead/%s",
	    job->chunk.name, (unsigned long long)count, why, name);
	t->aside += count;
	t->aside_chunks++;
	rc = 0;
out:
	if (rc == -1 && fd != -1)
		unlinkat(t->spool.dead, tmp, 0);
	if (fd != -1)
		close(fd);
	buf_free(&out);
	buf_free(&reason);
	return rc;
}

struct encode_tally {
	uint64_t entries, aside;
	const char *why;		/* the first record set aside */
};

static int
gz_out(struct tdlog_gz *g, int fd, int finish_it)
{
	if (tdlog_gz_run(g, finish_it) == -1)
		return -1;
	if (g->out.len && io_write_all(fd, g->out.p, g->out.len) == -1)
		return -1;
	g->packed += g->out.len;
	g->out.len = 0;
	return 0;
}

/* One run of whole entries: each record encoded into g->in, or set
 * aside into aside.  The bytes of entries used are returned in *used;
 * -1 (with *used short of n) if an entry is cut at the end of p. */
static int
encode_entries(struct tjob *j, struct tdlog_gz *g, struct buf *aside,
    const unsigned char *p, size_t n, size_t *used, struct encode_tally *k)
{
	struct stream_iter it;
	struct stream_event ev;
	const unsigned char *ent;
	const char *why;
	int r;

	stream_iter_init(&it, p, n);
	for (ent = it.p; (r = stream_iter_next(&it, &ev)) == 1; ent = it.p) {
		k->entries++;
		r = tdlog_record(&g->in, ev.sec, ev.rec, ev.reclen, &why);
		if (r == -1)
			return -2;
		if (r == 1) {
			if (buf_add(aside, ent, (size_t)(it.p - ent)) == -1)
				return -2;
			if (k->why == NULL)
				k->why = why;
			k->aside++;
			continue;
		}
		j->records++;
	}
	*used = (size_t)(ent - p);
	return r;
}

/* The chunk's records, encoded and gzipped into j->gzfd.  consume has
 * just verified the whole body (CRC, every entry, the count) under our
 * claim, and a sealed chunk is never written again, so the entries are
 * walked here, SPOOL_BLOCK bytes at a time, not checked a second time
 * (that was a quarter of the CPU).  0, or -1 with a reason. */
static int
encode(struct tjob *j, char *err, size_t errlen)
{
	struct td *t = j->t;
	struct spool_chunk *c = &j->job->chunk;
	struct tdlog_gz g;
	struct encode_tally k = { 0, 0, NULL };
	struct buf win = BUF_INIT, aside = BUF_INIT;
	uint64_t off = 0;
	size_t want, used;
	ssize_t got;
	int r, ret = -1;

	if (tdlog_gz_init(&g, t->level) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (off < c->h.bodylen) {
		want = c->h.bodylen - off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(c->h.bodylen - off);
		if (buf_reserve(&win, want) == -1)
			goto nomem;
		got = io_pread_all(c->fd, win.p + win.len, want,
		    (off_t)(c->h.hlen + off));
		if (got != (ssize_t)want) {
			snprintf(err, errlen, "%s: read: %s", c->name,
			    got == -1 ? strerror(errno) : "short read");
			goto out;
		}
		win.len += want;
		off += want;
		r = encode_entries(j, &g, &aside, win.p, win.len, &used, &k);
		if (r == -2)
			goto nomem;
		buf_consume(&win, used);
		if (g.in.len >= GZ_STEP && gz_out(&g, j->gzfd, 0) == -1)
			goto wfail;
	}
	if (win.len > 0 || k.entries != c->h.count) {
		snprintf(err, errlen, "%s: changed since it was verified",
		    c->name);
		goto out;
	}
	if (gz_out(&g, j->gzfd, 1) == -1)
		goto wfail;
	if (k.aside > 0 && set_aside(t, j->job, &aside, k.aside, k.why) == -1) {
		snprintf(err, errlen, "cannot set %llu records aside in "
		    "dead/: %s", (unsigned long long)k.aside, strerror(errno));
		goto out;
	}
	j->raw = g.raw;
	j->gzlen = g.packed;
	ret = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
	goto out;
wfail:
	j->nospace = errno == ENOSPC || errno == EDQUOT;
	snprintf(err, errlen, "%s/tmp: cannot write the gzipped chunk: %s",
	    t->spool.path, errno ? strerror(errno) : "out of memory");
out:
	buf_free(&win);
	tdlog_gz_free(&g);
	buf_free(&aside);
	return ret;
}

/* The chunk gzipped into an unnamed file in spool/tmp, or, when that
 * disk is full, into memory (a memfd): on a disk filled by the spool's
 * own backlog the import is the only way to free space, so it must not
 * need any.  0, or -1 with a reason. */
static int
gzip_chunk(struct tjob *j, char *err, size_t errlen)
{
	struct td *t = j->t;

	j->gzfd = openat(t->spool.tmp, ".", O_TMPFILE | O_RDWR | O_CLOEXEC,
	    0600);
	if (j->gzfd == -1 && errno != ENOSPC && errno != EDQUOT) {
		snprintf(err, errlen, "%s/tmp: cannot make a file for the "
		    "gzipped chunk: %s", t->spool.path, strerror(errno));
		return -1;
	}
	if (j->gzfd != -1 && encode(j, err, errlen) == 0)
		return 0;
	if (j->gzfd != -1 && !j->nospace)
		return -1;
	if (j->gzfd != -1)
		close(j->gzfd);
	j->records = 0;			/* counted again */
	j->gzfd = memfd_create("lf-tdlog-gz", MFD_CLOEXEC);
	if (j->gzfd == -1) {
		snprintf(err, errlen, "%s/tmp is full, and no memory for the "
		    "gzipped chunk: %s", t->spool.path, strerror(errno));
		return -1;
	}
	return encode(j, err, errlen);
}

/* ---- consume callbacks ---- */

static void
deliver(void *ctx, struct consume_job *job)
{
	struct td *t = ctx;
	struct spool_chunk *c = &job->chunk;
	struct tjob *j;
	char err[512];

	if ((j = calloc(1, sizeof *j)) == NULL) {
		consume_job_done(job, CONSUME_RETRY, "out of memory");
		return;
	}
	j->t = t;
	j->job = job;
	j->gzfd = -1;
	j->next = t->jobs;
	j->prevp = &t->jobs;
	if (t->jobs)
		t->jobs->prevp = &j->next;
	t->jobs = j;
	chunk_id_hex(c->h.id, j->id);
	if (t->database) {
		snprintf(j->db, sizeof j->db, "%s", t->database);
		snprintf(j->table, sizeof j->table, "%s", t->table);
	} else if (tdlog_tag_names(c->h.tag, c->h.taglen, j->db, j->table,
	    err, sizeof err) == -1) {
		/* the chunk's tag says no table: waiting will not change it */
		finish(j, CONSUME_FAIL, err);
		return;
	}
	if (gzip_chunk(j, err, sizeof err) == -1) {
		finish(j, CONSUME_RETRY, err);
		return;
	}
	if (j->records == 0) {	/* all set aside: nothing to import */
		finish(j, CONSUME_OK, NULL);
		return;
	}
	import(j);
}

/* The shutdown timeout: forget the requests (consume releases the
 * claims: the chunks stay in new/ and are sent again, same ids). */
static void
cancel(void *ctx, struct consume_job *job)
{
	struct td *t = ctx;
	struct tjob *j;

	for (j = t->jobs; j; j = j->next)
		if (j->job == job)
			break;
	if (j == NULL)
		return;
	http_cancel(j->call);
	tjob_free(j);
}

/* ---- --metrics-file: what lf-tdlog adds to consume's ---- */

static void
metrics_tdlog(void *ctx, struct metrics *m)
{
	const struct td *t = ctx;
	int i;

	metrics_one_u64(m, "lf_tdlog_bytes_gzip_total", "counter",
	    "Bytes of the gzipped imports accepted.", t->packed);
	metrics_one_u64(m, "lf_tdlog_set_aside_events_total", "counter",
	    "Records set aside in dead/ (not sent: no valid time, or not a "
	    "map).", t->aside);
	metrics_one_u64(m, "lf_tdlog_set_aside_chunks_total", "counter",
	    "Chunks of dead/ holding records set aside.", t->aside_chunks);
	metrics_one_u64(m, "lf_tdlog_tables_created_total", "counter",
	    "Tables created (--auto-create-table).", t->tables);
	metrics_one_u64(m, "lf_tdlog_databases_created_total", "counter",
	    "Databases created (--auto-create-table).", t->databases);
	metrics_family(m, "lf_tdlog_errors_total", "counter",
	    "Failed calls, by HTTP status (of those retried) or by failure "
	    "(timeout, connect, tls, other).");
	metrics_by_index(m, "code", t->by_status, 600, 0);
	for (i = 1; i < FAILS; i++)
		if (t->by_fail[i])
			metrics_u64(m, t->by_fail[i], "code", fail_names[i],
			    (char *)NULL);
}

/* ---- the state file ---- */

static void
state_retries(yajl_gen g, const struct td *t)
{
	char k[16];
	int i;

	report_str(g, "retries_by");
	yajl_gen_map_open(g);
	for (i = 0; i < 600; i++)
		if (t->by_status[i]) {
			snprintf(k, sizeof k, "%d", i);
			report_int(g, k, t->by_status[i]);
		}
	for (i = 1; i < FAILS; i++)
		if (t->by_fail[i])
			report_int(g, fail_names[i], t->by_fail[i]);
	yajl_gen_map_close(g);
}

/* The counters for an operator, one JSON object replaced whole every
 * second and at exit (as lf-send's state): a report, not a record. */
static void
state_write(struct td *t)
{
	yajl_gen g = report_new();

	if (g == NULL)
		return;
	report_str(g, "endpoint");
	report_str(g, t->import_url);
	report_str(g, "api_endpoint");
	report_str(g, t->api_url);
	report_int(g, "chunks", t->chunks);
	report_int(g, "events", t->events);
	report_int(g, "bytes", t->raw);
	report_int(g, "bytes_gzip", t->packed);
	report_int(g, "retries", t->retries);
	state_retries(g, t);
	report_int(g, "dead_letters", t->dead);
	report_int(g, "set_aside_events", t->aside);
	report_int(g, "set_aside_chunks", t->aside_chunks);
	report_int(g, "tables_created", t->tables);
	report_int(g, "databases_created", t->databases);
	report_int(g, "in_flight", t->http ? http_in_flight(t->http) : 0);
	report_strn(g, "last_error", t->last_error);
	report_write(g, t->state_file);
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
	consume_stop(((struct td *)ctx)->consume);
}

static void
sig_now(void *ctx)
{
	consume_kick(((struct td *)ctx)->consume);
}

static const struct sig_actions td_sig_actions = { sig_term, sig_now, NULL };

static void
read_key(struct td *t)
{
	const char *env = getenv("TD_API_KEY");
	char err[512];

	if (t->keyfile) {
		if (secret_read(&t->key, t->keyfile, err, sizeof err) == -1)
			log_fatal(EX_CONFIG, "--apikey-file: %s", err);
	} else if (env && *env) {
		if (secret_set(&t->key, env, strlen(env)) == -1)
			log_fatal(EX_OSERR, "out of memory");
	} else {
		log_fatal(EX_USAGE, "no API key: --apikey-file FILE or "
		    "TD_API_KEY");
	}
	if (!http_header_safe(t->key.p, t->key.n))
		log_fatal(EX_CONFIG, "the API key has a line break or NUL "
		    "in it");
	if (asprintf(&t->auth, "Authorization: TD1 %s", t->key.p) == -1)
		log_fatal(EX_OSERR, "out of memory");
}

static void
auth_free(struct td *t)
{
	if (t->auth) {
		explicit_bzero(t->auth, strlen(t->auth));
		free(t->auth);
	}
	secret_free(&t->key);
}

static void
endpoints(struct td *t)
{
	t->import_url = tdlog_endpoint(t->endpoint_arg ? t->endpoint_arg :
	    DEFAULT_IMPORT, t->use_ssl, 1);
	if (t->import_url == NULL)
		log_fatal(EX_OSERR, "out of memory");
	if (t->api_arg)
		t->api_url = tdlog_endpoint(t->api_arg, t->use_ssl, 0);
	else if (t->endpoint_arg)
		t->api_url = tdlog_api_from_import(t->import_url);
	else
		t->api_url = tdlog_endpoint(DEFAULT_API, t->use_ssl, 0);
	if (t->api_url == NULL)
		log_fatal(EX_OSERR, "out of memory");
	if (strlen(t->import_url) > 512 || strlen(t->api_url) > 512)
		log_fatal(EX_USAGE, "--endpoint, --api-endpoint: too long");
}

static void
parse_args(struct td *t, int argc, char **argv)
{
	enum { O_KEYFILE = 256, O_ENDPOINT, O_API, O_SSL, O_DB, O_TABLE,
		O_AUTO, O_PROXY, O_CONNTIME, O_READTIME, O_CAFILE, O_CAPATH,
		O_LEVEL, O_SHUTTIME, O_STATE, O_NOTIFY, O_LOG, O_VERSION };
	static const struct option opts[] = {
		{ "apikey-file", required_argument, NULL, O_KEYFILE },
		{ "endpoint", required_argument, NULL, O_ENDPOINT },
		{ "import-endpoint", required_argument, NULL, O_ENDPOINT },
		{ "api-endpoint", required_argument, NULL, O_API },
		{ "use-ssl", required_argument, NULL, O_SSL },
		{ "database", required_argument, NULL, O_DB },
		{ "table", required_argument, NULL, O_TABLE },
		{ "auto-create-table", optional_argument, NULL, O_AUTO },
		{ "http-proxy", required_argument, NULL, O_PROXY },
		{ "connect-timeout", required_argument, NULL, O_CONNTIME },
		{ "read-timeout", required_argument, NULL, O_READTIME },
		{ "ca-file", required_argument, NULL, O_CAFILE },
		{ "ca-path", required_argument, NULL, O_CAPATH },
		{ "compression-level", required_argument, NULL, O_LEVEL },
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
	char err[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (consume_opt(&t->cc, ch, optarg))
			continue;
		switch (ch) {
		case O_KEYFILE: t->keyfile = optarg; break;
		case O_ENDPOINT: t->endpoint_arg = optarg; break;
		case O_API: t->api_arg = optarg; break;
		case O_SSL: t->use_ssl = conf_opt_bool("use-ssl", optarg); break;
		case O_DB: t->database = optarg; break;
		case O_TABLE: t->table = optarg; break;
		case O_AUTO:
			t->auto_create = conf_opt_bool("auto-create-table",
			    optarg);
			break;
		case O_PROXY: t->hc.proxy = optarg; break;
		case O_CONNTIME:
			t->hc.connect_timeout = conf_opt_duration(
			    "connect-timeout", optarg);
			break;
		case O_READTIME:
			t->hc.read_timeout = conf_opt_duration("read-timeout",
			    optarg);
			break;
		case O_CAFILE: t->hc.ca_file = optarg; break;
		case O_CAPATH: t->hc.ca_path = optarg; break;
		case O_LEVEL:
			t->level = (int)conf_opt_uint("compression-level",
			    optarg, 9);
			break;
		case O_SHUTTIME:
			t->cc.shutdown_timeout = conf_opt_duration(
			    "shutdown-timeout", optarg);
			break;
		case O_STATE:
			free(t->state_file);
			if ((t->state_file = strdup(optarg)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
			break;
		case O_NOTIFY:
			t->notify_fd = (int)conf_opt_uint("notify-fd", optarg,
			    INT_MAX);
			break;
		case O_LOG: t->logfile = optarg; break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-tdlog " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc - 1)
		usage(EX_USAGE);
	if ((t->database == NULL) != (t->table == NULL))
		log_fatal(EX_USAGE, "--database and --table go together");
	if (t->database && !tdlog_name_valid(t->database))
		log_fatal(EX_USAGE, "--database: 3 to %d of a-z, 0-9 and _: "
		    "'%s'", TDLOG_NAME_MAX, t->database);
	if (t->table && !tdlog_name_valid(t->table))
		log_fatal(EX_USAGE, "--table: 3 to %d of a-z, 0-9 and _: '%s'",
		    TDLOG_NAME_MAX, t->table);
	if (t->level < 1)
		log_fatal(EX_USAGE, "--compression-level: 1 to 9");
	if (!(t->hc.read_timeout >= 1) || !(t->hc.connect_timeout > 0))
		log_fatal(EX_USAGE, "--read-timeout: at least 1s; "
		    "--connect-timeout: more than 0");
	if (consume_conf_check(&t->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
}

int
main(int argc, char **argv)
{
	static struct td t;
	struct sig sig;
	char err[512];
	int rc;

	log_init(argv[0]);
	consume_conf_default(&t.cc);
	t.use_ssl = 1;
	t.auto_create = 1;		/* out_tdlog's default */
	t.level = 1;
	t.notify_fd = -1;
	t.hc.connect_timeout = 60;	/* td-client's */
	t.hc.read_timeout = 600;
	snprintf(t.ua, sizeof t.ua, "lf-tdlog/%s (lf %s; %s)", LF_VERSION,
	    LF_VERSION, http_client_version());
	t.hc.user_agent = t.ua;
	parse_args(&t, argc, argv);
	if (t.logfile && log_open(t.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", t.logfile, strerror(errno));
	read_key(&t);
	endpoints(&t);
	if (spool_open(&t.spool, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	if (t.state_file == NULL && asprintf(&t.state_file, "%s/state/tdlog",
	    t.spool.path) == -1)
		log_fatal(EX_OSERR, "out of memory");
	t.loop = EV_DEFAULT;
	if ((t.http = http_client_new(t.loop, &t.hc)) == NULL)
		log_fatal(EX_OSERR, "cannot set up libcurl");
	if ((t.consume = consume_new(t.loop, &t.spool, &t.cc, deliver, cancel,
	    &t)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	consume_set_metrics(t.consume, "tdlog", metrics_tdlog);
	ev_timer_init(&t.state_t, state_timer, 0, 1);
	t.state_t.data = &t;
	ev_timer_again(t.loop, &t.state_t);
	sig_start(&sig, t.loop, &td_sig_actions, &t);
	if (consume_start(t.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", t.spool.path);
	if (t.notify_fd >= 0) {
		(void)!write(t.notify_fd, "\n", 1);
		close(t.notify_fd);
	}
	log_info("ready: %s to %s%s", t.spool.path, t.import_url,
	    t.database ? "" : " (tables from tags)");
	ev_run(t.loop, 0);
	rc = consume_status(t.consume);
	sig_stop(&sig);
	log_info("stats: chunks=%llu events=%llu bytes=%llu gzip=%llu "
	    "retries=%llu dead=%llu set_aside=%llu", t.chunks, t.events,
	    t.raw, t.packed, t.retries, t.dead, t.aside);
	log_limit_summary();
	ev_timer_stop(t.loop, &t.state_t);
	state_write(&t);
	while (t.jobs) {
		http_cancel(t.jobs->call);
		tjob_free(t.jobs);
	}
	http_client_free(t.http);
	consume_free(t.consume);
	spool_close(&t.spool);
	auth_free(&t);
	free(t.import_url);
	free(t.api_url);
	free(t.state_file);
	return rc;
}
