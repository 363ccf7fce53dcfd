/* dial: the client side of a connection, as a small set of operations.
 *
 * lib/hop speaks the acked hop over any byte stream; how the stream is
 * opened, read, written and closed is a transport's business.  Unix and
 * TCP sockets are here; TLS and the forward handshake fit behind the same
 * operations (finish() is where a handshake would run), so a tool adds
 * them without touching lib/hop.
 *
 * Every TCP connection sends keepalive probes (see DIAL_KA_*).
 *
 * Every operation is non-blocking.  A numeric address is used as it is.
 * A host name is looked up through the dial_addr's resolver (lib/resolve,
 * worker threads) when one is set: open() then returns 1 with a stand-in
 * fd (an eventfd) and finish() keeps saying 1 until the answer is in,
 * then connects a socket and puts it in the stand-in's place with dup3,
 * the fd number unchanged (TLS has bound it already).  So the caller's
 * connect timeout covers the lookup, and the contract below gains one
 * rule: after finish() returns 1 the file behind fd may have changed,
 * and a libev watcher on it must be set again (ev_io_set), which every
 * caller does anyway to watch the events finish() asks for.  Without a
 * resolver (dial_addr.res NULL) a name is resolved with a blocking
 * getaddrinfo in open(), at start and at each reconnect. */
#ifndef LF_DIAL_H
#define LF_DIAL_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ev.h>

#include "resolve.h"

struct dial_ops {
	/* Start opening a connection: 0 with *fd connected, 1 with *fd
	 * in progress (call finish() when it is writable), -1 with errno. */
	int	(*open)(void *ctx, int *fd);
	/* The connection in progress: 0 ready for data, 1 to be called
	 * again once *events (EV_READ, EV_WRITE) are ready, -1 with errno. */
	int	(*finish)(void *ctx, int fd, int *events);
	/* As read(2) and writev(2) on a non-blocking fd: -1 with EAGAIN
	 * when nothing can be done now.  writev never raises SIGPIPE. */
	ssize_t	(*read)(void *ctx, int fd, void *p, size_t n);
	ssize_t	(*writev)(void *ctx, int fd, const struct iovec *iov, int cnt);
	void	(*close)(void *ctx, int fd);
	/* The peer's name for log lines, e.g. "unix:/run/lf.sock". */
	const char *(*name)(void *ctx);
};

/* A socket peer: unix:PATH, a path with a '/', tcp:HOST:PORT,
 * HOST:PORT or [V6ADDR]:PORT. */
struct dial_addr {
	int	unix_;			/* 1: path, 0: host and port */
	char	path[108];		/* sizeof sun_path */
	char	host[256];
	char	port[32];
	unsigned next;			/* which resolved address to try next */
	char	desc[400];
	/* Set by the tool after dial_parse: the resolver (NULL: resolve
	 * in open(), blocking), and dns_round_robin (each connection
	 * takes the next address; without it a connection keeps the
	 * address that last connected and moves on only after one that
	 * could not connect). */
	struct resolve *res;
	int	round_robin;
	/* a connection under way: its lookup, stand-in fd, answer */
	struct resolve_req *req;
	int	waiting, wait_fd;	/* the stand-in is the fd */
	int	got;			/* 0 waiting, 1 an address, -1 failed */
	int	err;			/* errno for finish() when got -1 */
	struct resolve_sa sa;		/* the address to connect to */
	int	tried, connected;	/* the last connection's fate */
};

/* 0, or -1 with a reason in err. */
int	dial_parse(struct dial_addr *a, const char *spec, char *err, size_t n);

/* Every TCP connection sends keepalive probes after DIAL_KA_IDLE idle
 * seconds, every DIAL_KA_INTVL, and is dropped after DIAL_KA_CNT
 * unanswered: a peer gone silently is found within a minute. */
#define DIAL_KA_IDLE	30
#define DIAL_KA_INTVL	10
#define DIAL_KA_CNT	3

/* The operations of a plain socket; ctx is a struct dial_addr.  A host
 * with several addresses is tried one address per open(), in turn (see
 * round_robin).  A dial_addr carries one connection at a time. */
extern const struct dial_ops dial_sock_ops;

#endif
