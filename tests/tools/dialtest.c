/* dialtest: a C client for the TLS and handshake tests; not a tool.
 *
 *   dialtest [--tls] [--tls-ca-path P] [--no-verify-hostname]
 *            [--tls-cert-path P --tls-private-key-path P]
 *            [--tls-min 12|13] [--tls-max 12|13] [--name HOST]
 *            [--shared-key-file F [--self-hostname H]
 *             [--username U --password-file F]]
 *            [--count N] [--batches N] [--connect-timeout SECONDS]
 *            [-v] ADDR
 *
 * Connects to ADDR (dial.h) through the chosen layers (a plain socket,
 * TLS over it, the forward handshake over either), sends BATCHES
 * PackedForward batches of COUNT events each ([time, {"n": i}], tag
 * "dialtest") through lib/hop, and waits for every ack.  Exit 0 when all
 * are acked; 1 when hop gives up (two tries, 0.2 s apart) or after 20 s.
 * With -v, "tls VERSION" goes to stdout once connected. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "dial.h"
#include "handshake.h"
#include "hop.h"
#include "log.h"
#include "secret.h"
#include "tls.h"

struct run {
	struct ev_loop *loop;
	struct hop *h;
	unsigned char *b;		/* one batch's entries */
	size_t len, count, sent;
	size_t acked, want;
	int failed;
	struct tls_dial *td;
	int printed, verbose;
};

static void
acked(void *ctx, void *arg, size_t count)
{
	struct run *r = ctx;
	const char *v;

	(void)arg;
	(void)count;
	if (r->verbose && !r->printed && r->td != NULL &&
	    (v = tls_dial_version(r->td)) != NULL) {
		printf("tls %s\n", v);
		r->printed = 1;
	}
	if (++r->acked == r->want)
		ev_break(r->loop, EVBREAK_ALL);
}

static void
gaveup(void *ctx, void *arg, size_t count)
{
	struct run *r = ctx;

	(void)arg;
	(void)count;
	r->failed = 1;
	ev_break(r->loop, EVBREAK_ALL);
}

/* Queue batches until all are or the window is full. */
static void
push(struct run *r)
{
	int rc;

	while (r->sent < r->want) {
		rc = hop_send(r->h, "dialtest", 8, r->b, r->len, r->count,
		    NULL, NULL);
		if (rc == HOP_FULL)
			return;
		if (rc != HOP_OK)
			log_fatal(1, "hop_send failed");
		r->sent++;
	}
}

static void
writable(void *ctx)
{
	push(ctx);
}

static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	log_error("no ack within 20 s");
	ev_break(loop, EVBREAK_ALL);
}

static void
secret_or_die(struct secret *s, const char *path)
{
	char err[512];

	if (secret_read(s, path, err, sizeof err) == -1)
		log_fatal(1, "%s", err);
}

/* [time, {"n": i}] for i in 0..count */
static size_t
entries(unsigned char *b, size_t count)
{
	size_t i, n = 0;

	for (i = 0; i < count; i++) {
		b[n++] = 0x92;
		b[n++] = 0xce;
		memcpy(b + n, "\x55\xec\xe6\xf8", 4);
		n += 4;
		memcpy(b + n, "\x81\xa1n\xce", 4);
		n += 4;
		b[n++] = (unsigned char)(i >> 24);
		b[n++] = (unsigned char)(i >> 16);
		b[n++] = (unsigned char)(i >> 8);
		b[n++] = (unsigned char)i;
	}
	return n;
}

enum { O_TLS = 256, O_CA, O_NOVERIFY, O_CERT, O_KEY, O_MIN, O_MAX, O_NAME,
	O_KEYFILE, O_SELF, O_USER, O_PWFILE, O_COUNT, O_BATCHES, O_CTMO };

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tls", no_argument, NULL, O_TLS },
		{ "tls-ca-path", required_argument, NULL, O_CA },
		{ "no-verify-hostname", no_argument, NULL, O_NOVERIFY },
		{ "tls-cert-path", required_argument, NULL, O_CERT },
		{ "tls-private-key-path", required_argument, NULL, O_KEY },
		{ "tls-min", required_argument, NULL, O_MIN },
		{ "tls-max", required_argument, NULL, O_MAX },
		{ "name", required_argument, NULL, O_NAME },
		{ "shared-key-file", required_argument, NULL, O_KEYFILE },
		{ "self-hostname", required_argument, NULL, O_SELF },
		{ "username", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "batches", required_argument, NULL, O_BATCHES },
		{ "connect-timeout", required_argument, NULL, O_CTMO },
		{ NULL, 0, NULL, 0 },
	};
	struct tls_conf tc;
	struct tls_ctx *t = NULL;
	struct tls_dial td;
	struct hs_dial hd;
	struct hs_client_conf hc = { 0 };
	struct secret key = { 0 }, pw = { 0 };
	struct dial_addr a;
	struct hop_conf conf;
	struct hop_cbs cbs;
	struct hop *h;
	struct run r = { 0 };
	const struct dial_ops *ops = &dial_sock_ops;
	void *dctx = &a;
	const char *name = NULL, *keyfile = NULL, *pwfile = NULL;
	char err[512], host[256];
	size_t count = 10, batches = 1;
	ev_timer tmo;
	double ctmo = 10;
	int c, use_tls = 0;

	log_init("dialtest");
	signal(SIGPIPE, SIG_IGN);	/* OpenSSL writes with write(2) */
	tls_conf_default(&tc);
	gethostname(host, sizeof host);
	hc.self_hostname = host;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case O_TLS: use_tls = 1; break;
		case O_CA: tc.ca_path = optarg; break;
		case O_NOVERIFY: tc.verify_hostname = 0; break;
		case O_CERT: tc.cert_path = optarg; break;
		case O_KEY: tc.key_path = optarg; break;
		case O_MIN: tc.min_version = atoi(optarg); break;
		case O_MAX: tc.max_version = atoi(optarg); break;
		case O_NAME: name = optarg; break;
		case O_KEYFILE: keyfile = optarg; break;
		case O_SELF: hc.self_hostname = optarg; break;
		case O_USER: hc.username = optarg; break;
		case O_PWFILE: pwfile = optarg; break;
		case O_COUNT: count = (size_t)atol(optarg); break;
		case O_BATCHES: batches = (size_t)atol(optarg); break;
		case O_CTMO: ctmo = atof(optarg); break;
		case 'v': r.verbose = 1; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc)
		log_fatal(2, "usage: dialtest [options] ADDR");
	if (dial_parse(&a, argv[optind], err, sizeof err) == -1)
		log_fatal(2, "%s", err);
	if (use_tls) {
		if ((t = tls_client_new(&tc, err, sizeof err)) == NULL)
			log_fatal(1, "%s", err);
		tls_dial_init(&td, t, !tc.verify_hostname ? NULL : name ?
		    name : a.host, ops, dctx);
		ops = &tls_dial_ops;
		dctx = &td;
		r.td = &td;
	}
	if (keyfile != NULL) {
		secret_or_die(&key, keyfile);
		hc.shared_key = &key;
		if (pwfile != NULL) {
			secret_or_die(&pw, pwfile);
			hc.password = &pw;
		}
		hs_dial_init(&hd, &hc, ops, dctx);
		ops = &hs_dial_ops;
		dctx = &hd;
	}
	r.loop = EV_DEFAULT;
	r.want = batches;
	hop_conf_default(&conf);
	conf.connect_timeout = ctmo;
	conf.retry.wait = 0.2;
	conf.retry.randomize = 0;
	conf.retry.max_times = 1;
	cbs.ctx = &r;
	cbs.acked = acked;
	cbs.gaveup = gaveup;
	cbs.writable = writable;
	if ((h = hop_new(r.loop, &conf, ops, dctx, &cbs)) == NULL)
		log_fatal(1, "hop_new failed");
	if ((r.b = malloc(count * 16 + 1)) == NULL)
		log_fatal(1, "out of memory");
	r.h = h;
	r.count = count;
	r.len = entries(r.b, count);
	push(&r);
	ev_timer_init(&tmo, timeout_cb, 20, 0);
	ev_timer_start(r.loop, &tmo);
	ev_run(r.loop, 0);
	hop_free(h);
	free(r.b);
	tls_ctx_free(t);
	secret_free(&key);
	secret_free(&pw);
	ev_loop_destroy(r.loop);
	return r.acked == r.want && !r.failed ? 0 : 1;
}
