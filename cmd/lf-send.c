/* lf-send: deliver a spool to a forward-protocol server (Fluentd's
 * out_forward as a tool).
 *
 * lf-send [options] --server HOST:PORT[,weight=N][,standby][,name=NAME]...
 *         [--standby HOST:PORT]... SPOOL
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
 * Each server has its own hop (lib/hop) over its own dial_ops: a socket,
 * TLS over it with --transport tls (lib/tls), and the forward handshake
 * over that with a shared key (lib/handshake); the heartbeat probe has a
 * stack of its own, so heartbeats prove the handshake too.  Secrets come
 * from files only (lib/secret).  A chunk goes to an
 * up active server, chosen by weight (smooth weighted round robin); only
 * when no active server is up, to an up standby.  When a server's
 * connection fails with chunks on it (refused, closed, a write error, no
 * ack within --ack-response-timeout), the server is marked down and its
 * hop gives every unacked chunk back (hop_take): each goes at once, with
 * the same id, to another up server; with none up, it is handed back to
 * consume as a temporary failure, and consume's retry schedule (Fluentd's
 * retry_* options) decides when the oldest is tried again.
 *
 * Heartbeats are Fluentd's: every --heartbeat-interval a connection is
 * opened to each server and closed (transport), or a byte 00 sent over
 * UDP and its echo awaited (udp); each one that succeeds, and each chunk
 * acked, is a sample for the phi accrual failure detector (lib/phi).  A
 * server whose phi passes --phi-threshold, or that has had no heartbeat
 * for --hard-timeout, is down; a down server is up again after more than
 * --recover-wait / --heartbeat-interval heartbeats, and being preferred,
 * an active server then takes the traffic back from the standbys.  With
 * --heartbeat-type none every server is always up, and the chunks of a
 * failed connection go to another server if there is one.
 *
 * A connection stays open while idle (--keepalive true, lf's default);
 * --keepalive false closes it once nothing is in flight, as out_forward
 * does without keepalive, and --keepalive-timeout closes it after an
 * idle spell (lib/hop's close_idle and idle_timeout).
 *
 * Every second the state (per server: up, phi, in flight, counts, the
 * last error) replaces SPOOL/state/send, for an operator; lf-spool stat
 * shows it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <yajl/yajl_gen.h>
#include <openssl/evp.h>

#include "buf.h"
#include "conf.h"
#include "consume.h"
#include "dial.h"
#include "dump.h"
#include "gz.h"
#include "hop.h"
#include "io.h"
#include "log.h"
#include "handshake.h"
#include "phi.h"
#include "report.h"
#include "resolve.h"
#include "secret.h"
#include "sig.h"
#include "spool.h"
#include "tls.h"
#include "stream.h"

#define MAXSERVERS 32

enum { HB_TRANSPORT, HB_UDP, HB_NONE };

#define USAGE \
"usage: lf-send [-v] --server HOST:PORT[,weight=N][,standby][,name=NAME]...\n" \
"               [--standby HOST:PORT]... [--heartbeat-type TYPE]\n" \
"               [--heartbeat-interval DUR] [--phi-failure-detector[=BOOL]]\n" \
"               [--phi-threshold N] [--hard-timeout DUR] [--recover-wait DUR]\n" \
"               [--require-ack-response]\n" \
"               [--compress text|gzip] [--ack-response-timeout DUR]\n" \
"               [--send-timeout DUR] [--connect-timeout DUR]\n" \
"               [--shutdown-timeout DUR] [--state-file PATH] [--notify-fd N]\n" \
"               [--transport tcp|tls] [--tls-ca-path PATH]\n" \
"               [--tls-verify-hostname BOOL] [--tls-cert-path FILE]\n" \
"               [--tls-private-key-path FILE] [--shared-key-file FILE]\n" \
"               [--self-hostname NAME] [--username NAME]\n" \
"               [--password-file FILE] [--keepalive BOOL]\n" \
"               [--keepalive-timeout DUR] [--expire-dns-cache DUR]\n" \
"               [--dns-round-robin BOOL]\n" \
"               [--log-file FILE]\n" \
"               [consume options] SPOOL\n" \
"       lf-send [options] [--buffer-limit SIZE] [--dump-dir DIR] ... -\n"

/* The layers that reach a server: a socket, TLS over it (--transport
 * tls), the forward handshake over that (a shared key).  Each live
 * connection needs its own stack (TLS and the handshake keep per
 * connection state), so the hop and the heartbeat probe have one each. */
struct link {
	struct dial_addr addr;
	struct tls_dial tls;
	struct hs_dial hs;
};

/* One server: its address and the operations that reach it, and the
 * hop that talks to it. */
struct server {
	struct send *s;
	char name[400];	/* as dial_addr.desc */
	int named;		/* name= given: TLS checks it */
	struct dial_addr addr;
	const struct dial_ops *ops;	/* the hop's */
	void *dctx;
	const struct dial_ops *pops;	/* the heartbeat probe's */
	void *pctx;
	struct link hl, pl;
	/* the handshake: file names from --server or the global options */
	const char *keyfile, *username, *pwfile;
	struct secret key, pw;
	struct hs_client_conf hsc;
	struct hop *hop;
	unsigned weight;	/* 60, Fluentd's */
	int standby;
	int up;			/* taken as up at the start */
	long cur;		/* smooth weighted round robin */
	struct phi phi;		/* its heartbeats */
	ev_io probe_w;		/* a transport heartbeat connecting */
	int probe_fd;
	struct sockaddr_storage ua;	/* udp heartbeats go there */
	socklen_t ualen;
	const char *given;	/* HOST:PORT as given: the server label */
	/* for the state file */
	unsigned long long chunks, events, bytes, retries;
	char last_error[256];
};

struct send {
	struct ev_loop *loop;
	struct spool spool;
	struct consume *consume;
	struct consume_conf cc;
	struct hop_conf hc;
	struct server srv[MAXSERVERS];
	int nserver;
	int hb_type;
	double hb_interval, recover_wait, hard_timeout, phi_threshold;
	int phi_on;
	ev_timer hb_t;
	int udp4, udp6;
	ev_io udp4_w, udp6_w;
	int notify_fd;
	const char *logfile;
	int tls;		/* --transport tls */
	struct tls_conf tc;
	struct tls_ctx *tctx;
	const char *keyfile, *username, *pwfile, *self_hostname;
	char hostname[256];
	char *state_file;	/* SPOOL/state/send, or --state-file */
	ev_timer state_t;
	unsigned long long chunks, events, bytes, retries;
	int reached;		/* a heartbeat or an ack came from a server */
	struct stdin_mode *in;	/* NULL: a spool */
	struct resolve *res;	/* name lookups off the loop */
	struct resolve_conf rc;
	int dns_rr;		/* --dns-round-robin */
	struct metrics_writer mw;	/* stdin mode; consume's otherwise */
	struct metrics_io io;		/* stdin mode's counts for it */
};

/* A chunk on its way: the claim (consume's) and the gzipped copy. */
struct sjob {
	struct send *s;
	struct server *on;	/* whose hop has it */
	struct consume_job *job;	/* NULL in stdin mode */
	struct dump_batch *b;		/* in stdin mode */
	struct sjob *next;		/* in stdin mode, waiting */
	int gzfd;		/* -1 unless --compress gzip */
	uint64_t gzlen;
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0)
		fputs("\n"
"  --server HOST:PORT[,weight=N][,standby][,name=NAME]\n"
"                             a forward server (unix:PATH too); repeatable\n"
"  --standby HOST:PORT        a standby server (--server ...,standby)\n"
"  --heartbeat-type TYPE      transport (or tcp), udp or none (transport)\n"
"  --heartbeat-interval DUR   (1s)\n"
"  --phi-failure-detector[=BOOL]  a server is down when phi passes\n"
"                             --phi-threshold (true)\n"
"  --phi-threshold N          (16)\n"
"  --hard-timeout DUR         down after this long without a heartbeat (60s)\n"
"  --recover-wait DUR         heartbeats for this long bring a down\n"
"                             server back up (10s)\n"
"  --require-ack-response     delete a chunk only once the server acks it\n"
"                             (without it: once written, at-most-once)\n"
"  --compress text|gzip       send CompressedPackedForward with gzip (text)\n"
"  --ack-response-timeout DUR no ack in this long: resend (190s)\n"
"  --send-timeout DUR         no write progress in this long: resend (60s)\n"
"  --connect-timeout DUR      (60s)\n"
"  --expire-dns-cache DUR     resolve a name again after this long (0: for\n"
"                             every connection; default: once, and again\n"
"                             when its server goes down)\n"
"  --dns-round-robin BOOL     each connection takes a name's next address\n"
"                             (false)\n"
"  --shutdown-timeout DUR     on TERM, wait this long for acks (30s)\n"
"  --state-file PATH          the state for an operator (SPOOL/state/send)\n"
"  --notify-fd N              write a newline to fd N once started\n"
"  --log-file FILE            log there (reopened on SIGHUP)\n"
"  --buffer-limit SIZE        with -: events held in memory before stdin\n"
"                             waits (64m)\n"
"  --dump-dir DIR             with -: write what cannot be delivered there\n"
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

/* ---- routing ---- */

/* The server for the next chunk: an up active one by weight, else an up
 * standby by weight, else NULL. */
static struct server *
pick(struct send *s, const struct server *not)
{
	struct server *v, *best;
	long total;
	int i, standby;

	for (standby = 0; standby <= 1; standby++) {
		best = NULL;
		total = 0;
		for (i = 0; i < s->nserver; i++) {
			v = &s->srv[i];
			if (!v->up || v->standby != standby || v == not)
				continue;
			v->cur += v->weight;
			total += v->weight;
			if (best == NULL || v->cur > best->cur)
				best = v;
		}
		if (best) {
			best->cur -= total;
			return best;
		}
	}
	return NULL;
}

static int route_mem(struct send *, struct sjob *, struct server *, char *,
    size_t);
static void in_acked(struct send *, struct sjob *);
static void in_unsent(struct send *, struct sjob *, int, int);
static void kick(struct send *);

/* Put j on a server: 0, or -1 with a reason (nothing up; EMSGSIZE;
 * in stdin mode, EAGAIN: the window is full). */
static int
route(struct send *s, struct sjob *j, const struct server *not, char *err,
    size_t errlen)
{
	struct spool_chunk *c;
	struct hop_id id;
	struct server *v;
	int fd, rc;
	off_t off;
	uint64_t len;

	if ((v = pick(s, not)) == NULL) {
		snprintf(err, errlen, "no server is up");
		errno = 0;
		return -1;
	}
	if (j->b)
		return route_mem(s, j, v, err, errlen);
	c = &j->job->chunk;
	fd = c->fd;
	off = c->h.hlen;
	len = c->h.bodylen;
	if (j->gzfd != -1) {
		fd = j->gzfd;
		off = 0;
		len = j->gzlen;
	}
	memcpy(id.raw, c->h.id, sizeof id.raw);
	EVP_EncodeBlock((unsigned char *)id.b64, id.raw, sizeof id.raw);
	rc = hop_send_file(v->hop, c->h.tag, c->h.taglen, fd, off, (size_t)len,
	    (size_t)c->h.count, s->hc.gzip, &id, j);
	if (rc != HOP_OK) {
		/* the window is flush_thread_count chunks: never full */
		snprintf(err, errlen, "cannot send: %s", rc == HOP_FULL ?
		    "window full" : strerror(errno));
		return -1;
	}
	j->on = v;
	s->bytes += len;
	v->bytes += len;
	return 0;
}

/* ---- hop callbacks ---- */

static void
acked(void *ctx, void *arg, size_t count)
{
	struct server *v = ctx;
	struct sjob *j = arg;

	if (v->up)	/* a sample, but no way back up for a down one */
		phi_add(&v->phi, ev_now(v->s->loop));
	v->chunks++;
	v->events += count;
	v->s->chunks++;
	v->s->events += count;
	if (j->b) {
		in_acked(v->s, j);
		return;
	}
	consume_job_done(j->job, CONSUME_OK, NULL);
	sjob_free(j);
}

static const char *fail_why;

/* A chunk taken back from a failed server: to another, or to consume. */
static void
returned(void *ctx, void *arg, size_t count)
{
	struct server *v = ctx;
	struct send *s = v->s;
	struct sjob *j = arg;
	char err[256];

	(void)count;
	s->retries++;
	v->retries++;
	if (j->b)		/* consume counts its own */
		s->io.out_errors++;
	/* with --heartbeat-type none v is still up: not v again */
	if (route(s, j, v, err, sizeof err) == 0) {
		log_debug("chunk %s: sent again to %s", j->job ?
		    j->job->chunk.name : "(stdin)", j->on->name);
		return;
	}
	if (j->b) {
		in_unsent(s, j, errno, 0);
		return;
	}
	consume_job_done(j->job, errno == EMSGSIZE ? CONSUME_FAIL :
	    CONSUME_RETRY, fail_why);
	sjob_free(j);
}

static void
gaveup(void *ctx, void *arg, size_t count)
{
	fail_why = "given up";
	returned(ctx, arg, count);
	fail_why = NULL;
}

static void server_down(struct server *v, const char *why);
static void server_beat(struct server *v, double now);

/* A connection with chunks on it failed: the server is down (unless the
 * fault was reading a chunk file), and its chunks go elsewhere.  A connection without chunks (an idle one the
 * server closed) is nothing: it is opened again with the next chunk. */
static void
failed(void *ctx, const char *why, int local)
{
	struct server *v = ctx;
	size_t n = hop_batches(v->hop);
	char reason[512];

	if (n == 0) {
		log_debug("%s: %s", v->name, why);
		return;
	}
	snprintf(v->last_error, sizeof v->last_error, "%s", why);
	if (local)	/* a chunk file could not be read: not the server's */
		log_warn("%s: %s; %zu chunks (%zu events) to send again",
		    v->name, why, n, hop_events(v->hop));
	else if (v->up)
		log_warn("%s: down: %s; %zu chunks (%zu events) to send again",
		    v->name, why, n, hop_events(v->hop));
	if (!local)
		server_down(v, NULL);
	snprintf(reason, sizeof reason, "%s: %s", v->name, why);
	fail_why = reason;
	hop_take(v->hop, returned, v);
	fail_why = NULL;
}

static void
forget(void *ctx, void *arg, size_t count)
{
	(void)ctx;
	(void)count;
	sjob_free(arg);
}

/* ---- heartbeats and the failure detector ---- */

/* A server is down: it gets no chunks until heartbeats bring it back. */
static void
server_down(struct server *v, const char *why)
{
	if (v->s->hb_type == HB_NONE)
		return;
	if (v->up && why) {
		log_warn("%s: down: %s", v->name, why);
		/* for the state file: why it is down, a heartbeat's too */
		snprintf(v->last_error, sizeof v->last_error, "%s", why);
	}
	v->up = 0;
	phi_clear(&v->phi);
	/* Fluentd drops a detached node's resolved address: a server
	 * that moved is found at its new address */
	if (!v->addr.unix_ && v->s->res != NULL)
		resolve_forget(v->s->res, v->addr.host, v->addr.port);
}

/* A heartbeat (or a chunk acked) from v at now.  A down server is up again
 * after more than recover_wait / heartbeat_interval of them, Fluentd's
 * recover_sample_size. */
static void
server_beat(struct server *v, double now)
{
	struct send *s = v->s;

	s->reached = 1;
	phi_add(&v->phi, now);
	if (v->up ||
	    (double)phi_samples(&v->phi) <= s->recover_wait / s->hb_interval)
		return;
	v->up = 1;
	v->cur = 0;
	log_warn("%s: up: %zu heartbeats in a row", v->name,
	    phi_samples(&v->phi));
	/* chunks put off for want of a server need not wait out a backoff */
	kick(s);
}

static void
probe_end(struct server *v)
{
	if (v->probe_fd != -1) {
		ev_io_stop(v->s->loop, &v->probe_w);
		v->pops->close(v->pctx, v->probe_fd);
		v->probe_fd = -1;
	}
}

static void
probe_result(struct server *v, int ok, const char *why)
{
	probe_end(v);
	if (ok)
		server_beat(v, ev_now(v->s->loop));
	else
		log_debug("%s: heartbeat: %s", v->name, why);
}

static void
probe_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct server *v = w->data;
	int rc, events = 0;

	(void)loop;
	(void)revents;
	if ((rc = v->pops->finish(v->pctx, v->probe_fd, &events)) == 0)
		probe_result(v, 1, NULL);
	else if (rc == -1)
		probe_result(v, 0, strerror(errno));
	else {
		ev_io_stop(v->s->loop, &v->probe_w);
		ev_io_set(&v->probe_w, v->probe_fd, events);
		ev_io_start(v->s->loop, &v->probe_w);
	}
}

/* The transport heartbeat: open a connection (with the handshake, if
 * the server's dial_ops has one), send nothing, close it.  One that is
 * still connecting at the next round counts for nothing. */
static void
probe_start(struct server *v)
{
	int rc;

	if (v->probe_fd != -1)
		probe_result(v, 0, "connect took a whole heartbeat interval");
	if ((rc = v->pops->open(v->pctx, &v->probe_fd)) == -1) {
		v->probe_fd = -1;
		probe_result(v, 0, strerror(errno));
		return;
	}
	if (rc == 0) {
		probe_result(v, 1, NULL);
		return;
	}
	ev_io_set(&v->probe_w, v->probe_fd, EV_WRITE);
	ev_io_start(v->s->loop, &v->probe_w);
}

/* The udp heartbeat: one byte 00; in_forward answers any datagram with
 * 00 from its port, which counts when it comes from the server's
 * address. */
static void
udp_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct send *s = w->data;
	struct sockaddr_storage from;
	socklen_t fl;
	char b[128];
	int i;

	(void)revents;
	for (;;) {
		fl = sizeof from;
		if (recvfrom(w->fd, b, sizeof b, 0, (struct sockaddr *)&from,
		    &fl) == -1)
			return;
		for (i = 0; i < s->nserver; i++)
			if (s->srv[i].ualen == fl &&
			    memcmp(&s->srv[i].ua, &from, fl) == 0)
				break;
		if (i < s->nserver)
			server_beat(&s->srv[i], ev_now(loop));
		else
			LOG_WARN_LIMITED("a heartbeat reply from an unknown "
			    "address, ignored");
	}
}

static void
udp_send(struct server *v)
{
	struct send *s = v->s;
	int fd = v->ua.ss_family == AF_INET6 ? s->udp6 : s->udp4;

	if (sendto(fd, "", 1, 0, (struct sockaddr *)&v->ua, v->ualen) == -1)
		log_debug("%s: heartbeat: %s", v->name, strerror(errno));
}

/* Each round: judge every server on the beats so far (Fluentd's tick),
 * then send the next beats. */
static void
hb_round(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct send *s = w->data;
	struct server *v;
	double now = ev_now(loop), phi;
	char why[128];
	int i;

	(void)revents;
	for (i = 0; i < s->nserver; i++) {
		v = &s->srv[i];
		phi = phi_value(&v->phi, now);
		if (v->up && now - v->phi.last > s->hard_timeout) {
			snprintf(why, sizeof why, "no heartbeat for %.1fs "
			    "(hard timeout %gs)", now - v->phi.last,
			    s->hard_timeout);
			server_down(v, why);
		} else if (v->up && s->phi_on && phi > s->phi_threshold) {
			snprintf(why, sizeof why, "phi %.1f > %g (no heartbeat "
			    "for %.1fs)", phi, s->phi_threshold,
			    now - v->phi.last);
			server_down(v, why);
		} else if (!v->up && now - v->phi.last > s->hard_timeout)
			phi_clear(&v->phi);
		if (s->hb_type == HB_UDP)
			udp_send(v);
		else
			probe_start(v);
	}
}

/* Resolve the servers once for udp heartbeats and open the sockets.
 * Exits on a usage error. */
static void
udp_setup(struct send *s)
{
	struct addrinfo hints, *res;
	struct server *v;
	int i, rc, *fd;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_DGRAM;
	s->udp4 = s->udp6 = -1;
	for (i = 0; i < s->nserver; i++) {
		v = &s->srv[i];
		if (v->addr.unix_)
			log_fatal(EX_USAGE, "--heartbeat-type udp: %s is a Unix "
			    "socket", v->name);
		if ((rc = getaddrinfo(v->addr.host, v->addr.port, &hints,
		    &res)) != 0)
			log_fatal(EX_NOHOST, "%s: %s", v->name, gai_strerror(rc));
		memcpy(&v->ua, res->ai_addr, res->ai_addrlen);
		v->ualen = res->ai_addrlen;
		freeaddrinfo(res);
		fd = v->ua.ss_family == AF_INET6 ? &s->udp6 : &s->udp4;
		if (*fd == -1 && (*fd = socket(v->ua.ss_family, SOCK_DGRAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
			log_fatal(EX_OSERR, "udp socket: %s", strerror(errno));
	}
	ev_io_init(&s->udp4_w, udp_read, s->udp4, EV_READ);
	ev_io_init(&s->udp6_w, udp_read, s->udp6, EV_READ);
	s->udp4_w.data = s->udp6_w.data = s;
	if (s->udp4 != -1)
		ev_io_start(s->loop, &s->udp4_w);
	if (s->udp6 != -1)
		ev_io_start(s->loop, &s->udp6_w);
}

/* ---- the state file ---- */

static void
state_server(yajl_gen g, const struct server *v, double now)
{
	yajl_gen_map_open(g);
	report_str(g, "name");
	report_str(g, v->name);
	report_str(g, "address");
	report_str(g, v->addr.desc);
	report_str(g, "standby");
	yajl_gen_bool(g, v->standby);
	report_int(g, "weight", v->weight);
	report_str(g, "up");
	yajl_gen_bool(g, v->up);
	report_num(g, "phi", phi_value(&v->phi, now));
	report_num(g, "last_heartbeat_age", now - v->phi.last);
	report_int(g, "in_flight_chunks", hop_batches(v->hop));
	report_int(g, "in_flight_events", hop_events(v->hop));
	report_int(g, "chunks", v->chunks);
	report_int(g, "events", v->events);
	report_int(g, "bytes", v->bytes);
	report_int(g, "retries", v->retries);
	report_strn(g, "last_error", v->last_error);
	yajl_gen_map_close(g);
}

/* The state for an operator, as one JSON object, replaced whole (write
 * then rename) every second and at exit.  It is a report, not a record:
 * it is not fsync'd, and a failure to write it is logged (limited) and
 * changes nothing else. */
static void
state_write(struct send *s)
{
	yajl_gen g = report_new();
	double now = ev_now(s->loop);
	int i;

	if (g == NULL)
		return;
	report_int(g, "chunks", s->chunks);
	report_int(g, "events", s->events);
	report_int(g, "bytes", s->bytes);
	report_int(g, "retries", s->retries);
	report_str(g, "servers");
	yajl_gen_array_open(g);
	for (i = 0; i < s->nserver; i++)
		state_server(g, &s->srv[i], now);
	yajl_gen_array_close(g);
	report_write(g, s->state_file);
}

static void
state_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	state_write(w->data);
}

/* ---- --metrics-file ---- */

static void
server_sample(struct metrics *m, const struct server *v, double x)
{
	metrics_num(m, x, "server", v->given, "standby",
	    v->standby ? "true" : "false", (char *)NULL);
}

/* Per server, labelled with its address as given and whether it is a
 * standby: what lf-send adds to the output families. */
static void
metrics_servers(void *ctx, struct metrics *m)
{
	const struct send *s = ctx;
	const struct server *v, *end = s->srv + s->nserver;
	double now = ev_now(s->loop);

	metrics_family(m, "lf_server_up", "gauge",
	    "1 if the server is up, 0 if down.");
	for (v = s->srv; v < end; v++)
		server_sample(m, v, v->up != 0);
	metrics_family(m, "lf_server_phi", "gauge",
	    "The phi accrual value of its heartbeats.");
	for (v = s->srv; v < end; v++)
		server_sample(m, v, phi_value(&v->phi, now));
	metrics_family(m, "lf_server_in_flight_events", "gauge",
	    "Events sent to it and not yet acknowledged.");
	for (v = s->srv; v < end; v++)
		server_sample(m, v, (double)hop_events(v->hop));
	metrics_family(m, "lf_server_events_total", "counter",
	    "Events it acknowledged (or took, without acks).");
	for (v = s->srv; v < end; v++)
		server_sample(m, v, (double)v->events);
	metrics_family(m, "lf_server_retries_total", "counter",
	    "Chunks taken back from it (failed, or given up).");
	for (v = s->srv; v < end; v++)
		server_sample(m, v, (double)v->retries);
}

/* stdin mode: no spool, so no consume to count. */
static void
metrics_stdin(void *ctx, struct metrics *m)
{
	const struct send *s = ctx;

	metrics_put_io(m, &s->io);
	metrics_servers(ctx, m);
}

/* ---- signals (lf(7)) ---- */

static void in_stop(struct send *);

static void
sig_term(void *ctx)
{
	struct send *s = ctx;

	if (s->in)
		in_stop(s);
	else
		consume_stop(s->consume);
}

/* SIGUSR1: a pending retry is due now (consume_kick). */
static void
sig_now(void *ctx)
{
	kick(ctx);
}

static const struct sig_actions send_sig_actions = {
	sig_term, sig_now, NULL
};

/* ---- consume callbacks ---- */

/* Gzip the body of job into fd, one member per SPOOL_BLOCK: 0, or -1
 * with a reason in err and *nospace set if the disk was full. */
static int
gzip_to(struct send *s, struct consume_job *job, int fd, uint64_t *outlen,
    int *nospace, char *err, size_t errlen)
{
	struct spool_chunk *c = &job->chunk;
	struct buf in = BUF_INIT, out = BUF_INIT;
	uint64_t off = 0, total = 0;
	size_t n;
	ssize_t r;
	int ret = -1;

	*nospace = 0;
	if (buf_reserve(&in, SPOOL_BLOCK) == -1)
		goto nomem;
	while (off < c->h.bodylen) {
		n = c->h.bodylen - off > SPOOL_BLOCK ? SPOOL_BLOCK :
		    (size_t)(c->h.bodylen - off);
		r = io_pread_all(c->fd, in.p, n, (off_t)(c->h.hlen + off));
		if (r != (ssize_t)n) {
			snprintf(err, errlen, "%s: read: %s", c->name,
			    r == -1 ? strerror(errno) : "short read");
			goto out;
		}
		buf_reset(&out);
		if (gz_deflate(in.p, n, &out, 6) == -1)
			goto nomem;
		if (io_write_all(fd, out.p, out.len) == -1) {
			*nospace = errno == ENOSPC || errno == EDQUOT;
			snprintf(err, errlen, "%s/tmp: write: %s",
			    s->spool.path, strerror(errno));
			goto out;
		}
		off += n;
		total += out.len;
	}
	*outlen = total;
	ret = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	buf_free(&in);
	buf_free(&out);
	return ret;
}

/* Gzip the body of job into an unnamed file in SPOOL/tmp or, when that
 * disk is full, into memory (a memfd): on a disk filled by the spool's
 * own backlog, sending is the only way to free space, so it must not
 * need any.  The fd, or -1 with a reason in err. */
static int
gzip_body(struct send *s, struct consume_job *job, uint64_t *outlen,
    char *err, size_t errlen)
{
	int fd, nospace = 1;

	fd = openat(s->spool.tmp, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1 && errno != ENOSPC && errno != EDQUOT) {
		snprintf(err, errlen, "%s/tmp: cannot make a file for the "
		    "gzipped chunk: %s", s->spool.path, strerror(errno));
		return -1;
	}
	if (fd != -1) {
		if (gzip_to(s, job, fd, outlen, &nospace, err, errlen) == 0)
			return fd;
		close(fd);
		if (!nospace)
			return -1;
	}
	if ((fd = memfd_create("lf-send-gz", MFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s/tmp is full, and no memory for the "
		    "gzipped chunk: %s", s->spool.path, strerror(errno));
		return -1;
	}
	if (gzip_to(s, job, fd, outlen, &nospace, err, errlen) == 0)
		return fd;
	close(fd);
	return -1;
}

static void
deliver(void *ctx, struct consume_job *job)
{
	struct send *s = ctx;
	struct sjob *j;
	char err[512];

	if ((j = calloc(1, sizeof *j)) == NULL) {
		consume_job_done(job, CONSUME_RETRY, "out of memory");
		return;
	}
	j->s = s;
	j->job = job;
	j->gzfd = -1;
	if (s->hc.gzip && (j->gzfd = gzip_body(s, job, &j->gzlen, err,
	    sizeof err)) == -1) {
		free(j);
		consume_job_done(job, CONSUME_RETRY, err);
		return;
	}
	if (route(s, j, NULL, err, sizeof err) == -1) {
		sjob_free(j);
		consume_job_done(job, errno == EMSGSIZE ? CONSUME_FAIL :
		    CONSUME_RETRY, err);
	}
}

/* The shutdown timeout: the chunks still unacked are forgotten (consume
 * releases their claims: they stay in new/).  The first cancel takes
 * them all. */
static void
cancel(void *ctx, struct consume_job *job)
{
	struct send *s = ctx;
	int i;

	(void)job;
	for (i = 0; i < s->nserver; i++)
		hop_take(s->srv[i].hop, forget, s);
}

/* ---- stdin mode (lf-send ... -) ----
 *
 * The events of an lf-stream(5) on stdin are batched per tag in memory
 * (lib/dump's pool; a batch closes at STDIN_BATCH bytes, or when stdin
 * has nothing more for now) and each batch goes out like a chunk, with
 * a random id, through the same routing as spooled chunks.  A batch no
 * server can take waits in a queue on lf-send's own retry schedule (the
 * --retry-* options); when that hits its limit, or at TERM after
 * --shutdown-timeout, whatever is unacked is written to --dump-dir.
 * Past --buffer-limit bytes held, stdin is not read: back pressure. */

#define STDIN_BATCH	(1u << 20)	/* a batch closes at 1m of entries */
#define STDIN_LIMIT	(64u << 20)	/* --buffer-limit's default */
#define STDIN_WINDOW	64		/* batches in flight per server */

struct stdin_mode {
	struct dump_pool pool;
	struct stream_reader rd;
	ev_io in_w;
	ev_timer retry_t, shut_t;
	struct retry_state rst;
	struct sjob *wait, **wait_tail;	/* not on any server */
	const char *dump_dir;
	size_t limit;
	int eof, bad, stopping, reading;
	unsigned long long dumped, lost, dumps;	/* events; files */
};

static void in_pump(struct send *s);

static void
kick(struct send *s)
{
	if (s->in == NULL) {
		consume_kick(s->consume);
		return;
	}
	retry_reset(&s->in->rst);
	ev_timer_stop(s->loop, &s->in->retry_t);
	in_pump(s);
}

static int
route_mem(struct send *s, struct sjob *j, struct server *v, char *err,
    size_t errlen)
{
	struct dump_batch *b = j->b;
	int rc;

	rc = hop_send(v->hop, b->tag, b->taglen, b->ents, b->len, b->count,
	    NULL, j);
	if (rc != HOP_OK) {
		if (rc == HOP_FULL)
			errno = EAGAIN;
		snprintf(err, errlen, "cannot send: %s", strerror(errno));
		return -1;
	}
	j->on = v;
	s->bytes += b->len;
	v->bytes += b->len;
	return 0;
}

static void
in_free(struct send *s, struct sjob *j)
{
	dump_batch_free(&s->in->pool, j->b);
	free(j);
}

static void
in_acked(struct send *s, struct sjob *j)
{
	struct metrics_io *io = &s->io;

	io->out_chunks++;
	io->out_events += j->b->count;
	io->out_bytes += j->b->len;
	io->last_event = ev_time();
	s->reached = 1;
	retry_reset(&s->in->rst);
	ev_timer_stop(s->loop, &s->in->retry_t);
	in_free(s, j);
	in_pump(s);
}

static void
in_queue(struct send *s, struct sjob *j, int front)
{
	struct stdin_mode *in = s->in;

	j->on = NULL;
	if (front) {
		if ((j->next = in->wait) == NULL)
			in->wait_tail = &j->next;
		in->wait = j;
		return;
	}
	j->next = NULL;
	*in->wait_tail = j;
	in->wait_tail = &j->next;
}

/* Write the jobs to a dump file (or count them lost) and free them. */
static void
in_dump(struct send *s, struct sjob *list, const char *why)
{
	struct stdin_mode *in = s->in;
	struct dump_file f;
	struct sjob *j, *next;
	unsigned long long events = 0;
	char err[512];
	int ok = 0, rc;

	if (list == NULL)
		return;
	for (j = list; j; j = j->next) {
		events += j->b->count;
		s->io.dead_chunks++;	/* dumped or lost: not delivered */
	}
	s->io.dead_events += events;
	if (in->dump_dir && dump_open(&f, in->dump_dir, err, sizeof err) == 0) {
		ok = 1;
		for (j = list; j && ok; j = j->next)
			if (dump_add(&f, j->b) == -1) {
				snprintf(err, sizeof err, "%s/%s: %s",
				    in->dump_dir, f.tmp, strerror(errno));
				dump_abort(&f);
				ok = 0;
			}
		if (ok && (rc = dump_commit(&f, err, sizeof err)) != 0) {
			if (rc == 1)
				log_warn("%s: %s", in->dump_dir, err);
			else
				ok = 0;
		}
	}
	if (ok) {
		log_warn("%s: %llu events dumped to %s/%s", why, events,
		    in->dump_dir, f.name);
		in->dumped += events;
		in->dumps++;
	} else {
		if (in->dump_dir)
			log_error("cannot dump: %s", err);
		log_error("%s: %llu events lost%s", why, events,
		    in->dump_dir ? "" : " (no --dump-dir)");
		in->lost += events;
	}
	for (j = list; j; j = next) {
		next = j->next;
		in_free(s, j);
	}
}

static void
in_take_one(void *ctx, void *arg, size_t count)
{
	struct send *s = ctx;

	(void)count;
	in_queue(s, arg, 0);
}

/* Everything unacked or unsent, to the dump. */
static void
in_dump_all(struct send *s, const char *why)
{
	struct stdin_mode *in = s->in;
	struct dump_batch *b;
	struct sjob *list;
	int i;

	for (i = 0; i < s->nserver; i++)
		hop_take(s->srv[i].hop, in_take_one, s);
	dump_pool_close_all(&in->pool);
	while ((b = dump_pool_take(&in->pool)) != NULL) {
		struct sjob *j = calloc(1, sizeof *j);

		if (j == NULL)
			log_fatal(EX_OSERR, "out of memory");
		j->s = s;
		j->b = b;
		j->gzfd = -1;
		in_queue(s, j, 0);
	}
	list = in->wait;
	in->wait = NULL;
	in->wait_tail = &in->wait;
	in_dump(s, list, why);
}

/* The waiting batches to the dump. */
static void
in_dump_wait(struct send *s, const char *why)
{
	struct sjob *list = s->in->wait;

	s->in->wait = NULL;
	s->in->wait_tail = &s->in->wait;
	in_dump(s, list, why);
}

static void in_check(struct send *s);

/* A batch no server took (e: errno from route): it waits for the retry,
 * at the front of the queue if it was taken from there.  Called from
 * hop callbacks too: no hop_take here, and no routing. */
static void
in_unsent(struct send *s, struct sjob *j, int e, int front)
{
	struct stdin_mode *in = s->in;
	struct sjob *one;
	double now = ev_now(s->loop);

	if (e == EMSGSIZE) {	/* no server will ever take it */
		j->next = NULL;
		one = j;
		in_dump(s, one, "a batch too large to send");
		return;
	}
	in_queue(s, j, front);
	if (e == EAGAIN)	/* a window is full: an ack pumps again */
		return;
	if (ev_is_active(&in->retry_t))	/* this round has failed already */
		return;
	if (retry_failed(&in->rst, &s->cc.retry, now,
	    arc4random() / 4294967296.0) == 1) {
		log_warn("retry limit reached after %lld retries",
		    in->rst.steps);
		retry_reset(&in->rst);
		in_dump_wait(s, "retry limit reached");
		in_check(s);
		return;
	}
	s->io.out_retries++;
	ev_timer_set(&in->retry_t, retry_next(&in->rst) - now > 0 ?
	    retry_next(&in->rst) - now : 0, 0);
	ev_timer_start(s->loop, &in->retry_t);
}

static void
in_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	in_pump(w->data);
}

static void
in_watch(struct send *s)
{
	struct stdin_mode *in = s->in;
	int want = !in->eof && !in->stopping && !dump_pool_full(&in->pool);

	if (want && !in->reading)
		ev_io_start(s->loop, &in->in_w);
	else if (!want && in->reading)
		ev_io_stop(s->loop, &in->in_w);
	in->reading = want;
}

/* Closed batches onto servers; stop when everything is done. */
static void
in_pump(struct send *s)
{
	struct stdin_mode *in = s->in;
	struct dump_batch *b;
	struct sjob *j;
	char err[512];
	int e;

	while ((b = dump_pool_take(&in->pool)) != NULL) {
		if ((j = calloc(1, sizeof *j)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		j->s = s;
		j->b = b;
		j->gzfd = -1;
		in_queue(s, j, 0);
	}
	while (!ev_is_active(&in->retry_t) && (j = in->wait) != NULL) {
		if ((in->wait = j->next) == NULL)
			in->wait_tail = &in->wait;
		if (route(s, j, NULL, err, sizeof err) == -1) {
			e = errno;
			if (e != EAGAIN)
				s->io.out_errors++;
			log_debug("stdin batch: %s", err);
			in_unsent(s, j, e, 1);
			if (e == EAGAIN || ev_is_active(&in->retry_t))
				break;
		}
	}
	in_check(s);
}

/* Read stdin if there is room; stop once everything is done. */
static void
in_check(struct send *s)
{
	struct stdin_mode *in = s->in;

	in_watch(s);
	if ((in->eof || in->stopping) && in->pool.batches == 0)
		ev_break(s->loop, EVBREAK_ONE);
}

static void
in_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct send *s = w->data;
	struct stdin_mode *in = s->in;
	struct stream_batch b;
	unsigned char *p;
	size_t avail, got = 0;
	ssize_t n;
	int rc;

	(void)loop;
	(void)revents;
	while (!dump_pool_full(&in->pool) && got < STDIN_BATCH) {
		if ((p = stream_reader_space(&in->rd, 65536, &avail)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		if ((n = read(STDIN_FILENO, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_error("stdin: %s", strerror(errno));
			in->bad = in->eof = 1;
			break;
		}
		if (n == 0) {
			in->eof = 1;
			if (stream_reader_end(&in->rd) != 0) {
				in->bad = 1;
				log_error("stdin: offset %llu: %s",
				    (unsigned long long)in->rd.err_off,
				    in->rd.err);
			}
			break;
		}
		got += (size_t)n;
		stream_reader_wrote(&in->rd, (size_t)n);
		while ((rc = stream_reader_next(&in->rd, &b)) != 0) {
			if (rc == 1) {
				if (b.invalid) {
					in->bad = 1;
					LOG_WARN_LIMITED("stdin: offset %llu: "
					    "%zu invalid events dropped",
					    (unsigned long long)b.offset,
					    b.invalid);
				}
				if (b.count > 0 && dump_pool_add(&in->pool,
				    b.tag, b.taglen, b.entries, b.len,
				    b.count) == -1)
					log_fatal(EX_OSERR, "out of memory");
				continue;
			}
			if (rc == STREAM_AGAIN)
				continue;
			in->bad = 1;
			if (rc == STREAM_EFRAME) {
				/* the stream is lost: what came before goes */
				log_error("stdin: offset %llu: %s",
				    (unsigned long long)in->rd.err_off,
				    in->rd.err);
				in->eof = 1;
				break;
			}
			LOG_WARN_LIMITED("stdin: offset %llu: %s",
			    (unsigned long long)in->rd.err_off, in->rd.err);
		}
		if (in->eof)
			break;
	}
	stream_reader_trim(&in->rd, STREAM_KEEP);
	/* what came so far goes out before waiting for more */
	dump_pool_close_all(&in->pool);
	in_pump(s);
}

static void
in_shut(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct send *s = w->data;

	(void)revents;
	in_dump_all(s, "shutdown timeout");
	ev_break(loop, EVBREAK_ONE);
}

/* TERM: read no more; wait --shutdown-timeout for the acks, then dump. */
static void
in_stop(struct send *s)
{
	struct stdin_mode *in = s->in;

	if (in->stopping)
		return;
	in->stopping = 1;
	log_info("stopping: %zu batches unacked", in->pool.batches);
	dump_pool_close_all(&in->pool);
	ev_timer_set(&in->shut_t, s->cc.shutdown_timeout, 0);
	ev_timer_start(s->loop, &in->shut_t);
	in_pump(s);
}

/* The exit status of stdin mode: see lf-send(1), STDIN MODE. */
static int
in_run(struct send *s)
{
	struct stdin_mode *in = s->in;
	struct stream_limits lim;
	struct hop_stats st;
	int fl, rc, i;

	stream_limits_default(&lim);
	stream_reader_init(&in->rd, &lim);
	dump_pool_init(&in->pool, in->limit, STDIN_BATCH);
	in->wait_tail = &in->wait;
	if ((fl = fcntl(STDIN_FILENO, F_GETFL)) != -1)
		(void)fcntl(STDIN_FILENO, F_SETFL, fl | O_NONBLOCK);
	ev_io_init(&in->in_w, in_read, STDIN_FILENO, EV_READ);
	in->in_w.data = s;
	ev_timer_init(&in->retry_t, in_retry, 0, 0);
	in->retry_t.data = s;
	ev_timer_init(&in->shut_t, in_shut, 0, 0);
	in->shut_t.data = s;
	in_watch(s);
	ev_run(s->loop, 0);
	ev_io_stop(s->loop, &in->in_w);
	ev_timer_stop(s->loop, &in->retry_t);
	ev_timer_stop(s->loop, &in->shut_t);
	if (in->pool.batches > 0)	/* a second break: never expected */
		in_dump_all(s, "exit");
	if (fl != -1)
		(void)fcntl(STDIN_FILENO, F_SETFL, fl);
	stream_reader_free(&in->rd);
	dump_pool_free(&in->pool);
	for (i = 0; i < s->nserver; i++) {
		hop_get_stats(s->srv[i].hop, &st);
		if (st.established > 0)
			s->reached = 1;
	}
	if (in->dumped || in->lost)
		rc = s->reached ? EX_TEMPFAIL : EX_UNAVAILABLE;
	else
		rc = in->bad ? EX_DATAERR : 0;
	log_info("stdin: %llu events delivered, %llu dumped in %llu files, "
	    "%llu lost%s", s->events, in->dumped, in->dumps, in->lost,
	    in->bad ? ", bad input" : "");
	return rc;
}

/* ---- options ---- */

static void
parse_server(struct send *s, char *spec, int standby)
{
	struct server *v;
	char *p = spec, *k, err[256];

	if (s->nserver == MAXSERVERS)
		log_fatal(EX_USAGE, "--server: at most %d servers", MAXSERVERS);
	v = &s->srv[s->nserver++];
	v->s = s;
	v->weight = 60;
	v->standby = standby;
	v->up = 1;
	v->probe_fd = -1;
	k = strsep(&p, ",");
	if (dial_parse(&v->addr, k, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--server: %s: '%s'", err, k);
	v->given = k;		/* in argv */
	memcpy(v->name, v->addr.desc, sizeof v->name);	/* both 400 */
	while (!standby && (k = strsep(&p, ",")) != NULL) {
		if (strncmp(k, "name=", 5) == 0 && k[5] != '\0' &&
		    strlen(k + 5) < sizeof v->name) {
			snprintf(v->name, sizeof v->name, "%s", k + 5);
			v->named = 1;
		} else if (strncmp(k, "shared-key-file=", 16) == 0 &&
		    k[16] != '\0')
			v->keyfile = k + 16;
		else if (strncmp(k, "username=", 9) == 0 && k[9] != '\0')
			v->username = k + 9;
		else if (strncmp(k, "password-file=", 14) == 0 &&
		    k[14] != '\0')
			v->pwfile = k + 14;
		else if (strncmp(k, "weight=", 7) == 0)
			v->weight = (unsigned)conf_opt_uint("server weight",
			    k + 7, 1000000);
		else if (strcmp(k, "standby") == 0)
			v->standby = 1;
		else
			log_fatal(EX_USAGE, "--server: unknown parameter "
			    "'%s' (want weight=N, standby, name=NAME, "
			    "shared-key-file=FILE, username=NAME or "
			    "password-file=FILE)", k);
	}
	if (v->weight == 0)
		log_fatal(EX_USAGE, "--server: weight=0: at least 1");
}

/* One resolver for every server's connections and heartbeats, so a
 * name is looked up once for all of them.  A caller waits for a lookup
 * at most RESOLVE_WAIT, or half the connect timeout when that is less,
 * so that the resolver's "no answer" is what is logged, once, rather
 * than a connect timeout per retry. */
#define RESOLVE_WAIT	10.0

static void
resolver_setup(struct send *s)
{
	struct server *v;
	int i;

	s->rc.timeout = s->hc.connect_timeout / 2 < RESOLVE_WAIT ?
	    s->hc.connect_timeout / 2 : RESOLVE_WAIT;
	if ((s->res = resolve_new(s->loop, &s->rc)) == NULL)
		log_fatal(EX_OSERR, "resolver: %s", strerror(errno));
	for (i = 0; i < s->nserver; i++) {
		v = &s->srv[i];
		v->hl.addr.res = v->pl.addr.res = s->res;
		v->hl.addr.round_robin = v->pl.addr.round_robin = s->dns_rr;
	}
}

static void
secret_or_die(struct secret *sec, const char *path)
{
	char err[512];

	if (secret_read(sec, path, err, sizeof err) == -1)
		log_fatal(EX_CONFIG, "%s", err);
}

/* One stack of layers to v: socket, then TLS, then the handshake. */
static void
link_init(struct send *s, struct server *v, struct link *l,
    const struct dial_ops **ops, void **ctx)
{
	const char *host = NULL;

	l->addr = v->addr;
	*ops = &dial_sock_ops;
	*ctx = &l->addr;
	if (s->tls) {
		/* Fluentd checks the certificate against the server's
		 * name when it has one, else its host */
		if (s->tc.verify_hostname)
			host = v->named ? v->name : v->addr.host;
		tls_dial_init(&l->tls, s->tctx, host, *ops, *ctx);
		*ops = &tls_dial_ops;
		*ctx = &l->tls;
	}
	if (v->hsc.shared_key != NULL) {
		hs_dial_init(&l->hs, &v->hsc, *ops, *ctx);
		*ops = &hs_dial_ops;
		*ctx = &l->hs;
	}
}

/* The secrets and layers of every server, once the options are known.
 * A server's own shared-key-file=, username=, password-file= win over
 * the global options. */
static void
servers_setup(struct send *s)
{
	struct server *v;
	char err[512];
	int i;

	if (s->tls && (s->tctx = tls_client_new(&s->tc, err,
	    sizeof err)) == NULL)
		log_fatal(EX_CONFIG, "--transport tls: %s", err);
	if (s->self_hostname == NULL) {
		if (gethostname(s->hostname, sizeof s->hostname) == -1)
			log_fatal(EX_OSERR, "gethostname: %s",
			    strerror(errno));
		s->hostname[sizeof s->hostname - 1] = '\0';
		s->self_hostname = s->hostname;
	}
	for (i = 0; i < s->nserver; i++) {
		v = &s->srv[i];
		if (v->keyfile == NULL)
			v->keyfile = s->keyfile;
		if (v->username == NULL)
			v->username = s->username;
		if (v->pwfile == NULL)
			v->pwfile = s->pwfile;
		if ((v->username == NULL) != (v->pwfile == NULL))
			log_fatal(EX_USAGE, "%s: a username needs a "
			    "password file, and a password file a username",
			    v->name);
		if (v->username != NULL && v->keyfile == NULL)
			log_fatal(EX_USAGE, "%s: user auth needs a shared "
			    "key file (it is part of the handshake)", v->name);
		if (s->tls && s->tc.verify_hostname && !v->named &&
		    v->addr.unix_)
			log_fatal(EX_USAGE, "%s: TLS over a unix socket needs "
			    "name=NAME to check the certificate against",
			    v->name);
		if (v->keyfile != NULL) {
			secret_or_die(&v->key, v->keyfile);
			v->hsc.shared_key = &v->key;
			v->hsc.self_hostname = s->self_hostname;
			if (v->username != NULL) {
				secret_or_die(&v->pw, v->pwfile);
				v->hsc.username = v->username;
				v->hsc.password = &v->pw;
			}
		}
		link_init(s, v, &v->hl, &v->ops, &v->dctx);
		link_init(s, v, &v->pl, &v->pops, &v->pctx);
		/* a refusal is one line, met by a chunk or a heartbeat */
		if (s->tls)
			tls_dial_share_log(&v->pl.tls, &v->hl.tls);
		if (v->hsc.shared_key != NULL)
			hs_dial_share_log(&v->pl.hs, &v->hl.hs);
	}
}

static void
servers_free(struct send *s)
{
	int i;

	for (i = 0; i < s->nserver; i++) {
		secret_free(&s->srv[i].key);
		secret_free(&s->srv[i].pw);
	}
	tls_ctx_free(s->tctx);
}

static const struct conf_name hb_names[] = {
	{ "transport", HB_TRANSPORT }, { "tcp", HB_TRANSPORT },
	{ "udp", HB_UDP }, { "none", HB_NONE }, { NULL, 0 }
};

static const struct conf_name transport_names[] = {
	{ "tcp", 0 }, { "tls", 1 }, { NULL, 0 }
};

static const struct conf_name compress_names[] = {
	{ "text", 0 }, { "gzip", 1 }, { NULL, 0 }
};

static void
parse_args(struct send *s, int argc, char **argv)
{
	enum { O_SERVER = 256, O_STANDBY, O_RECOVER, O_HBTYPE, O_HBINT, O_PHI,
		O_PHITHR, O_HARD, O_STATE, O_ACK, O_COMPRESS, O_ACKTIME, O_SENDTIME,
		O_CONNTIME, O_SHUTTIME, O_NOTIFY, O_LOG, O_VERSION, O_TRANSPORT,
		O_TLSCA, O_TLSVERIFY, O_TLSCERT, O_TLSKEY, O_KEYFILE, O_SELF,
		O_USER, O_PWFILE, O_KEEPALIVE, O_KATIME, O_BUFLIMIT, O_DUMPDIR,
		O_DNSEXPIRE, O_DNSRR };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "standby", required_argument, NULL, O_STANDBY },
		{ "recover-wait", required_argument, NULL, O_RECOVER },
		{ "heartbeat-type", required_argument, NULL, O_HBTYPE },
		{ "heartbeat-interval", required_argument, NULL, O_HBINT },
		{ "phi-failure-detector", optional_argument, NULL, O_PHI },
		{ "phi-threshold", required_argument, NULL, O_PHITHR },
		{ "hard-timeout", required_argument, NULL, O_HARD },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "require-ack-response", optional_argument, NULL, O_ACK },
		{ "compress", required_argument, NULL, O_COMPRESS },
		{ "ack-response-timeout", required_argument, NULL, O_ACKTIME },
		{ "send-timeout", required_argument, NULL, O_SENDTIME },
		{ "connect-timeout", required_argument, NULL, O_CONNTIME },
		{ "shutdown-timeout", required_argument, NULL, O_SHUTTIME },
		{ "notify-fd", required_argument, NULL, O_NOTIFY },
		{ "log-file", required_argument, NULL, O_LOG },
		{ "transport", required_argument, NULL, O_TRANSPORT },
		{ "tls-ca-path", required_argument, NULL, O_TLSCA },
		{ "tls-verify-hostname", required_argument, NULL, O_TLSVERIFY },
		{ "tls-cert-path", required_argument, NULL, O_TLSCERT },
		{ "tls-private-key-path", required_argument, NULL, O_TLSKEY },
		{ "shared-key-file", required_argument, NULL, O_KEYFILE },
		{ "self-hostname", required_argument, NULL, O_SELF },
		{ "username", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "keepalive-timeout", required_argument, NULL, O_KATIME },
		{ "buffer-limit", required_argument, NULL, O_BUFLIMIT },
		{ "dump-dir", required_argument, NULL, O_DUMPDIR },
		{ "expire-dns-cache", required_argument, NULL, O_DNSEXPIRE },
		{ "dns-round-robin", required_argument, NULL, O_DNSRR },
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
		case O_SERVER: parse_server(s, optarg, 0); break;
		case O_STANDBY: parse_server(s, optarg, 1); break;
		case O_RECOVER:
			s->recover_wait = conf_opt_duration("recover-wait",
			    optarg);
			break;
		case O_HBTYPE:
			s->hb_type = conf_opt_enum("heartbeat-type", optarg,
			    hb_names);
			break;
		case O_HBINT:
			s->hb_interval = conf_opt_duration("heartbeat-interval",
			    optarg);
			break;
		case O_PHI:
			s->phi_on = conf_opt_bool("phi-failure-detector", optarg);
			break;
		case O_PHITHR:
			s->phi_threshold = conf_opt_number("phi-threshold",
			    optarg);
			break;
		case O_HARD:
			s->hard_timeout = conf_opt_duration("hard-timeout",
			    optarg);
			break;
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
		case O_TRANSPORT:
			s->tls = conf_opt_enum("transport", optarg,
			    transport_names);
			break;
		case O_TLSCA: s->tc.ca_path = optarg; break;
		case O_TLSVERIFY:
			s->tc.verify_hostname = conf_opt_bool(
			    "tls-verify-hostname", optarg);
			break;
		case O_TLSCERT: s->tc.cert_path = optarg; break;
		case O_TLSKEY: s->tc.key_path = optarg; break;
		case O_KEYFILE: s->keyfile = optarg; break;
		case O_SELF: s->self_hostname = optarg; break;
		case O_USER: s->username = optarg; break;
		case O_PWFILE: s->pwfile = optarg; break;
		case O_KEEPALIVE:
			s->hc.close_idle = !conf_opt_bool("keepalive", optarg);
			break;
		case O_KATIME:
			s->hc.idle_timeout = conf_opt_duration(
			    "keepalive-timeout", optarg);
			break;
		case O_BUFLIMIT:
			s->in->limit = conf_opt_size("buffer-limit", optarg);
			break;
		case O_DUMPDIR: s->in->dump_dir = optarg; break;
		case O_DNSEXPIRE:
			s->rc.expire = conf_opt_duration("expire-dns-cache",
			    optarg);
			break;
		case O_DNSRR:
			s->dns_rr = conf_opt_bool("dns-round-robin", optarg);
			break;
		case O_STATE:
			free(s->state_file);
			if ((s->state_file = strdup(optarg)) == NULL)
				log_fatal(EX_OSERR, "out of memory");
			break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-send " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc - 1)
		usage(EX_USAGE);
	if (strcmp(argv[optind], "-") != 0) {
		if (s->in->dump_dir || s->in->limit != STDIN_LIMIT)
			log_fatal(EX_USAGE, "--buffer-limit and --dump-dir are "
			    "for stdin mode (-)");
		s->in = NULL;
	} else if (s->in->limit < 65536)
		log_fatal(EX_USAGE, "--buffer-limit: at least 64k");
	if (s->nserver == 0)
		log_fatal(EX_USAGE, "--server: at least one is needed");
	if (!(s->recover_wait >= 0))
		log_fatal(EX_USAGE, "--recover-wait: 0 or more");
	if (!(s->hb_interval >= 0.01))
		log_fatal(EX_USAGE, "--heartbeat-interval: at least 0.01s");
	if (!(s->hard_timeout > 0))
		log_fatal(EX_USAGE, "--hard-timeout: more than 0");
	if (!(s->phi_threshold > 0))
		log_fatal(EX_USAGE, "--phi-threshold: more than 0");
	if (consume_conf_check(&s->cc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
	/* as Fluentd: a udp heartbeat goes to one address of a name, so
	 * it would judge one host while chunks go to the others */
	if (s->dns_rr && s->hb_type == HB_UDP)
		log_fatal(EX_USAGE, "--dns-round-robin: needs --heartbeat-type "
		    "transport or none");
	if (!s->tls && (s->tc.ca_path || s->tc.cert_path || s->tc.key_path))
		log_fatal(EX_USAGE, "--tls-*: only with --transport tls");
	if ((s->tc.cert_path == NULL) != (s->tc.key_path == NULL))
		log_fatal(EX_USAGE, "--tls-cert-path and --tls-private-key-path "
		    "go together");
	/* every chunk claimed fits in the window: hop_send never says
	 * HOP_FULL, consume's flush_thread_count is the bound */
	s->hc.window_batches = s->in ? STDIN_WINDOW :
	    s->cc.flush_thread_count;
	s->hc.window_bytes = SIZE_MAX / 2;
	s->hc.max_message = UINT32_MAX;
	if (hop_conf_check(&s->hc, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "%s", err);
}

int
main(int argc, char **argv)
{
	static struct send s;
	static struct stdin_mode in;
	struct hop_cbs cbs = { NULL, acked, gaveup, NULL, failed };
	struct server *v;
	struct sig sig;
	char err[512];
	int i, rc;

	log_init(argv[0]);
	consume_conf_default(&s.cc);
	hop_conf_default(&s.hc);
	s.hc.no_ack = 1;	/* out_forward's default: no acks */
	s.notify_fd = -1;
	s.recover_wait = 10;	/* Fluentd's defaults */
	s.hb_interval = 1;
	s.hard_timeout = 60;
	s.phi_threshold = 16;
	s.phi_on = 1;
	tls_conf_default(&s.tc);
	resolve_conf_default(&s.rc);	/* expire -1: Fluentd's nil */
	s.in = &in;
	in.limit = STDIN_LIMIT;
	parse_args(&s, argc, argv);
	if (s.logfile && log_open(s.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", s.logfile, strerror(errno));
	if (s.in == NULL && spool_open(&s.spool, argv[optind], 0, err,
	    sizeof err) == -1)
		log_fatal(EX_NOINPUT, "%s", err);
	servers_setup(&s);
	s.loop = EV_DEFAULT;
	if (s.in == NULL && s.state_file == NULL && asprintf(&s.state_file, "%s/state/send",
	    s.spool.path) == -1)
		log_fatal(EX_OSERR, "out of memory");
	resolver_setup(&s);
	for (i = 0; i < s.nserver; i++) {
		v = &s.srv[i];
		cbs.ctx = v;
		if ((v->hop = hop_new(s.loop, &s.hc, v->ops, v->dctx,
		    &cbs)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		ev_io_init(&v->probe_w, probe_io, -1, EV_WRITE);
		v->probe_w.data = v;
		phi_init(&v->phi, s.hb_interval, ev_now(s.loop));
	}
	if (s.hb_type == HB_UDP)
		udp_setup(&s);
	ev_timer_init(&s.hb_t, hb_round, 0, s.hb_interval);
	s.hb_t.data = &s;
	if (s.hb_type != HB_NONE)
		ev_timer_again(s.loop, &s.hb_t);
	ev_timer_init(&s.state_t, state_timer, 0, 1);
	s.state_t.data = &s;
	if (s.state_file)	/* in stdin mode only with --state-file */
		ev_timer_again(s.loop, &s.state_t);
	if (s.in == NULL && (s.consume = consume_new(s.loop, &s.spool, &s.cc,
	    deliver, cancel, &s)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	if (s.in == NULL)
		consume_set_metrics(s.consume, "forward", metrics_servers);
	else if (s.cc.metrics_file) {
		s.io.output = 1;
		s.io.type = "forward";
		if (metrics_writer_start(&s.mw, s.loop, s.cc.metrics_file,
		    log_prog, s.cc.metrics_interval, metrics_stdin, &s) == -1)
			log_fatal(EX_OSERR, "out of memory");
	}
	sig_start(&sig, s.loop, &send_sig_actions, &s);
	if (s.in == NULL && consume_start(s.consume) == -1)
		log_fatal(EX_IOERR, "%s/new: cannot list it", s.spool.path);
	if (s.notify_fd >= 0) {
		(void)!write(s.notify_fd, "\n", 1);
		close(s.notify_fd);
	}
	log_info("ready: %s to %d servers%s%s", s.in ? "stdin" :
	    s.spool.path, s.nserver, s.hc.no_ack ? "" : ", with acks",
	    s.hc.gzip ? ", gzip" : "");
	if (s.in) {
		rc = in_run(&s);
		metrics_writer_finish(&s.mw);	/* the final counts */
	} else {
		ev_run(s.loop, 0);
		rc = consume_status(s.consume);
	}
	sig_stop(&sig);
	log_info("stats: chunks=%llu events=%llu bytes=%llu retries=%llu",
	    s.chunks, s.events, s.bytes, s.retries);
	log_limit_summary();
	ev_timer_stop(s.loop, &s.state_t);
	if (s.state_file)
		state_write(&s);
	free(s.state_file);
	for (i = 0; i < s.nserver; i++) {
		v = &s.srv[i];
		log_info("%s: %s, %llu chunks", v->name, v->up ? "up" : "down",
		    v->chunks);
		hop_take(v->hop, forget, &s);
		hop_free(v->hop);
		probe_end(v);
	}
	ev_timer_stop(s.loop, &s.hb_t);
	if (s.hb_type == HB_UDP) {
		ev_io_stop(s.loop, &s.udp4_w);
		ev_io_stop(s.loop, &s.udp6_w);
		if (s.udp4 != -1)
			close(s.udp4);
		if (s.udp6 != -1)
			close(s.udp6);
	}
	if (s.in == NULL) {
		consume_free(s.consume);
		spool_close(&s.spool);
	}
	servers_free(&s);
	resolve_free(s.res);
	return rc;
}
