/* posfile: Fluentd's position file; see posfile.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "durable.h"
#include "io.h"
#include "posfile.h"

/* Hex digits at p (at most n bytes), as Ruby's to_i(16) after the
 * regexp matched them.  More than 16 significant digits do not fit a
 * position: -1 (the line is dropped, as an entry nothing can resume). */
static int
hex64(const char *p, size_t n, uint64_t *v, size_t *used)
{
	uint64_t x = 0;
	size_t i;
	int d, sig = 0;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		if (sig || d) {
			if (++sig > 16)
				return -1;
		}
		x = x << 4 | (uint64_t)d;
	}
	*v = x;
	*used = i;
	return i > 0 ? 0 : -1;
}

/* One line (without its newline) by Fluentd's regexp: 1 and the fields,
 * or 0 if unparsable. */
static int
parse_line(const char *p, size_t n, size_t *plen, uint64_t *pos,
    uint64_t *ino)
{
	const char *tab = memchr(p, '\t', n);
	size_t off, used;

	if (tab == NULL || tab == p)
		return 0;
	*plen = (size_t)(tab - p);
	off = *plen + 1;
	if (hex64(p + off, n - off, pos, &used) == -1)
		return 0;
	off += used;
	if (off >= n || p[off] != '\t')
		return 0;
	off++;
	if (hex64(p + off, n - off, ino, &used) == -1)
		return 0;
	return 1;
}

struct posfile_ent *
posfile_find(struct posfile *pf, const char *path, uint64_t ino)
{
	size_t i;

	for (i = 0; i < pf->n; i++) {
		if (pf->by_inode ? pf->e[i].ino == ino :
		    strcmp(pf->e[i].path, path) == 0)
			return &pf->e[i];
	}
	return NULL;
}

static int
set(struct posfile *pf, const char *path, size_t plen, uint64_t ino,
    uint64_t pos)
{
	struct posfile_ent *e;
	char *s;
	size_t i;

	if ((s = strndup(path, plen)) == NULL)
		return -1;
	for (i = 0; i < pf->n; i++) {
		e = &pf->e[i];
		if (pf->by_inode ? e->ino == ino : strcmp(e->path, s) == 0) {
			free(e->path);
			e->path = s;
			e->pos = pos;
			e->ino = ino;
			return 0;
		}
	}
	if (pf->n == pf->cap) {
		size_t cap = pf->cap ? pf->cap * 2 : 16;

		if ((e = reallocarray(pf->e, cap, sizeof *e)) == NULL) {
			free(s);
			return -1;
		}
		pf->e = e;
		pf->cap = cap;
	}
	pf->e[pf->n++] = (struct posfile_ent){ s, pos, ino };
	return 0;
}

int
posfile_set(struct posfile *pf, const char *path, uint64_t ino, uint64_t pos)
{
	return set(pf, path, strlen(path), ino, pos);
}

/* Drop the entries at POSFILE_UNWATCHED, keeping the order of the rest. */
static void
drop_unwatched(struct posfile *pf)
{
	size_t i, j = 0;

	for (i = 0; i < pf->n; i++) {
		if (pf->e[i].pos == POSFILE_UNWATCHED)
			free(pf->e[i].path);
		else
			pf->e[j++] = pf->e[i];
	}
	pf->n = j;
}

int
posfile_parse(struct posfile *pf, const char *p, size_t n)
{
	const char *end, *nl;
	uint64_t pos, ino;
	size_t len, plen;

	pf->unparsable = 0;
	if (n == 0)		/* p may be NULL: an empty buf */
		return 0;
	end = p + n;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		/* a path with a NUL is no path open(2) can take */
		if (parse_line(p, len, &plen, &pos, &ino) &&
		    memchr(p, '\0', plen) == NULL) {
			if (set(pf, p, plen, ino, pos) == -1)
				return -1;
		} else if (len > 0)
			pf->unparsable++;
		p += len + (nl != NULL);
	}
	/* the last line of a key wins, even an unwatched one */
	drop_unwatched(pf);
	return 0;
}

int
posfile_load(struct posfile *pf, const char *path)
{
	struct buf b = BUF_INIT;
	char tmp[8192];
	ssize_t r;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return errno == ENOENT ? 0 : -1;
	while ((r = read(fd, tmp, sizeof tmp)) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (buf_add(&b, tmp, (size_t)r) == -1)
			goto out;
	}
	rc = posfile_parse(pf, (const char *)b.p, b.len);
out:
	close(fd);
	buf_free(&b);
	return rc;
}

void
posfile_clear(struct posfile *pf)
{
	size_t i;

	for (i = 0; i < pf->n; i++)
		free(pf->e[i].path);
	pf->n = 0;
}

void
posfile_free(struct posfile *pf)
{
	posfile_clear(pf);
	free(pf->e);
	pf->e = NULL;
	pf->cap = 0;
}

int
posfile_line(struct buf *out, const char *path, uint64_t pos, uint64_t ino)
{
	if (path[0] == '\0' || strpbrk(path, "\t\n") != NULL) {
		errno = EINVAL;
		return -1;
	}
	return buf_printf(out, "%s\t%016" PRIx64 "\t%016" PRIx64 "\n", path,
	    pos, ino);
}

int
posfile_format(const struct posfile *pf, struct buf *out)
{
	size_t i;

	for (i = 0; i < pf->n; i++) {
		if (posfile_line(out, pf->e[i].path, pf->e[i].pos,
		    pf->e[i].ino) == -1 && errno != EINVAL)
			return -1;
	}
	return 0;
}

int
posfile_write(const char *path, const void *p, size_t n)
{
	char d[PATH_MAX], b[PATH_MAX];
	int dfd, rc, e;

	if (strlen(path) >= sizeof d) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(d, path);
	strcpy(b, path);
	if ((dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = durable_replace(dfd, basename(b), p, n);
	e = errno;
	close(dfd);
	errno = e;
	return rc;
}

uint64_t
posfile_start(const struct posfile_ent *e, uint64_t ino, uint64_t size,
    int head)
{
	if (e == NULL || e->ino == 0)
		return head ? 0 : size;
	if (e->ino != ino)
		return 0;
	return e->pos > size ? 0 : e->pos;
}
