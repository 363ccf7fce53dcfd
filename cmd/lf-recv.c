/* lf-recv: the forward protocol's server (Fluentd's in_forward).
 *
 * lf-recv [options] [--listen [ADDR:]PORT|unix:PATH]... [--to unix:PATH]
 *
 * Accepts forward-protocol messages (every mode, JSON mode, TLS, the
 * shared-key handshake) from any number of clients on one libev loop
 * (lib/ingest, lib/serve), answers UDP heartbeats on each TCP port, and
 * passes the events on: over the acknowledged hop to lf-buffer (--to;
 * lib/hop), a client's chunk acked only once lf-buffer acked it, or to
 * stdout as a stream.  Downstream slow or gone: the batch is held and its
 * connection no longer read (back pressure), never buffered without
 * bound. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>
#include <msgpack.h>
#include <yajl/yajl_gen.h>
#include <zlib.h>

#include "buf.h"
#include "conf.h"
#include "dial.h"
#include "handshake.h"
#include "heartbeat.h"
#include "hop.h"
#include "httpin.h"
#include "ingest.h"
#include "io.h"
#include "log.h"
#include "match.h"
#include "metrics.h"
#include "report.h"
#include "resolve.h"
#include "secret.h"
#include "serve.h"
#include "sig.h"
#include "sock.h"
#include "stream.h"
#include "tls.h"

#define USAGE "usage: lf-recv [-v] [--listen [ADDR:]PORT|unix:PATH ...] [--to unix:PATH]\n" \
	"               [--notify-fd N] [--state-file PATH] [--log-file PATH]\n" \
	"               [--add-tag-prefix PREFIX] [--source-address-key KEY]\n" \
	"               [--source-hostname-key KEY] [--resolve-hostname BOOL]\n" \
	"               [--match PATTERN ...] [--http [ADDR:]PORT ...]\n" \
	"               [--http-body-size-limit SIZE] [--http-keepalive-timeout TIME]\n" \
	"               [--http-request-timeout TIME] [--http-max-connections N]\n" \
	"               [--http-decompression-size-limit SIZE] [--http-max-memory SIZE]\n" \
	"               [--http-max-header-size SIZE] [--http-max-url-size SIZE]\n" \
	"               [--add-http-headers[=BOOL]] [--add-remote-addr[=BOOL]]\n" \
	"               [--add-query-params[=BOOL]] [--use-204-response[=BOOL]]\n" \
	"               [--respond-with-empty-img[=BOOL]] [--cors-allow-origins LIST]\n" \
	"               [--cors-allow-credentials[=BOOL]]\n" \
	"               [--chunk-size-limit SIZE] [--chunk-size-warn-limit SIZE]\n" \
	"               [--skip-invalid-event BOOL] [--deny-keepalive BOOL]\n" \
	"               [--send-keepalive-packet BOOL] [--linger-timeout TIME]\n" \
	"               [--transport tcp|tls] [--tls-cert-path FILE]\n" \
	"               [--tls-private-key-path FILE] [--tls-ca-path PATH]\n" \
	"               [--tls-client-cert-auth BOOL] [--shared-key-file FILE]\n" \
	"               [--self-hostname NAME] [--user-auth BOOL] [--users-file FILE]\n" \
	"               [--allow CIDR ...] [--allow-anonymous-source BOOL]\n" \
	"               [--max-message-size SIZE] [--max-client-memory SIZE]\n" \
	"               [--message-timeout TIME] [--drain-timeout TIME]\n" \
	"               [--metrics-file PATH] [--metrics-interval TIME]\n"

#define OUT_MAX		((size_t)16 << 20)	/* stdout bytes not yet written */
#define RECV_WINDOW	256	/* messages in flight to lf-buffer */
#define RECV_LOOKUPS	64	/* client addresses being looked up */
#define OUT_TOOBIG	2	/* out_hop: over the hop's message size */
#define DEDUP_SAMPLE	512	/* bytes at each end of a batch in its id */

struct recv;

/* One --listen: its transport, its heartbeat socket, its counters. */
struct lis {
	struct recv *x;
	const char *spec;
	struct serve_conf sc;
	struct ingest_listener *l;
	struct heartbeat *hb;		/* UDP, on a TCP listener's port */
	const char *path;		/* a Unix socket's, removed at exit */
	unsigned long messages, events, bytes, invalid;
	unsigned long oversize, refused;	/* chunk_size_limit; --match */
	uint64_t done_events, done_bytes;	/* passed on and answered */
};

/* A client address whose name is being looked up: its messages wait. */
struct lookup {
	struct recv *x;
	struct sockaddr_storage ss;
	socklen_t len;
	struct resolve_req *req;
};

/* A message handed downstream, its client's answer waiting on it: a
 * forward ack (0: none wanted), or an HTTP request's reply; and what it
 * counts for once it is through. */
struct fwd {
	int http;
	uint64_t ack;			/* ingest_ack_t, or httpin_req_t */
	uint64_t end;			/* stdout: written once out_done >= end */
	size_t count, bytes;		/* its events and their bytes */
	struct lis *li;			/* NULL: HTTP */
};

struct recv {
	struct ev_loop *loop;
	struct ingest in;
	struct stream_limits lim;
	struct lis *lis;
	int nlis;
	const char **listen;
	/* options */
	const char *to, *logfile, *state_file, *prefix, *addr_key, *host_key;
	const char *metrics_path;
	double metrics_interval;
	struct metrics_writer mw;
	int resolve_hostname;		/* -1: not given */
	struct resolve *res;
	struct httpin *http;		/* --http */
	struct httpin_conf http_conf;
	const char **http_listen;
	int nhttp;
	unsigned long http_refused;
	struct buf patterns;		/* --match, joined by spaces */
	struct match *match;
	struct lookup lookups[RECV_LOOKUPS];
	int nlookups;
	size_t chunk_limit, chunk_warn;		/* 0: none */
	int skip_invalid, deny_keepalive, keepalive_packet;
	double linger;
	size_t max_client_memory;
	double message_timeout, drain_timeout, drain_until;
	int notify_fd;
	/* security */
	int use_tls;
	struct tls_conf tc;
	struct tls_ctx *tls;
	const char *key_file, *users_file;
	struct secret key;
	char self[256];
	int user_auth;
	struct hs_user *users;
	struct secret *passwords;
	size_t nusers;
	struct hs_server_conf hs;
	struct serve_net *allow;
	size_t nallow;
	int allow_anonymous;
	/* downstream: the hop, or stdout */
	struct dial_addr addr;
	struct hop_conf hc;
	struct hop *hop;
	struct buf out;
	uint64_t out_total, out_done;
	struct fwd *q;			/* stdout: acks in write order */
	size_t qhead, qlen, qcap;
	ev_io ow;
	struct buf tmp, key_val;
	int stopping, exit_code;
	unsigned long messages, events, acks, oversize, refused;
	unsigned long refused_msgs;
	/* for the metrics: events passed on and answered (acked, or
	 * written to stdout), messages refused, invalid events dropped */
	uint64_t done_events, done_bytes, invalid;
	unsigned long refused_bad;
	double last_event;
	ev_timer state_timer, drain_timer;
	struct sig sig;
};

/* ---- downstream ---- */

static struct lis *
lis_of(struct recv *x)
{
	struct ingest_peer p;

	if (ingest_peer(&x->in, &p) == 0)
		for (int i = 0; i < x->nlis; i++)
			if (x->lis[i].l == p.listener)
				return &x->lis[i];
	return NULL;
}

/* The client's answer: the forward ack released or the HTTP 200; or,
 * when it was not done after all, the ack dropped (the client sends
 * again) or a 503. */
static void
answer(struct recv *x, const struct fwd *f, int ok)
{
	if (ok) {
		x->done_events += f->count;
		x->done_bytes += f->bytes;
		x->last_event = ev_now(x->loop);
		if (f->li) {
			f->li->done_events += f->count;
			f->li->done_bytes += f->bytes;
		}
	}
	if (f->http) {
		httpin_reply(x->http, f->ack, ok);
		return;
	}
	if (f->ack == 0)
		return;
	if (!ok)
		ingest_ack_drop(&x->in, f->ack);
	else if (ingest_ack_release(&x->in, f->ack) == 1)
		x->acks++;
}

/* Room again downstream: what was held is offered again. */
static void
retry_held(struct recv *x)
{
	ingest_retry(&x->in);
	if (x->http)
		httpin_retry(x->http);
}

static void
hop_acked(void *ctx, void *arg, size_t count)
{
	struct recv *x = ctx;
	struct fwd *f = arg;

	(void)count;
	if (f == NULL)
		return;
	answer(x, f, 1);
	free(f);
}

/* lf-recv retries for ever: its clients keep their chunks until acked. */
static void
hop_gaveup(void *ctx, void *arg, size_t count)
{
	struct recv *x = ctx;
	struct fwd *f = arg;

	(void)count;
	if (f == NULL)
		return;
	answer(x, f, 0);
	free(f);
}

static void
hop_room(void *ctx)
{
	retry_held(ctx);
}

/* stdout: answers for what the pipe has taken. */
static void
out_release(struct recv *x)
{
	while (x->qlen > 0 && x->q[x->qhead].end <= x->out_done) {
		answer(x, &x->q[x->qhead], 1);
		x->qhead = (x->qhead + 1) % x->qcap;
		x->qlen--;
	}
	ingest_flush(&x->in);
}

static void
out_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct recv *x = w->data;
	ssize_t n;

	(void)revents;
	while (x->out.len > 0) {
		if ((n = write(STDOUT_FILENO, x->out.p, x->out.len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_error("stdout: %s", strerror(errno));
			x->exit_code = EX_IOERR;
			ev_break(loop, EVBREAK_ALL);
			return;
		}
		buf_consume(&x->out, (size_t)n);
		x->out_done += (uint64_t)n;
	}
	if (x->out.len == 0) {
		ev_io_stop(loop, w);
		buf_shrink(&x->out, 1u << 20);
	} else {
		ev_io_start(loop, w);
	}
	out_release(x);
	if (x->out.len < OUT_MAX / 2)
		retry_held(x);
}

static int
queue_ack(struct recv *x, const struct fwd *a)
{
	size_t cap, i;
	struct fwd *q;

	if (x->qlen == x->qcap) {
		cap = x->qcap ? 2 * x->qcap : 64;
		if ((q = reallocarray(NULL, cap, sizeof *q)) == NULL)
			return -1;
		for (i = 0; i < x->qlen; i++)
			q[i] = x->q[(x->qhead + i) % x->qcap];
		free(x->q);
		x->q = q;
		x->qcap = cap;
		x->qhead = 0;
	}
	x->q[(x->qhead + x->qlen) % x->qcap] = *a;
	x->q[(x->qhead + x->qlen) % x->qcap].end = x->out_total;
	x->qlen++;
	return 0;
}

/* One PackedForward message to stdout, without a chunk: lf-recv's
 * client got (or gets) its ack here, the reader of the pipe none. */
static int
out_stdout(struct recv *x, const char *tag, size_t taglen,
    const unsigned char *e, size_t len, size_t count, const struct fwd *a)
{
	size_t start = x->out.len;

	if (x->out.len >= OUT_MAX)
		return INGEST_HOLD;
	x->tmp.len = 0;
	if (stream_pack_head(&x->out, tag, taglen, len) == -1 ||
	    buf_add(&x->out, e, len) == -1 ||
	    stream_pack_options(&x->tmp, count, NULL, 0) == -1 ||
	    buf_add(&x->out, x->tmp.p, x->tmp.len) == -1)
		goto nomem;
	x->out_total += x->out.len - start;
	if (queue_ack(x, a) == -1) {
		x->out_total -= x->out.len - start;
		x->out.len = start;
		return INGEST_HOLD;
	}
	ev_io_start(x->loop, &x->ow);
	return INGEST_TAKE;
nomem:
	x->out.len = start;
	return INGEST_HOLD;
}

static int
out_hop(struct recv *x, const char *tag, size_t taglen,
    const struct stream_batch *b, const unsigned char *e, size_t len,
    size_t count, const struct fwd *a)
{
	struct hop_id id, *idp = NULL;
	struct fwd *f = NULL;
	int rc;

	if (b != NULL && b->chunk != NULL && a->ack != 0) {
		/* the same chunk sent again is the same batch to lf-buffer's
		 * dedup window: derived from the tag, the client's id and its
		 * entries' size, and a CRC of their first and last bytes (the
		 * first and last events, with their times: a CRC of all of
		 * them would cost a third of a core at full speed), for a
		 * chunk option is only an ack token to a client, and one that
		 * uses the same one for different messages must not see them
		 * dropped as copies */
		size_t k = b->len < DEDUP_SAMPLE ? b->len : DEDUP_SAMPLE;
		uint32_t crc = (uint32_t)crc32_z(crc32_z(0, b->entries, k),
		    b->entries + b->len - k, k);
		uint64_t n = b->len;

		x->tmp.len = 0;
		if (buf_add(&x->tmp, tag, taglen) == -1 ||
		    buf_add(&x->tmp, "", 1) == -1 ||
		    buf_add(&x->tmp, b->chunk, b->chunklen) == -1 ||
		    buf_add(&x->tmp, &n, sizeof n) == -1 ||
		    buf_add(&x->tmp, &crc, sizeof crc) == -1 ||
		    hop_id_derive(&id, x->tmp.p, x->tmp.len) == -1)
			return INGEST_HOLD;
		idp = &id;
	}
	if ((f = malloc(sizeof *f)) == NULL)
		return INGEST_HOLD;
	*f = *a;
	rc = hop_send(x->hop, tag, taglen, e, len, count, idp, f);
	if (rc == HOP_OK)
		return INGEST_TAKE;
	free(f);
	if (rc == -1 && errno == EMSGSIZE)
		return OUT_TOOBIG;
	return INGEST_HOLD;	/* HOP_FULL, or no memory: offered again */
}

static int
out(struct recv *x, const char *tag, size_t taglen, const struct stream_batch *b,
    const unsigned char *e, size_t len, size_t count, const struct fwd *a)
{
	if (x->hop)
		return out_hop(x, tag, taglen, b, e, len, count, a);
	return out_stdout(x, tag, taglen, e, len, count, a);
}

/* ---- the batch: checks, then downstream ---- */

/* Fluentd's in_forward drops a request over chunk_size_limit without an
 * ack, so its sender re-sends it for ever.  lf-recv acks it and drops
 * it, with an error naming the client, the tag and the size: the sender
 * moves on, and the operator sees exactly what was let go. */
static int
too_big(struct recv *x, struct lis *li, const struct stream_batch *b)
{
	char host[64] = "";
	struct ingest_peer p;

	if (ingest_peer(&x->in, &p) == 0)
		(void)ingest_peer_host(&p, host, sizeof host);
	if (x->chunk_limit && b->msglen > x->chunk_limit) {
		LOG_WARN_LIMITED("%s: tag %.*s: a message of %zu bytes (%zu "
		    "events) is over --chunk-size-limit %zu: dropped and acked",
		    host[0] ? host : "unix", (int)(b->taglen > 128 ? 128 :
		    b->taglen), b->tag, b->msglen, b->count, x->chunk_limit);
		x->oversize += b->count;
		if (li)
			li->oversize += b->count;
		return 1;
	}
	if (x->chunk_warn && b->msglen > x->chunk_warn)
		LOG_WARN_LIMITED("%s: tag %.*s: a message of %zu bytes is over "
		    "--chunk-size-warn-limit %zu", host[0] ? host : "unix",
		    (int)(b->taglen > 128 ? 128 : b->taglen), b->tag, b->msglen,
		    x->chunk_warn);
	return 0;
}

/* Its events (decompressed, with --source-address-key) are more than
 * the hop carries: refused without an ack, the client would send it again
 * for ever; so, as over --chunk-size-limit, it is acked and dropped. */
static int
too_big_out(struct recv *x, struct lis *li, const struct stream_batch *b,
    size_t len, ingest_ack_t a)
{
	LOG_WARN_LIMITED("tag %.*s: a message whose %zu events come to %zu bytes, "
	    "more than --max-message-size %zu: dropped and acked",
	    (int)(b->taglen > 128 ? 128 : b->taglen), b->tag, b->count, len,
	    x->hc.max_message);
	x->oversize += b->count;
	if (li)
		li->oversize += b->count;
	if (a != 0 && ingest_ack_release(&x->in, a) == 1)
		x->acks++;
	return INGEST_TAKE;
}

/* Acked at once: a message let go for good (over the size limit, or no
 * pattern matched) would be sent again for ever if it were not. */
static int
ack_now(struct recv *x, const struct stream_batch *b)
{
	ingest_ack_t a = ingest_ack_defer(&x->in, b);

	if (a == INGEST_ACK_FAIL)
		return INGEST_HOLD;
	if (a != 0 && ingest_ack_release(&x->in, a) == 1)
		x->acks++;
	return INGEST_TAKE;
}

/* A tag that matches no --match pattern is dropped at the door, and
 * acked so that its client does not send it again for ever (the events
 * of another environment, say); Fluentd's "no patterns matched", logged
 * on its schedule and counted. */
static int
refused(struct recv *x, struct lis *li, const struct stream_batch *b,
    const struct buf *tag)
{
	char t[LOG_TAG_MAX];
	unsigned long c = ++x->refused_msgs;

	x->refused += b->count;
	if (li)
		li->refused += b->count;
	if (log_nth(c)) {
		log_tag(t, (const char *)tag->p, tag->len);
		log_warn("no patterns matched tag=\"%s\": %zu events dropped "
		    "(%lu messages, %lu events so far)", t, b->count, c,
		    x->refused);
	}
	return ack_now(x, b);
}

/* The tag, with --add-tag-prefix. */
static int
tag_of(struct recv *x, const struct stream_batch *b, struct buf *t)
{
	t->len = 0;
	if (x->prefix && (buf_add(t, x->prefix, strlen(x->prefix)) == -1 ||
	    buf_add(t, ".", 1) == -1))
		return -1;
	return buf_add(t, b->tag, b->taglen);
}

static void
looked_up(void *arg, const char *host, int resolved)
{
	struct lookup *l = arg;
	struct recv *x = l->x;

	(void)host;
	(void)resolved;	/* in the cache now, name or numeric */
	l->req = NULL;
	x->nlookups--;
	ingest_retry(&x->in);
}

/* The client's host name for --source-hostname-key: from the cache, or
 * 1 when its lookup is under way (the message waits: HOLD). */
static int
host_name(struct recv *x, const struct ingest_peer *p, char *host, size_t n)
{
	struct lookup *l;
	int i;

	if (p->addr == NULL || p->addr->sa_family == AF_UNIX) {
		host[0] = '\0';
		return 0;
	}
	if (resolve_reverse_cached(x->res, p->addr, p->addrlen, host, n) == 1)
		return 0;
	for (i = 0; i < RECV_LOOKUPS; i++)
		if (x->lookups[i].req && x->lookups[i].len == p->addrlen &&
		    memcmp(&x->lookups[i].ss, p->addr, p->addrlen) == 0)
			return 1;
	for (i = 0; i < RECV_LOOKUPS && x->lookups[i].req; i++)
		;
	if (i < RECV_LOOKUPS) {
		l = &x->lookups[i];
		l->x = x;
		memcpy(&l->ss, p->addr, p->addrlen);
		l->len = p->addrlen;
		if ((l->req = resolve_reverse(x->res, p->addr, p->addrlen,
		    looked_up, l)) != NULL) {
			x->nlookups++;
			return 1;
		}
	}
	/* too many lookups at once: the numeric address, as on a failure */
	return ingest_peer_host(p, host, n) == -1 ? -1 : 0;
}

/* One key and its value (a str) as msgpack, appended to kv. */
static int
pack_kv(struct buf *kv, const char *k, const char *v)
{
	msgpack_packer pk;

	/* as str: Fluentd's bin here trips JSON outputs (fluentd #2990) */
	msgpack_packer_init(&pk, kv, buf_msgpack_write);
	return msgpack_pack_str_with_body(&pk, k, strlen(k)) != 0 ||
	    msgpack_pack_str_with_body(&pk, v, strlen(v)) != 0 ? -1 : 0;
}

/* The entries, with --source-address-key and --source-hostname-key.
 * 0, 1 the host name is being looked up, -1 no memory. */
static int
entries_of(struct recv *x, const struct stream_batch *b,
    const unsigned char **e, size_t *len)
{
	char host[256], addr[64];
	struct ingest_peer p;
	static struct buf kv;
	int rc;

	*e = b->entries;
	*len = b->len;
	if (x->addr_key == NULL && x->host_key == NULL)
		return 0;
	kv.len = 0;
	if (ingest_peer(&x->in, &p) == -1)
		return -1;
	if (x->host_key) {
		if ((rc = host_name(x, &p, host, sizeof host)) != 0)
			return rc;
		if (pack_kv(&kv, x->host_key, host) == -1)
			return -1;
	}
	if (x->addr_key) {
		if (ingest_peer_host(&p, addr, sizeof addr) == -1)
			addr[0] = '\0';
		if (pack_kv(&kv, x->addr_key, addr) == -1)
			return -1;
	}
	x->key_val.len = 0;
	if (stream_entries_add(&x->key_val, b->entries, b->len, kv.p,
	    kv.len, (x->addr_key != NULL) + (x->host_key != NULL)) == -1)
		return -1;
	*e = x->key_val.p;
	*len = x->key_val.len;
	return 0;
}

static int
take_batch(struct recv *x, struct lis *li, struct stream_batch *b)
{
	static struct buf tag;
	const unsigned char *e;
	size_t len;
	ingest_ack_t a;
	struct fwd f;
	int rc;

	if (b->invalid) {
		if (!x->skip_invalid) {
			LOG_WARN_LIMITED("a message with %zu invalid events: "
			    "refused (--skip-invalid-event false)", b->invalid);
			return INGEST_REFUSE;
		}
		LOG_WARN_LIMITED("tag %.*s: %zu invalid events dropped (the tag "
		    "not a string, the time not a time, or the record not a map)",
		    (int)(b->taglen > 128 ? 128 : b->taglen), b->tag, b->invalid);
	}
	if (too_big(x, li, b))
		return ack_now(x, b);
	if (tag_of(x, b, &tag) == -1)
		return INGEST_HOLD;
	if (x->match && !match_tag(x->match, (char *)tag.p, tag.len))
		return refused(x, li, b, &tag);
	if (entries_of(x, b, &e, &len) != 0)
		return INGEST_HOLD;	/* no memory, or the host name comes */
	if (b->count == 0)
		return ack_now(x, b);
	if ((a = ingest_ack_defer(&x->in, b)) == INGEST_ACK_FAIL)
		return INGEST_HOLD;
	f = (struct fwd){ 0, a, 0, b->count, b->len, li };
	rc = out(x, (char *)tag.p, tag.len, b, e, len, b->count, &f);
	if (rc == OUT_TOOBIG)
		return too_big_out(x, li, b, len, a);
	if (rc != INGEST_TAKE) {
		ingest_ack_drop(&x->in, a);
		return rc;
	}
	x->messages++;
	x->events += b->count;
	if (li) {
		li->messages++;
		li->events += b->count;
		li->bytes += b->msglen;
		li->invalid += b->invalid;
	}
	return INGEST_TAKE;
}

/* A batch counts once, by what finally became of it (one held is
 * offered again): a refused one is an error, invalid events of one
 * taken are dropped. */
static int
take(void *ctx, struct stream_batch *b)
{
	struct recv *x = ctx;
	int rc = take_batch(x, lis_of(x), b);

	if (rc == INGEST_REFUSE)
		x->refused_bad++;
	else if (rc == INGEST_TAKE)
		x->invalid += b->invalid;
	return rc;
}

/* An HTTP request's events (in_http): the tag has --add-tag-prefix
 * already; --match as for the forward protocol (refused tags are answered
 * 200, so that a client does not send them again for ever); the reply
 * waits for the hand-off downstream, as a forward ack does. */
static int
http_take(void *ctx, const struct httpin_batch *b, httpin_req_t req)
{
	struct recv *x = ctx;
	struct fwd f = { 1, req, 0, b->count, b->len, NULL };
	char t[LOG_TAG_MAX];
	int rc;

	if (x->match && !match_tag(x->match, b->tag, b->taglen)) {
		unsigned long c = ++x->refused_msgs;

		x->refused += b->count;
		x->http_refused += b->count;
		if (log_nth(c)) {
			log_tag(t, b->tag, b->taglen);
			log_warn("no patterns matched tag=\"%s\": %zu events "
			    "dropped (%lu messages, %lu events so far)", t,
			    b->count, c, x->refused);
		}
		httpin_reply(x->http, req, 1);
		return HTTPIN_TAKE;
	}
	rc = out(x, b->tag, b->taglen, NULL, b->entries, b->len, b->count, &f);
	if (rc == INGEST_TAKE) {
		x->messages++;
		x->events += b->count;
		return HTTPIN_TAKE;
	}
	if (rc == OUT_TOOBIG) {
		LOG_WARN_LIMITED("http: tag %.*s: %zu events of %zu bytes are more "
		    "than --max-message-size: refused", (int)(b->taglen > 128 ?
		    128 : b->taglen), b->tag, b->count, b->len);
		return HTTPIN_REFUSE;
	}
	return HTTPIN_HOLD;
}

/* ---- state for an operator ---- */

/* A listener's name for an operator: "tls:..." for TLS. */
static const char *
lis_name(const struct lis *li, char *t, size_t n)
{
	const char *name = ingest_listener_name(li->l);

	if (li->sc.tls && strncmp(name, "tcp:", 4) == 0) {
		snprintf(t, n, "tls:%s", name + 4);
		return t;
	}
	return name;
}

static void
state_lis(yajl_gen g, const struct lis *li)
{
	unsigned long ans = 0, drop = 0;
	char t[160];

	if (li->hb)
		heartbeat_stats(li->hb, &ans, &drop);
	yajl_gen_map_open(g);
	report_str(g, "listen");
	report_str(g, lis_name(li, t, sizeof t));
	report_int(g, "connections", li->sc.stats.accepted);
	report_int(g, "refused_connections", li->sc.stats.refused);
	report_int(g, "handshake_failures", li->sc.stats.failed);
	report_int(g, "messages", li->messages);
	report_int(g, "events", li->events);
	report_int(g, "bytes", li->bytes);
	report_int(g, "invalid_events", li->invalid);
	report_int(g, "oversize_events", li->oversize);
	report_int(g, "refused_tag_events", li->refused);
	report_int(g, "heartbeats", ans);
	report_int(g, "heartbeats_dropped", drop);
	yajl_gen_map_close(g);
}

static void
state_http(yajl_gen g, struct recv *x)
{
	struct httpin_stats st;

	httpin_stats(x->http, NULL, &st);
	report_str(g, "http");
	yajl_gen_map_open(g);
	report_int(g, "connections", st.accepted);
	report_int(g, "connections_open", st.conns);
	report_int(g, "requests", st.requests);
	report_int(g, "events", st.events);
	report_int(g, "bytes", st.bytes);
	report_int(g, "status_4xx", st.status_4xx);
	report_int(g, "status_5xx", st.status_5xx);
	report_int(g, "memory", st.mem);
	report_int(g, "waiting", st.waiting);
	report_int(g, "refused_tag_events", x->http_refused);
	yajl_gen_map_close(g);
}

/* One JSON object, replaced whole (write, rename) every second and at
 * exit, as lf-send's state: a report, not a record (no fsync). */
static void
state_write(struct recv *x)
{
	yajl_gen g;
	struct ingest_stats st;

	if (x->state_file == NULL || (g = report_new()) == NULL)
		return;
	ingest_stats(&x->in, &st);
	report_int(g, "messages", x->messages);
	report_int(g, "events", x->events);
	report_int(g, "acks", x->acks);
	report_int(g, "bad_messages", st.bad);
	report_int(g, "oversize_events", x->oversize);
	report_int(g, "refused_tag_events", x->refused);
	report_int(g, "connections", st.conns);
	report_int(g, "client_memory", st.mem);
	report_int(g, "acks_waiting", st.deferred);
	report_int(g, "downstream_batches", x->hop ? hop_batches(x->hop) : x->qlen);
	report_str(g, "listeners");
	yajl_gen_array_open(g);
	for (int i = 0; i < x->nlis; i++)
		state_lis(g, &x->lis[i]);
	yajl_gen_array_close(g);
	if (x->http)
		state_http(g, x);
	report_write(g, x->state_file);
}

/* ---- metrics (lf(7), METRICS) ---- */

static void
put_io(struct recv *x, struct metrics *m)
{
	struct metrics_io io = { 0 };
	struct ingest_stats st;
	struct httpin_stats hs = { 0 };

	ingest_stats(&x->in, &st);
	if (x->http)
		httpin_stats(x->http, NULL, &hs);
	io.input = 1;
	io.in_events = x->done_events;
	io.in_bytes = x->done_bytes;
	io.in_errors = st.bad + x->refused_bad + hs.status_4xx;
	io.in_dropped = x->oversize + x->refused + x->invalid;
	io.last_event = x->last_event;
	metrics_put_io(m, &io);
}

/* Per listener: a family at a time, a sample a listener. */
enum lis_val { LV_OPEN, LV_ACCEPTED, LV_EVENTS, LV_BYTES, LV_HEARTBEATS };

static uint64_t
lis_val(const struct lis *li, enum lis_val v)
{
	unsigned long ans = 0, drop = 0;

	switch (v) {
	case LV_OPEN: return ingest_listener_conns(li->l);
	case LV_ACCEPTED: return li->sc.stats.accepted;
	case LV_EVENTS: return li->done_events;
	case LV_BYTES: return li->done_bytes;
	case LV_HEARTBEATS:
		if (li->hb)
			heartbeat_stats(li->hb, &ans, &drop);
		return ans;
	}
	return 0;
}

static void
put_listeners(struct recv *x, struct metrics *m)
{
	static const struct {
		const char *fam, *type, *help;
	} f[] = {
		{ "lf_recv_connections", "gauge", "Connections open." },
		{ "lf_recv_connections_total", "counter",
		    "Connections accepted." },
		{ "lf_recv_events_total", "counter",
		    "Events passed on and answered (acked)." },
		{ "lf_recv_bytes_total", "counter", "Their bytes." },
		{ "lf_recv_heartbeats_total", "counter",
		    "UDP heartbeats answered." },
	};
	char t[160];

	if (x->nlis == 0)
		return;		/* --http only: no family without samples */
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		metrics_family(m, f[i].fam, f[i].type, f[i].help);
		for (int j = 0; j < x->nlis; j++)
			metrics_u64(m, lis_val(&x->lis[j], (enum lis_val)i),
			    "listener", lis_name(&x->lis[j], t, sizeof t),
			    (char *)NULL);
	}
}

static void
put_http(struct recv *x, struct metrics *m)
{
	struct httpin_stats st;

	httpin_stats(x->http, NULL, &st);
	metrics_one_u64(m, "lf_recv_http_connections", "gauge",
	    "HTTP connections open.", st.conns);
	metrics_one_u64(m, "lf_recv_http_requests_total", "counter",
	    "HTTP requests answered (any status).", st.requests);
	metrics_one_u64(m, "lf_recv_http_client_errors_total", "counter",
	    "HTTP requests answered 4xx.", st.status_4xx);
	metrics_one_u64(m, "lf_recv_http_server_errors_total", "counter",
	    "HTTP requests answered 5xx.", st.status_5xx);
}

static void
put_metrics(void *ctx, struct metrics *m)
{
	struct recv *x = ctx;

	put_io(x, m);
	put_listeners(x, m);
	if (x->http)
		put_http(x, m);
	metrics_one_u64(m, "lf_recv_downstream_batches", "gauge",
	    "Messages passed on, not yet acked downstream (or written to "
	    "stdout).", x->hop ? hop_batches(x->hop) : x->qlen);
}

static void
state_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct recv *x = w->data;

	(void)loop;
	(void)revents;
	state_write(x);
	ingest_retry(&x->in);	/* what waits on memory, say */
}

/* ---- stopping: drain what is in flight ---- */

static int
in_flight(struct recv *x)
{
	return x->hop ? hop_batches(x->hop) > 0 : x->out.len > 0;
}

static void
finish(struct recv *x)
{
	ingest_flush(&x->in);
	if (in_flight(x)) {
		log_warn("stopping with %zu messages not yet acknowledged "
		    "downstream: their clients get no ack and send them again",
		    x->hop ? hop_batches(x->hop) : x->qlen);
	}
	ev_break(x->loop, EVBREAK_ALL);
}

static void
drain_check(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct recv *x = w->data;

	(void)loop;
	(void)revents;
	if (!in_flight(x) || ev_now(x->loop) >= x->drain_until)
		finish(x);
}

/* TERM: stop accepting and reading; wait (up to --drain-timeout) for
 * what is in flight to be acked downstream, and ack it to its clients. */
static void
stop_cb(void *ctx)
{
	struct recv *x = ctx;

	if (x->stopping)
		return;
	x->stopping = 1;
	ingest_stop(&x->in);
	if (x->http)
		httpin_stop(x->http);
	x->drain_until = ev_now(x->loop) + x->drain_timeout;
	ev_timer_set(&x->drain_timer, 0.05, 0.05);
	ev_timer_start(x->loop, &x->drain_timer);
}

static void
now_cb(void *ctx)
{
	struct recv *x = ctx;

	ingest_retry(&x->in);
}

static const struct sig_actions sig_acts = { stop_cb, now_cb, NULL };

/* ---- options ---- */

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

/* --users-file: "USER PASSWORD" per line (# comments), a secret file. */
static void
read_users(struct recv *x)
{
	struct secret all;
	char err[256], *p, *line, *save = NULL, *u, *pw;
	size_t n = 0;

	if (secret_read(&all, x->users_file, err, sizeof err) == -1)
		log_fatal(EX_CONFIG, "--users-file: %s", err);
	for (p = all.p; *p; p++)
		n += *p == '\n';
	x->users = calloc(n + 1, sizeof *x->users);
	x->passwords = calloc(n + 1, sizeof *x->passwords);
	if (x->users == NULL || x->passwords == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (line = strtok_r(all.p, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " \t");
		if (*line == '#' || *line == '\0')
			continue;
		u = line;
		pw = u + strcspn(u, " \t");
		if (*pw == '\0')
			log_fatal(EX_CONFIG, "--users-file: %s: want \"USER "
			    "PASSWORD\" per line", x->users_file);
		*pw++ = '\0';
		pw += strspn(pw, " \t");
		if (secret_set(&x->passwords[x->nusers], pw, strlen(pw)) == -1 ||
		    (x->users[x->nusers].name = strdup(u)) == NULL)
			log_fatal(EX_OSERR, "out of memory");
		x->users[x->nusers].password = &x->passwords[x->nusers];
		x->nusers++;
	}
	secret_free(&all);
	if (x->nusers == 0)
		log_fatal(EX_CONFIG, "--users-file: %s: no users", x->users_file);
}

static void
opt_allow(struct recv *x, const char *arg)
{
	char err[256];
	struct serve_net *a;

	if ((a = reallocarray(x->allow, x->nallow + 1, sizeof *a)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	x->allow = a;
	if (serve_net_parse(&x->allow[x->nallow], arg, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--allow: %s", err);
	x->nallow++;
}

static const struct conf_name transports[] = {
	{ "tcp", 0 }, { "tls", 1 }, { NULL, 0 },
};

static void
parse_args(struct recv *x, int argc, char **argv)
{
	enum { O_LISTEN = 256, O_TO, O_NOTIFY, O_STATE, O_LOG, O_PREFIX,
		O_ADDRKEY, O_CSL, O_CSWL, O_SKIP, O_DENYKA, O_KAPKT, O_LINGER,
		O_TRANSPORT, O_TLSCERT, O_TLSKEY, O_TLSCA, O_TLSCLIENT, O_KEYFILE,
		O_SELF, O_USERAUTH, O_USERS, O_ALLOW, O_ANON, O_MAXMSG, O_MAXMEM,
		O_MSGTIME, O_DRAIN, O_HOSTKEY, O_RESOLVE, O_MATCH, O_HTTP,
		O_METRICS, O_MINTERVAL,
		O_H_BODY, O_H_DECOMP, O_H_KA, O_H_REQ, O_H_HDR, O_H_URL, O_H_CONNS,
		O_H_MEM, O_H_HEADERS, O_H_REMOTE, O_H_QUERY, O_H_204, O_H_IMG,
		O_H_CORS, O_H_CRED, O_VERSION };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "to", required_argument, NULL, O_TO },
		{ "notify-fd", required_argument, NULL, O_NOTIFY },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "log-file", required_argument, NULL, O_LOG },
		{ "add-tag-prefix", required_argument, NULL, O_PREFIX },
		{ "source-address-key", required_argument, NULL, O_ADDRKEY },
		{ "source-hostname-key", required_argument, NULL, O_HOSTKEY },
		{ "resolve-hostname", required_argument, NULL, O_RESOLVE },
		{ "match", required_argument, NULL, O_MATCH },
		{ "http", required_argument, NULL, O_HTTP },
		{ "http-body-size-limit", required_argument, NULL, O_H_BODY },
		{ "http-decompression-size-limit", required_argument, NULL, O_H_DECOMP },
		{ "http-keepalive-timeout", required_argument, NULL, O_H_KA },
		{ "http-request-timeout", required_argument, NULL, O_H_REQ },
		{ "http-max-header-size", required_argument, NULL, O_H_HDR },
		{ "http-max-url-size", required_argument, NULL, O_H_URL },
		{ "http-max-connections", required_argument, NULL, O_H_CONNS },
		{ "http-max-memory", required_argument, NULL, O_H_MEM },
		{ "add-http-headers", optional_argument, NULL, O_H_HEADERS },
		{ "add-remote-addr", optional_argument, NULL, O_H_REMOTE },
		{ "add-query-params", optional_argument, NULL, O_H_QUERY },
		{ "use-204-response", optional_argument, NULL, O_H_204 },
		{ "respond-with-empty-img", optional_argument, NULL, O_H_IMG },
		{ "cors-allow-origins", required_argument, NULL, O_H_CORS },
		{ "cors-allow-credentials", optional_argument, NULL, O_H_CRED },
		{ "chunk-size-limit", required_argument, NULL, O_CSL },
		{ "chunk-size-warn-limit", required_argument, NULL, O_CSWL },
		{ "skip-invalid-event", required_argument, NULL, O_SKIP },
		{ "deny-keepalive", required_argument, NULL, O_DENYKA },
		{ "send-keepalive-packet", required_argument, NULL, O_KAPKT },
		{ "linger-timeout", required_argument, NULL, O_LINGER },
		{ "transport", required_argument, NULL, O_TRANSPORT },
		{ "tls-cert-path", required_argument, NULL, O_TLSCERT },
		{ "tls-private-key-path", required_argument, NULL, O_TLSKEY },
		{ "tls-ca-path", required_argument, NULL, O_TLSCA },
		{ "tls-client-cert-auth", required_argument, NULL, O_TLSCLIENT },
		{ "shared-key-file", required_argument, NULL, O_KEYFILE },
		{ "self-hostname", required_argument, NULL, O_SELF },
		{ "user-auth", required_argument, NULL, O_USERAUTH },
		{ "users-file", required_argument, NULL, O_USERS },
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "allow-anonymous-source", required_argument, NULL, O_ANON },
		{ "max-message-size", required_argument, NULL, O_MAXMSG },
		{ "max-client-memory", required_argument, NULL, O_MAXMEM },
		{ "message-timeout", required_argument, NULL, O_MSGTIME },
		{ "drain-timeout", required_argument, NULL, O_DRAIN },
		{ "metrics-file", required_argument, NULL, O_METRICS },
		{ "metrics-interval", required_argument, NULL, O_MINTERVAL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct httpin_conf *h = &x->http_conf;
	char err[256];
	int ch;

	if ((x->listen = calloc((size_t)argc + 1, sizeof *x->listen)) == NULL ||
	    (x->http_listen = calloc((size_t)argc + 1, sizeof *x->http_listen)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (ch) {
		case O_LISTEN: x->listen[x->nlis++] = optarg; break;
		case O_TO: x->to = optarg; break;
		case O_NOTIFY: x->notify_fd = (int)conf_opt_uint("notify-fd", optarg, INT_MAX); break;
		case O_STATE: x->state_file = optarg; break;
		case O_LOG: x->logfile = optarg; break;
		case O_PREFIX: x->prefix = optarg; break;
		case O_ADDRKEY: x->addr_key = optarg; break;
		case O_HOSTKEY: x->host_key = optarg; break;
		case O_HTTP: x->http_listen[x->nhttp++] = optarg; break;
		case O_H_BODY: h->body_size_limit = conf_opt_size("http-body-size-limit", optarg); break;
		case O_H_DECOMP: h->decompression_size_limit = conf_opt_size("http-decompression-size-limit", optarg); break;
		case O_H_KA: h->keepalive_timeout = conf_opt_duration("http-keepalive-timeout", optarg); break;
		case O_H_REQ: h->request_timeout = conf_opt_duration("http-request-timeout", optarg); break;
		case O_H_HDR: h->max_header_size = conf_opt_size("http-max-header-size", optarg); break;
		case O_H_URL: h->max_url = conf_opt_size("http-max-url-size", optarg); break;
		case O_H_CONNS: h->max_connections = conf_opt_uint("http-max-connections", optarg, 1u << 20); break;
		case O_H_MEM: h->max_memory = conf_opt_size("http-max-memory", optarg); break;
		case O_H_HEADERS: h->add_http_headers = conf_opt_bool("add-http-headers", optarg ? optarg : "true"); break;
		case O_H_REMOTE: h->add_remote_addr = conf_opt_bool("add-remote-addr", optarg ? optarg : "true"); break;
		case O_H_QUERY: h->add_query_params = conf_opt_bool("add-query-params", optarg ? optarg : "true"); break;
		case O_H_204: h->use_204_response = conf_opt_bool("use-204-response", optarg ? optarg : "true"); break;
		case O_H_IMG: h->respond_with_empty_img = conf_opt_bool("respond-with-empty-img", optarg ? optarg : "true"); break;
		case O_H_CORS: h->cors_allow_origins = optarg; break;
		case O_H_CRED: h->cors_allow_credentials = conf_opt_bool("cors-allow-credentials", optarg ? optarg : "true"); break;
		case O_MATCH:
			if ((x->patterns.len && buf_add(&x->patterns, " ", 1) == -1) ||
			    buf_adds(&x->patterns, optarg) == -1)
				log_fatal(EX_OSERR, "out of memory");
			break;
		case O_RESOLVE: x->resolve_hostname = conf_opt_bool("resolve-hostname", optarg); break;
		case O_CSL: x->chunk_limit = conf_opt_size("chunk-size-limit", optarg); break;
		case O_CSWL: x->chunk_warn = conf_opt_size("chunk-size-warn-limit", optarg); break;
		case O_SKIP: x->skip_invalid = conf_opt_bool("skip-invalid-event", optarg); break;
		case O_DENYKA: x->deny_keepalive = conf_opt_bool("deny-keepalive", optarg); break;
		case O_KAPKT: x->keepalive_packet = conf_opt_bool("send-keepalive-packet", optarg); break;
		case O_LINGER: x->linger = conf_opt_duration("linger-timeout", optarg); break;
		case O_TRANSPORT: x->use_tls = conf_opt_enum("transport", optarg, transports); break;
		case O_TLSCERT: x->tc.cert_path = optarg; break;
		case O_TLSKEY: x->tc.key_path = optarg; break;
		case O_TLSCA: x->tc.ca_path = optarg; break;
		case O_TLSCLIENT: x->tc.verify_client = conf_opt_bool("tls-client-cert-auth", optarg); break;
		case O_KEYFILE: x->key_file = optarg; break;
		case O_SELF: snprintf(x->self, sizeof x->self, "%s", optarg); break;
		case O_USERAUTH: x->user_auth = conf_opt_bool("user-auth", optarg); break;
		case O_USERS: x->users_file = optarg; break;
		case O_ALLOW: opt_allow(x, optarg); break;
		case O_ANON: x->allow_anonymous = conf_opt_bool("allow-anonymous-source", optarg); break;
		case O_MAXMSG: x->lim.max_message = conf_opt_size("max-message-size", optarg); break;
		case O_MAXMEM: x->max_client_memory = conf_opt_size("max-client-memory", optarg); break;
		case O_MSGTIME: x->message_timeout = conf_opt_duration("message-timeout", optarg); break;
		case O_DRAIN: x->drain_timeout = conf_opt_duration("drain-timeout", optarg); break;
		case O_METRICS: x->metrics_path = optarg; break;
		case O_MINTERVAL: x->metrics_interval = metrics_interval_opt(optarg); break;
		case 'v': log_verbose++; break;
		case 'h': usage(0); break;
		case O_VERSION: puts("lf-recv " LF_VERSION); exit(0);
		default: usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	if (x->nlis == 0 && x->nhttp == 0)
		x->listen[x->nlis++] = "0.0.0.0:24224";
	/* what a request may decode to must fit one message downstream */
	if (h->decompression_size_limit > x->lim.max_message - (64u << 10))
		h->decompression_size_limit = x->lim.max_message - (64u << 10);
	h->tag_prefix = x->prefix;
	if (x->to && strncmp(x->to, "unix:", 5) != 0)
		log_fatal(EX_USAGE, "--to: want unix:PATH (lf-buffer --listen)");
	if (x->to && dial_parse(&x->addr, x->to, err, sizeof err) == -1)
		log_fatal(EX_USAGE, "--to: %s", err);
	if (x->patterns.len) {
		if (buf_add(&x->patterns, "", 1) == -1)
			log_fatal(EX_OSERR, "out of memory");
		if ((x->match = match_compile((char *)x->patterns.p, err,
		    sizeof err)) == NULL)
			log_fatal(EX_USAGE, "--match: %s", err);
	}
	if (x->host_key && x->resolve_hostname == 0)
		log_fatal(EX_USAGE, "--source-hostname-key needs --resolve-hostname "
		    "true (as in Fluentd)");
	if (x->deny_keepalive && x->keepalive_packet)
		log_fatal(EX_USAGE, "--send-keepalive-packet and --deny-keepalive "
		    "exclude each other (as in Fluentd)");
	if (!x->use_tls && (x->tc.cert_path || x->tc.key_path || x->tc.ca_path ||
	    x->tc.verify_client))
		log_fatal(EX_USAGE, "--tls-*: only with --transport tls");
	if (x->use_tls && (x->tc.cert_path == NULL || x->tc.key_path == NULL))
		log_fatal(EX_USAGE, "--transport tls needs --tls-cert-path and "
		    "--tls-private-key-path");
	if (x->tc.verify_client && x->tc.ca_path == NULL)
		log_fatal(EX_USAGE, "--tls-client-cert-auth needs --tls-ca-path");
	if ((x->user_auth || x->users_file || x->self[0]) && x->key_file == NULL)
		log_fatal(EX_USAGE, "--user-auth, --users-file and --self-hostname "
		    "need --shared-key-file (the handshake)");
	if (x->user_auth && x->users_file == NULL)
		log_fatal(EX_USAGE, "--user-auth true needs --users-file");
	if (!x->allow_anonymous && x->nallow == 0)
		log_fatal(EX_USAGE, "--allow-anonymous-source false needs --allow "
		    "(no client could connect)");
	if (x->max_client_memory < (1u << 20))
		log_fatal(EX_USAGE, "--max-client-memory: at least 1m");
	if (x->lim.max_message < (1u << 20))
		log_fatal(EX_USAGE, "--max-message-size: at least 1m");
	if (x->message_timeout <= 0)
		log_fatal(EX_USAGE, "--message-timeout: more than 0");
}

/* The handshake's settings, from the secret files. */
static void
setup_security(struct recv *x)
{
	char err[512];

	if (x->use_tls && (x->tls = tls_server_new(&x->tc, err, sizeof err)) == NULL)
		log_fatal(EX_CONFIG, "%s", err);
	if (x->key_file == NULL)
		return;
	if (secret_read(&x->key, x->key_file, err, sizeof err) == -1)
		log_fatal(EX_CONFIG, "--shared-key-file: %s", err);
	if (x->users_file)
		read_users(x);
	if (x->self[0] == '\0' && gethostname(x->self, sizeof x->self - 1) == -1)
		snprintf(x->self, sizeof x->self, "localhost");
	x->hs.self_hostname = x->self;
	x->hs.shared_key = &x->key;
	x->hs.user_auth = x->user_auth;
	x->hs.users = x->users;
	x->hs.nusers = x->nusers;
	x->hs.keepalive = !x->deny_keepalive;
}

/* "[ADDR:]PORT" or "unix:PATH" -> a sock_listen spec. */
static void
listen_spec(const char *arg, char *out, size_t n)
{
	if (strncmp(arg, "unix:", 5) == 0)
		snprintf(out, n, "%s", arg);
	else if (strspn(arg, "0123456789") == strlen(arg))
		snprintf(out, n, "tcp:0.0.0.0:%s", arg);
	else
		snprintf(out, n, "tcp:%s", arg);
}

static void
open_listener(struct recv *x, struct lis *li)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	enum sock_kind kind;
	char spec[512], err[512], host[64], port[16];
	unsigned p;
	int fd;

	listen_spec(li->spec, spec, sizeof spec);
	if ((fd = sock_listen(spec, &kind, err, sizeof err)) == -1)
		log_fatal(EX_UNAVAILABLE, "--listen %s: %s", li->spec, err);
	serve_conf_default(&li->sc);
	li->sc.tcp = kind == SOCK_TCP;
	li->sc.name = kind == SOCK_UNIX ? "unix" : x->tls ? "tls" : "tcp";
	li->sc.tls = x->tls;
	li->sc.hs = x->key_file ? &x->hs : NULL;
	li->sc.allow = x->allow;
	li->sc.nallow = x->nallow;
	li->sc.allow_anonymous = x->allow_anonymous;
	li->sc.keepalive = x->keepalive_packet;
	li->sc.linger = x->linger;
	if ((li->l = ingest_listen(&x->in, fd, serve_ops_for(&li->sc),
	    &li->sc)) == NULL)
		log_fatal(EX_OSERR, "--listen %s: %s", li->spec, strerror(errno));
	log_info("listening on %s", ingest_listener_name(li->l));
	if (kind == SOCK_UNIX)
		li->path = li->spec + 5;
	if (kind != SOCK_TCP)
		return;
	/* the UDP heartbeat on the same address and port */
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1 ||
	    sock_host((struct sockaddr *)&ss, sl, host, sizeof host, &p) == -1)
		log_fatal(EX_OSERR, "--listen %s: %s", li->spec, strerror(errno));
	snprintf(port, sizeof port, "%u", p);
	if (strcmp(host, "::") == 0 || strcmp(host, "0.0.0.0") == 0)
		host[0] = '\0';
	if ((li->hb = heartbeat_new(x->loop, host, port, err, sizeof err)) == NULL)
		log_fatal(EX_UNAVAILABLE, "--listen %s: heartbeat: %s", li->spec, err);
}

static void
start_downstream(struct recv *x)
{
	struct hop_cbs cbs = { x, hop_acked, hop_gaveup, hop_room, NULL };
	char err[256];

	if (x->to == NULL) {
		if (sock_nonblock(STDOUT_FILENO) == -1)
			log_fatal(EX_OSERR, "stdout: %s", strerror(errno));
		ev_io_init(&x->ow, out_write, STDOUT_FILENO, EV_WRITE);
		x->ow.data = x;
		return;
	}
	hop_conf_default(&x->hc);
	x->hc.window_batches = RECV_WINDOW;
	x->hc.max_message = x->lim.max_message;
	x->hc.retry.forever = 1;	/* the clients hold their chunks */
	x->hc.retry.max_interval = 5;
	if (hop_conf_check(&x->hc, err, sizeof err) == -1)
		log_fatal(EX_SOFTWARE, "%s", err);
	if ((x->hop = hop_new(x->loop, &x->hc, &dial_sock_ops, &x->addr,
	    &cbs)) == NULL)
		log_fatal(EX_OSERR, "%s", strerror(errno));
}

/* At exit: an unacked batch's ack is dropped (its client sends again). */
static void
hop_forget(void *ctx, void *arg, size_t count)
{
	(void)ctx;
	(void)count;
	free(arg);
}

static void
start_http(struct recv *x)
{
	struct httpin_listener *hl;
	char err[512];

	if (x->nhttp == 0)
		return;
	if ((x->http = httpin_new(x->loop, &x->http_conf, http_take, x, err,
	    sizeof err)) == NULL)
		log_fatal(EX_USAGE, "--http: %s", err);
	for (int i = 0; i < x->nhttp; i++) {
		if ((hl = httpin_listen(x->http, x->http_listen[i], err,
		    sizeof err)) == NULL)
			log_fatal(EX_UNAVAILABLE, "--http %s: %s", x->http_listen[i],
			    err);
		log_info("http: listening on %s", httpin_listener_name(hl));
	}
}

static void
cleanup(struct recv *x)
{
	for (int i = 0; i < RECV_LOOKUPS; i++)
		if (x->lookups[i].req)
			resolve_cancel(x->lookups[i].req);
	if (x->res)
		resolve_free(x->res);
	for (int i = 0; i < x->nlis; i++)
		heartbeat_free(x->lis[i].hb);
	if (x->hop) {
		hop_take(x->hop, hop_forget, x);
		hop_free(x->hop);	/* unacked: their clients send again */
	}
	ingest_free(&x->in);
	for (int i = 0; i < x->nlis; i++)
		if (x->lis[i].path)
			(void)unlink(x->lis[i].path);
	if (x->tls)
		tls_ctx_free(x->tls);
	for (size_t i = 0; i < x->nusers; i++) {
		free((char *)x->users[i].name);
		secret_free(&x->passwords[i]);
	}
	free(x->users);
	free(x->passwords);
	secret_free(&x->key);
	if (x->match)
		match_free(x->match);
	buf_free(&x->patterns);
	free(x->allow);
	free(x->lis);
	free(x->listen);
	free(x->http_listen);
	if (x->http)
		httpin_free(x->http);
	free(x->q);
	buf_free(&x->out);
	buf_free(&x->tmp);
	buf_free(&x->key_val);
}

int
main(int argc, char **argv)
{
	static struct recv x;

	log_init(argv[0]);
	stream_limits_default(&x.lim);
	x.lim.zero_is_now = 1;		/* in_forward's rule */
	tls_conf_default(&x.tc);
	httpin_conf_default(&x.http_conf);
	x.notify_fd = -1;
	x.skip_invalid = 1;
	x.linger = -1;
	x.allow_anonymous = 1;
	x.max_client_memory = INGEST_MAX_MEMORY;
	x.message_timeout = INGEST_MSG_TIMEOUT;
	x.drain_timeout = 30;
	x.resolve_hostname = -1;
	x.metrics_interval = METRICS_INTERVAL;
	parse_args(&x, argc, argv);
	if (x.logfile && log_open(x.logfile) == -1)
		log_fatal(EX_CANTCREAT, "%s: %s", x.logfile, strerror(errno));
	x.loop = EV_DEFAULT;
	setup_security(&x);
	sig_start(&x.sig, x.loop, &sig_acts, &x);	/* SIGPIPE first */
	ingest_init(&x.in, x.loop, &x.lim, take, &x);
	ingest_set_bounds(&x.in, x.max_client_memory, x.message_timeout);
	ingest_set_one_message(&x.in, x.deny_keepalive);
	if ((x.lis = calloc((size_t)x.nlis, sizeof *x.lis)) == NULL)
		log_fatal(EX_OSERR, "out of memory");
	for (int i = 0; i < x.nlis; i++) {
		x.lis[i].x = &x;
		x.lis[i].spec = x.listen[i];
		open_listener(&x, &x.lis[i]);
	}
	start_downstream(&x);
	start_http(&x);
	if (x.host_key) {
		struct resolve_conf rc;

		resolve_conf_default(&rc);
		if ((x.res = resolve_new(x.loop, &rc)) == NULL)
			log_fatal(EX_OSERR, "resolver: %s", strerror(errno));
	}
	ev_timer_init(&x.state_timer, state_timer, 1, 1);
	x.state_timer.data = &x;
	ev_timer_start(x.loop, &x.state_timer);
	if (metrics_writer_start(&x.mw, x.loop, x.metrics_path, "lf-recv",
	    x.metrics_interval, put_metrics, &x) == -1)
		log_fatal(EX_OSERR, "out of memory");
	ev_init(&x.drain_timer, drain_check);
	x.drain_timer.data = &x;
	if (x.notify_fd >= 0) {
		(void)!write(x.notify_fd, "\n", 1);
		close(x.notify_fd);
	}
	log_info("ready: %d listener(s), events to %s", x.nlis,
	    x.to ? x.to : "stdout");
	ev_run(x.loop, 0);
	sig_stop(&x.sig);
	state_write(&x);
	metrics_writer_finish(&x.mw);
	log_info("stats: messages=%lu events=%lu acks=%lu oversize_events=%lu "
	    "refused_tag_events=%lu", x.messages, x.events, x.acks, x.oversize,
	    x.refused);
	log_limit_summary();
	cleanup(&x);
	return x.exit_code;
}
