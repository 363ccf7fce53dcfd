/* lf-send: deliver a spool to a forward-protocol server (Fluentd's
 * out_forward as a tool).
 *
 * lf-send [options] --server HOST:PORT[,name=NAME] SPOOL
 *
 * lib/consume claims the chunks, oldest first; each goes out whole as one
 * PackedForward message (CompressedPackedForward with --compress gzip)
 * whose "chunk" option is the base64 of the chunk's 16-byte id, so a
 * chunk sent again after a failure is the same chunk to the server.  The
 * body goes from the chunk file to the socket through lib/hop's
 * file-backed batches, a bounded piece at a time; with gzip it is first
 * compressed, one gzip member per SPOOL_BLOCK, into an unnamed file in
 * SPOOL/tmp, so memory stays bounded there too.
 *
 * When the connection fails (refused, closed, a write error, no ack
 * within --ack-response-timeout), every chunk on it is handed back to
 * consume as a temporary failure: consume's retry schedule (Fluentd's
 * retry_* options) decides when the oldest is tried again, over a new
 * connection, with the same id. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/evp.h>

#include "buf.h"
#include "conf.h"
#include "consume.h"
#include "dial.h"
#include "gz.h"
#include "hop.h"
#include "io.h"
#include "log.h"
#include "sig.h"
#include "spool.h"

#define USAGE \
"usage: lf-send [-v] --server HOST:PORT[,name=NAME] [--require-ack-response]\n" \
"               [--compress text|gzip] [--ack-response-timeout DUR]\n" \
"               [--send-timeout DUR] [--connect-timeout DUR]\n" \
"               [--shutdown-timeout DUR] [--notify-fd N] [--log-file FILE]\n" \
"               [consume options] SPOOL\n"

/* One server: its address and the operations that reach it (a plain
 * socket here; TLS and the handshake are other dial_ops over the same
 * address), and the hop that talks to it. */
struct server {
	char name[400];	/* as dial_addr.desc */
	struct dial_addr addr;
	const struct dial_ops *ops;
	void *dctx;
	struct hop *hop;
};

struct send {
	struct ev_loop *loop;
	struct spool spool;
	struct consume *consume;
	struct consume_conf cc;
	struct hop_conf hc;
	struct server srv;
	int nserver;
	int notify_fd;
	const char *logfile;
	unsigned long long chunks, events, bytes, retries;
};

/* A chunk on its way: the claim (consume's) and the gzipped copy. */
struct sjob {
	struct send *s;
	struct consume_job *job;
	int gzfd;		/* -1 unless --compress gzip */
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0)
		fputs("\n"
"  --server HOST:PORT[,name=NAME]  the forward server (unix:PATH too)\n"
"  --require-ack-response     delete a chunk only once the server acks it\n"
"                             (without it: once written, at-most-once)\n"
"  --compress text|gzip       send CompressedPackedForward with gzip (text)\n"
"  --ack-response-timeout DUR no ack in this long: resend (190s)\n"
"  --send-timeout DUR         no write progress in this long: resend (60s)\n"
"  --connect-timeout DUR      (60s)\n"
"  --shutdown-timeout DUR     on TERM, wait this long for acks (30s)\n"
"  --notify-fd N              write a newline to fd N once started\n"
"  --log-file FILE            log there (reopened on SIGHUP)\n"
"  -v, --verbose              log more\n"
CONSUME_USAGE, stdout);
	exit(code);
}

static void
sjob_free(struct sjob *j)
{
	if (j->gzfd != -1)
		close(j->gzfd);
	free(j);
}

/* ---- hop callbacks ---- */

static void
acked(void *ctx, void *arg, size_t count)
{
	struct send *s = ctx;
	struct sjob *j = arg;

	s->chunks++;
	s->events += count;
	consume_job_done(j->job, CONSUME_OK, NULL);
	sjob_free(j);
}

static const char *fail_why;

static void
returned(void *ctx, void *arg, size_t count)
{
	struct send *s = ctx;
	struct sjob *j = arg;

	(void)count;
	s->retries++;
	consume_job_done(j->job, CONSUME_RETRY, fail_why);
	sjob_free(j);
}

static void
gaveup(void *ctx, void *arg, size_t count)
{
	fail_why = "given up";
	returned(ctx, arg, count);
}

/* The connection failed: its chunks go back to consume, which retries
 * them on its schedule. */
static void
failed(void *ctx, const char *why)
{
	struct send *s = ctx;
	size_t n = hop_batches(s->srv.hop);
	char reason[512];

	if (n == 0) {
		log_debug("%s: %s", s->srv.name, why);
		return;
	}
	log_warn("%s: %s; %zu chunks (%zu events) to send again", s->srv.name,
	    why, n, hop_events(s->srv.hop));
	snprintf(reason, sizeof reason, "%s: %s", s->srv.name, why);
	fail_why = reason;
	hop_take(s->srv.hop, returned, s);
	fail_why = NULL;
}

static void
forget(void *ctx, void *arg, size_t count)
{
	(void)ctx;
	(void)count;
	sjob_free(arg);
}

/* ---- consume callbacks ---- */

/* Gzip the body of job into an unnamed file in SPOOL/tmp, one member per
 * SPOOL_BLOCK: the fd, or -1 with a reason in err. */
static int
gzip_body(struct send *s, struct consume_job *job, uint64_t *outlen,
    char *err, size_t errlen)
{
	struct spool_chunk *c = &job->chunk;
	struct buf in = BUF_INIT, out = BUF_INIT;
	uint64_t off = 0, total = 0;
	size_t n;
	ssize_t r;
	int fd;

	fd = openat(s->spool.tmp, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "%s/tmp: cannot make a file for the "
		    "gzipped chunk: %s", s->spool.path, strerror(errno));
		return -1;
	}
	if (buf_reserve(&in, SPOOL_BLOCK) == -1)
		goto nomem;
	while (off < c->h.bodylen) {
		n = c->h.bodylen - off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(c->h.bodylen - off);
		do
			r = pread(c->fd, in.p, n, (off_t)(c->h.hlen + off));
		while (r == -1 && errno == EINTR);
		if (r != (ssize_t)n) {
			snprintf(err, errlen, "%s: read: %s", c->name,
			    r == -1 ? strerror(errno) : "short read");
			goto fail;
		}
		buf_reset(&out);
		if (gz_deflate(in.p, n, &out, 6) == -1)
			goto nomem;
		if (io_write_all(fd, out.p, out.len) == -1) {
			snprintf(err, errlen, "%s/tmp: write: %s",
			    s->spool.path, strerror(errno));
			goto fail;
		}
		off += n;
		total += out.len;
	}
	buf_free(&in);
	buf_free(&out);
	*outlen = total;
	return fd;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	buf_free(&in);
	buf_free(&out);
	close(fd);
	return -1;
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct send *s = ctx;
	struct spool_chunk *c = &job->chunk;
	struct sjob *j;
	struct hop_id id;
	char err[512];
	uint64_t len = c->h.bodylen;
	int fd = c->fd, rc;
	off_t off = c->h.hlen;

	if ((j = calloc(1, sizeof *j)) == NULL) {
		consume_job_done(job, CONSUME_RETRY, "out of memory");
		return;
	}
	j->s = s;
	j->job = job;
	j->gzfd = -1;
	if (s->hc.gzip) {
		if ((j->gzfd = gzip_body(s, job, &len, err, sizeof err)) == -1) {
			free(j);
			consume_job_done(job, CONSUME_RETRY, err);
			return;
		}
		fd = j->gzfd;
		off = 0;
	}
	memcpy(id.raw, c->h.id, sizeof id.raw);
	EVP_EncodeBlock((unsigned char *)id.b64, id.raw, sizeof id.raw);
	rc = hop_send_file(s->srv.hop, c->h.tag, c->h.taglen, fd, off,
	    (size_t)len, (size_t)c->h.count, s->hc.gzip, &id, j);
	if (rc != HOP_OK) {
		/* the window is flush_thread_count chunks: never full */
		snprintf(err, sizeof err, "cannot send: %s", rc == HOP_FULL ?
		    "window full" : strerror(errno));
		sjob_free(j);
		consume_job_done(job, errno == EMSGSIZE ? CONSUME_FAIL :
		    CONSUME_RETRY, err);
		return;
	}
	s->bytes += len;
}

/* The shutdown timeout: the chunks still unacked are forgotten (consume
 * releases their claims: they stay in new/).  The first cancel takes
 * them all. */
static void
cancel(void *ctx, struct consume_job *job)
{
	struct send *s = ctx;

	(void)job;
	hop_take(s->srv.hop, forget, s);
}

/* ---- options ---- */

static void
parse_server(struct send *s, char *spec)
{
	struct server *v = &s->srv;
	char *p = spec, *k, err[256];

	if (s->nserver++ > 0)
		log_fatal(EX_USAGE, "--server: only one server for now");
	k = strsep(&p, ",");
	if (dial_parse(&v->addr, k, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--server: %s: '%s'", err, k);
	snprintf(v->name, sizeof v->name, "%s", v->addr.desc);
	while ((k = strsep(&p, ",")) != NULL) {
		if (strncmp(k, "name=", 5) == 0 && k[5] != '\0' &&
		    strlen(k + 5) < sizeof v->name)
			snprintf(v->name, sizeof v->name, "%s", k + 5);
		else
			log_fatal(EX_USAGE, "--server: unknown parameter "
			    "'%s' (want name=NAME)", k);
	}
	v->ops = &dial_sock_ops;
	v->dctx = &v->addr;
}

static const struct conf_name compress_names[] = {
	{ "text", 0 }, { "gzip", 1 }, { NULL, 0 }
};

static void
parse_args(struct send *s, int argc, char **argv)
{
	enum { O_SERVER = 256, O_ACK, O_COMPRESS, O_ACKTIME, O_SENDTIME,
		O_CONNTIME, O_SHUTTIME, O_NOTIFY, O_LOG, O_VERSION };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "require-ack-response", optional_argument, NULL, O_ACK },
		{ "compress", required_argument, NULL, O_COMPRESS },
		{ "ack-response-timeout", required_argument, NULL, O_ACKTIME },
		{ "send-timeout", required_argument, NULL, O_SENDTIME },
		{ "connect-timeout", required_argument, NULL, O_CONNTIME },
		{ "shutdown-timeout", required_argument, NULL, O_SHUTTIME },
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
		if (consume_opt(&s->cc, ch, optarg))
			continue;
		switch (ch) {
		case O_SERVER: parse_server(s, optarg); break;
		case O_ACK:
			s->hc.no_ack = !conf_opt_bool("require-ack-response",
			    optarg);
			break;
		case O_COMPRESS:
			s->hc.gzip = conf_opt_enum("compress", optarg,
			    compress_names);
			break;
		case O_ACKTIME:
			s->hc.ack_response_timeout = conf_opt_duration(
			    "ack-response-timeout", optarg);
			break;
		case O_SENDTIME:
			s->hc.send_timeout = conf_opt_duration("send-timeout",
			    optarg);
			break;
		case O_CONNTIME:
			s->hc.connect_timeout = conf_opt_duration(
			    "connect-timeout", optarg);
			break;
		case O_SHUTTIME:
			s->cc.shutdown_timeout = conf_opt_duration(
			    "shutdown-timeout", optarg);
			break;
		case O_NOTIFY:
			s->notify_fd = (int)conf_opt_uint("notify-fd", optarg,
			    INT_MAX);
			break;
		case O_LOG: s->logfile = optarg; break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-send " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc - 1)
		usage(EX_USAGE);
	if (s->nserver == 0)
		log_fatal(EX_USAGE, "--server: at least one is needed");
	if (consume_conf_check(&s->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	/* every chunk claimed fits in the window: hop_send never says
	 * HOP_FULL, consume's flush_thread_count is the bound */
	s->hc.window_batches = s->cc.flush_thread_count;
	s->hc.window_bytes = SIZE_MAX / 2;
	s->hc.max_message = UINT32_MAX;
	if (hop_conf_check(&s->hc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
}

int
main(int argc, char **argv)
{
	static struct send s;
	struct hop_cbs cbs = { &s, acked, gaveup, NULL, failed };
	struct sig sig;
	char err[512];
	int rc;

	log_init(argv[0]);
	consume_conf_default(&s.cc);
	hop_conf_default(&s.hc);
	s.hc.no_ack = 1;	/* out_forward's default: no acks */
	s.notify_fd = -1;
	parse_args(&s, argc, argv);
	if (s.logfile && log_open(s.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", s.logfile, strerror(errno));
	if (spool_open(&s.spool, argv[optind], 0, err, sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	s.loop = EV_DEFAULT;
	if ((s.srv.hop = hop_new(s.loop, &s.hc, s.srv.ops, s.srv.dctx,
	    &cbs)) == NULL ||
	    (s.consume = consume_new(s.loop, &s.spool, &s.cc, deliver, cancel,
	    &s)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	sig_start(&sig, s.loop, &consume_sig_actions, s.consume);
	if (consume_start(s.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", s.spool.path);
	if (s.notify_fd >= 0) {
		(void)!write(s.notify_fd, "\n", 1);
		close(s.notify_fd);
	}
	log_info("ready: %s to %s%s%s", s.spool.path, s.srv.name,
	    s.hc.no_ack ? "" : ", with acks", s.hc.gzip ? ", gzip" : "");
	ev_run(s.loop, 0);
	sig_stop(&sig);
	rc = consume_status(s.consume);
	log_info("stats: chunks=%llu events=%llu bytes=%llu retries=%llu",
	    s.chunks, s.events, s.bytes, s.retries);
	log_limit_summary();
	hop_take(s.srv.hop, forget, &s);
	hop_free(s.srv.hop);
	consume_free(s.consume);
	spool_close(&s.spool);
	return rc;
}
