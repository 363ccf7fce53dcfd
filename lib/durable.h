/* durable: the write, fsync, rename, fsync-the-directory discipline.
 * Every byte lf promises to keep goes to disk through these functions;
 * an ack or a saved position may follow only their success. */
#ifndef LF_DURABLE_H
#define LF_DURABLE_H

#include <stddef.h>
#include <sys/uio.h>

int durable_write_all(int fd, const void *p, size_t n);	/* short writes, EINTR */
int durable_writev_all(int fd, struct iovec *iov, int iovcnt);
int durable_read_all(int fd, void *p, size_t n);	/* bytes read, -1 */
int durable_fsync(int fd);
int durable_fsync_dir(const char *path);

/* Replace dirfd/name with n bytes: write name.PID.tmp, fsync it, close it,
 * rename it over name, fsync the directory.  After a crash, name holds
 * either its old or its new contents, never a mix.  0, or -1 with errno
 * set and name untouched. */
int durable_replace(int dirfd, const char *name, const void *p, size_t n);

#endif
