#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "handshake.h"
#include "log.h"
#include "mp.h"

enum {
	ST_HELO_IN,	/* client: waiting for HELO */
	ST_PONG_IN,	/* client: PING sent (or going), waiting for PONG */
	ST_PING_IN,	/* server: HELO sent (or going), waiting for PING */
	ST_DONE,	/* once the last message is written */
	ST_REFUSED,	/* server: once PONG false is written */
	ST_FAILED,
};

void
hs_digest(char *out, const void *a, size_t an, const void *b, size_t bn,
    const void *c, size_t cn, const void *d, size_t dn)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int i, mdlen = 0;
	EVP_MD_CTX *x;

	/* only allocation can fail here; an all-zero digest then matches
	 * nothing a peer sends, so the handshake fails closed */
	memset(md, 0, sizeof md);
	if ((x = EVP_MD_CTX_new()) != NULL) {
		if (EVP_DigestInit_ex(x, EVP_sha512(), NULL) != 1 ||
		    EVP_DigestUpdate(x, a, an) != 1 ||
		    EVP_DigestUpdate(x, b, bn) != 1 ||
		    EVP_DigestUpdate(x, c, cn) != 1 ||
		    EVP_DigestUpdate(x, d, dn) != 1 ||
		    EVP_DigestFinal_ex(x, md, &mdlen) != 1)
			memset(md, 0, sizeof md);
		EVP_MD_CTX_free(x);
	}
	for (i = 0; i < HS_HEX / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[HS_HEX] = '\0';
	OPENSSL_cleanse(md, sizeof md);
}

/* ---- a bounded msgpack writer ---- */

static int
put(struct hs *h, const void *p, size_t n)
{
	if (n > sizeof h->out - h->outlen)
		return -1;
	memcpy(h->out + h->outlen, p, n);
	h->outlen += n;
	return 0;
}

static int
put_hdr(struct hs *h, unsigned char fix, unsigned char c8, size_t n)
{
	unsigned char b[3];

	if (fix != 0 && n < 32) {
		b[0] = fix | (unsigned char)n;
		return put(h, b, 1);
	}
	if (n < 256) {
		b[0] = c8;
		b[1] = (unsigned char)n;
		return put(h, b, 2);
	}
	b[0] = c8 + 1;			/* str16, bin16 */
	b[1] = (unsigned char)(n >> 8);
	b[2] = (unsigned char)n;
	return n > 65535 ? -1 : put(h, b, 3);
}

static int
put_str(struct hs *h, const void *p, size_t n)
{
	return put_hdr(h, 0xa0, 0xd9, n) == -1 ? -1 : put(h, p, n);
}

static int
put_bin(struct hs *h, const void *p, size_t n)
{
	return put_hdr(h, 0, 0xc4, n) == -1 ? -1 : put(h, p, n);
}

static int
put_byte(struct hs *h, unsigned char c)
{
	return put(h, &c, 1);
}

/* ---- failures ---- */

static int
fail(struct hs *h, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->reason, sizeof h->reason, fmt, ap);
	va_end(ap);
	h->state = ST_FAILED;
	errno = e;
	return HS_FAIL;
}

/* A peer's string, made fit for a log line. */
static void
printable(char *dst, size_t cap, const unsigned char *p, size_t n)
{
	size_t i;

	if (n >= cap)
		n = cap - 1;
	for (i = 0; i < n; i++)
		dst[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	dst[n] = '\0';
}

static int
take(unsigned char *dst, size_t cap, size_t *len, const struct mp_obj *o)
{
	if ((o->type != MP_STR && o->type != MP_BIN) || o->n > cap)
		return -1;
	memcpy(dst, o->p, o->n);
	*len = o->n;
	return 0;
}

static int
digest_eq(const struct mp_obj *o, const char *want)
{
	return (o->type == MP_STR || o->type == MP_BIN) && o->n == HS_HEX &&
	    CRYPTO_memcmp(o->p, want, HS_HEX) == 0;
}

/* ---- the client ---- */

void
hs_client_init(struct hs *h, const struct hs_client_conf *c)
{
	memset(h, 0, sizeof *h);
	h->cc = c;
	h->state = ST_HELO_IN;
}

static int
parse_helo(struct hs *h, const unsigned char *p, const unsigned char *end)
{
	struct mp_obj o, k, v;
	uint32_t i;

	if (mp_read(&p, end, &o) == -1 || o.type != MP_ARRAY || o.n != 2 ||
	    mp_read(&p, end, &o) == -1 || !mp_streq(&o, "HELO") ||
	    mp_read(&p, end, &o) == -1 || o.type != MP_MAP)
		return -1;
	for (i = 0; i < o.n; i++) {
		if (mp_read(&p, end, &k) == -1)
			return -1;
		if (mp_streq(&k, "nonce") || mp_streq(&k, "auth")) {
			int nonce = mp_streq(&k, "nonce");

			if (mp_read(&p, end, &v) == -1 ||
			    take(nonce ? h->nonce : h->auth, sizeof h->nonce,
			    nonce ? &h->noncelen : &h->authlen, &v) == -1)
				return -1;
		} else if (mp_streq(&k, "keepalive")) {
			if (mp_read(&p, end, &v) == -1)
				return -1;
			h->keepalive = v.type == MP_BOOL && v.v.b;
		} else if (mp_pass(&p, end) == -1)
			return -1;
	}
	return h->noncelen > 0 ? 0 : -1;
}

static int
client_helo(struct hs *h, const unsigned char *p, size_t len)
{
	const struct hs_client_conf *c = h->cc;
	const char *user = "", *host = c->self_hostname;
	const struct secret *key = c->shared_key;
	unsigned char rnd[16];
	char dig[HS_HEX + 1], pw[HS_HEX + 1] = "";
	size_t i;

	if (parse_helo(h, p, p + len) == -1)
		return fail(h, EPROTO, "the server's first message is not "
		    "a HELO with a nonce");
	/* 32 hex characters, as Fluentd's SecureRandom.hex(16) */
	arc4random_buf(rnd, sizeof rnd);
	for (i = 0; i < sizeof rnd; i++)
		snprintf(h->salt + 2 * i, 3, "%02x", rnd[i]);
	h->saltlen = 2 * sizeof rnd;
	hs_digest(dig, h->salt, h->saltlen, host, strlen(host), h->nonce,
	    h->noncelen, key->p, key->n);
	if (h->authlen > 0) {
		const struct secret *pass = c->password;

		if (c->username != NULL)
			user = c->username;
		hs_digest(pw, h->auth, h->authlen, user, strlen(user),
		    pass ? pass->p : "", pass ? pass->n : 0, "", 0);
	}
	h->outlen = h->outoff = 0;
	if (put_byte(h, 0x96) == -1 || put_str(h, "PING", 4) == -1 ||
	    put_str(h, host, strlen(host)) == -1 ||
	    put_str(h, h->salt, h->saltlen) == -1 ||
	    put_str(h, dig, HS_HEX) == -1 ||
	    put_str(h, user, strlen(user)) == -1 ||
	    put_str(h, pw, strlen(pw)) == -1)
		return fail(h, EINVAL, "hostname or username too long");
	OPENSSL_cleanse(pw, sizeof pw);
	h->state = ST_PONG_IN;
	return HS_AGAIN;
}

static int
client_pong(struct hs *h, const unsigned char *p, size_t len)
{
	const struct hs_client_conf *c = h->cc;
	const unsigned char *end = p + len;
	struct mp_obj o, ok, why, host, dig;
	char want[HS_HEX + 1], s[128];

	if (mp_read(&p, end, &o) == -1 || o.type != MP_ARRAY || o.n != 5 ||
	    mp_read(&p, end, &o) == -1 || !mp_streq(&o, "PONG") ||
	    mp_read(&p, end, &ok) == -1 || ok.type != MP_BOOL ||
	    mp_read(&p, end, &why) == -1 || mp_read(&p, end, &host) == -1 ||
	    mp_read(&p, end, &dig) == -1)
		return fail(h, EPROTO, "the server's answer is not a PONG");
	if (!ok.v.b) {
		if (why.type == MP_STR || why.type == MP_BIN)
			printable(s, sizeof s, why.p, why.n);
		else
			strlcpy(s, "no reason given", sizeof s);
		return fail(h, EACCES, "refused by the server: %s", s);
	}
	if ((host.type != MP_STR && host.type != MP_BIN) ||
	    host.n >= sizeof h->peer_host)
		return fail(h, EPROTO, "the PONG has no server hostname");
	printable(h->peer_host, sizeof h->peer_host, host.p, host.n);
	if (host.n == strlen(c->self_hostname) &&
	    memcmp(host.p, c->self_hostname, host.n) == 0)
		return fail(h, EACCES, "the server's hostname is ours (%s): "
		    "a loop to ourselves? (set a distinct self hostname)",
		    h->peer_host);
	hs_digest(want, h->salt, h->saltlen, host.p, host.n, h->nonce,
	    h->noncelen, c->shared_key->p, c->shared_key->n);
	if (!digest_eq(&dig, want))
		return fail(h, EACCES, "the server's digest does not match: "
		    "it does not know our shared key");
	h->state = ST_DONE;
	return HS_DONE;
}

/* ---- the server ---- */

void
hs_server_init(struct hs *h, const struct hs_server_conf *c)
{
	static const unsigned char helo[] = {
		0x92, 0xa4, 'H', 'E', 'L', 'O', 0x83,
	};

	memset(h, 0, sizeof *h);
	h->server = 1;
	h->sc = c;
	h->state = ST_PING_IN;
	h->noncelen = h->authlen = 16;
	arc4random_buf(h->nonce, h->noncelen);
	arc4random_buf(h->auth, h->authlen);
	/* fresh per connection; auth is sent even without user auth, as
	 * Fluentd does, and cannot overflow the buffer */
	(void)put(h, helo, sizeof helo);
	(void)put_str(h, "nonce", 5);
	(void)put_bin(h, h->nonce, h->noncelen);
	(void)put_str(h, "auth", 4);
	(void)put_bin(h, h->auth, h->authlen);
	(void)put_str(h, "keepalive", 9);
	(void)put_byte(h, c->keepalive ? 0xc3 : 0xc2);
}

static int
pong(struct hs *h, const char *why, const void *host, size_t hostlen,
    const char *dig)
{
	h->outlen = h->outoff = 0;
	(void)put_byte(h, 0x95);
	(void)put_str(h, "PONG", 4);
	(void)put_byte(h, why == NULL ? 0xc3 : 0xc2);
	(void)put_str(h, why ? why : "", why ? strlen(why) : 0);
	if (put_str(h, host, hostlen) == -1 ||
	    put_str(h, dig, strlen(dig)) == -1)
		return fail(h, EINVAL, "our hostname is too long");
	h->state = why == NULL ? ST_DONE : ST_REFUSED;
	return HS_AGAIN;
}

static int
refuse(struct hs *h, const char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->reason, sizeof h->reason, fmt, ap);
	va_end(ap);
	return pong(h, why, "", 0, "");
}

static int
user_ok(struct hs *h, const struct mp_obj *user, const struct mp_obj *pw)
{
	const struct hs_server_conf *c = h->sc;
	char want[HS_HEX + 1];
	size_t i;
	int ok;

	for (i = 0; i < c->nusers; i++) {
		if (user->n != strlen(c->users[i].name) ||
		    memcmp(user->p, c->users[i].name, user->n) != 0)
			continue;
		hs_digest(want, h->auth, h->authlen, user->p, user->n,
		    c->users[i].password->p, c->users[i].password->n, "", 0);
		ok = digest_eq(pw, want);
		OPENSSL_cleanse(want, sizeof want);
		return ok;
	}
	return 0;
}

static int
server_ping(struct hs *h, const unsigned char *p, size_t len)
{
	const struct hs_server_conf *c = h->sc;
	const unsigned char *end = p + len;
	struct mp_obj o, host, salt, dig, user, pw;
	char want[HS_HEX + 1];

	if (mp_read(&p, end, &o) == -1 || o.type != MP_ARRAY || o.n != 6 ||
	    mp_read(&p, end, &o) == -1 || !mp_streq(&o, "PING") ||
	    mp_read(&p, end, &host) == -1 || mp_read(&p, end, &salt) == -1 ||
	    mp_read(&p, end, &dig) == -1 || mp_read(&p, end, &user) == -1 ||
	    mp_read(&p, end, &pw) == -1 ||
	    (host.type != MP_STR && host.type != MP_BIN) ||
	    host.n >= sizeof h->peer_host ||
	    take((unsigned char *)h->salt, sizeof h->salt, &h->saltlen,
	    &salt) == -1 || (user.type != MP_STR && user.type != MP_BIN) ||
	    user.n >= sizeof h->user)
		return refuse(h, "invalid ping message",
		    "an invalid PING message");
	printable(h->peer_host, sizeof h->peer_host, host.p, host.n);
	hs_digest(want, h->salt, h->saltlen, host.p, host.n, h->nonce,
	    h->noncelen, c->shared_key->p, c->shared_key->n);
	if (!digest_eq(&dig, want))
		return refuse(h, "shared_key mismatch", "client %s: shared "
		    "key mismatch", h->peer_host);
	printable(h->user, sizeof h->user, user.p, user.n);
	if (c->user_auth && !user_ok(h, &user, &pw))
		return refuse(h, "username/password mismatch", "client %s: "
		    "username/password mismatch (user \"%s\")", h->peer_host,
		    h->user);
	hs_digest(want, h->salt, h->saltlen, c->self_hostname,
	    strlen(c->self_hostname), h->nonce, h->noncelen,
	    c->shared_key->p, c->shared_key->n);
	return pong(h, NULL, c->self_hostname, strlen(c->self_hostname),
	    want);
}

/* ---- the driver ---- */

static int
on_message(struct hs *h, size_t len)
{
	switch (h->state) {
	case ST_HELO_IN:
		return client_helo(h, h->in, len);
	case ST_PONG_IN:
		return client_pong(h, h->in, len);
	default:
		return server_ping(h, h->in, len);
	}
}

/* Write what is pending: 0 when all is out, HS_AGAIN, or HS_FAIL. */
static int
flush(struct hs *h, const struct dial_ops *ops, void *ctx, int fd,
    int *events)
{
	struct iovec iov;
	ssize_t w;

	while (h->outoff < h->outlen) {
		iov.iov_base = h->out + h->outoff;
		iov.iov_len = h->outlen - h->outoff;
		if ((w = ops->writev(ctx, fd, &iov, 1)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				*events = EV_WRITE;
				return HS_AGAIN;
			}
			return fail(h, errno, "write: %s", strerror(errno));
		}
		if (w == 0) {
			*events = EV_WRITE;
			return HS_AGAIN;
		}
		h->outoff += (size_t)w;
	}
	return 0;
}

int
hs_step(struct hs *h, const struct dial_ops *ops, void *ctx, int fd,
    int *events)
{
	size_t len;
	ssize_t n;
	int rc;

	for (;;) {
		if (h->state == ST_FAILED) {
			errno = EPROTO;
			return HS_FAIL;
		}
		if ((rc = flush(h, ops, ctx, fd, events)) != 0)
			return rc;
		if (h->state == ST_DONE)
			return HS_DONE;
		if (h->state == ST_REFUSED) {
			h->state = ST_FAILED;
			errno = EACCES;
			return HS_FAIL;
		}
		rc = mp_skip(h->in, h->inlen, 4, &len);
		if (rc == MP_OK) {
			rc = on_message(h, len);
			memmove(h->in, h->in + len, h->inlen - len);
			h->inlen -= len;
			if (rc != HS_AGAIN)
				return rc;
			continue;
		}
		if (rc != MP_MORE)
			return fail(h, EPROTO, "the peer does not speak "
			    "msgpack (a TLS server, or not a forward server?)");
		if (h->inlen == sizeof h->in)
			return fail(h, EPROTO, "a handshake message over %d "
			    "bytes", HS_MAX);
		n = ops->read(ctx, fd, h->in + h->inlen,
		    sizeof h->in - h->inlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				*events = EV_READ;
				return HS_AGAIN;
			}
			return fail(h, errno, "read: %s", strerror(errno));
		}
		if (n == 0)
			return fail(h, ECONNRESET, "the peer closed the "
			    "connection during the handshake%s",
			    h->state == ST_PONG_IN ? "" : " (a server "
			    "without TLS, or with TLS we did not start?)");
		h->inlen += (size_t)n;
	}
}

size_t
hs_leftover(const struct hs *h, const unsigned char **p)
{
	*p = h->in;
	return h->state == ST_DONE ? h->inlen : 0;
}

void
hs_clear(struct hs *h)
{
	OPENSSL_cleanse(h->in, sizeof h->in);
	OPENSSL_cleanse(h->out, sizeof h->out);
	OPENSSL_cleanse(h->nonce, sizeof h->nonce);
	OPENSSL_cleanse(h->auth, sizeof h->auth);
	h->inlen = h->outlen = h->outoff = 0;
}

/* ---- the client as a dial_ops layer ---- */

void
hs_dial_init(struct hs_dial *d, const struct hs_client_conf *c,
    const struct dial_ops *lower, void *lctx)
{
	memset(d, 0, sizeof *d);
	d->lower = lower;
	d->lctx = lctx;
	d->conf = c;
	d->logged = d->own;
}

void
hs_dial_share_log(struct hs_dial *d, struct hs_dial *with)
{
	d->logged = with->logged;
}

static int
hd_open(void *ctx, int *fd)
{
	struct hs_dial *d = ctx;
	int rc;

	if ((rc = d->lower->open(d->lctx, fd)) == -1)
		return -1;
	d->lower_done = rc == 0;
	d->left = 0;
	hs_client_init(&d->hs, d->conf);
	return 1;	/* the handshake is still to come */
}

static int
hd_finish(void *ctx, int fd, int *events)
{
	struct hs_dial *d = ctx;
	const unsigned char *p;
	int rc, e;

	if (!d->lower_done) {
		if ((rc = d->lower->finish(d->lctx, fd, events)) != 0)
			return rc;
		d->lower_done = 1;
	}
	rc = hs_step(&d->hs, d->lower, d->lctx, fd, events);
	if (rc == HS_DONE) {
		d->left = hs_leftover(&d->hs, &p);
		if (d->logged[0] != '\0')
			log_info("%s: handshake: accepted by %s",
			    d->lower->name(d->lctx), d->hs.peer_host);
		d->logged[0] = '\0';
		return 0;
	}
	if (rc == HS_FAIL && strcmp(d->logged, d->hs.reason) != 0) {
		e = errno;
		log_warn("%s: handshake: %s", d->lower->name(d->lctx),
		    d->hs.reason);
		strlcpy(d->logged, d->hs.reason, sizeof d->own);
		errno = e;
	}
	return rc;
}

static ssize_t
hd_read(void *ctx, int fd, void *p, size_t n)
{
	struct hs_dial *d = ctx;
	const unsigned char *q;
	size_t all;

	if (d->left > 0) {
		all = hs_leftover(&d->hs, &q);
		if (n > d->left)
			n = d->left;
		memcpy(p, q + all - d->left, n);
		d->left -= n;
		return (ssize_t)n;
	}
	return d->lower->read(d->lctx, fd, p, n);
}

static ssize_t
hd_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	struct hs_dial *d = ctx;

	return d->lower->writev(d->lctx, fd, iov, cnt);
}

static void
hd_close(void *ctx, int fd)
{
	struct hs_dial *d = ctx;

	hs_clear(&d->hs);
	d->left = 0;
	d->lower->close(d->lctx, fd);
}

static const char *
hd_name(void *ctx)
{
	struct hs_dial *d = ctx;

	return d->lower->name(d->lctx);
}

const struct dial_ops hs_dial_ops = {
	hd_open, hd_finish, hd_read, hd_writev, hd_close, hd_name,
};
