/* secret: a shared key or a password, read from a file.
 *
 * Secrets never come on the command line (argv is public in ps and
 * /proc) and never go to a log.  A secret file must be a regular file
 * (a symbolic link to one is followed: Kubernetes mounts its secrets
 * that way) that its group and others cannot read or write: mode 0600
 * or 0400, as ssh asks of a private key.  A looser mode is an error,
 * not a warning, because a key that others can read is no longer a
 * secret and a warning is easy to miss in a log.  One trailing newline
 * (as an editor or `echo` leaves) is stripped; an empty secret is an
 * error.  The memory is zeroed when the secret is freed. */
#ifndef LF_SECRET_H
#define LF_SECRET_H

#include <stddef.h>

#define SECRET_MAX	65536	/* bytes; a bigger file is not a key */

struct secret {
	char	*p;		/* NUL-terminated, may hold other NULs */
	size_t	 n;
};

/* 0, or -1 with a reason in err (never the secret's bytes). */
int	secret_read(struct secret *s, const char *path, char *err, size_t n);
/* A secret from memory (tests, and callers with their own source). */
int	secret_set(struct secret *s, const void *p, size_t n);
/* Zero and free; s may be all zeros. */
void	secret_free(struct secret *s);

#endif
