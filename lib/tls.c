#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

struct tls_ctx {
	SSL_CTX	*ctx;
};

struct tls_conn {
	SSL	*ssl;
	char	 reason[256];
	char	 peer[256];
};

void
tls_conf_default(struct tls_conf *c)
{
	memset(c, 0, sizeof *c);
	c->verify_hostname = 1;
	c->min_version = TLS_V12;
}

/* OpenSSL's reason for the oldest error queued, then an empty queue. */
static const char *
ossl_reason(char *buf, size_t n, const char *dflt)
{
	unsigned long e = ERR_peek_error();
	const char *r;

	if (e != 0 && (r = ERR_reason_error_string(e)) != NULL)
		strlcpy(buf, r, n);
	else
		strlcpy(buf, dflt, n);
	ERR_clear_error();
	return buf;
}

static int
ctx_fail(char *err, size_t n, const char *what, const char *path)
{
	char r[160];

	ossl_reason(r, sizeof r, "failed");
	if (path != NULL)
		snprintf(err, n, "%s %s: %s", what, path, r);
	else
		snprintf(err, n, "%s: %s", what, r);
	return -1;
}

static int
version(int v)
{
	return v == TLS_V12 ? TLS1_2_VERSION : v == TLS_V13 ?
	    TLS1_3_VERSION : 0;
}

static int
load_ca(SSL_CTX *ctx, const char *path, char *err, size_t n)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		snprintf(err, n, "CA path %s: %s", path, strerror(errno));
		return -1;
	}
	if (SSL_CTX_load_verify_locations(ctx, S_ISDIR(st.st_mode) ? NULL :
	    path, S_ISDIR(st.st_mode) ? path : NULL) != 1)
		return ctx_fail(err, n, "CA path", path);
	return 0;
}

static int
load_pair(SSL_CTX *ctx, const struct tls_conf *c, char *err, size_t n)
{
	if ((c->cert_path == NULL) != (c->key_path == NULL)) {
		snprintf(err, n, "a certificate needs its private key, "
		    "and a key its certificate");
		return -1;
	}
	if (c->cert_path == NULL)
		return 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_path) != 1)
		return ctx_fail(err, n, "certificate", c->cert_path);
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key_path,
	    SSL_FILETYPE_PEM) != 1)
		return ctx_fail(err, n, "private key", c->key_path);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(err, n, "private key", c->key_path);
	return 0;
}

static struct tls_ctx *
ctx_new(const struct tls_conf *c, int server, char *err, size_t n)
{
	struct tls_ctx *t;
	SSL_CTX *ctx;

	if (c->min_version != TLS_ANY && version(c->min_version) == 0) {
		snprintf(err, n, "TLS versions are 1.2 and 1.3");
		return NULL;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(server ? TLS_server_method() :
	    TLS_client_method())) == NULL) {
		ctx_fail(err, n, "TLS", NULL);
		return NULL;
	}
	/* below 1.2 is never allowed, whatever the configuration says */
	SSL_CTX_set_min_proto_version(ctx, c->min_version == TLS_ANY ?
	    TLS1_2_VERSION : version(c->min_version));
	SSL_CTX_set_max_proto_version(ctx, version(c->max_version));
	/* dial.h's writev: partial writes, and a retry may come from a
	 * new iovec array holding the same bytes */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION);
	if (c->ciphers != NULL && SSL_CTX_set_cipher_list(ctx,
	    c->ciphers) != 1) {
		ctx_fail(err, n, "ciphers", c->ciphers);
		goto bad;
	}
	if (c->ca_path != NULL) {
		if (load_ca(ctx, c->ca_path, err, n) == -1)
			goto bad;
	} else if (!server && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ctx_fail(err, n, "the system's CA store", NULL);
		goto bad;
	}
	if (load_pair(ctx, c, err, n) == -1)
		goto bad;
	if (server) {
		if (c->cert_path == NULL) {
			snprintf(err, n, "a TLS server needs a certificate "
			    "and its private key");
			goto bad;
		}
		if (c->verify_client && c->ca_path == NULL) {
			snprintf(err, n, "checking client certificates needs "
			    "a CA path");
			goto bad;
		}
		SSL_CTX_set_verify(ctx, c->verify_client ? SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((t = calloc(1, sizeof *t)) == NULL) {
		snprintf(err, n, "%s", strerror(errno));
		goto bad;
	}
	t->ctx = ctx;
	return t;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_ctx *
tls_client_new(const struct tls_conf *c, char *err, size_t n)
{
	return ctx_new(c, 0, err, n);
}

struct tls_ctx *
tls_server_new(const struct tls_conf *c, char *err, size_t n)
{
	return ctx_new(c, 1, err, n);
}

void
tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* ---- one connection, either side ---- */

/* Why the TLS handshake or a read or write failed, and its errno. */
static int
failure(SSL *ssl, int rc, char *reason, size_t n)
{
	int e = errno, err = SSL_get_error(ssl, rc);
	long v = SSL_get_verify_result(ssl);

	if (v != X509_V_OK) {
		snprintf(reason, n, "certificate verify failed: %s",
		    X509_verify_cert_error_string(v));
		ERR_clear_error();
		return EPROTO;
	}
	/* a close: SSL_OP_IGNORE_UNEXPECTED_EOF makes one inside the
	 * handshake a zero return, with nothing queued */
	if (err == SSL_ERROR_ZERO_RETURN ||
	    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		if (e == 0 || err == SSL_ERROR_ZERO_RETURN)
			e = ECONNRESET;
		snprintf(reason, n, "%s", e == ECONNRESET ? "the peer closed "
		    "the connection" : strerror(e));
		return e;
	}
	ossl_reason(reason, n, "TLS error");
	return EPROTO;
}

/* SSL_do_handshake without blocking: 0, 1 with *events, -1 with errno. */
static int
handshake(SSL *ssl, int *events, char *reason, size_t n)
{
	int rc;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_do_handshake(ssl)) == 1)
		return 0;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		*events = EV_READ;
		return 1;
	case SSL_ERROR_WANT_WRITE:
		*events = EV_WRITE;
		return 1;
	}
	errno = failure(ssl, rc, reason, n);
	return -1;
}

static ssize_t
ssl_read(SSL *ssl, void *p, size_t n, char *reason, size_t rn)
{
	int rc = 0;

	size_t total = 0;

	if (n == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	/* SSL_read gives one record at a time; take all that is decrypted
	 * or readable now, since bytes OpenSSL has already taken off the
	 * socket raise no further EV_READ */
	while (total < n && (rc = SSL_read(ssl, (char *)p + total,
	    n - total > INT_MAX ? INT_MAX : (int)(n - total))) > 0)
		total += (size_t)rc;
	if (total > 0) {
		ERR_clear_error();	/* what stopped us comes again */
		return (ssize_t)total;
	}
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	}
	errno = failure(ssl, rc, reason, rn);
	return errno == ECONNRESET ? 0 : -1;
}

/* One SSL_write per iovec, each a record or more: the bytes written up
 * to the first short write, or -1 if none. */
static ssize_t
ssl_writev(SSL *ssl, const struct iovec *iov, int cnt, char *reason,
    size_t rn)
{
	size_t total = 0, len;
	int i, rc;

	for (i = 0; i < cnt; i++) {
		if ((len = iov[i].iov_len) == 0)
			continue;
		if (len > INT_MAX)
			len = INT_MAX;
		ERR_clear_error();
		errno = 0;
		if ((rc = SSL_write(ssl, iov[i].iov_base, (int)len)) > 0) {
			total += (size_t)rc;
			if ((size_t)rc < len)
				break;
			continue;
		}
		if (total > 0)
			break;
		switch (SSL_get_error(ssl, rc)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			errno = EAGAIN;
			return -1;
		}
		errno = failure(ssl, rc, reason, rn);
		if (errno == ECONNRESET)
			errno = EPIPE;
		return -1;
	}
	return (ssize_t)total;
}

static void
ssl_close(SSL *ssl)
{
	/* close_notify if the socket takes it now; never wait for it */
	ERR_clear_error();
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}

/* ---- the client ---- */

void
tls_dial_init(struct tls_dial *d, struct tls_ctx *t, const char *host,
    const struct dial_ops *lower, void *lctx)
{
	memset(d, 0, sizeof *d);
	d->t = t;
	d->lower = lower;
	d->lctx = lctx;
	strlcpy(d->host, host ? host : "", sizeof d->host);
	d->logged = d->own;
}

void
tls_dial_share_log(struct tls_dial *d, struct tls_dial *with)
{
	d->logged = with->logged;
}

static int
is_ip(const char *h)
{
	unsigned char a[16];

	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

static int
td_open(void *ctx, int *fd)
{
	struct tls_dial *d = ctx;
	SSL *ssl;
	int rc, ok = 1;

	if ((rc = d->lower->open(d->lctx, fd)) == -1)
		return -1;
	d->lower_done = rc == 0;
	ERR_clear_error();
	if ((ssl = SSL_new(d->t->ctx)) == NULL || SSL_set_fd(ssl, *fd) != 1)
		ok = 0;
	else if (d->host[0] != '\0' && is_ip(d->host)) {
		/* no SNI for an address (RFC 6066); check the IP SANs */
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    d->host) == 1;
	} else if (d->host[0] != '\0') {
		ok = SSL_set_tlsext_host_name(ssl, d->host) == 1 &&
		    SSL_set1_host(ssl, d->host) == 1;
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	if (!ok) {
		ERR_clear_error();
		SSL_free(ssl);
		d->lower->close(d->lctx, *fd);
		errno = ENOMEM;
		return -1;
	}
	SSL_set_connect_state(ssl);
	d->ssl = ssl;
	return 1;
}

static const char *td_name(void *);

/* The first failure, and each different one, is logged; the same one
 * again (a reconnect every retry interval) is not, until the peer has
 * answered once: with TLS 1.3 the client's handshake is done before the
 * server has checked its certificate, so a refusal comes with the first
 * read, and a finished handshake proves nothing yet. */
static void
note(struct tls_dial *d)
{
	int e = errno;

	if (strcmp(d->logged, d->reason) != 0) {
		log_warn("%s: TLS: %s%s", td_name(d), d->reason,
		    strcmp(d->reason, "wrong version number") == 0 ?
		    " (does the server speak TLS?)" : "");
		strlcpy(d->logged, d->reason, sizeof d->own);
	}
	errno = e;
}

static int
td_finish(void *ctx, int fd, int *events)
{
	struct tls_dial *d = ctx;
	int rc;

	if (!d->lower_done) {
		if ((rc = d->lower->finish(d->lctx, fd, events)) != 0)
			return rc;
		d->lower_done = 1;
	}
	if ((rc = handshake(d->ssl, events, d->reason, sizeof d->reason))
	    == -1)
		note(d);
	return rc;
}

static ssize_t
td_read(void *ctx, int fd, void *p, size_t n)
{
	struct tls_dial *d = ctx;
	ssize_t r;

	(void)fd;
	if ((r = ssl_read(d->ssl, p, n, d->reason, sizeof d->reason)) == -1 &&
	    errno != EAGAIN)
		note(d);
	else if (r > 0 && d->logged[0] != '\0') {
		log_info("%s: TLS: working again (%s)", td_name(d),
		    SSL_get_version(d->ssl));
		d->logged[0] = '\0';
	}
	return r;
}

static ssize_t
td_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	struct tls_dial *d = ctx;
	ssize_t r;

	(void)fd;
	if ((r = ssl_writev(d->ssl, iov, cnt, d->reason,
	    sizeof d->reason)) != -1 || errno == EAGAIN)
		return r;
	if (errno == EPIPE) {
		/* the server may have said why before it closed: with TLS
		 * 1.3 a refused client certificate is an alert that comes
		 * after our handshake is done */
		char scratch[512];
		int e = errno;

		if (ssl_read(d->ssl, scratch, sizeof scratch, d->reason,
		    sizeof d->reason) != -1 || errno != EPROTO) {
			errno = e;
			return -1;
		}
	}
	note(d);
	return -1;
}

static void
td_close(void *ctx, int fd)
{
	struct tls_dial *d = ctx;

	if (d->ssl != NULL)
		ssl_close(d->ssl);
	d->ssl = NULL;
	d->lower->close(d->lctx, fd);
}

static const char *
td_name(void *ctx)
{
	struct tls_dial *d = ctx;

	snprintf(d->name, sizeof d->name, "tls:%s", d->lower->name(d->lctx));
	return d->name;
}

const struct dial_ops tls_dial_ops = {
	td_open, td_finish, td_read, td_writev, td_close, td_name,
};

const char *
tls_dial_version(const struct tls_dial *d)
{
	if (d->ssl == NULL || !SSL_is_init_finished(d->ssl))
		return NULL;
	return SSL_get_version(d->ssl);
}

/* ---- the server ---- */

struct tls_conn *
tls_conn_new(struct tls_ctx *t, int fd)
{
	struct tls_conn *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	ERR_clear_error();
	if ((c->ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(c->ssl, fd) != 1) {
		ERR_clear_error();
		SSL_free(c->ssl);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	SSL_set_accept_state(c->ssl);
	return c;
}

static int
tc_open(void *ctx, int *fd)
{
	(void)ctx;
	(void)fd;
	errno = EINVAL;		/* an accepted connection is not opened */
	return -1;
}

static int
tc_finish(void *ctx, int fd, int *events)
{
	struct tls_conn *c = ctx;
	X509 *x;
	int rc;

	(void)fd;
	rc = handshake(c->ssl, events, c->reason, sizeof c->reason);
	if (rc == 0 && (x = SSL_get0_peer_certificate(c->ssl)) != NULL)
		X509_NAME_oneline(X509_get_subject_name(x), c->peer,
		    sizeof c->peer);
	return rc;
}

static ssize_t
tc_read(void *ctx, int fd, void *p, size_t n)
{
	struct tls_conn *c = ctx;

	(void)fd;
	return ssl_read(c->ssl, p, n, c->reason, sizeof c->reason);
}

static ssize_t
tc_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	struct tls_conn *c = ctx;

	(void)fd;
	return ssl_writev(c->ssl, iov, cnt, c->reason, sizeof c->reason);
}

static void
tc_close(void *ctx, int fd)
{
	struct tls_conn *c = ctx;

	ssl_close(c->ssl);
	close(fd);
	free(c);
}

static const char *
tc_name(void *ctx)
{
	(void)ctx;
	return "tls";
}

const struct dial_ops tls_conn_ops = {
	tc_open, tc_finish, tc_read, tc_writev, tc_close, tc_name,
};

const char *
tls_conn_reason(const struct tls_conn *c)
{
	return c->reason;
}

const char *
tls_conn_peer(const struct tls_conn *c)
{
	return c->peer;
}

int
tls_conn_pending(const struct tls_conn *c)
{
	return SSL_pending(c->ssl) > 0;
}
