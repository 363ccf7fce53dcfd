"""Durability of lf-buffer's commit path when the disk or a sync fails
(issue 6, findings 7 and 8, and "one commit primitive").

- A disk filled by one staged chunk must not wedge the spool: the
  committed part of the staged chunks is sealed, so a consumer can
  deliver it and free space, and input goes on once there is room.
- lf-buffer must start on a full disk: recovery and the window are
  changed in place and renamed, never copied.
- A failed fsync of new/ after a chunk was renamed into it is not a
  failed commit: the chunk is stored (its bytes were synced before the
  rename), never written again, and commits go on (fault injection).

Figures asserted, with why:
- "stalled": no ack for 1.2 s while the filesystem has under 256 KiB
  free is a full disk (a commit takes milliseconds, even under ASan).
- a sealed chunk must appear within WAIT (20 s) of the stall: the seal
  happens in the failed commit itself, so seconds is generous.
"""
import os
import select
import time

import pytest

import lfchunk
from conftest import fault_env, fault_log, run
from fwdclient import fluentd_token, message, pack_entries
from test_lf_buffer import (WAIT, all_files, chunk_names, consume, fill,
                            fsck, id_counts, lfb, log_lines, mkspool,
                            msg_events, procs, read_chunks, send_acked,
                            smallfs, spool_events, wait_for, work)

__all__ = ["procs", "smallfs", "work"]  # fixtures used by name

FULL = 256 * 1024       # bytes free below which the 2 MiB tmpfs is full


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def messages(n, per=20, pad=150, tag="full", first=0):
    """n messages of ~4 KB each, numbered from first: (tag, entries, size,
    token)."""
    out = []
    for i in range(first, first + n):
        evs = msg_events(i, per, pad=pad)
        out.append((tag, pack_entries(evs), per,
                    fluentd_token() if i % 2 else os.urandom(16)))
    return out


class Feeder:
    """Sends messages with up to `window` in flight, collects acks in
    order; self.last is the time of the last ack.

    The sender never blocks: lf-buffer's back pressure is to stop
    reading, and a blocking send would stop the test's loop, and with it
    the consumer that frees the disk (see disk_full_run in
    test_lf_buffer.py)."""

    def __init__(self, c, msgs, window=16):
        self.c, self.msgs, self.window = c, msgs, window
        self.inflight, self.acked, self.nxt = [], [], 0
        self.out = b""
        self.last = time.monotonic()

    def step(self, limit=None):
        limit = len(self.msgs) if limit is None else limit
        while len(self.inflight) < self.window and self.nxt < limit:
            tag, ents, size, tok = self.msgs[self.nxt]
            self.out += message(tag, ents, tok, size)
            self.inflight.append(self.nxt)
            self.nxt += 1
        if self.out:
            _, w, _ = select.select([], [self.c.sock], [], 0)
            if w:
                t = self.c.sock.gettimeout()
                self.c.sock.setblocking(False)
                try:
                    self.out = self.out[self.c.sock.send(self.out):]
                except BlockingIOError:
                    pass
                finally:
                    self.c.sock.settimeout(t)
        for tok in self.c.poll_acks(0.1):
            i = self.inflight.pop(0)
            assert tok == self.msgs[i][3]
            self.acked.append(i)
            self.last = time.monotonic()

    def stalled(self, fsdir):
        return (time.monotonic() - self.last > 1.2 and
                free_bytes(fsdir) < FULL)


def check_all(acked, evs, per=20):
    """Every event of every acked message exactly once in evs."""
    cnt = id_counts(evs)
    want = {(i, e) for i in acked for e in range(per)}
    missing = sorted(k for k in want if k not in cnt)
    assert not missing, "acked but lost: %r" % missing[:10]
    dups = sorted(k for k, v in cnt.items() if v != 1)
    assert not dups, "stored twice: %r" % dups[:10]


# ---------------------------------------------------------------------------
# Finding 8: a disk filled by one staged chunk
# ---------------------------------------------------------------------------

def test_disk_filled_by_one_staged_chunk_is_sealed_and_drained(
        work, smallfs, procs):
    """One tag, the default chunk limits (256 MiB, 60 s): one staged chunk
    fills the 2 MiB disk.  Today nothing is ever sealed and input waits
    for ever; now the failed commit seals what was committed, a consumer
    delivers it, and every message is acked in the end.  Then kill -9
    on a full disk, and a restart (which must not need free space)."""
    spool = os.path.join(smallfs, "spool")
    b = lfb(procs, work, [spool]).start()
    msgs = messages(900)            # ~3.6 MB: the disk fills twice or more
    c = b.client()
    f = Feeder(c, msgs)
    consumed = []
    stalls = 0
    deadline = time.monotonic() + 90
    while len(f.acked) < len(msgs):
        assert time.monotonic() < deadline, "no progress: %d acked" % len(
            f.acked)
        f.step()
        if f.stalled(smallfs):
            assert b.alive(), b.read_err()
            stalls += 1
            # the staged chunk is sealed by the failed commit, for us
            wait_for(lambda: chunk_names(spool), what="a chunk sealed "
                     "on a full disk (stall %d, %d acked)" % (stalls,
                                                             len(f.acked)))
            assert consume(spool, consumed) > 0
            f.last = time.monotonic()
    assert stalls >= 1, "the disk never filled"
    acked = list(f.acked)
    assert acked == list(range(len(msgs)))
    warns = log_lines(b.read_err(), "warn")
    assert any("disk full: sealed" in w for w in warns), warns

    # fill the disk with a staged chunk again, then kill -9
    more = messages(600, first=len(msgs))
    f2 = Feeder(c, more)
    deadline = time.monotonic() + 60
    while not f2.stalled(smallfs):
        assert time.monotonic() < deadline, "the disk did not fill"
        f2.step()
    c.close()
    b.kill9()
    filler = fill(smallfs)          # not a page left
    b.args = []
    b.start()                       # no exit 73: it starts on a full disk
    # acked messages sent again are acked again, not stored again, even
    # on a full disk: a duplicate needs no room
    c = b.client()
    for i in f2.acked[-20:]:
        tag, ents, size, tok = more[i]
        c.send(tag, ents, token=tok, size=size)
        assert c.read_ack(WAIT) == tok
    c.close()
    consume(spool, consumed)
    os.unlink(filler)
    assert b.stop() == 0
    evs = consumed + spool_events(spool)
    check_all(acked + [len(msgs) + i for i in f2.acked], evs)
    assert all_files(spool, "tmp") == [] and all_files(spool, "dead") == []
    fsck(spool)


def test_starts_on_a_full_disk(work, smallfs, procs):
    """kill -9 with a staged chunk, a full disk, a restart: today it exits
    73 (rewriting state/window needs free space); now recovery cuts,
    voids window records and seals in place, and it starts."""
    spool = os.path.join(smallfs, "spool")
    opts = ["--commit-wait", "3s"]
    b = lfb(procs, work, [spool], opts).start()
    c = b.client()
    toks = [fluentd_token() for _ in range(3)]
    for i, tok in enumerate(toks):
        c.send("a", msg_events(i, 2), token=tok)
    assert c.read_acks(3, WAIT) == toks
    # X is taken, its record written by the next tick's window sync, not
    # committed: it was never acked, and must be stored when sent again
    tx = fluentd_token()
    c.send("a", msg_events(3, 2), token=tx)
    wpath = os.path.join(spool, "state", "window")
    wait_for(lambda: os.path.getsize(wpath) >= 4 * 48, timeout=2.5,
             what="X's window record")
    assert c.poll_acks(0) == []
    b.kill9()
    c.close()
    filler = fill(smallfs)
    b.args = []
    b.start()
    assert b.alive()
    assert len(chunk_names(spool)) == 1 and all_files(spool, "tmp") == []
    c = b.client()
    for i, tok in enumerate(toks):       # acked: acked again, not stored
        c.send("a", msg_events(i, 2), token=tok)
    assert c.read_acks(3, WAIT) == toks
    c.close()
    os.unlink(filler)
    c = b.client()
    c.send("a", msg_events(3, 2), token=tx)
    assert c.read_ack(WAIT) == tx        # X: stored now
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    assert cnt == {(m, e): 1 for m in range(4) for e in range(2)}, cnt


# ---------------------------------------------------------------------------
# Finding 7: fsync of new/ fails after a chunk was renamed into it
# ---------------------------------------------------------------------------

def faulted(work, procs, spec, args=("--flush-mode", "immediate")):
    """An lf-buffer on a new spool under fault injection; returns
    (spool, Lfb, path of the fault log)."""
    spool = mkspool(work)
    log = os.path.join(work, "faults")
    b = lfb(procs, work, [spool], list(args))
    b.env = fault_env(spec, log)
    return spool, b, log


def send_n(b, n, first=0, tag="t", per=3):
    """n acked messages, one at a time (each waits for its ack, which a
    failed commit delays to the next tick's retry)."""
    c = b.client()
    toks = [send_acked(c, tag, msg_events(first + i, per))
            for i in range(n)]
    c.close()
    return toks


def check_stored(spool, n, first=0, per=3):
    cnt = id_counts(spool_events(spool))
    assert cnt == {(m, e): 1 for m in range(first, first + n)
                   for e in range(per)}, cnt
    assert all_files(spool, "tmp") == []
    fsck(spool)


def test_fsync_of_new_fails_once_after_rename(work, procs):
    """Today the stage does not know its chunk was renamed: every later
    commit fails, no ack comes again, and the chunk in new/ is written
    again through its old descriptor (state 'S': corrupt).  Now the chunk
    is stored and left alone, commits go on, and the next seal's sync
    covers the move."""
    spool, b, log = faulted(work, procs, "fsync@spool/new:1:EIO")
    b.start()
    send_n(b, 6)
    assert fault_log(log) == [("fsync", os.path.join(spool, "new"), "EIO")]
    # every chunk in new/ is sound, sealed, never written after its rename
    assert len(read_chunks(spool)) == 6
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert len([w for w in warns if "sealed, but cannot sync new/" in w]) == 1, warns
    assert "new/ and tmp/ synced again" in b.err.decode()
    assert not log_lines(b.err.decode(), "error")
    check_stored(spool, 6)


def test_fsync_of_new_fails_for_good(work, procs):
    """Every sync of new/ fails: every chunk is still stored and acked
    (its bytes were synced before its rename); at exit lf-buffer says
    what is true, that the moves may be undone by a crash, and exits 74.
    Today it stops acking after the first seal and at exit claims that
    events were not stored."""
    spool, b, log = faulted(work, procs, "fsync@spool/new:1+:EIO")
    b.start()
    send_n(b, 4)
    assert b.stop() == 74
    err = b.err.decode()
    errs = log_lines(err, "error")
    assert len(errs) == 1 and "cannot sync new/ or tmp/ at shutdown" in errs[0] \
        and "sealed chunks are stored" in errs[0], errs
    assert "not stored" not in err
    assert len(fault_log(log)) >= 5
    check_stored(spool, 4)
    # the next start finds them all ready, and nothing staged
    b.env = None
    b.start()
    assert b.stop() == 0
    check_stored(spool, 4)


# ---------------------------------------------------------------------------
# Every failure branch of the commit path (lib/stage.c, lib/durable.c)
# ---------------------------------------------------------------------------
#
# With --flush-mode immediate each commit makes a chunk and seals it.  For
# the first message the calls on spool/tmp/ go: openat (create), pwrite 1
# (header), fdatasync 1, fsync of tmp/ 1; pwrite 2 (events), pwrite 3
# (header), fdatasync 2 (commit); pwrite 4 (sealed header), fdatasync 3,
# rename, fsync of new/ 1, fsync of tmp/ 2 (seal).  Each failure delays an
# ack to the retry of the next tick; nothing is lost or stored twice.

COMMIT_FAULTS = [
    ("openat@spool/tmp/:1:EMFILE", "commit failed"),
    ("pwrite@spool/tmp/:1:EIO", "commit failed"),
    ("fdatasync@spool/tmp/:1:EIO", "commit failed"),
    ("fsync@spool/tmp:1:EIO", "commit failed"),
    ("pwrite@spool/tmp/:2:EIO", "commit failed"),
    ("pwrite@spool/tmp/:3:EIO", "commit failed"),
    ("fdatasync@spool/tmp/:2:EIO", "commit failed"),
    ("pwrite@spool/tmp/:2:EIO,ftruncate@spool/tmp/:1:EIO", "cannot roll back"),
    ("pwrite@spool/tmp/:4:EIO", "commit failed"),
    ("fdatasync@spool/tmp/:3:EIO", "commit failed"),
    ("rename@spool/new/:1:EIO", "commit failed"),
    ("fsync@spool/tmp:2:EIO", "sealed, but cannot sync"),
    ("pwrite@spool/tmp/:1-3:EINTR,fdatasync@spool/tmp/:1-2:EINTR,"
     "fsync@spool/new:1:EINTR,fsync@spool/tmp:1:EINTR", None),
]


@pytest.mark.parametrize("spec,warn", COMMIT_FAULTS,
                         ids=[s for s, _ in COMMIT_FAULTS])
def test_commit_path_faults(work, procs, spec, warn):
    spool, b, log = faulted(work, procs, spec)
    b.start()
    send_n(b, 3)
    assert b.stop() == 0
    assert fault_log(log), "no fault was made: %s" % spec
    err = b.err.decode()
    warns = log_lines(err, "warn")
    if warn is None:
        assert warns == [], warns       # EINTR is retried in silence
    else:
        assert any(warn in w for w in warns), warns
    assert not log_lines(err, "error")
    check_stored(spool, 3)


# A full disk (injected): the committed part of the staged chunk is sealed
# for the consumers, the entries of the failed commit go on in a successor.
# Default flush mode: calls on spool/tmp/ go pwrite 1 (header), 2, 3
# (first commit), 4, 5 (second commit), ...

FULL_FAULTS = [
    ("pwrite@spool/tmp/:4:ENOSPC", "disk full: sealed 1 staged chunks"),
    ("pwrite@spool/tmp/:5:EDQUOT", "disk full: sealed 1 staged chunks"),
    ("pwrite@spool/tmp/:4:ENOSPC,fsync@spool/new:1:EIO",
     "sealed, but cannot sync"),
    # (5: the rollback's header, 6: the sealed header)
    ("pwrite@spool/tmp/:4:ENOSPC,pwrite@spool/tmp/:6:EIO", "cannot seal"),
    ("pwrite@spool/tmp/:4:ENOSPC,ftruncate@spool/tmp/:1-2:EIO", "cannot seal"),
    ("pwrite@spool/tmp/:4:ENOSPC,ftruncate@spool/tmp/:1:EIO",
     "cannot roll back"),
    ("pwrite@spool/tmp/:4:ENOSPC,ftruncate@state/window:1:EIO",
     "staged chunks not sealed"),
    ("pwrite@state/window:2:ENOSPC", "disk full: sealed 1 staged chunks"),
]


@pytest.mark.parametrize("spec,warn", FULL_FAULTS,
                         ids=[s for s, _ in FULL_FAULTS])
def test_full_disk_faults_seal_committed(work, procs, spec, warn):
    spool, b, log = faulted(work, procs, spec, args=())
    b.start()
    send_n(b, 4)
    assert fault_log(log), "no fault was made: %s" % spec
    assert b.stop() == 0
    err = b.err.decode()
    assert any(warn in w for w in log_lines(err, "warn")), err
    assert not log_lines(err, "error")
    check_stored(spool, 4)


# ---------------------------------------------------------------------------
# Recovery at start (lib/stage.c stage_recover)
# ---------------------------------------------------------------------------
#
# A staged chunk is left by --flush-at-shutdown false.  At start, pass 1
# opens it (openat 1), reads its header and body (pread 1, 2), opens it
# for writing (openat 2), cuts it (ftruncate 1), rewrites its header
# (pwrite 1) and syncs it (fdatasync 1); pass 2 opens and reads it again
# and seals it (rename 1, fsync of new/ 1).

RECOVERY_FAULTS = [
    ("openat@spool/tmp/:1:EMFILE", 73, "cannot read"),
    ("pread@spool/tmp/:2:EIO", 73, "cannot recover"),
    ("openat@spool/tmp/:2:EMFILE", 73, "cannot recover"),
    ("ftruncate@spool/tmp/:1:EIO", 73, "cannot recover"),
    ("pwrite@spool/tmp/:1:EIO", 73, "cannot recover"),
    ("fdatasync@spool/tmp/:1:EIO", 73, "cannot recover"),
    ("rename@spool/new/:1:EIO", 73, "cannot recover"),
    ("fsync@spool/new:1:EIO", 0, "but cannot sync new/ or tmp/"),
]


@pytest.mark.parametrize("spec,rc,warn", RECOVERY_FAULTS,
                         ids=[s for s, _, _ in RECOVERY_FAULTS])
def test_recovery_faults(work, procs, spec, rc, warn):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-at-shutdown", "false"]).start()
    send_n(b, 3)
    assert b.stop() == 0
    assert len(all_files(spool, "tmp")) == 1
    log = os.path.join(work, "faults")
    b.env = fault_env(spec, log)
    b.start(wait_ready=rc == 0)
    if rc:
        assert b.exited() == rc
        assert len(all_files(spool, "tmp")) == 1, "left for the next start"
    else:
        assert b.stop() == 0
    assert fault_log(log), "no fault was made: %s" % spec
    assert any(warn in w for w in log_lines(b.err.decode(), "warn")), b.err
    b.env = None
    b.start()
    assert b.stop() == 0
    check_stored(spool, 3)


# ---------------------------------------------------------------------------
# Dead letters and requeue (lib/spool.c spool_bury, spool_requeue)
# ---------------------------------------------------------------------------

def corrupt_in_new(work):
    spool = lfchunk.make_spool(mkspool(work))
    name = lfchunk.write_chunk(spool, "t", [(1700000000, {"m": 0, "e": 0})])
    lfchunk.corrupt_chunk(os.path.join(spool, "new", name), "flip-body")
    return spool, name


BURY_FAULTS = [
    # spec, fsck's exit (65: found corrupt, 74: and not moved), where the
    # chunk is, its reason beside it, a warning
    ("rename@spool/dead/:1:EIO", 74, "new", False, None),   # the reason's
    ("rename@spool/dead/:2:EIO", 74, "new", False, None),   # the chunk's
    ("openat@.reason:1:EACCES", 74, "new", False, None),
    ("fdatasync@.reason:1:EIO", 74, "new", False, None),
    ("fsync@spool/dead:1:EIO", 65, "dead", True, None),
    ("fsync@spool/dead:2:EIO", 65, "dead", True, "cannot sync dead/"),
]


@pytest.mark.parametrize("spec,rc,where,reason,warn", BURY_FAULTS,
                         ids=[f[0] for f in BURY_FAULTS])
def test_bury_faults(work, spec, rc, where, reason, warn):
    spool, name = corrupt_in_new(work)
    log = os.path.join(work, "faults")
    got, out, err = run("lf-spool", ["fsck", spool],
                        env=fault_env(spec, log))
    assert fault_log(log), "no fault was made: %s" % spec
    assert got == rc, (got, out, err)
    assert sorted(os.listdir(os.path.join(spool, where))) == \
        sorted([name] + ([name + ".reason"] if reason else []))
    if where == "new":
        # nothing half done: no reason, no temporary file left in dead/
        assert os.listdir(os.path.join(spool, "dead")) == []
    if warn:
        assert warn in err.decode(), err


REQUEUE_FAULTS = [
    ("rename@spool/new/:1:EIO", 74, "dead", None),
    # (74: queued, but the move may be undone by a crash)
    ("fsync@spool/new:1:EIO", 74, "new", "requeued, but cannot sync"),
    ("fsync@spool/dead:1:EIO", 74, "new", "requeued, but cannot sync"),
    ("unlink@.reason:1:EIO", 0, "new", "reason not removed"),
    ("fsync@spool/dead:2:EIO", 0, "new", "reason not removed"),
]


@pytest.mark.parametrize("spec,rc,where,warn", REQUEUE_FAULTS,
                         ids=[f[0] for f in REQUEUE_FAULTS])
def test_requeue_faults(work, spec, rc, where, warn):
    spool = lfchunk.make_spool(mkspool(work))
    name = lfchunk.write_chunk(spool, "t", [(1700000000, {"m": 0, "e": 0})],
                               dirname="dead")
    with open(os.path.join(spool, "dead", name + ".reason"), "w") as f:
        f.write("refused\n")
    log = os.path.join(work, "faults")
    got, out, err = run("lf-spool", ["requeue", spool],
                        env=fault_env(spec, log))
    assert fault_log(log), "no fault was made: %s" % spec
    assert got == rc, (got, out, err)
    assert name in os.listdir(os.path.join(spool, where))
    assert (b"requeued " + name.encode() in out) == (where == "new"), out
    if warn:
        assert warn in err.decode(), err


def test_staged_chunk_without_events_removed_at_start(work, procs):
    """A chunk made (its header synced) whose first commit never landed:
    at the next start it holds no event and is removed, not sealed; if
    removing it fails, the start fails and leaves it for the next."""
    spool = mkspool(work)
    b = lfb(procs, work, [spool])
    b.env = fault_env("pwrite@spool/tmp/:2+:EIO")   # every body write
    b.start()
    c = b.client()
    c.send("t", msg_events(0, 3), token=fluentd_token())
    wait_for(lambda: all_files(spool, "tmp"), what="the staged chunk")
    assert c.poll_acks(0.3) == []
    b.kill9()
    c.close()
    log = os.path.join(work, "faults")
    b.env = fault_env("unlink@spool/tmp/:1:EIO", log)
    b.start(wait_ready=False)
    assert b.exited() == 73
    assert fault_log(log) and len(all_files(spool, "tmp")) == 1
    b.env = None
    b.start()
    assert b.stop() == 0
    assert all_files(spool, "tmp") == [] and chunk_names(spool) == []


def test_stage_of_only_an_oversize_event_leaves_nothing(work, procs):
    """A message whose one event is over --chunk-limit-size makes a stage
    (in memory) that never gets an event: shutdown drops it, no file."""
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--chunk-limit-size", "1k"]).start()
    c = b.client()
    send_acked(c, "t", msg_events(0, 1, pad=2000))
    c.close()
    assert b.stop() == 0
    assert all_files(spool, "tmp") == [] and chunk_names(spool) == []
    assert "over chunk_limit_size" in b.err.decode()


# ---------------------------------------------------------------------------
# The window log: compaction (a new file replaces it) and its failures
# ---------------------------------------------------------------------------

WINDOW_FAULTS = [
    None,
    "rename@state/window:1:EIO",        # not replaced: tried again
    "openat@state/window:2:EMFILE",     # its temporary file
    "openat@state/window:3:EMFILE",     # opening the new log again
    "read@state/window:1:EINTR",
]


@pytest.mark.parametrize("spec", WINDOW_FAULTS, ids=str)
def test_window_compacted_keeps_ids(work, procs, spec):
    """--dedup-window 4: the log is compacted (rewritten from the ids it
    remembers) when it passes 8 records, by the tick's sync.  A failed
    compaction is tried again; the log is never written through the
    descriptor of the file it replaced.  After kill -9 the last ids are
    still known: re-sent messages are acked, not stored again."""
    spool = mkspool(work)
    wpath = os.path.join(spool, "state", "window")
    b = lfb(procs, work, [spool], ["--dedup-window", "4",
                                   "--flush-interval", "1s"])
    log = os.path.join(work, "faults")
    if spec:
        b.env = fault_env(spec, log)
    b.start()
    c = b.client()
    toks = []
    for i in range(30):
        toks.append(send_acked(c, "t", msg_events(i, 1)))
        if i % 10 == 9:
            # a tick (0.25 s) compacts what passed 8 records
            wait_for(lambda: os.path.getsize(wpath) <= 8 * 48,
                     what="the window compacted")
    c.close()
    b.kill9()
    b.start()           # (under the same rules: a read is made at start)
    if spec:
        assert fault_log(log), "no fault was made"
    c = b.client()
    for i in range(26, 30):
        c.send("t", msg_events(i, 1), token=toks[i])
    assert c.read_acks(4, WAIT) == toks[26:]
    # and once more in this run, which ends by itself (so that a coverage
    # build counts it: a process killed with -9 writes no counters)
    for i in range(30, 40):
        toks.append(send_acked(c, "t", msg_events(i, 1)))
    wait_for(lambda: os.path.getsize(wpath) <= 8 * 48,
             what="the window compacted")
    c.close()
    assert b.stop() == 0
    assert id_counts(spool_events(spool)) == {(i, 0): 1 for i in range(40)}
