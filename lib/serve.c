#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "serve.h"
#include "sock.h"

struct serve_conn {
	struct serve_conf *conf;
	struct tls_conn *tls;		/* NULL: plain */
	struct hs	*hs;		/* while the handshake runs */
	int		 tls_done;
	unsigned char	*left;		/* read past the handshake */
	size_t		 nleft, offleft;
	char		 peer[64];	/* its address, for log lines */
};

void
serve_conf_default(struct serve_conf *c)
{
	memset(c, 0, sizeof *c);
	c->name = "tcp";
	c->allow_anonymous = 1;
	c->linger = -1;
}

int
serve_net_parse(struct serve_net *n, const char *spec, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1], *end;
	const char *slash = strchr(spec, '/');
	size_t hl = slash ? (size_t)(slash - spec) : strlen(spec);
	unsigned long bits;
	unsigned max;

	memset(n, 0, sizeof *n);
	if (hl == 0 || hl >= sizeof host)
		goto bad;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		goto bad;
	}
	n->bits = max;
	if (slash) {
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno || bits > max)
			goto bad;
		n->bits = (unsigned)bits;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: not an address or a network "
	    "(ADDR or ADDR/BITS)", spec);
	return -1;
}

static int
prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (0xff00u >> rest) & 0xff) == 0;
}

int
serve_net_match(const struct serve_net *n, const struct sockaddr *sa,
    socklen_t len)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	const unsigned char *a;

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		a = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
		return n->family == AF_INET && prefix_eq(n->addr, a, n->bits);
	}
	if (sa->sa_family != AF_INET6 || len < sizeof(struct sockaddr_in6))
		return 0;
	a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	if (n->family == AF_INET6)
		return prefix_eq(n->addr, a, n->bits);
	return memcmp(a, mapped, 12) == 0 && prefix_eq(n->addr, a + 12, n->bits);
}

static int
allowed(const struct serve_conf *cf, const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_UNIX)
		return 1;	/* the socket file's mode decides */
	for (size_t i = 0; i < cf->nallow; i++)
		if (serve_net_match(&cf->allow[i], sa, len))
			return 1;
	return cf->allow_anonymous;
}

static void
sockopts(const struct serve_conf *cf, int fd)
{
	int one = 1;
	struct linger lg;

	if (!cf->tcp)
		return;
	/* acks are small writes answering the client's: no Nagle delay */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (cf->keepalive)
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	if (cf->linger >= 0) {
		lg.l_onoff = 1;
		lg.l_linger = (int)cf->linger;
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
}

static int
sv_open(void *arg, int fd, const struct sockaddr *peer, socklen_t peerlen,
    void **ctx)
{
	struct serve_conf *cf = arg;
	struct serve_conn *c;
	unsigned port = 0;
	char host[INET6_ADDRSTRLEN] = "";

	(void)sock_host(peer, peerlen, host, sizeof host, &port);
	if (!allowed(cf, peer, peerlen)) {
		cf->stats.refused++;
		LOG_WARN_LIMITED("%s: %s: not in an --allow network: refused",
		    cf->name, host);
		return -1;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		goto nomem;
	c->conf = cf;
	if (host[0])
		snprintf(c->peer, sizeof c->peer, strchr(host, ':') ?
		    "[%s]:%u" : "%s:%u", host, port);
	else
		snprintf(c->peer, sizeof c->peer, "%s", cf->name);
	sockopts(cf, fd);
	if (cf->tls && (c->tls = tls_conn_new(cf->tls, fd)) == NULL)
		goto nomem;
	if (cf->hs) {
		if ((c->hs = malloc(sizeof *c->hs)) == NULL)
			goto nomem;
		hs_server_init(c->hs, cf->hs);
	}
	*ctx = c;
	cf->stats.accepted++;
	return 0;
nomem:
	cf->stats.refused++;
	LOG_WARN_LIMITED("%s: %s: out of memory: refused", cf->name, c ?
	    c->peer : host);
	if (c && c->tls) {
		/* tls_conn has no free without close: close a dup */
		int d = dup(fd);

		if (d != -1)
			tls_conn_ops.close(c->tls, d);
	}
	free(c);
	return -1;
}

/* Plain sockets under the handshake: read(2) and writev(2). */
static ssize_t
raw_read(void *ctx, int fd, void *p, size_t n)
{
	(void)ctx;
	return read(fd, p, n);
}

static ssize_t
raw_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	(void)ctx;
	return writev(fd, iov, cnt);
}

static const struct dial_ops raw_ops = {
	NULL, NULL, raw_read, raw_writev, NULL, NULL,
};

static const struct dial_ops *
lower(struct serve_conn *c, void **lctx)
{
	*lctx = c->tls;
	return c->tls ? &tls_conn_ops : &raw_ops;
}

/* The handshake is done: keep what the client sent after its PING. */
static int
hs_done(struct serve_conn *c)
{
	const unsigned char *p;
	size_t n = hs_leftover(c->hs, &p);

	if (n > 0) {
		if ((c->left = malloc(n)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		memcpy(c->left, p, n);
		c->nleft = n;
	}
	log_debug("%s: %s: handshake: accepted %s%s%s", c->conf->name, c->peer,
	    c->hs->peer_host, c->hs->user[0] ? " as user " : "", c->hs->user);
	hs_clear(c->hs);
	free(c->hs);
	c->hs = NULL;
	return 0;
}

static int
sv_finish(void *ctx, int fd, int *events)
{
	struct serve_conn *c = ctx;
	const struct dial_ops *lo;
	void *lctx;
	int rc;

	if (c->tls && !c->tls_done) {
		if ((rc = tls_conn_ops.finish(c->tls, fd, events)) != 0) {
			if (rc == -1)
				c->conf->stats.failed++;
			if (rc == -1)
				LOG_WARN_LIMITED("%s: %s: TLS handshake: %s",
				    c->conf->name, c->peer, tls_conn_reason(c->tls));
			return rc;
		}
		c->tls_done = 1;
	}
	if (c->hs == NULL)
		return 0;
	lo = lower(c, &lctx);
	switch (hs_step(c->hs, lo, lctx, fd, events)) {
	case HS_DONE:
		return hs_done(c) == 0 ? 0 : -1;
	case HS_AGAIN:
		return 1;
	}
	c->conf->stats.failed++;
	if (errno != ECONNRESET)
		LOG_WARN_LIMITED("%s: %s: handshake: %s", c->conf->name, c->peer,
		    c->hs->reason);
	return -1;
}

static ssize_t
sv_read(void *ctx, int fd, void *p, size_t n)
{
	struct serve_conn *c = ctx;
	size_t k;

	if (c->nleft > c->offleft) {
		k = c->nleft - c->offleft;
		k = k < n ? k : n;
		memcpy(p, c->left + c->offleft, k);
		if ((c->offleft += k) == c->nleft) {
			free(c->left);
			c->left = NULL;
			c->nleft = c->offleft = 0;
		}
		return (ssize_t)k;
	}
	return c->tls ? tls_conn_ops.read(c->tls, fd, p, n) : read(fd, p, n);
}

static ssize_t
sv_write(void *ctx, int fd, const void *p, size_t n)
{
	struct serve_conn *c = ctx;
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return c->tls ? tls_conn_ops.writev(c->tls, fd, &iov, 1) :
	    write(fd, p, n);
}

static int
sv_pending(void *ctx)
{
	struct serve_conn *c = ctx;

	return c->nleft > 0 || (c->tls && c->tls_done &&
	    tls_conn_pending(c->tls));
}

static void
sv_close(void *ctx, int fd)
{
	struct serve_conn *c = ctx;

	if (c->hs) {
		hs_clear(c->hs);
		free(c->hs);
	}
	free(c->left);
	if (c->tls)
		tls_conn_ops.close(c->tls, fd);
	else
		close(fd);
	free(c);
}

static const struct ingest_ops serve_ops = {
	"serve", sv_open, sv_finish, sv_read, sv_write, sv_pending, sv_close,
};

/* Without TLS or a handshake there is nothing to finish. */
static const struct ingest_ops serve_plain_ops = {
	"serve", sv_open, NULL, sv_read, sv_write, NULL, sv_close,
};

const struct ingest_ops *
serve_ops_for(const struct serve_conf *c)
{
	return c->tls || c->hs ? &serve_ops : &serve_plain_ops;
}
