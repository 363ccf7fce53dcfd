/* io: whole reads and writes over short counts and EINTR.  Nothing here
 * makes a byte durable (that is lib/durable): these are for pipes,
 * sockets, standard output, and files synced by someone else. */
#ifndef LF_IO_H
#define LF_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

int io_write_all(int fd, const void *p, size_t n);	/* 0, -1 */
int io_writev_all(int fd, struct iovec *iov, int iovcnt);	/* 0, -1; iov is used up */
int io_read_all(int fd, void *p, size_t n);	/* bytes read (< n at the end), -1 */
ssize_t io_pread_all(int fd, void *p, size_t n, off_t off);	/* the same, at off */

#endif
