/* sock: listening and connecting sockets, non-blocking and close-on-exec. */
#ifndef LF_SOCK_H
#define LF_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

/* Listen on the Unix socket path.  A socket file nobody answers on is
 * taken over; one with a live listener is an error (EADDRINUSE). */
int sock_unix_listen(const char *path);
int sock_unix_connect(const char *path);
/* Accept a connection, non-blocking and close-on-exec, with the peer's
 * address in ss (*len: its size). */
int sock_accept_from(int lfd, struct sockaddr_storage *ss, socklen_t *len);
int sock_nonblock(int fd);

/* Connections waiting to be accepted: past it, a Unix client's connect
 * fails with EAGAIN and a TCP client's SYN is retried a second later (the
 * kernel caps it at net.core.somaxconn, 4096 since Linux 5.4).  Large, so
 * that a reconnect storm (every forwarder after an aggregator restart)
 * waits in the queue rather than in SYN retries; the connections are
 * bounded once accepted (lib/ingest). */
#define SOCK_BACKLOG 4096

enum sock_kind { SOCK_UNIX = 1, SOCK_TCP };

/* Listen on TCP: host an IPv4 or IPv6 address, or a name (its first
 * address, resolved now); port 0 takes a free one.  SO_REUSEADDR, so a
 * restart does not wait out TIME_WAIT.  -1 with errno and err. */
int sock_tcp_listen(const char *host, const char *port, char *err, size_t n);
/* Listen on "unix:PATH" or "tcp:HOST:PORT" ("tcp:[::1]:24224" for an
 * IPv6 address; "tcp:[::]:P" takes IPv4 too unless the system sets
 * net.ipv6.bindv6only); *kind says which.  The socket, or -1 with a
 * reason in err (errno EINVAL: not such an address). */
int sock_listen(const char *spec, enum sock_kind *kind, char *err, size_t n);
/* The address a socket is bound to, or its peer's (peer=1), as
 * "unix:PATH", "tcp:1.2.3.4:5" or "tcp:[::1]:5".  0 or -1. */
int sock_name(int fd, int peer, char *buf, size_t n);
/* A numeric host of an address ("192.0.2.1", "::1"); "" for a Unix
 * peer.  0 or -1. */
int sock_host(const struct sockaddr *sa, socklen_t len, char *buf, size_t n,
    unsigned *port);

#endif
