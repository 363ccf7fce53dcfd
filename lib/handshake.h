/* handshake: the forward protocol's secure handshake, HELO / PING / PONG
 * (research/forward-protocol.md section 3; Fluentd's <security>).
 *
 *   server -> ["HELO", {"nonce": N, "auth": A, "keepalive": true}]
 *   client -> ["PING", client_host, salt, hex(sha512(salt client_host N
 *              key)), user, hex(sha512(A user password)) or ""]
 *   server -> ["PONG", true, "", server_host, hex(sha512(salt
 *              server_host N key))]  or  ["PONG", false, reason, "", ""]
 *
 * Both sides prove they know the shared key without sending it; the
 * client also checks the server's digest, so a server without the key
 * cannot pose as the aggregator.  The handshake runs once per connection,
 * before any data, over whatever carries the bytes (a plain socket or
 * TLS): it is a state machine driven through a struct dial_ops's read
 * and writev, non-blocking.  Every message read is bounded by HS_MAX
 * bytes; timeouts are the caller's (lib/hop's connect timeout covers
 * the whole of finish(), so the handshake too).
 *
 * Strings go out as msgpack str (Fluent Bit's in_forward rejects bin in
 * PING); the server's nonce and auth go out as bin, as Fluentd sends
 * them, and either str or bin is accepted from a peer. */
#ifndef LF_HANDSHAKE_H
#define LF_HANDSHAKE_H

#include <stddef.h>

#include "dial.h"
#include "secret.h"

#define HS_MAX		4096	/* bytes of one handshake message */
#define HS_HEX		128	/* hex of a SHA-512 digest */

/* hex(sha512(a b c d)) into out[HS_HEX + 1]; the parts are raw bytes. */
void	hs_digest(char *out, const void *a, size_t an, const void *b,
	    size_t bn, const void *c, size_t cn, const void *d, size_t dn);

struct hs_client_conf {
	const char	*self_hostname;	/* sent in PING; gethostname() */
	const struct secret *shared_key;
	const char	*username;	/* NULL: no user auth */
	const struct secret *password;	/* with username */
};

struct hs_user {
	const char	*name;
	const struct secret *password;
};

struct hs_server_conf {
	const char	*self_hostname;	/* sent in PONG */
	const struct secret *shared_key;
	int		 user_auth;	/* 1: PING must name a user below */
	const struct hs_user *users;
	size_t		 nusers;
	int		 keepalive;	/* HELO's "keepalive" */
};

enum { HS_DONE = 0, HS_AGAIN = 1, HS_FAIL = -1 };

/* One connection's handshake, either side. */
struct hs {
	int		 server;
	int		 state;
	const struct hs_client_conf *cc;
	const struct hs_server_conf *sc;
	unsigned char	 in[HS_MAX];
	size_t		 inlen;
	unsigned char	 out[HS_MAX];
	size_t		 outlen, outoff;
	unsigned char	 nonce[64], auth[64];
	size_t		 noncelen, authlen;
	char		 salt[64];	/* the client's, as sent */
	size_t		 saltlen;
	int		 keepalive;	/* the server's HELO said so */
	char		 peer_host[256];/* from PING or PONG */
	char		 user[256];	/* the user a server accepted */
	char		 reason[256];	/* why it failed */
};

void	hs_client_init(struct hs *h, const struct hs_client_conf *c);
void	hs_server_init(struct hs *h, const struct hs_server_conf *c);

/* Run as far as the connection allows: HS_DONE, HS_AGAIN with *events
 * (EV_READ or EV_WRITE) to wait for, or HS_FAIL with h->reason set and
 * errno (EACCES: the peer was refused or refused us; EPROTO: it does not
 * speak the handshake; ECONNRESET: it closed; or the transport's
 * errno).  A server that refuses a client has sent its PONG false
 * before it says HS_FAIL.  ops/ctx are the layer below (only read and
 * writev are used). */
int	hs_step(struct hs *h, const struct dial_ops *ops, void *ctx, int fd,
	    int *events);

/* Bytes read past the last handshake message (the peer's first data),
 * which the caller must take before it reads the connection itself. */
size_t	hs_leftover(const struct hs *h, const unsigned char **p);

/* Zero the per-connection values (nonce, digests in the buffers). */
void	hs_clear(struct hs *h);

/* A dial_ops that runs the client side of the handshake in finish(),
 * over another dial_ops (plain sockets or TLS), so lib/hop gets it for
 * free.  open() always says "in progress", so finish() is always called.
 * A failure is logged (a warning naming the peer and the reason) the
 * first time it happens and again only when the reason changes or after
 * a success, so a server that keeps refusing is one line, not one per
 * reconnect. */
struct hs_dial {
	const struct dial_ops *lower;
	void		*lctx;
	const struct hs_client_conf *conf;
	int		 lower_done;
	size_t		 left;		/* leftover bytes not yet read */
	struct hs	 hs;
	char		*logged;	/* the last reason logged: own, */
	char		 own[256];	/* or another dial's (hs_dial_share_log) */
};

void	hs_dial_init(struct hs_dial *d, const struct hs_client_conf *c,
	    const struct dial_ops *lower, void *lctx);
/* d logs with the memory of with: two dials to one server (the data
 * connection's and the heartbeat probe's) log its refusal once. */
void	hs_dial_share_log(struct hs_dial *d, struct hs_dial *with);
extern const struct dial_ops hs_dial_ops;

#endif
