/* serve: the server side of a forward-protocol connection, as the
 * transport (struct ingest_ops) of a lib/ingest listener: client
 * networks, socket options, TLS, and the HELO/PING/PONG handshake.
 *
 * A connection from an address in no --allow network is anonymous, and
 * is accepted only with allow_anonymous (Fluentd's <security>
 * allow_anonymous_source, default true); the others are closed at once,
 * with a log line (rate-limited).  Then, in ops->finish, before any data:
 * the TLS handshake (lib/tls) when the listener has a TLS context, and
 * the forward handshake (lib/handshake, server side) when it has a
 * shared key.  A client that fails either is dropped with a log line
 * naming it and the reason; a client refused by the handshake has had
 * its PONG false first, so it can say why too.
 *
 * Memory: a connection costs this small struct; the handshake's 8 KiB
 * of buffers exist only while it runs (10,000 idle connections must fit
 * in a few tens of megabytes). */
#ifndef LF_SERVE_H
#define LF_SERVE_H

#include <stddef.h>
#include <sys/socket.h>

#include "handshake.h"
#include "ingest.h"
#include "tls.h"

/* A client network: an IPv4 or IPv6 prefix.  An IPv4 client seen on an
 * IPv6 socket (::ffff:a.b.c.d) matches the IPv4 networks. */
struct serve_net {
	int		 family;	/* AF_INET, AF_INET6 */
	unsigned char	 addr[16];
	unsigned	 bits;
};

/* "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1".  0 or -1 (err). */
int	serve_net_parse(struct serve_net *n, const char *spec, char *err,
	    size_t errlen);
int	serve_net_match(const struct serve_net *n, const struct sockaddr *sa,
	    socklen_t len);

struct serve_conf {
	const char	*name;		/* "tcp", "tls", "unix": for log lines */
	struct tls_ctx	*tls;		/* NULL: plain */
	const struct hs_server_conf *hs;	/* NULL: no handshake */
	const struct serve_net *allow;
	size_t		 nallow;
	int		 allow_anonymous;	/* 1 by default */
	int		 tcp;		/* TCP_NODELAY and the options below */
	int		 keepalive;	/* SO_KEEPALIVE: send_keepalive_packet */
	double		 linger;	/* SO_LINGER seconds; < 0: none */
	struct {			/* counted by the operations */
		unsigned long accepted, refused, failed;
	} stats;
};

void	serve_conf_default(struct serve_conf *c);

/* The operations for a listener with this configuration, which is their
 * arg (it must live as long as the listener; its stats are counted). */
const struct ingest_ops *serve_ops_for(const struct serve_conf *c);

#endif
