#include <errno.h>
#include <unistd.h>

#include "io.h"

int
io_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, s, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
io_writev_all(int fd, struct iovec *iov, int iovcnt)
{
	ssize_t w;

	while (iovcnt > 0) {
		if ((w = writev(fd, iov, iovcnt)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (iovcnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* read(2) when off is -1, else pread(2) at off: whole, over short counts */
static ssize_t
read_whole(int fd, void *p, size_t n, off_t off)
{
	char *s = p;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = off == -1 ? read(fd, s + got, n - got) :
		    pread(fd, s + got, n - got, off + (off_t)got);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
io_read_all(int fd, void *p, size_t n)
{
	return (int)read_whole(fd, p, n, -1);
}

ssize_t
io_pread_all(int fd, void *p, size_t n, off_t off)
{
	return read_whole(fd, p, n, off);
}
