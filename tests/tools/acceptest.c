/* acceptest: the accept side of lib/tls and lib/handshake, as lf-recv
 * will use them, for the interop tests; not a tool.
 *
 *   acceptest [--tls-cert-path P --tls-private-key-path P
 *             [--tls-ca-path P --verify-client] [--tls-min 12|13]
 *             [--tls-max 12|13]] [--shared-key-file F
 *             [--self-hostname H] [--user NAME --password-file F]]
 *             [--connections N]
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "PORT\n" on
 * stdout), then serves N connections (default 1), one at a time: the
 * TLS handshake (tls_conn_ops finish), the forward handshake (hs_step
 * over the same ops), then one forward message, whose option's "chunk"
 * is acked.  Per connection one line on stdout: "ok TAG BYTES [SUBJECT]"
 * or "fail REASON".  Each connection has 10 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "dial.h"
#include "handshake.h"
#include "log.h"
#include "mp.h"
#include "secret.h"
#include "tls.h"

struct conn {
	const struct dial_ops *ops;
	void *ctx;
	int fd;
	time_t deadline;
};

/* Wait for events on the connection: 0, or -1 at the deadline. */
static int
await(struct conn *c, int events)
{
	struct pollfd p = { c->fd, 0, 0 };
	int left = (int)(c->deadline - time(NULL));

	if (events & EV_READ)
		p.events |= POLLIN;
	if (events & EV_WRITE)
		p.events |= POLLOUT;
	if (left <= 0 || poll(&p, 1, left * 1000) <= 0)
		return -1;
	return 0;
}

/* Find the "chunk" of the option map at the message's end. */
static int
chunk_of(const unsigned char *p, size_t n, struct mp_obj *chunk,
    struct mp_obj *tag)
{
	const unsigned char *end = p + n;
	struct mp_obj o, k;
	uint32_t i;

	if (mp_read(&p, end, &o) == -1 || o.type != MP_ARRAY || o.n != 3 ||
	    mp_read(&p, end, tag) == -1 || mp_pass(&p, end) == -1 ||
	    mp_read(&p, end, &o) == -1 || o.type != MP_MAP)
		return -1;
	for (i = 0; i < o.n; i++) {
		if (mp_read(&p, end, &k) == -1)
			return -1;
		if (mp_streq(&k, "chunk"))
			return mp_read(&p, end, chunk);
		if (mp_pass(&p, end) == -1)
			return -1;
	}
	return -1;
}

static const char *
serve(struct conn *c, const struct hs_server_conf *sc, unsigned char *buf,
    size_t cap, size_t *len)
{
	static struct hs h;
	const unsigned char *left;
	int rc, ev = 0;
	ssize_t n;
	size_t mlen;

	while ((rc = c->ops->finish(c->ctx, c->fd, &ev)) == 1)
		if (await(c, ev) == -1)
			return "timed out in the TLS handshake";
	if (rc == -1)
		return c->ops == &tls_conn_ops ? tls_conn_reason(c->ctx) :
		    strerror(errno);
	*len = 0;
	if (sc != NULL) {
		hs_server_init(&h, sc);
		while ((rc = hs_step(&h, c->ops, c->ctx, c->fd, &ev)) ==
		    HS_AGAIN)
			if (await(c, ev) == -1)
				return "timed out in the forward handshake";
		if (rc == HS_FAIL)
			return h.reason;
		*len = hs_leftover(&h, &left);
		memcpy(buf, left, *len);
		hs_clear(&h);
	}
	for (;;) {
		if (*len > 0 && mp_skip(buf, *len, 8, &mlen) == MP_OK)
			return NULL;
		n = c->ops->read(c->ctx, c->fd, buf + *len, cap - *len);
		if (n == -1 && errno == EAGAIN) {
			if (await(c, EV_READ) == -1)
				return "timed out reading";
			continue;
		}
		if (n <= 0)
			return "closed before a whole message";
		*len += (size_t)n;
	}
}

static void
ack(struct conn *c, const unsigned char *buf, size_t len)
{
	struct mp_obj chunk, tag;
	unsigned char out[64] = { 0x81, 0xa3, 'a', 'c', 'k' };
	struct iovec iov;
	size_t n = 5;

	if (chunk_of(buf, len, &chunk, &tag) == -1 || chunk.n > 31) {
		printf("fail no chunk\n");
		return;
	}
	out[n++] = (unsigned char)(0xa0 | chunk.n);
	memcpy(out + n, chunk.p, chunk.n);
	n += chunk.n;
	iov.iov_base = out;
	iov.iov_len = n;
	while (c->ops->writev(c->ctx, c->fd, &iov, 1) == -1 &&
	    errno == EAGAIN)
		if (await(c, EV_WRITE) == -1)
			break;
	printf("ok %.*s %zu%s%s\n", (int)tag.n, (const char *)tag.p, len,
	    c->ops == &tls_conn_ops ? " " : "",
	    c->ops == &tls_conn_ops ? tls_conn_peer(c->ctx) : "");
}

enum { O_CERT = 256, O_KEY, O_CA, O_VERIFY, O_MIN, O_MAX, O_KEYFILE,
	O_SELF, O_USER, O_PWFILE, O_CONNS };

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tls-cert-path", required_argument, NULL, O_CERT },
		{ "tls-private-key-path", required_argument, NULL, O_KEY },
		{ "tls-ca-path", required_argument, NULL, O_CA },
		{ "verify-client", no_argument, NULL, O_VERIFY },
		{ "tls-min", required_argument, NULL, O_MIN },
		{ "tls-max", required_argument, NULL, O_MAX },
		{ "shared-key-file", required_argument, NULL, O_KEYFILE },
		{ "self-hostname", required_argument, NULL, O_SELF },
		{ "user", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "connections", required_argument, NULL, O_CONNS },
		{ NULL, 0, NULL, 0 },
	};
	static unsigned char buf[1 << 20];
	struct tls_conf tc;
	struct tls_ctx *t = NULL;
	struct secret key = { 0 }, pw = { 0 };
	struct hs_server_conf sc = { 0 };
	struct hs_user user = { 0 };
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	struct conn c;
	const char *keyfile = NULL, *pwfile = NULL, *why;
	char err[512];
	size_t len = 0;
	int ch, lfd, conns = 1, i;

	log_init("acceptest");
	signal(SIGPIPE, SIG_IGN);
	tls_conf_default(&tc);
	sc.self_hostname = "acceptest.example";
	sc.keepalive = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case O_CERT: tc.cert_path = optarg; break;
		case O_KEY: tc.key_path = optarg; break;
		case O_CA: tc.ca_path = optarg; break;
		case O_VERIFY: tc.verify_client = 1; break;
		case O_MIN: tc.min_version = atoi(optarg); break;
		case O_MAX: tc.max_version = atoi(optarg); break;
		case O_KEYFILE: keyfile = optarg; break;
		case O_SELF: sc.self_hostname = optarg; break;
		case O_USER: user.name = optarg; break;
		case O_PWFILE: pwfile = optarg; break;
		case O_CONNS: conns = atoi(optarg); break;
		default: return 2;
		}
	}
	if (tc.cert_path != NULL &&
	    (t = tls_server_new(&tc, err, sizeof err)) == NULL)
		log_fatal(1, "%s", err);
	if (keyfile != NULL) {
		if (secret_read(&key, keyfile, err, sizeof err) == -1)
			log_fatal(1, "%s", err);
		sc.shared_key = &key;
		if (user.name != NULL && pwfile != NULL) {
			if (secret_read(&pw, pwfile, err, sizeof err) == -1)
				log_fatal(1, "%s", err);
			user.password = &pw;
			sc.user_auth = 1;
			sc.users = &user;
			sc.nusers = 1;
		}
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(lfd, 8) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) == -1)
		log_fatal(1, "listen: %s", strerror(errno));
	printf("%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	for (i = 0; i < conns; i++) {
		if ((c.fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) == -1)
			log_fatal(1, "accept: %s", strerror(errno));
		c.deadline = time(NULL) + 10;
		c.ops = &dial_sock_ops;
		c.ctx = NULL;
		if (t != NULL) {
			if ((c.ctx = tls_conn_new(t, c.fd)) == NULL)
				log_fatal(1, "tls_conn_new: %s",
				    strerror(errno));
			c.ops = &tls_conn_ops;
		}
		why = serve(&c, keyfile ? &sc : NULL, buf, sizeof buf, &len);
		if (why != NULL)
			printf("fail %s\n", why);
		else
			ack(&c, buf, len);
		fflush(stdout);
		c.ops->close(c.ctx, c.fd);
	}
	close(lfd);
	tls_ctx_free(t);
	secret_free(&key);
	secret_free(&pw);
	return 0;
}
