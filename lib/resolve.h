/* resolve: name lookups off the libev loop.
 *
 * getaddrinfo(3) and getnameinfo(3) block, for as long as a name server
 * takes to answer or the resolver's own timeouts (resolv.conf: 5 s a
 * try, 2 tries, per server, per address family).  A tool whose loop also
 * keeps acks, heartbeats and timers running cannot wait for them, so the
 * calls run on a few worker threads (RESOLVE_THREADS at most, started as
 * lookups need them).  Workers only run the libc call on copies of its
 * inputs; results come back to the loop through an ev_async, and every
 * callback is made from the loop, never from inside a resolve_* call.
 *
 * Bounds.  At most max_pending lookups are queued or running (each name,
 * or each reverse address, is looked up once however many callers wait
 * for it): past that, resolve_forward and resolve_reverse fail with
 * EAGAIN.  Each caller waits at most timeout seconds; then its callback
 * says "timed out" (a worker stuck in a libc call cannot be interrupted;
 * its answer, if one ever comes, still fills the cache).  The caches are
 * bounded in entries (least recently used goes first).
 *
 * Forward lookups are cached per (host, port) with Fluentd's
 * expire_dns_cache rules: expire < 0 (Fluentd's nil, the default) keeps a
 * result until resolve_forget (out_forward drops it when a server is
 * detached), 0 resolves on every connection, N keeps it N seconds.  A
 * failure is not cached.  A name that fails is logged once per reason,
 * however often it is retried, and once more when it resolves again.
 *
 * Reverse lookups (getnameinfo with NI_NAMEREQD: a name only if the
 * address has one) are cached for rev_ttl seconds, failures too (as the
 * numeric address), so a flood of connections from an address without a
 * name costs one lookup.  A caller that gets no name gets the numeric
 * address, as Fluentd's in_forward does.
 *
 * resolve_free at exit: queued lookups are dropped, idle workers are
 * joined; a worker still inside getaddrinfo after RESOLVE_EXIT_WAIT
 * seconds is detached (it cannot be cancelled safely) and frees what it
 * holds when the call returns, or the process exits first. */
#ifndef LF_RESOLVE_H
#define LF_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>

#define RESOLVE_THREADS		4	/* workers at most */
#define RESOLVE_EXIT_WAIT	1.0	/* seconds resolve_free waits */
#define RESOLVE_ADDRS		16	/* addresses kept per name */

struct resolve_conf {
	int	threads;		/* 2 */
	size_t	max_pending;		/* 64 lookups queued or running */
	double	timeout;		/* 10 s a caller waits */
	double	expire;			/* -1: forever (Fluentd's nil) */
	size_t	fwd_max;		/* 256 names cached */
	size_t	rev_max;		/* 4096 addresses cached */
	double	rev_ttl;		/* 300 s */
	/* The cache's clock, for tests; NULL: ev_now(loop). */
	double	(*clock)(void *arg);
	void	*clock_arg;
};

void	resolve_conf_default(struct resolve_conf *c);

struct resolve_sa {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* A forward answer: n addresses in getaddrinfo's order, or err != 0 (an
 * EAI_* code, EAI_AGAIN for a timeout) with why. */
struct resolve_res {
	int	err;
	char	why[128];
	size_t	n;
	const struct resolve_sa *sa;
};

typedef void resolve_fwd_cb(void *arg, const struct resolve_res *res);
/* host: the name, or the numeric address when it has none (resolved 0) */
typedef void resolve_rev_cb(void *arg, const char *host, int resolved);

struct resolve;
struct resolve_req;

/* NULL with errno. */
struct resolve *resolve_new(struct ev_loop *loop, const struct resolve_conf *c);
/* See the top: may leave a stuck worker detached.  Not from a callback. */
void	resolve_free(struct resolve *r);

/* A fresh cached answer for host and port (SOCK_STREAM): 1 with *res
 * filled (valid until the loop runs again), 0 without one. */
int	resolve_cached(struct resolve *r, const char *host, const char *port,
	    struct resolve_res *res);
/* Look host up (joining a lookup of it already under way); cb is made
 * once, from the loop, unless the request is cancelled first.  NULL with
 * errno (EAGAIN: max_pending reached; ENOMEM; ENAMETOOLONG). */
struct resolve_req *resolve_forward(struct resolve *r, const char *host,
	    const char *port, resolve_fwd_cb *cb, void *arg);
/* Drop host's cached answer: the next connection resolves it again. */
void	resolve_forget(struct resolve *r, const char *host, const char *port);

/* A fresh cached answer for sa: 1 with host filled (n bytes): its
 * name, or its numeric address when it has none; 0 without one. */
int	resolve_reverse_cached(struct resolve *r, const struct sockaddr *sa,
	    socklen_t len, char *host, size_t n);
/* The name of sa (NI_NAMEREQD); cb as for resolve_forward.  NULL with
 * errno (EAGAIN, ENOMEM, EAFNOSUPPORT). */
struct resolve_req *resolve_reverse(struct resolve *r,
	    const struct sockaddr *sa, socklen_t len, resolve_rev_cb *cb,
	    void *arg);

/* No callback will be made for q; q is freed.  q must not have had its
 * callback yet. */
void	resolve_cancel(struct resolve_req *q);

struct resolve_stats {
	unsigned long long lookups, hits, timeouts, failures, refused;
	size_t	pending;		/* queued or running now */
	int	threads;
};
void	resolve_get_stats(const struct resolve *r, struct resolve_stats *st);

#endif
