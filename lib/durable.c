#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "durable.h"

int
durable_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		if ((w = pwrite(fd, s, n, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* EINTR is retried: an interrupted sync reported no write error. */
int
durable_fdatasync(int fd)
{
	while (fdatasync(fd) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
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
durable_sync_dirs(int todir, int fromdir)
{
	if (durable_fsync(todir) == -1)
		return -1;
	return fromdir == todir ? 0 : durable_fsync(fromdir);
}

enum durable_outcome
durable_commit(int fd, const void *p, size_t n, off_t off, int fromdir,
    const char *from, int todir, const char *to, unsigned int flags)
{
	if (fd != -1 && ((n > 0 && durable_pwrite_all(fd, p, n, off) == -1) ||
	    durable_fdatasync(fd) == -1))
		return DURABLE_NOT_MOVED;
	if (renameat2(fromdir, from, todir, to, flags) == -1)
		return DURABLE_NOT_MOVED;
	if (durable_sync_dirs(todir, fromdir) == -1)
		return DURABLE_MOVED_UNSYNCED;
	return DURABLE_DONE;
}

int
durable_replace(int dirfd, const char *name, const void *p, size_t n)
{
	char tmp[4096];
	int fd, e;
	enum durable_outcome o;

	/* one temporary name per process: two writers never share one */
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", name, (long)getpid()) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	o = durable_commit(fd, p, n, 0, dirfd, tmp, dirfd, name, 0);
	e = errno;
	close(fd);
	if (o == DURABLE_NOT_MOVED)
		unlinkat(dirfd, tmp, 0);
	errno = e;
	return o == DURABLE_DONE ? 0 : o == DURABLE_MOVED_UNSYNCED ? 1 : -1;
}
