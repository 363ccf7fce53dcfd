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

int
io_read_all(int fd, void *p, size_t n)
{
	char *s = p;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if ((r = read(fd, s + got, n - got)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (int)got;
}

ssize_t
io_pread_all(int fd, void *p, size_t n, off_t off)
{
	char *s = p;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if ((r = pread(fd, s + got, n - got, off + (off_t)got)) == -1) {
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
