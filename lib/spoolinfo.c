/* spoolinfo: looking at a whole spool, for lf-spool and whoever reports
 * on one (spool.h, "Looking at a whole spool"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "retry.h"
#include "spool.h"

const char *const spool_state_names[SPOOL_NSTATES] = {
	"ready", "staged", "dead"
};
const char *const spool_folders[SPOOL_NSTATES] = { "new", "tmp", "dead" };

int
spool_folder_fd(const struct spool *s, int state)
{
	return state == SPOOL_READY ? s->new : state == SPOOL_STAGED ? s->tmp :
	    s->dead;
}

int
spool_list_state(const struct spool *s, int state, struct spool_list *l,
    char *err, size_t errlen)
{
	size_t i, j;

	if (spool_list(spool_folder_fd(s, state), l) == -1) {
		snprintf(err, errlen, "%s/%s: %s", s->path, spool_folders[state],
		    strerror(errno));
		return -1;
	}
	for (i = j = 0; i < l->n; i++) {
		if (strlen(l->names[i]) >= SPOOL_NAMELEN) {
			log_warn("%s/%s: name too long for a chunk, ignored",
			    spool_folders[state], l->names[i]);
			free(l->names[i]);
			continue;
		}
		l->names[j++] = l->names[i];
	}
	l->n = j;
	return 0;
}

int
spool_chunk_look(int dirfd, const char *name, int staged,
    struct spool_chunk *c, char *err, size_t errlen)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	struct stat st;
	int rc;

	for (int tries = 0;; tries++) {
		if ((rc = spool_chunk_open(dirfd, name, c, err, errlen)) == 0)
			return 1;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno == ENOENT)
			return 0;
		if (!staged || tries == 4 || rc == SPOOL_NOTFILE)
			return rc;
		nanosleep(&pause, NULL);
	}
}

unsigned long long
spool_file_bytes(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		return (unsigned long long)st.st_size;
	return 0;
}

int
spool_name_seal_us(const char *name, uint64_t *us)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		int ch = name[i], d;

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (name[16] != '.')
		return -1;
	*us = v;
	return 0;
}

int
spool_chunk_sound(int dirfd, const char *name, char *err, size_t errlen)
{
	struct spool_chunk c;
	int rc;

	if ((rc = spool_chunk_open(dirfd, name, &c, err, errlen)) != 0)
		return rc == SPOOL_EIO ? rc : -1;
	rc = -1;
	if (c.h.state != CHUNK_SEALED)
		snprintf(err, errlen, "the chunk was never sealed");
	else if (c.size != c.h.hlen + c.h.bodylen)
		snprintf(err, errlen, "chunk file is %llu bytes, header says %llu",
		    (unsigned long long)c.size,
		    (unsigned long long)(c.h.hlen + c.h.bodylen));
	else
		rc = spool_chunk_verify(&c, err, errlen);
	spool_release(&c);
	return rc == 0 || rc == SPOOL_EIO ? rc : -1;
}

/* A ready chunk's seal time, or if its name has none, its birth; or
 * UINT64_MAX if neither is known. */
static uint64_t
seal_time(const char *name, const struct spool_chunk *c, int rc)
{
	uint64_t us;

	if (spool_name_seal_us(name, &us) == 0)
		return us;
	return rc == 1 ? c->h.created_us : UINT64_MAX;
}

static void
stat_one(struct spool_stat *st, int state, int dirfd, const char *name)
{
	struct spool_tally *t = &st->t[state];
	struct spool_chunk c;
	char err[256];
	uint64_t seal;
	int rc;

	if ((rc = spool_chunk_look(dirfd, name, state == SPOOL_STAGED, &c, err,
	    sizeof err)) == 0)
		return;
	t->chunks++;
	if (rc == 1) {
		t->events += c.h.count;
		t->bytes += c.size;
	} else {
		t->unreadable++;
		t->bytes += spool_file_bytes(dirfd, name);
		if (state != SPOOL_DEAD)
			log_warn("%s/%s: %s", spool_folders[state], name, err);
	}
	if (state == SPOOL_READY &&
	    (seal = seal_time(name, &c, rc)) != UINT64_MAX &&
	    (st->oldest[0] == '\0' || seal < st->oldest_us)) {
		st->oldest_us = seal;
		snprintf(st->oldest, sizeof st->oldest, "%s", name);
	}
	if (rc == 1)
		spool_release(&c);
}

int
spool_stat(const struct spool *s, struct spool_stat *st, char *err,
    size_t errlen)
{
	struct spool_list l;

	memset(st, 0, sizeof *st);
	for (int state = 0; state < SPOOL_NSTATES; state++) {
		if (spool_list_state(s, state, &l, err, errlen) == -1)
			return -1;
		for (size_t i = 0; i < l.n; i++)
			stat_one(st, state, spool_folder_fd(s, state),
			    l.names[i]);
		spool_list_free(&l);
	}
	return 0;
}

int
spool_retry_read(const struct spool *s, struct retry_state *st, char *err,
    size_t errlen)
{
	char line[RETRY_LINE_MAX + 1], why[128];
	int fd, n;

	/* never a wait on a FIFO there; saving it replaces what it is */
	if ((fd = spool_file_open(s->state, "retry", why, sizeof why)) < 0) {
		if (fd == -1 && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "state/retry: %s",
		    fd == -1 ? strerror(errno) : why);
		return -1;
	}
	n = io_read_all(fd, line, sizeof line - 1);
	if (n == -1)
		snprintf(err, errlen, "state/retry: read: %s",
		    strerror(errno));
	close(fd);
	if (n == -1)
		return -1;
	line[n] = '\0';
	if (strlen(line) != (size_t)n || retry_parse(st, line) == -1) {
		snprintf(err, errlen, "state/retry: not a retry state line");
		return -1;
	}
	return 1;
}

int
spool_reason_read(const struct spool *s, const char *name, char *out,
    size_t outlen)
{
	char rname[SPOOL_NAMELEN + 8], why[64];
	int fd, n;

	if (outlen < 2)
		return 0;
	snprintf(rname, sizeof rname, "%s.reason", name);
	if ((fd = spool_file_open(s->dead, rname, why, sizeof why)) < 0)
		return 0;
	n = io_read_all(fd, out, outlen - 1);
	close(fd);
	if (n <= 0)
		return 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return out[0] != '\0';
}
