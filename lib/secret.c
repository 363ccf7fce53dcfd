#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "secret.h"

static int
fail(char *err, size_t n, const char *path, const char *why)
{
	snprintf(err, n, "%s: %s", path, why);
	return -1;
}

int
secret_set(struct secret *s, const void *p, size_t n)
{
	s->p = NULL;
	s->n = 0;
	if ((s->p = malloc(n + 1)) == NULL)
		return -1;
	memcpy(s->p, p, n);
	s->p[n] = '\0';
	s->n = n;
	return 0;
}

int
secret_read(struct secret *s, const char *path, char *err, size_t n)
{
	struct stat st;
	char *p;
	ssize_t r = 0;
	size_t len = 0;
	int fd;

	memset(s, 0, sizeof *s);
	/* O_NONBLOCK: a FIFO put there is refused below, never waited on */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1)
		return fail(err, n, path, strerror(errno));
	if (fstat(fd, &st) == -1) {
		close(fd);
		return fail(err, n, path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, n, path, "not a regular file");
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return fail(err, n, path, "group or others may read or write "
		    "it: chmod 600 (or 400) it first");
	}
	if ((p = malloc(SECRET_MAX + 1)) == NULL) {
		close(fd);
		return fail(err, n, path, strerror(errno));
	}
	/* read one byte past the bound, to tell "too big" from "full" */
	if ((r = io_read_all(fd, p, SECRET_MAX + 1)) > 0)
		len = (size_t)r;
	close(fd);
	if (r == -1 || len > SECRET_MAX) {
		explicit_bzero(p, len);
		free(p);
		return fail(err, n, path, r == -1 ? strerror(errno) :
		    "larger than 64 KiB: not a key");
	}
	if (len > 0 && p[len - 1] == '\n')
		len--;
	if (len == 0) {
		free(p);
		return fail(err, n, path, "empty");
	}
	p[len] = '\0';
	s->p = p;
	s->n = len;
	return 0;
}

void
secret_free(struct secret *s)
{
	if (s->p != NULL) {
		/* the secret and its NUL, which took the place of the
		 * newline that was stripped */
		explicit_bzero(s->p, s->n + 1);
		free(s->p);
	}
	s->p = NULL;
	s->n = 0;
}
