#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "durable.h"

int
durable_write_all(int fd, const void *p, size_t n)
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
durable_writev_all(int fd, struct iovec *iov, int iovcnt)
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
durable_read_all(int fd, void *p, size_t n)
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

int
durable_fsync(int fd)
{
	while (fsync(fd) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

int
durable_fsync_dir(const char *path)
{
	int fd, rc, e;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = durable_fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

int
durable_replace(int dirfd, const char *name, const void *p, size_t n)
{
	char tmp[4096];
	int fd, e;

	/* one temporary name per process: two writers never share one */
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", name, (long)getpid()) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (durable_write_all(fd, p, n) == -1 || durable_fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) == -1)
		goto fail;
	return dirfd == AT_FDCWD ? durable_fsync_dir(".") : durable_fsync(dirfd);
fail:
	e = errno;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	errno = e;
	return -1;
}
