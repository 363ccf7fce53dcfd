/* durable: the write, sync, rename, sync-the-folders discipline.
 * Every byte lf promises to keep goes to disk through these functions;
 * an ack or a saved position may follow only their success.
 *
 * A failed fsync is never retried in the hope that it works the second
 * time: after one, the kernel may have dropped the dirty pages it could
 * not write and a later fsync can succeed without them ("fsyncgate",
 * PostgreSQL 2018).  So whatever a failed sync covered is either written
 * again before the next sync (a commit of lf-buffer keeps its bytes until
 * it succeeds), or was already durable (durable_commit renames a file
 * only after its sync succeeded: see there). */
#ifndef LF_DURABLE_H
#define LF_DURABLE_H

#include <stddef.h>
#include <sys/types.h>

int durable_pwrite_all(int fd, const void *p, size_t n, off_t off);	/* 0, -1 */
int durable_fdatasync(int fd);
int durable_fsync(int fd);

/* The outcomes of a commit, in the order it goes. */
enum durable_outcome {
	DURABLE_NOT_MOVED,	/* failed before the rename: nothing moved */
	DURABLE_MOVED_UNSYNCED,	/* renamed, but a folder's fsync failed */
	DURABLE_DONE,		/* renamed, and both folders synced */
};

/* The one commit of a file into a folder: write p[0..n) at off in fd,
 * fdatasync fd (both skipped if fd is -1), rename fromdir/from to
 * todir/to (flags: renameat2's, such as RENAME_NOREPLACE), fsync todir,
 * then fromdir (folders are descriptors: never AT_FDCWD).  errno is set
 * unless DURABLE_DONE.
 *
 * DURABLE_MOVED_UNSYNCED is a commit, not a failure: the file's bytes
 * were synced before the rename, so a crash leaves it whole under one of
 * its two names, and the move can only be undone, never torn.  The
 * caller must not write the file again (it may be in a consumer's hands)
 * and may call durable_sync_dirs later; nothing may wait for that to
 * succeed, since after a failed fsync a later success proves little. */
enum durable_outcome durable_commit(int fd, const void *p, size_t n, off_t off,
    int fromdir, const char *from, int todir, const char *to,
    unsigned int flags);

/* The folder syncs of a commit again: todir, then fromdir.  0 or -1. */
int durable_sync_dirs(int todir, int fromdir);

/* Replace dirfd/name with n bytes: write name.PID.tmp, sync it, rename it
 * over name, sync the folder.  After a crash, name holds either its old
 * or its new contents, never a mix.  0; 1 if it was replaced but the
 * folder's fsync failed (errno set: a crash may bring the old contents
 * back); -1 with errno set and name untouched. */
int durable_replace(int dirfd, const char *name, const void *p, size_t n);

#endif
