/* sock: listening and connecting sockets, non-blocking and close-on-exec. */
#ifndef LF_SOCK_H
#define LF_SOCK_H

/* Listen on the Unix socket path.  A socket file nobody answers on is
 * taken over; one with a live listener is an error (EADDRINUSE). */
int sock_unix_listen(const char *path);
int sock_unix_connect(const char *path);
int sock_accept(int lfd);
int sock_nonblock(int fd);

#endif
