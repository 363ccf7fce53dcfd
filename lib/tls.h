/* tls: TLS over OpenSSL, for the forward protocol's `transport tls`.
 *
 * The client side is a dial_ops layered over another (dial_sock_ops):
 * the lower layer opens and connects the socket, then finish() runs the
 * TLS handshake without blocking, so lib/hop's connect timeout covers
 * it.  The server certificate is always verified, against --tls-ca-path
 * (a PEM file, or a directory of hashed certificates as c_rehash makes)
 * or the system's store; its name is checked against the host we dial
 * (an IP literal against the certificate's IP addresses) unless
 * verify_hostname is 0, and the host name goes out as SNI.  A client
 * certificate and key are sent when configured.
 *
 * Versions: TLS 1.2 and 1.3 by default.  Fluentd's in_forward defaults
 * to TLS 1.2 only (min = max = TLSv1_2), which a 1.2-capable client
 * meets; a client limited to 1.3 would not, so 1.2 stays allowed.
 *
 * The server side is for lf-recv: a struct tls_server holds the
 * certificate, key and (for client certificates) the CA; each accepted
 * socket gets a struct tls_conn, driven through tls_conn_ops, a
 * dial_ops whose finish() runs SSL_accept (see below).
 *
 * read and writev follow dial.h: -1 with EAGAIN when TLS needs the
 * socket readable or writable (for either direction: the caller waits
 * on both, or retries on its next event); writev writes at most the
 * first iovecs' bytes it can, and after -1/EAGAIN the caller must offer
 * the same bytes again first (a byte stream does).  OpenSSL writes to the
 * socket with write(2), so the process must ignore SIGPIPE, as lib/sig
 * does (sig_init).  An end of file without a TLS close_notify reads as
 * an end of file: the forward protocol frames its own messages.
 *
 * read fills as much of the buffer as TLS can now, but bytes beyond it
 * may stay decrypted inside OpenSSL, where no EV_READ will announce
 * them: a reader must read until EAGAIN (or until it has no room and
 * come back when it has), not once per EV_READ.
 *
 * A failure is logged once per reason by the client layer (the first
 * time, and again only once the server has answered since), so a server
 * that keeps refusing is one log line, not one per reconnect. */
#ifndef LF_TLS_H
#define LF_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "dial.h"

enum { TLS_ANY = 0, TLS_V12 = 12, TLS_V13 = 13 };

struct tls_conf {
	const char	*ca_path;	/* file or directory; NULL: the system's */
	int		 verify_hostname;	/* 1 by default */
	const char	*cert_path;	/* our certificate (chain), PEM */
	const char	*key_path;	/* its private key, PEM, unencrypted */
	int		 min_version;	/* TLS_V12 by default */
	int		 max_version;	/* TLS_ANY: the highest, 1.3 */
	const char	*ciphers;	/* TLS 1.2 cipher list; NULL: OpenSSL's */
	/* server side only */
	int		 verify_client;	/* 1: a client certificate is required
					 * and checked against ca_path */
};

void	tls_conf_default(struct tls_conf *c);

struct tls_ctx;

/* The certificates and settings, loaded once: NULL with a reason in err
 * (file names and OpenSSL's words, never key bytes). */
struct tls_ctx *tls_client_new(const struct tls_conf *c, char *err, size_t n);
struct tls_ctx *tls_server_new(const struct tls_conf *c, char *err, size_t n);
void	tls_ctx_free(struct tls_ctx *t);

/* ---- the client: a dial_ops over another ---- */

struct tls_dial {
	struct tls_ctx	*t;
	const struct dial_ops *lower;
	void		*lctx;
	void		*ssl;		/* SSL *, per connection */
	int		 lower_done;
	char		 host[256];	/* checked and sent as SNI */
	char		 name[420];	/* "tls:" + the lower name */
	char		 reason[256];	/* the last failure */
	char		*logged;	/* the last one logged: own, or */
	char		 own[256];	/* another dial's (tls_dial_share_log) */
};

/* host is the name the certificate must carry (normally the host of the
 * dial_addr; Fluentd's `<server> name` when dialling an address).  NULL
 * or "" checks the chain only, no name: pass it only when verify_hostname
 * is off (a unix: socket has no host, so give it a name). */
void	tls_dial_init(struct tls_dial *d, struct tls_ctx *t, const char *host,
	    const struct dial_ops *lower, void *lctx);
extern const struct dial_ops tls_dial_ops;
/* d logs with the memory of with: two dials to one server (the data
 * connection's and the heartbeat probe's) log a failure once. */
void	tls_dial_share_log(struct tls_dial *d, struct tls_dial *with);

/* The negotiated version ("TLSv1.3"), or NULL when not connected. */
const char *tls_dial_version(const struct tls_dial *d);

/* ---- the server: one accepted socket ----
 *
 * lf-recv (lib/ingest) adopts it like this: on accept(2) of a
 * non-blocking fd, c = tls_conn_new(srv, fd); then, for the connection's
 * whole life, use tls_conn_ops with ctx c in place of read(2)/writev(2)/
 * close(2):
 *   finish(c, fd, &events)  until 0 (the TLS handshake done), waiting for
 *                           events when it says 1, dropping the
 *                           connection at -1 (tls_conn_reason says why);
 *   read(c, fd, p, n), writev(c, fd, iov, cnt)  as dial.h says;
 *   close(c, fd)            sends close_notify if it can without
 *                           blocking, closes fd and frees c.
 * open and name are not for this side (name gives "tls").  The forward
 * handshake (lib/handshake, hs_server_init/hs_step) then runs over the
 * same ops, after finish() and before any data. */
struct tls_conn;

struct tls_conn *tls_conn_new(struct tls_ctx *t, int fd);	/* NULL, errno */
extern const struct dial_ops tls_conn_ops;
const char *tls_conn_reason(const struct tls_conn *c);
/* Bytes decrypted and not yet read: no EV_READ will announce them. */
int	tls_conn_pending(const struct tls_conn *c);
/* The client certificate's subject (verify_client), or "". */
const char *tls_conn_peer(const struct tls_conn *c);

#endif
