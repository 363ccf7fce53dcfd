/* faultinj: make chosen system calls fail, for the failure-branch tests.
 * An LD_PRELOAD library, not a tool:
 *
 *   LD_PRELOAD=build/san/tests/tools/faultinj.so \
 *   LF_FAULT='fsync@/new:1:EIO,rename:2+:ENOSPC' lf-buffer ...
 *
 * LF_FAULT is a comma-separated list of rules CALL[@SUBSTR]:WHEN:ERRNO.
 *   CALL    fsync fdatasync pwrite write writev rename openat accept
 *           ftruncate unlink read pread mkdir close fstat; open counts as
 *           openat, renameat and renameat2 as rename, accept4 as accept,
 *           unlinkat as unlink, mkdirat as mkdir.
 *   SUBSTR  the rule only counts calls whose path holds SUBSTR: the path
 *           given, or for a call on a descriptor the path the descriptor
 *           names in /proc/self/fd (a socket reads "socket:[...]").  A
 *           write, writev or read rule without SUBSTR never counts fds 0,
 *           1 and 2, so the tool's log and pipes keep working.
 *   WHEN    N: only the Nth call the rule counts; N+: the Nth and every
 *           later one; N-M: the Nth to the Mth.
 *   ERRNO   a name (EIO, ENOSPC, EMFILE ...) or a number.
 * A call that fails is not made.  LF_FAULT_LOG=PATH appends one line per
 * failure made: "CALL PATH ERRNO-NAME".
 *
 * A bad LF_FAULT stops the process at start with exit 70: a typo must not
 * turn a fault test into a test of nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

enum call {
	C_FSYNC, C_FDATASYNC, C_PWRITE, C_WRITE, C_WRITEV, C_RENAME, C_OPENAT,
	C_ACCEPT, C_FTRUNCATE, C_UNLINK, C_READ, C_PREAD, C_MKDIR, C_CLOSE,
	C_FSTAT, C_NCALLS
};

static const char *const call_names[C_NCALLS] = {
	"fsync", "fdatasync", "pwrite", "write", "writev", "rename", "openat",
	"accept", "ftruncate", "unlink", "read", "pread", "mkdir", "close",
	"fstat",
};

static const struct { const char *name; int e; } errnos[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
	{ "EMFILE", EMFILE }, { "ENFILE", ENFILE }, { "EINTR", EINTR },
	{ "EAGAIN", EAGAIN }, { "ENOMEM", ENOMEM }, { "EACCES", EACCES },
	{ "EPERM", EPERM }, { "ENOENT", ENOENT }, { "EEXIST", EEXIST },
	{ "EROFS", EROFS }, { "EBADF", EBADF }, { "EINVAL", EINVAL },
	{ "ECONNABORTED", ECONNABORTED }, { "ECONNRESET", ECONNRESET },
	{ "EPIPE", EPIPE }, { "ENOBUFS", ENOBUFS }, { "EFBIG", EFBIG },
	{ "EXDEV", EXDEV }, { "ENOTDIR", ENOTDIR }, { "EISDIR", EISDIR },
};

#define MAXRULES 16

struct rule {
	enum call call;
	char sub[256];
	unsigned long from, to;		/* calls counted, 1-based, inclusive */
	unsigned long seen;
	int err;
};

static struct rule rules[MAXRULES];
static int nrules;
static int active;		/* rules parsed; 0 while parsing */
static __thread int inside;	/* our own calls are never counted */

static void
die(const char *what, const char *spec)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "faultinj: bad LF_FAULT rule \"%s\": %s\n",
	    spec, what);

	(void)!write(2, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
	_exit(70);
}

static const char *
errno_name(int e)
{
	for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++)
		if (errnos[i].e == e)
			return errnos[i].name;
	return "?";
}

static void
parse_rule(char *s)
{
	struct rule *r = &rules[nrules];
	char *when, *err, *at, *end;
	int c;

	if (nrules == MAXRULES)
		die("too many rules", s);
	if ((when = strchr(s, ':')) == NULL || (err = strchr(when + 1, ':')) == NULL)
		die("want CALL[@SUBSTR]:WHEN:ERRNO", s);
	*when++ = '\0';
	*err++ = '\0';
	if ((at = strchr(s, '@')) != NULL) {
		*at++ = '\0';
		if (strlen(at) >= sizeof r->sub)
			die("SUBSTR too long", at);
		strcpy(r->sub, at);
	}
	if (strcmp(s, "open") == 0)
		s = "openat";
	for (c = 0; c < C_NCALLS && strcmp(s, call_names[c]) != 0; c++)
		;
	if (c == C_NCALLS)
		die("unknown CALL", s);
	r->call = (enum call)c;
	r->from = strtoul(when, &end, 10);
	if (r->from == 0 || end == when)
		die("WHEN counts from 1", when);
	if (*end == '+' && end[1] == '\0')
		r->to = (unsigned long)-1;
	else if (*end == '-')
		r->to = strtoul(end + 1, &end, 10);
	else
		r->to = r->from;
	if (*end != '\0' && *end != '+')
		die("bad WHEN", when);
	if (r->to < r->from)
		die("WHEN range ends before it starts", when);
	r->err = 0;
	for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++)
		if (strcmp(err, errnos[i].name) == 0)
			r->err = errnos[i].e;
	if (r->err == 0 && (r->err = (int)strtol(err, &end, 10)) <= 0)
		die("unknown ERRNO", err);
	nrules++;
}

__attribute__((constructor)) static void
faultinj_init(void)
{
	const char *env = getenv("LF_FAULT");
	char *copy, *s, *save;

	if (env == NULL || *env == '\0')
		return;
	if ((copy = strdup(env)) == NULL)
		die("out of memory", env);
	for (s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save))
		parse_rule(s);
	free(copy);
	active = 1;
}

static void
fd_path(int fd, char *out, size_t n)
{
	char link[64];
	ssize_t k;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	inside++;
	k = readlink(link, out, n - 1);
	inside--;
	out[k < 0 ? 0 : k] = '\0';
}

static void
note(enum call c, const char *path, int e)
{
	const char *log = getenv("LF_FAULT_LOG");
	char line[1024];
	int fd, n;

	if (log == NULL)
		return;
	inside++;
	n = snprintf(line, sizeof line, "%s %s %s\n", call_names[c], path, errno_name(e));
	if ((fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) != -1) {
		(void)!write(fd, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		close(fd);
	}
	inside--;
}

/* The path a dirfd-relative name stands for, so that a rule's SUBSTR can
 * name a folder ("@/new/") whatever descriptor the call was made on. */
static const char *
at_path(int dfd, const char *p, char *out, size_t n)
{
	size_t k;

	if (!active || inside || p == NULL || p[0] == '/' || dfd == AT_FDCWD)
		return p;
	fd_path(dfd, out, n);
	k = strlen(out);
	snprintf(out + k, n - k, "/%s", p);
	return out;
}

/* Does this call fail?  Every rule for the call that matches it counts
 * it; the first rule whose window holds its count decides. */
static int
fault(enum call c, int fd, const char *p1, const char *p2)
{
	char path[4096] = "";
	int fail = 0;

	if (!active || inside)
		return 0;
	for (int i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		if (r->call != c)
			continue;
		if (r->sub[0] == '\0') {
			if ((c == C_WRITE || c == C_WRITEV || c == C_READ) && fd >= 0 && fd <= 2)
				continue;
		} else {
			if (p1 == NULL && path[0] == '\0' && fd >= 0)
				fd_path(fd, path, sizeof path);
			if (!(p1 && strstr(p1, r->sub)) && !(p2 && strstr(p2, r->sub)) &&
			    !(p1 == NULL && strstr(path, r->sub)))
				continue;
		}
		r->seen++;
		if (!fail && r->seen >= r->from && r->seen <= r->to)
			fail = r->err;
	}
	if (fail) {
		if (p1 == NULL && path[0] == '\0' && fd >= 0)
			fd_path(fd, path, sizeof path);
		note(c, p1 ? p1 : path, fail);
		errno = fail;
		return 1;
	}
	return 0;
}

#define REAL(name) \
	static __typeof__(name) *real; \
	if (real == NULL) \
		real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

int
fsync(int fd)
{
	REAL(fsync);
	return fault(C_FSYNC, fd, NULL, NULL) ? -1 : real(fd);
}

int
fdatasync(int fd)
{
	REAL(fdatasync);
	return fault(C_FDATASYNC, fd, NULL, NULL) ? -1 : real(fd);
}

ssize_t
pwrite(int fd, const void *p, size_t n, off_t off)
{
	REAL(pwrite);
	return fault(C_PWRITE, fd, NULL, NULL) ? -1 : real(fd, p, n, off);
}

ssize_t
pwrite64(int fd, const void *p, size_t n, off_t off)
{
	REAL(pwrite64);
	return fault(C_PWRITE, fd, NULL, NULL) ? -1 : real(fd, p, n, off);
}

ssize_t
write(int fd, const void *p, size_t n)
{
	REAL(write);
	return fault(C_WRITE, fd, NULL, NULL) ? -1 : real(fd, p, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(writev);
	return fault(C_WRITEV, fd, NULL, NULL) ? -1 : real(fd, iov, cnt);
}

ssize_t
read(int fd, void *p, size_t n)
{
	REAL(read);
	return fault(C_READ, fd, NULL, NULL) ? -1 : real(fd, p, n);
}

ssize_t
pread(int fd, void *p, size_t n, off_t off)
{
	REAL(pread);
	return fault(C_PREAD, fd, NULL, NULL) ? -1 : real(fd, p, n, off);
}

ssize_t
pread64(int fd, void *p, size_t n, off_t off)
{
	REAL(pread64);
	return fault(C_PREAD, fd, NULL, NULL) ? -1 : real(fd, p, n, off);
}

int
rename(const char *a, const char *b)
{
	REAL(rename);
	return fault(C_RENAME, -1, a, b) ? -1 : real(a, b);
}

int
renameat(int da, const char *a, int db, const char *b)
{
	char pa[4096], pb[4096];

	REAL(renameat);
	return fault(C_RENAME, -1, at_path(da, a, pa, sizeof pa),
	    at_path(db, b, pb, sizeof pb)) ? -1 : real(da, a, db, b);
}

int
renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
	char pa[4096], pb[4096];

	REAL(renameat2);
	return fault(C_RENAME, -1, at_path(da, a, pa, sizeof pa),
	    at_path(db, b, pb, sizeof pb)) ? -1 : real(da, a, db, b, flags);
}

/* open and openat take a mode only with O_CREAT or O_TMPFILE */
static mode_t
open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ?
	    (mode_t)va_arg(ap, int) : 0;
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	REAL(open);
	va_start(ap, flags);
	m = open_mode(flags, ap);
	va_end(ap);
	return fault(C_OPENAT, -1, path, NULL) ? -1 : real(path, flags, m);
}

int
open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	REAL(open64);
	va_start(ap, flags);
	m = open_mode(flags, ap);
	va_end(ap);
	return fault(C_OPENAT, -1, path, NULL) ? -1 : real(path, flags, m);
}

int
openat(int dfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	char full[4096];

	REAL(openat);
	va_start(ap, flags);
	m = open_mode(flags, ap);
	va_end(ap);
	return fault(C_OPENAT, -1, at_path(dfd, path, full, sizeof full), NULL) ?
	    -1 : real(dfd, path, flags, m);
}

int
openat64(int dfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	char full[4096];

	REAL(openat64);
	va_start(ap, flags);
	m = open_mode(flags, ap);
	va_end(ap);
	return fault(C_OPENAT, -1, at_path(dfd, path, full, sizeof full), NULL) ?
	    -1 : real(dfd, path, flags, m);
}

int
accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	REAL(accept);
	return fault(C_ACCEPT, fd, NULL, NULL) ? -1 : real(fd, sa, len);
}

int
accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	REAL(accept4);
	return fault(C_ACCEPT, fd, NULL, NULL) ? -1 : real(fd, sa, len, flags);
}

int
ftruncate(int fd, off_t len)
{
	REAL(ftruncate);
	return fault(C_FTRUNCATE, fd, NULL, NULL) ? -1 : real(fd, len);
}

int
ftruncate64(int fd, off_t len)
{
	REAL(ftruncate64);
	return fault(C_FTRUNCATE, fd, NULL, NULL) ? -1 : real(fd, len);
}

int
unlink(const char *path)
{
	REAL(unlink);
	return fault(C_UNLINK, -1, path, NULL) ? -1 : real(path);
}

int
unlinkat(int dfd, const char *path, int flags)
{
	char full[4096];

	REAL(unlinkat);
	return fault(C_UNLINK, -1, at_path(dfd, path, full, sizeof full), NULL) ?
	    -1 : real(dfd, path, flags);
}

int
mkdir(const char *path, mode_t m)
{
	REAL(mkdir);
	return fault(C_MKDIR, -1, path, NULL) ? -1 : real(path, m);
}

int
mkdirat(int dfd, const char *path, mode_t m)
{
	char full[4096];

	REAL(mkdirat);
	return fault(C_MKDIR, -1, at_path(dfd, path, full, sizeof full), NULL) ?
	    -1 : real(dfd, path, m);
}

int
close(int fd)
{
	REAL(close);
	/* a failed close still closes the descriptor, as Linux does */
	if (fault(C_CLOSE, fd, NULL, NULL)) {
		int e = errno;
		real(fd);
		errno = e;
		return -1;
	}
	return real(fd);
}

int
fstat(int fd, struct stat *st)
{
	REAL(fstat);
	return fault(C_FSTAT, fd, NULL, NULL) ? -1 : real(fd, st);
}

int
fstat64(int fd, struct stat64 *st)
{
	REAL(fstat64);
	return fault(C_FSTAT, fd, NULL, NULL) ? -1 : real(fd, st);
}
